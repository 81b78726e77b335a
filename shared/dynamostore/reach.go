package dynamostore

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/reach"
)

// Reach: a campaign's unique users (adcount.UniqueUsers).
//
// Each counted impression's marker carries its user's fingerprint
// (reach.Hash). For each batch, the aggregator folds the fingerprints of
// the impressions it counts into one reach.Set per reach item the batch
// touches: the ten-minute bucket, the hour and the day each impression
// counted in, and the campaign's total (keys.go). It then merges each Set
// into its item with a read-modify-write: a strongly consistent GetItem,
// the merge, and an UpdateItem on the condition that the item's version
// is the one read. A write that loses to another aggregator (another
// shard's, merging into the same item) gets the item as it now is with
// its refusal, merges into that and tries again. A merge that leaves the
// item's canonical encoding as it was writes nothing.
//
// A merge is idempotent, so it needs no checkpoint of its own: the
// aggregator merges before the transaction that counts the same records
// and moves the checkpoint, and whatever makes it apply records again
// (a redelivery, a lost race for the checkpoint, a failure between the
// merge and the transaction) merges them again, adding nobody. Reach can
// so run ahead of the counts by a batch, never fall behind them, and
// Stats bounds it by them (adcount.UniqueUsers.Bound).

// reachAdd is what a batch adds to one reach item: its users, and the
// item's expiry (epoch seconds; 0 for never).
type reachAdd struct {
	set reach.Set
	ttl int64
}

// reachAdds is what a batch adds to each reach item it touches.
type reachAdds map[itemKey]*reachAdd

// add folds in c's user, if c is a counted impression with a fingerprint.
// Filtered impressions never add reach, and markers written before reach
// have no fingerprint: they count, but add nobody.
func (r reachAdds) add(c markerCount) {
	if !c.counted || c.filtered || !c.hasUser {
		return
	}
	pk := reachPK(c.campaign)
	hour, _ := hourOf(c.bucket)
	day, _ := dayOf(hour)
	b := reachBucketOf(c.bucket)
	r.put(itemKey{pk, reachBucketSK(b)}, reachBucketTTL(b), c.user)
	r.put(itemKey{pk, reachHourSK(hour)}, hourItemTTL(hour), c.user)
	r.put(itemKey{pk, reachDaySK(day)}, reachDayTTL(day), c.user)
	r.put(itemKey{pk, reachTotalSK}, 0, c.user)
}

func (r reachAdds) put(k itemKey, ttl int64, user uint64) {
	a, ok := r[k]
	if !ok {
		a = &reachAdd{ttl: ttl}
		r[k] = a
	}
	a.set.Add(user)
}

const (
	// reachConcurrency is how many reach items one Apply merges at once.
	reachConcurrency = 8
	// reachAttempts bounds how often a merge writes an item that other
	// aggregators keep changing under it before it gives up with
	// ErrUnavailable; the batch is then delivered again, and merging it
	// again is harmless. With n writers of one item each losing a round
	// with probability (n-1)/n, the jittered waits (conflictBackoff) are
	// what spreads them out; the bound is for a storm, not for n.
	reachAttempts = 20
	// conflictBase and conflictCap bound the wait after a lost write.
	conflictBase = 5 * time.Millisecond
	conflictCap  = 250 * time.Millisecond
)

// mergeReach merges adds into their items, a few at once, and counts the
// writes in res. It returns the first error, wrapped with the item's key.
func (a *Aggregator) mergeReach(ctx context.Context, adds reachAdds, res *Applied) error {
	if len(adds) == 0 {
		return nil
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reachConcurrency)
	for _, k := range slices.SortedFunc(maps.Keys(adds), compareKeys) {
		g.Go(func() error {
			wrote, conflicts, err := a.mergeItem(gctx, k, adds[k])
			mu.Lock()
			res.Sketches += wrote
			res.SketchConflicts += conflicts
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("reach item %s %s: %w", k.pk, k.sk, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// mergeItem merges add into the item k: see above. It reports how many
// writes it made (0 or 1) and how many it lost to another writer.
func (a *Aggregator) mergeItem(ctx context.Context, k itemKey, add *reachAdd) (wrote, conflicts int, err error) {
	callCtx, cancel := withTimeout(ctx, a.timeout)
	out, err := a.db.GetItem(callCtx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            key(k.pk, k.sk),
		ConsistentRead: aws.Bool(true),
	})
	cancel()
	if err != nil {
		return 0, 0, wrapUnavailable(err)
	}
	item := out.Item
	for attempt := 1; ; attempt++ {
		set, before, err := decodeSet(item)
		if err != nil {
			return 0, conflicts, err
		}
		ver, err := setVersion(item)
		if err != nil {
			return 0, conflicts, err
		}
		set.Merge(&add.set)
		after, err := set.AppendBinary(nil)
		if err != nil {
			return 0, conflicts, fmt.Errorf("encode the merged set: %w", err)
		}
		if bytes.Equal(before, after) {
			return 0, conflicts, nil
		}
		in, err := a.setUpdate(k, after, set.Exact(), ver, add.ttl)
		if err != nil {
			return 0, conflicts, err
		}
		callCtx, cancel := withTimeout(ctx, a.timeout)
		_, err = a.db.UpdateItem(callCtx, in)
		cancel()
		if err == nil {
			return 1, conflicts, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return 0, conflicts, wrapUnavailable(err)
		}
		// Another aggregator wrote the item since it was read (or this
		// write's own first attempt did, its answer lost): merge into the
		// item as the refusal returns it.
		conflicts++
		if attempt == reachAttempts {
			return 0, conflicts, fmt.Errorf("%w: the item changed under %d writes in a row", adcount.ErrUnavailable, attempt)
		}
		item = ccf.Item
		if err := conflictBackoff(ctx, attempt); err != nil {
			return 0, conflicts, wrapUnavailable(err)
		}
	}
}

// conflictBackoff waits after the attempt-th lost write of an item: a
// random time up to conflictBase doubled per attempt, at most
// conflictCap ("full jitter"), so that writers that lost together do not
// come back together.
func conflictBackoff(ctx context.Context, attempt int) error {
	ceiling := min(conflictBase<<min(attempt-1, 16), conflictCap)
	var b [8]byte
	_, _ = rand.Read(b[:])
	t := time.NewTimer(time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(ceiling)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// setUpdate writes enc, a Set's canonical encoding, to the item k on the
// condition that its version is still ver (0: the item has none, as
// before its first write), and sets its expiry (ttl > 0) or leaves it
// without one. exact says the Set is exact, so that enc is not worth
// compressing (see storedSet).
func (a *Aggregator) setUpdate(k itemKey, enc []byte, exact bool, ver, ttl int64) (*dynamodb.UpdateItemInput, error) {
	attr, other, stored, err := storedSet(enc, exact)
	if err != nil {
		return nil, err
	}
	names := map[string]string{"#s": attr, "#o": other, "#v": attrVersion}
	values := map[string]types.AttributeValue{":s": &types.AttributeValueMemberB{Value: stored}, ":v": num(ver + 1)}
	set := "SET #s = :s, #v = :v"
	if ttl > 0 {
		set += ", #ttl = :ttl"
		names["#ttl"], values[":ttl"] = TTLAttribute, num(ttl)
	}
	cond := "attribute_not_exists(#v)"
	if ver > 0 {
		cond = "#v = :prev"
		values[":prev"] = num(ver)
	}
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(a.table),
		Key:                                 key(k.pk, k.sk),
		UpdateExpression:                    aws.String(set + " REMOVE #o"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, nil
}

// maxSetBytes bounds a stored Set's encoding once decompressed: a Set
// encodes to at most 6,001 bytes (1,000 fingerprints of 6 bytes), so
// anything longer is not one, and no corrupt item can make a reader
// inflate more.
const maxSetBytes = 8 << 10

// storedSet returns how an item stores enc: the attribute it goes in, the
// attribute it must then not have, and the bytes. A sketch's registers
// are small numbers that Huffman coding alone packs into about a third of
// their 4 KB, so its item costs 2 write units instead of 5; an exact
// list of random fingerprints does not compress, and is stored as it is.
func storedSet(enc []byte, exact bool) (attr, other string, stored []byte, err error) {
	if exact {
		return attrSet, attrSetZ, enc, nil
	}
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.HuffmanOnly)
	if err != nil {
		return "", "", nil, err
	}
	if _, err := w.Write(enc); err != nil {
		return "", "", nil, fmt.Errorf("compress the set: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", "", nil, fmt.Errorf("compress the set: %w", err)
	}
	if buf.Len() < len(enc) {
		return attrSetZ, attrSet, buf.Bytes(), nil
	}
	return attrSet, attrSetZ, enc, nil
}

// decodeSet reads the Set a reach item holds, and its canonical encoding;
// an empty Set and nil for no item. An item that holds no Set, or bytes
// that no Set encodes to, is an ErrMalformedItem (wrapping
// reach.ErrInvalidEncoding for the latter): never read as nobody.
func decodeSet(item map[string]types.AttributeValue) (*reach.Set, []byte, error) {
	set := &reach.Set{}
	if len(item) == 0 {
		return set, nil, nil
	}
	raw, hasRaw := item[attrSet].(*types.AttributeValueMemberB)
	z, hasZ := item[attrSetZ].(*types.AttributeValueMemberB)
	var enc []byte
	switch {
	case hasRaw == hasZ:
		return nil, nil, fmt.Errorf("%w: a reach item holds its set in exactly one binary attribute, %s or %s", ErrMalformedItem, attrSet, attrSetZ)
	case hasRaw:
		enc = raw.Value
	default:
		r := flate.NewReader(bytes.NewReader(z.Value))
		b, err := io.ReadAll(io.LimitReader(r, maxSetBytes+1))
		_ = r.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: set %s does not decompress: %w", ErrMalformedItem, attrSetZ, err)
		}
		if len(b) > maxSetBytes {
			return nil, nil, fmt.Errorf("%w: set %s decompresses to more than %d bytes", ErrMalformedItem, attrSetZ, maxSetBytes)
		}
		enc = b
	}
	if err := set.UnmarshalBinary(enc); err != nil {
		return nil, nil, fmt.Errorf("%w: set: %w", ErrMalformedItem, err)
	}
	return set, enc, nil
}

// setVersion reads a reach item's version: 0 for no item.
func setVersion(item map[string]types.AttributeValue) (int64, error) {
	if len(item) == 0 {
		return 0, nil
	}
	if _, ok := item[attrVersion]; !ok {
		return 0, nil
	}
	return counter(item, attrVersion)
}

// mergeSetOf merges the Set that a reach item holds into dst.
func mergeSetOf(dst *reach.Set, item map[string]types.AttributeValue) error {
	set, _, err := decodeSet(item)
	if err != nil {
		return err
	}
	dst.Merge(set)
	return nil
}

// uniqueUsers reads the campaign's unique users at now, unbounded: the
// last hour's ten-minute items (adcount.ReachLastHour) with one Query,
// and the last day's hour items (adcount.ReachLastDay) with the total
// with another, both strongly consistent, at once. A Query is billed for
// the bytes it returns, rounded up once, where BatchGetItem rounds up
// each item: for a campaign of few users, 2 read units against 31.
func (s *Store) uniqueUsers(ctx context.Context, campaignID string, now time.Time) (adcount.UniqueUsers, error) {
	pk := reachPK(campaignID)
	buckets, hours := adcount.ReachLastHour(now), adcount.ReachLastDay(now)
	var lastHour, lastDay, total reach.Set
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.queryRange(gctx, pk, reachBucketSK(buckets.First), reachBucketSK(buckets.Last), func(sk string, item map[string]types.AttributeValue) error {
			if _, ok := parseKeyed(sk, reachBucketPre); !ok {
				return fmt.Errorf("%w: the sort key names no reach bucket", ErrMalformedItem)
			}
			return mergeSetOf(&lastHour, item)
		})
	})
	g.Go(func() error {
		// From the first hour to the total: the hours of the window, any
		// hour after it (a clock ahead of this one's), and the total.
		return s.queryRange(gctx, pk, reachHourSK(hours.First), reachTotalSK, func(sk string, item map[string]types.AttributeValue) error {
			if sk == reachTotalSK {
				return mergeSetOf(&total, item)
			}
			h, ok := parseKeyed(sk, reachHourPre)
			switch {
			case !ok:
				return fmt.Errorf("%w: the sort key names no hour", ErrMalformedItem)
			case !hours.Contains(h):
				return nil
			}
			return mergeSetOf(&lastDay, item)
		})
	})
	if err := g.Wait(); err != nil {
		return adcount.UniqueUsers{}, fmt.Errorf("reach: %w", err)
	}
	return adcount.UniqueUsers{LastHour: lastHour.Count(), LastDay: lastDay.Count(), Total: total.Count()}, nil
}

// seriesReach gives the points of a campaign's series that adcount.ReachKept
// keeps at now their unique users: one strongly consistent Query of the
// hour or day reach items of those points. A kept point without an item
// had no users.
func (s *Store) seriesReach(ctx context.Context, campaignID string, q adcount.SeriesQuery, series adcount.Series, now time.Time) error {
	var keep int64
	var prefix string
	switch q.Interval {
	case adcount.Hour:
		keep, prefix = adcount.ReachHourPoints, reachHourPre
	case adcount.Day:
		keep, prefix = adcount.ReachDayPoints, reachDayPre
	default:
		return nil
	}
	first, last := q.Range()
	cur := q.Interval.Index(now)
	lo, hi := max(first, cur-keep+1), min(last, cur)
	if lo > hi {
		return nil
	}
	users := make(map[int64]int64, hi-lo+1)
	err := s.queryRange(ctx, reachPK(campaignID), prefix+hourKey(lo), prefix+hourKey(hi), func(sk string, item map[string]types.AttributeValue) error {
		idx, ok := parseKeyed(sk, prefix)
		if !ok {
			return fmt.Errorf("%w: the sort key names no %s", ErrMalformedItem, q.Interval)
		}
		set, _, err := decodeSet(item)
		if err != nil {
			return err
		}
		users[idx] = set.Count()
		return nil
	})
	if err != nil {
		return fmt.Errorf("reach: %w", err)
	}
	for idx := lo; idx <= hi; idx++ {
		series.SetUniqueUsers(q.Interval, idx, users[idx])
	}
	return nil
}
