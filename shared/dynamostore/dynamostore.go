// Package dynamostore is the DynamoDB adcount.Store: one exact count that
// every process and every Lambda instance shares.
//
// An impression costs one conditional write: the dedup marker, which
// carries the campaign, the ad, the minute it counted in and the user's
// fingerprint. The table's stream carries each newly written marker to an
// Aggregator, which folds a batch of them at a time into the campaign's
// counter items, exactly once, and its users into the campaign's reach
// items, idempotently, so that no item is written per impression and none
// is hot.
// docs/dynamodb.md describes the data model, the failure modes, why
// retries and redeliveries cannot double-count, and what it costs.
package dynamostore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/reach"
)

// Defaults and limits of the options.
const (
	// DefaultTimeout bounds each store call, SDK retries included, unless
	// WithTimeout says otherwise.
	DefaultTimeout = 5 * time.Second
	// DefaultBatchConcurrency is how many marker writes one
	// RecordImpressions call has in flight at most, unless
	// WithBatchConcurrency says otherwise: enough to write a batch of
	// adcount.MaxBatch in well under a second at DynamoDB's usual latency,
	// few enough that one batch cannot take a whole connection pool.
	DefaultBatchConcurrency = 16
	// DefaultPingCache is how long Ping reuses its last answer unless
	// WithPingCache says otherwise: long enough that frequent readiness
	// probes from several load balancers cost one DescribeTable call per
	// process every few seconds, short enough that a deleted table or
	// revoked credentials show within a probe interval or two.
	DefaultPingCache = 5 * time.Second
)

// Client is the part of the DynamoDB API that the store calls; each method
// is one IAM action the store needs on its table, except
// TransactWriteItems, which IAM authorises action by action (PutItem for
// the campaign writes). Only Ping calls DescribeTable, so a process that
// never checks readiness (a Lambda function) needs no permission for it.
// docs/dynamodb.md lists which method calls which. *dynamodb.Client
// implements it.
type Client interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store is the DynamoDB adcount.Store. It holds no state of its own beyond
// its settings, so any number of Stores, in any number of processes, may
// share one table. It is safe for concurrent use.
type Store struct {
	db        Client
	table     string
	now       func() time.Time
	wall      func() time.Time // reads the watermark's clock; see Stats.AsOf
	ttl       time.Duration
	timeout   time.Duration
	pingCache time.Duration
	inFlight  int // marker writes in flight per batch
	refresh   time.Duration
	campaigns *campaignCache
	listScan  int // list entries one filtered ListCampaigns reads at most

	// ping holds one token: the Ping that holds it reads and refreshes
	// the cached answer, so concurrent probes make one call between them.
	ping    chan struct{}
	pingAt  time.Time // when pingErr was found; zero before the first check
	pingErr error
}

var _ adcount.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store reads for dedup expiry, start times and
// window buckets. Tests pass a clock they move by hand. The default is
// time.Now. Every process sharing a table should read a clock that agrees
// with the others to well within a window bucket.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithDedupTTL sets how long a repeat of the same (campaign, user, ad) is
// ignored. The default is adcount.DefaultDedupTTL.
func WithDedupTTL(ttl time.Duration) Option { return func(s *Store) { s.ttl = ttl } }

// WithPingCache sets how long Ping reuses its last answer, measured on the
// store's clock (WithClock); DefaultPingCache if not set, zero to check on
// every call.
func WithPingCache(d time.Duration) Option { return func(s *Store) { s.pingCache = d } }

// WithTimeout bounds each store call, the SDK's own retries included; zero
// means no bound beyond the caller's context. A call that runs out of time
// returns ErrUnavailable. In a batch it bounds each impression's
// write; the caller's context bounds the batch.
func WithTimeout(d time.Duration) Option { return func(s *Store) { s.timeout = d } }

// WithBatchConcurrency sets how many marker writes one RecordImpressions
// call has in flight at most, from 1 to adcount.MaxBatch;
// DefaultBatchConcurrency if not set. Each concurrent batch has its own.
func WithBatchConcurrency(n int) Option { return func(s *Store) { s.inFlight = n } }

// New returns a store over the named table, which must have the key schema
// and TTL attribute that Schema describes. It fails for an empty table
// name, a dedup TTL that adcount.CheckDedupTTL refuses, or a negative
// timeout, ping cache or campaign refresh. It makes no call to DynamoDB.
func New(db Client, table string, opts ...Option) (*Store, error) {
	s := &Store{
		db: db, table: table, now: time.Now, wall: time.Now, ttl: adcount.DefaultDedupTTL,
		timeout: DefaultTimeout, pingCache: DefaultPingCache,
		inFlight: DefaultBatchConcurrency, ping: make(chan struct{}, 1),
		refresh: CampaignRefresh, campaigns: newCampaignCache(campaignCacheSize),
		listScan: maxListScan,
	}
	for _, opt := range opts {
		opt(s)
	}
	if err := adcount.CheckDedupTTL(s.ttl); err != nil {
		return nil, fmt.Errorf("dynamostore: %w", err)
	}
	switch {
	case db == nil:
		return nil, errors.New("dynamostore: a DynamoDB client is required")
	case table == "":
		return nil, errors.New("dynamostore: a table name is required")
	case s.timeout < 0:
		return nil, fmt.Errorf("dynamostore: timeout must not be negative, got %v", s.timeout)
	case s.pingCache < 0:
		return nil, fmt.Errorf("dynamostore: ping cache must not be negative, got %v", s.pingCache)
	case s.refresh < 0:
		return nil, fmt.Errorf("dynamostore: campaign refresh must not be negative, got %v", s.refresh)
	case s.inFlight < 1 || s.inFlight > adcount.MaxBatch:
		return nil, fmt.Errorf("dynamostore: batch concurrency must be between 1 and %d, got %d", adcount.MaxBatch, s.inFlight)
	}
	return s, nil
}

// RecordImpression counts imp unless the same (campaign, user, ad) was
// counted within the dedup TTL, and returns Counted, Duplicate or, for a
// filtered impression, Filtered. A nil error means DynamoDB has durably
// committed the impression's dedup marker, and with it the impression:
// the table's stream delivers the marker to the aggregator, so Stats
// include it once the aggregator's watermark passes (Settle).
//
// It returns ErrInvalid for a malformed impression, ErrNotFound for an
// unknown campaign, and ErrNotStarted, ErrPaused or ErrEnded for a
// campaign that is not live (adcount.Campaign.Live); none of them changes
// anything. A pause or an end made through another process is seen
// within CampaignRefresh (see checkLive). It returns ErrUnavailable if DynamoDB
// throttled, failed or did not answer in time: then the impression may or
// may not have been counted, and a retry of the same impression is safe,
// because the marker is the count.
func (s *Store) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	if err := imp.Validate(); err != nil {
		return 0, fmt.Errorf("dynamostore: record impression: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out, _, err := s.record(ctx, imp)
	return out, err
}

// record checks imp's campaign and writes its marker; the caller has
// validated imp. It returns the outcome and, where the answer tells, the
// Unix millisecond until which imp's key is taken (0 where it does not).
//
// The marker is one UpdateItem on the condition that no live marker holds
// the key. A marker whose window has ended but that DynamoDB's TTL has not
// yet deleted is not live: the condition compares the expiry itself. When
// the condition fails, DynamoDB returns the live marker. If its owner is
// this call, the write is this call's own, committed by an attempt whose
// answer was lost and retried by the SDK: the impression counted, once.
func (s *Store) record(ctx context.Context, imp adcount.Impression) (adcount.Outcome, int64, error) {
	now := s.now()
	if err := s.checkLive(ctx, imp.CampaignID, now); err != nil {
		return 0, 0, err
	}
	return s.write(ctx, imp, now)
}

// write writes imp's marker at now, as record describes; the caller has
// checked that the campaign is live at now.
func (s *Store) write(ctx context.Context, imp adcount.Impression, now time.Time) (adcount.Outcome, int64, error) {
	const op = "record impression"
	owner := newToken()
	in, expMs := s.markerWrite(imp, now, owner)
	taken, repeat := adcount.Counted, adcount.Duplicate
	if imp.Filtered {
		taken, repeat = adcount.Filtered, adcount.Filtered
	}
	_, err := s.db.UpdateItem(ctx, in)
	if err == nil {
		return taken, expMs, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return 0, 0, s.wrap(op, imp.CampaignID, err)
	}
	exp, cerr := counter(ccf.Item, attrExpiresMs)
	if cerr != nil {
		exp = 0
	}
	if got, _ := getString(ccf.Item, attrOwner); got == owner {
		return taken, exp, nil
	}
	return repeat, exp, nil
}

// markerWrite builds the one write that counts imp at now, and returns the
// marker's expiry in Unix milliseconds. The marker carries what the
// aggregator needs to count it (campaign, ad, minute, filtered), the
// user's fingerprint for the campaign's reach (see userAttr), and a new
// owner token, which is what tells the aggregator a recount from a marker
// it has seen.
func (s *Store) markerWrite(imp adcount.Impression, now time.Time, owner string) (*dynamodb.UpdateItemInput, int64) {
	nowMs := now.UnixMilli()
	expMs := nowMs + s.ttl.Milliseconds()
	set := "SET #exp = :exp, #ttl = :ttl, #owner = :owner, #e = :owner, #c = :c, #a = :a, #b = :b, #u = :u"
	names := map[string]string{
		"#exp": attrExpiresMs, "#ttl": TTLAttribute, "#owner": attrOwner, "#e": attrEpoch,
		"#c": attrCampaign, "#a": attrAd, "#b": attrBucket, "#u": attrUser,
	}
	values := map[string]types.AttributeValue{
		":exp": num(expMs), ":ttl": num(ceilDiv(expMs, 1000)), ":owner": str(owner), ":now": num(nowMs),
		":c": str(imp.CampaignID), ":a": str(imp.AdID), ":b": num(adcount.Bucket(now)),
		":u": userAttr(reach.Hash(imp.UserID)),
	}
	if imp.Filtered {
		set += ", #f = :one"
		names["#f"] = attrFiltered
		values[":one"] = num(1)
	}
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 key(markerPK(imp.Key()), markerSK),
		UpdateExpression:                    aws.String(set),
		ConditionExpression:                 aws.String("attribute_not_exists(#exp) OR #exp <= :now"),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, expMs
}

// RecordImpressions records a batch of at most adcount.MaxBatch
// impressions and returns one Result each, exactly as RecordImpression
// would have answered them one by one in order; see adcount.Store.
//
// Each impression's marker is its own conditional write, the one that
// RecordImpression sends, so a batch is exactly as safe to retry as each
// of its impressions; DynamoDB's BatchWriteItem takes no conditions. The
// writes run concurrently, at most WithBatchConcurrency of them in flight,
// except that impressions with the same dedup key are written one after
// another in batch order, as one by one they would be. A repeat whose
// earlier impression in the batch has just taken its key, or found it
// taken until later, is answered from that without a request: a write
// would find the same and cost a write unit. Invalid impressions are
// refused without a request, and each campaign is read at most once per
// refresh bound (and then cached; see checkLive).
//
// It returns ErrInvalid for a batch of more than adcount.MaxBatch and
// ctx's error for a ctx already done, both before any request. If a
// write fails (ErrUnavailable when DynamoDB throttled, failed or did
// not answer in time), the batch stops and returns that error; the
// impressions already written stay written, so the outcomes are unknown,
// and a retry of the whole batch is safe.
func (s *Store) RecordImpressions(ctx context.Context, imps []adcount.Impression) ([]adcount.Result, error) {
	const op = "record impressions"
	if err := adcount.CheckBatchSize(len(imps)); err != nil {
		return nil, fmt.Errorf("dynamostore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dynamostore: %s: %w", op, err)
	}
	res := make([]adcount.Result, len(imps))
	// chains lists the impressions of each dedup key in batch order.
	var chains [][]int
	byKey := make(map[adcount.DedupKey]int, len(imps))
	for i, imp := range imps {
		if err := imp.Validate(); err != nil {
			res[i].Err = fmt.Errorf("dynamostore: record impression: %w", err)
			continue
		}
		k := imp.Key()
		c, ok := byKey[k]
		if !ok {
			c = len(chains)
			byKey[k] = c
			chains = append(chains, nil)
		}
		chains[c] = append(chains[c], i)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.inFlight)
	for _, chain := range chains {
		g.Go(func() error { return s.recordChain(gctx, imps, res, chain) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return res, nil
}

// recordChain records the impressions of one dedup key, at the indexes
// chain, in order, into res.
func (s *Store) recordChain(ctx context.Context, imps []adcount.Impression, res []adcount.Result, chain []int) error {
	var takenUntil int64 // Unix ms; 0 while unknown
	for _, i := range chain {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dynamostore: record impression %s: %w", imps[i].CampaignID, err)
		}
		imp := imps[i]
		callCtx, cancel := s.withTimeout(ctx)
		now := s.now()
		err := s.checkLive(callCtx, imp.CampaignID, now)
		var (
			out   adcount.Outcome
			until int64
		)
		switch {
		case err != nil:
		case takenUntil > 0 && now.UnixMilli() < takenUntil:
			// The campaign is live and the key is taken: what the write
			// would find.
			out, until = adcount.Duplicate, takenUntil
			if imp.Filtered {
				out = adcount.Filtered
			}
		default:
			out, until, err = s.write(callCtx, imp, now)
		}
		cancel()
		switch {
		case err == nil:
			res[i].Outcome, takenUntil = out, until
		case refused(err):
			res[i].Err, takenUntil = err, 0
		default:
			return err
		}
	}
	return nil
}

// refused reports whether err refuses one impression of a batch, as
// opposed to failing the batch: its campaign is unknown or not live.
func refused(err error) bool {
	for _, e := range [...]error{adcount.ErrNotFound, adcount.ErrNotStarted, adcount.ErrPaused, adcount.ErrEnded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func reasonCodes(reasons []types.CancellationReason) string {
	codes := make([]string, len(reasons))
	for i, r := range reasons {
		codes[i] = aws.ToString(r.Code)
	}
	return strings.Join(codes, ",")
}

// backoff waits before the next attempt of a cancelled transaction: 10ms,
// then 20ms, each with up to as much again of random jitter, so that
// conflicting writers spread out.
func backoff(ctx context.Context, attempt int) error {
	base := 10 * time.Millisecond << (attempt - 1)
	var b [2]byte
	_, _ = rand.Read(b[:])
	d := base + time.Duration(binary.BigEndian.Uint16(b[:]))*base/65536
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Stats returns the campaign's counts as of the store's clock, or
// ErrNotFound, from one strongly consistent Query (more pages only past
// 1 MB). The Query reads the campaign item, its total and the hour items
// of the last 25 hours, at most 27 small items however many impressions
// there were, plus what the earlier write path left (see keys.go). A
// second Query reads the aggregator's watermark, which Stats report as
// AsOf: the counts include every impression acknowledged before it.
//
// The unique users come from the campaign's reach items, read at the same
// time by two more Queries (see uniqueUsers), and are bounded by the
// counts (adcount.UniqueUsers.Bound), which they may briefly run ahead
// of. An item whose set does not decode is an ErrMalformedItem naming it.
// docs/dynamodb.md states the read units.
func (s *Store) Stats(ctx context.Context, campaignID string) (adcount.Stats, error) {
	const op = "stats"
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	now := s.now()
	stats := adcount.Stats{CampaignID: campaignID}
	found := false
	var users adcount.UniqueUsers
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		found, err = s.counts(gctx, &stats, now)
		return err
	})
	g.Go(func() (err error) {
		users, err = s.uniqueUsers(gctx, campaignID, now)
		return err
	})
	if err := g.Wait(); err != nil {
		return adcount.Stats{}, s.wrap(op, campaignID, err)
	}
	if !found {
		return adcount.Stats{}, fmt.Errorf("dynamostore: %s %s: %w", op, campaignID, adcount.ErrNotFound)
	}
	stats.UniqueUsers = users.Bound(stats)
	wm, err := s.watermark(ctx)
	if err != nil {
		return adcount.Stats{}, s.wrap(op, campaignID, err)
	}
	stats.AsOf = wm
	return stats, nil
}

// counts adds the campaign's counts at now to stats from one Query of its
// partition (see Stats), and reports whether the campaign exists.
func (s *Store) counts(ctx context.Context, stats *adcount.Stats, now time.Time) (bool, error) {
	lastHour, lastDay := adcount.LastHour(now), adcount.LastDay(now)
	firstHour, _ := hourOf(lastDay.First)
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND #sk >= :from"),
		ExpressionAttributeNames: map[string]string{"#pk": PartitionKey, "#sk": SortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":   str(campaignPK(stats.CampaignID)),
			":from": str(hourPrefix + hourKey(firstHour)),
		},
		ConsistentRead: aws.Bool(true),
	})
	found := false
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return false, err
		}
		for _, item := range page.Items {
			sk, _ := getString(item, SortKey)
			switch {
			case sk == metaSK:
				found = true
			case sk == totalSK || strings.HasPrefix(sk, totalSK+"#"):
				// TOTAL is the aggregator's; TOTAL#<shard> the earlier
				// write path's, which count what they counted for good.
				n, f, err := totals(item)
				if err != nil {
					return false, fmt.Errorf("item %s: %w", sk, err)
				}
				stats.Total += n
				stats.Filtered += f
			case strings.HasPrefix(sk, hourPrefix):
				hour, ok := parseHourSK(sk)
				if !ok {
					return false, fmt.Errorf("item %s: %w: the sort key names no hour", sk, ErrMalformedItem)
				}
				for name := range item {
					minute, ok := parseMinuteAttr(name)
					if !ok {
						continue // the keys and the TTL
					}
					n, err := counter(item, name)
					if err != nil {
						return false, fmt.Errorf("item %s: %w", sk, err)
					}
					b := hour*adcount.HourBuckets + minute
					if lastHour.Contains(b) {
						stats.LastHour += n
					}
					if lastDay.Contains(b) {
						stats.LastDay += n
					}
				}
			}
		}
	}
	return found, nil
}

// totals reads a total shard's counts of impressions and of filtered
// impressions. A shard may hold either alone, as its first impression
// wrote it, but not neither.
func totals(item map[string]types.AttributeValue) (counted, filtered int64, err error) {
	_, hasCount := item[attrCount]
	_, hasFiltered := item[attrFiltered]
	if hasCount || !hasFiltered {
		if counted, err = counter(item, attrCount); err != nil {
			return 0, 0, err
		}
	}
	if hasFiltered {
		if filtered, err = counter(item, attrFiltered); err != nil {
			return 0, 0, err
		}
	}
	return counted, filtered, nil
}

// parseMinuteAttr returns the minute that a minute counter attribute
// ("m00" to "m59") counts.
func parseMinuteAttr(name string) (int64, bool) {
	if len(name) != 3 || name[0] != 'm' {
		return 0, false
	}
	m, err := strconv.ParseInt(name[1:], 10, 64)
	if err != nil || m < 0 || m >= adcount.HourBuckets {
		return 0, false
	}
	return m, true
}

func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// wrap adds the operation and key to a DynamoDB error, and marks it
// ErrUnavailable when it is transient or the table is missing: the API then
// answers 503 with Retry-After, and the client's retry is safe.
func (s *Store) wrap(op, id string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case missingTable(err):
		// Every request fails alike until the table exists: a 503, and a
		// failing readiness check (Ping), rather than a 500 per request.
		return fmt.Errorf("dynamostore: %s %s: %w: table %s not found: %w", op, id, adcount.ErrUnavailable, s.table, err)
	case transient(err):
		return fmt.Errorf("dynamostore: %s %s: %w: %w", op, id, adcount.ErrUnavailable, err)
	}
	return fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
}

// newToken returns 128 random bits as 32 hex digits. With a suffix of up to
// four characters it fits DynamoDB's 36-character ClientRequestToken.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b > 0 {
		q++
	}
	return q
}
