package dynamostore

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Series returns the campaign's counted impressions per interval, or
// ErrNotFound: a GetItem of the campaign, one strongly consistent Query of
// the range of counter items that holds the points, and the watermark's
// Query for AsOf, as Stats. Minute points come from the hour items
// (HOUR#, m00 to m59), hour points from the day items (DAY#, h00 to h23),
// day points from the day items too, as the sum of their hours; with
// q.AdID, from the ad's own items (see adPK). So a series reads at most 27
// hour items or 64 day items for its at most adcount.MaxSeriesPoints
// points, or for day points as many day items as points.
//
// Without q.AdID, the hour and day points that adcount.ReachKept keeps
// carry their unique users, from one more Query of the campaign's hour or
// day reach items (see seriesReach): at most 24 or 7 items.
//
// The caller has checked q (adcount.SeriesQuery.Check); the store refuses
// only what it cannot answer in bounded memory: an empty range, an unknown
// interval or more than MaxSeriesPoints points (ErrInvalid). Points before
// an item's retention read as zero.
func (s *Store) Series(ctx context.Context, campaignID string, q adcount.SeriesQuery) (adcount.Series, error) {
	const op = "series"
	now := s.now()
	if _, err := adcount.ParseInterval(string(q.Interval)); err != nil {
		return adcount.Series{}, fmt.Errorf("dynamostore: %s %s: %w", op, campaignID, err)
	}
	first, last := q.Range()
	if !q.From.Before(q.To) || last-first+1 > adcount.MaxSeriesPoints {
		return adcount.Series{}, fmt.Errorf("dynamostore: %s %s: %w", op, campaignID,
			&adcount.FieldError{Field: "to", Message: fmt.Sprintf("must be after from, and a series holds at most %d points", adcount.MaxSeriesPoints)})
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.getCampaignItem(ctx, campaignID); err != nil {
		return adcount.Series{}, s.wrap(op, campaignID, err)
	}
	pk := campaignPK(campaignID)
	if q.AdID != "" {
		pk = adPK(campaignID, q.AdID)
	}
	series := adcount.NewSeries(q)
	var from, to string
	switch q.Interval {
	case adcount.Minute:
		h1, _ := hourOf(first)
		h2, _ := hourOf(last)
		// "$" sorts after "#": the earlier write path's hour shards,
		// HOUR#<hour>#<shard>, of the last hour are in the range too, as
		// Stats adds them.
		from, to = hourSK(h1), hourSK(h2)+"$"
	case adcount.Hour:
		d1, _ := dayOf(first)
		d2, _ := dayOf(last)
		from, to = daySK(d1), daySK(d2)
	default:
		from, to = daySK(first), daySK(last)
	}
	err := s.queryRange(ctx, pk, from, to, func(sk string, item map[string]types.AttributeValue) error {
		if q.Interval == adcount.Minute {
			hour, ok := parseKeyed(sk, hourPrefix)
			if !ok {
				return fmt.Errorf("%w: the sort key names no hour", ErrMalformedItem)
			}
			return eachCounter(item, parseMinuteAttr, func(minute, n int64) {
				series.Add(adcount.Minute, hour*adcount.HourBuckets+minute, n)
			})
		}
		day, ok := parseKeyed(sk, dayPrefix)
		if !ok {
			return fmt.Errorf("%w: the sort key names no day", ErrMalformedItem)
		}
		return eachCounter(item, parseHourAttr, func(hourOfDay, n int64) {
			if q.Interval == adcount.Hour {
				series.Add(adcount.Hour, day*24+hourOfDay, n)
			} else {
				series.Add(adcount.Day, day, n)
			}
		})
	})
	if err != nil {
		return adcount.Series{}, s.wrap(op, campaignID, err)
	}
	if q.AdID == "" {
		if err := s.seriesReach(ctx, campaignID, q, series, now); err != nil {
			return adcount.Series{}, s.wrap(op, campaignID, err)
		}
	}
	if series.AsOf, err = s.watermark(ctx); err != nil {
		return adcount.Series{}, s.wrap(op, campaignID, err)
	}
	return series, nil
}

// queryRange reads the items of partition pk with sort keys from from to
// to, inclusive, strongly consistently, page by page, and hands each to
// fn with its sort key. An error of fn names the item.
func (s *Store) queryRange(ctx context.Context, pk, from, to string, fn func(sk string, item map[string]types.AttributeValue) error) error {
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
		ExpressionAttributeNames: map[string]string{"#pk": PartitionKey, "#sk": SortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":from": str(from), ":to": str(to),
		},
		ConsistentRead: aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			sk, _ := getString(item, SortKey)
			if err := fn(sk, item); err != nil {
				return fmt.Errorf("item %s: %w", sk, err)
			}
		}
	}
	return nil
}

// eachCounter calls fn with the index and value of each of item's counter
// attributes that parse accepts, and fails on one that is not a count.
func eachCounter(item map[string]types.AttributeValue, parse func(string) (int64, bool), fn func(idx, n int64)) error {
	for name := range item {
		idx, ok := parse(name)
		if !ok {
			continue // the keys and the TTL
		}
		n, err := counter(item, name)
		if err != nil {
			return err
		}
		fn(idx, n)
	}
	return nil
}

// parseHourAttr returns the hour of the day that an hour counter
// attribute ("h00" to "h23") counts.
func parseHourAttr(name string) (int64, bool) {
	if len(name) != 3 || name[0] != 'h' {
		return 0, false
	}
	h, err := strconv.ParseInt(name[1:], 10, 64)
	if err != nil || h < 0 || h >= 24 {
		return 0, false
	}
	return h, true
}

// AdStats returns one page of the campaign's per-ad breakdown, in
// adcount.MoreFirst order, or ErrNotFound.
//
// It reads the campaign (GetItem), then every ad's total with one strongly
// consistent Query of the campaign's ADTOTAL# items, page by page, keeping
// only the q.Limit+1 first after q.After in a heap: memory O(q.Limit)
// however many ads, time one pass over their totals. Then it reads only
// the page's ads' window items with BatchGetItem: for each, the hour items
// of the last hour's minutes (LastHour, exact to the minute) and the day
// items of the current hour and the 23 before (LastDay, whole hours).
// AsOf is the watermark, as in Stats. It returns ErrInvalid for a limit
// adcount.CheckPageLimit refuses.
func (s *Store) AdStats(ctx context.Context, campaignID string, q adcount.AdQuery) (adcount.AdPage, error) {
	const op = "ad stats"
	if err := adcount.CheckPageLimit(q.Limit); err != nil {
		return adcount.AdPage{}, fmt.Errorf("dynamostore: %s %s: %w", op, campaignID, err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	now := s.now()
	if _, err := s.getCampaignItem(ctx, campaignID); err != nil {
		return adcount.AdPage{}, s.wrap(op, campaignID, err)
	}
	top := &topAds{keep: q.Limit + 1}
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND begins_with(#sk, :ads)"),
		ExpressionAttributeNames: map[string]string{"#pk": PartitionKey, "#sk": SortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(campaignPK(campaignID)), ":ads": str(adTotalPrefix),
		},
		ConsistentRead: aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return adcount.AdPage{}, s.wrap(op, campaignID, err)
		}
		for _, item := range page.Items {
			sk, _ := getString(item, SortKey)
			n, f, err := totals(item)
			if err != nil {
				return adcount.AdPage{}, fmt.Errorf("dynamostore: %s %s: item %s: %w", op, campaignID, sk, err)
			}
			a := adcount.AdStats{AdID: strings.TrimPrefix(sk, adTotalPrefix), Total: n, Filtered: f}
			if q.After != nil && q.After.Covers(a) {
				continue
			}
			top.offer(a)
		}
	}
	var out adcount.AdPage
	out.Ads = top.sorted()
	if len(out.Ads) > q.Limit {
		out.Ads = out.Ads[:q.Limit]
		last := out.Ads[q.Limit-1]
		out.Next = &adcount.AdCursor{Total: last.Total, AdID: last.AdID}
	}
	if err := s.adWindows(ctx, campaignID, out.Ads, now); err != nil {
		return adcount.AdPage{}, s.wrap(op, campaignID, err)
	}
	var err error
	if out.AsOf, err = s.watermark(ctx); err != nil {
		return adcount.AdPage{}, s.wrap(op, campaignID, err)
	}
	return out, nil
}

// maxBatchGet is how many keys one BatchGetItem takes.
const maxBatchGet = 100

// adWindows fills in each ad's LastHour and LastDay at now from its hour
// and day items: at most two of each, read with BatchGetItem, 100 keys a
// request, a few requests at once.
func (s *Store) adWindows(ctx context.Context, campaignID string, ads []adcount.AdStats, now time.Time) error {
	if len(ads) == 0 {
		return nil
	}
	lastHour := adcount.LastHour(now)
	h1, _ := hourOf(lastHour.First)
	h2, _ := hourOf(lastHour.Last)
	// The current hour and the 23 before it.
	dayFirst, dayLast := h2-23, h2
	d1, _ := dayOf(dayFirst)
	d2, _ := dayOf(dayLast)
	var keys []map[string]types.AttributeValue
	byPK := make(map[string]int, len(ads))
	for i, a := range ads {
		pk := adPK(campaignID, a.AdID)
		byPK[pk] = i
		for _, sk := range slices.Compact([]string{hourSK(h1), hourSK(h2), daySK(d1), daySK(d2)}) {
			keys = append(keys, key(pk, sk))
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for chunk := range slices.Chunk(keys, maxBatchGet) {
		g.Go(func() error {
			return s.batchGet(gctx, chunk, func(item map[string]types.AttributeValue) error {
				pk, _ := getString(item, PartitionKey)
				sk, _ := getString(item, SortKey)
				i, ok := byPK[pk]
				if !ok {
					return fmt.Errorf("%w: BatchGetItem answered item %s %s, which was not asked for", ErrMalformedItem, pk, sk)
				}
				mu.Lock()
				defer mu.Unlock()
				a := &ads[i]
				var err error
				if hour, ok := parseKeyed(sk, hourPrefix); ok {
					err = eachCounter(item, parseMinuteAttr, func(minute, n int64) {
						if lastHour.Contains(hour*adcount.HourBuckets + minute) {
							a.LastHour += n
						}
					})
				} else if day, ok := parseKeyed(sk, dayPrefix); ok {
					err = eachCounter(item, parseHourAttr, func(hourOfDay, n int64) {
						if h := day*24 + hourOfDay; h >= dayFirst && h <= dayLast {
							a.LastDay += n
						}
					})
				} else {
					err = fmt.Errorf("%w: the sort key names no hour or day", ErrMalformedItem)
				}
				if err != nil {
					return fmt.Errorf("item %s %s: %w", pk, sk, err)
				}
				return nil
			})
		})
	}
	return g.Wait()
}

// batchGetAttempts bounds the requests one batchGet makes for keys that
// DynamoDB left unprocessed, as it does when throttled.
const batchGetAttempts = 5

// batchGet reads keys, at most maxBatchGet, strongly consistently, and
// hands each item found to fn. Keys DynamoDB leaves unprocessed are asked
// for again, with backoff; if some still are after batchGetAttempts, it
// fails with ErrUnavailable rather than answer with counts missing.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, fn func(map[string]types.AttributeValue) error) error {
	for attempt := 1; ; attempt++ {
		out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return err
		}
		for _, item := range out.Responses[s.table] {
			if err := fn(item); err != nil {
				return err
			}
		}
		keys = out.UnprocessedKeys[s.table].Keys
		if len(keys) == 0 {
			return nil
		}
		if attempt == batchGetAttempts {
			return fmt.Errorf("%w: %d keys still unprocessed after %d requests", adcount.ErrUnavailable, len(keys), attempt)
		}
		if err := backoff(ctx, min(attempt, 4)); err != nil {
			return err
		}
	}
}

// topAds keeps the first keep ads in adcount.MoreFirst order of those it
// is offered: a heap whose root is the last of them, so that each offer
// costs O(log keep) and memory never exceeds keep ads.
type topAds struct {
	keep int
	ads  []adcount.AdStats
}

func (t *topAds) Len() int           { return len(t.ads) }
func (t *topAds) Less(i, j int) bool { return adcount.MoreFirst(t.ads[i], t.ads[j]) > 0 }
func (t *topAds) Swap(i, j int)      { t.ads[i], t.ads[j] = t.ads[j], t.ads[i] }
func (t *topAds) Push(x any)         { t.ads = append(t.ads, x.(adcount.AdStats)) }
func (t *topAds) Pop() any {
	last := t.ads[len(t.ads)-1]
	t.ads = t.ads[:len(t.ads)-1]
	return last
}

// offer keeps a if it is among the first keep ads offered so far.
func (t *topAds) offer(a adcount.AdStats) {
	switch {
	case len(t.ads) < t.keep:
		heap.Push(t, a)
	case adcount.MoreFirst(a, t.ads[0]) < 0:
		t.ads[0] = a
		heap.Fix(t, 0)
	}
}

// sorted returns the ads kept, in MoreFirst order.
func (t *topAds) sorted() []adcount.AdStats {
	out := slices.Clone(t.ads)
	slices.SortFunc(out, adcount.MoreFirst)
	return out
}
