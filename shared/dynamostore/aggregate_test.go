package dynamostore_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// rec builds stream records of dedup markers as the store writes them and
// the table's stream reports them, numbered from a base sequence number.
type rec struct {
	base  int64
	n     int64
	clock *storetest.Clock
}

func newRec(clock *storetest.Clock) *rec {
	return &rec{base: 300000000000000000, clock: clock}
}

// next returns the next record: a marker of campaign and ad written by
// owner over a marker written by oldOwner ("" for a new marker). Its user
// is named after owner, so that records of different owners are different
// users (see user).
func (r *rec) next(campaign, ad, owner, oldOwner string, filtered bool) dynamostore.StreamRecord {
	r.n++
	pk := &types.AttributeValueMemberS{Value: "DEDUP#" + uuid.NewString()}
	marker := func(owner string) map[string]types.AttributeValue {
		m := map[string]types.AttributeValue{
			"pk": pk, "sk": &types.AttributeValueMemberS{Value: "MARKER"},
			"owner": &types.AttributeValueMemberS{Value: owner},
			"c":     &types.AttributeValueMemberS{Value: campaign},
			"a":     &types.AttributeValueMemberS{Value: ad},
			"b":     &types.AttributeValueMemberN{Value: strconv.FormatInt(adcount.Bucket(r.clock.Now()), 10)},
			"expMs": &types.AttributeValueMemberN{Value: "1"},
			"u":     dynamostore.UserAttr("user-" + owner),
		}
		if filtered {
			m["f"] = &types.AttributeValueMemberN{Value: "1"}
		}
		return m
	}
	out := dynamostore.StreamRecord{EventName: "INSERT", Seq: strconv.FormatInt(r.base+r.n, 10), Created: r.clock.Now(), New: marker(owner)}
	if oldOwner != "" {
		out.EventName, out.Old = "MODIFY", marker(oldOwner)
	}
	return out
}

// user returns the next record: a newly counted impression of campaign's
// ad by the user userID.
func (r *rec) user(campaign, ad, userID string) dynamostore.StreamRecord {
	out := r.next(campaign, ad, uuid.NewString(), "", false)
	out.New["u"] = dynamostore.UserAttr(userID)
	return out
}

// counted returns n records, each a newly counted impression of campaign.
func (r *rec) counted(campaign string, n int) []dynamostore.StreamRecord {
	out := make([]dynamostore.StreamRecord, n)
	for i := range out {
		out[i] = r.next(campaign, "ad-"+strconv.Itoa(i%3), uuid.NewString(), "", false)
	}
	return out
}

// aggTarget is a table with a store and an aggregator over it, on a clock
// the test moves.
type aggTarget struct {
	tg    *target
	clock *storetest.Clock
	store *dynamostore.Store
	recs  *rec
}

func newAggTarget(t *testing.T) *aggTarget {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	tg := newTarget(t)
	return &aggTarget{tg: tg, clock: clock, store: tg.store(t, nil, dynamostore.WithClock(clock.Now)), recs: newRec(clock)}
}

func (a *aggTarget) aggregator(t *testing.T, f *faults, opts ...dynamostore.AggregatorOption) *dynamostore.Aggregator {
	t.Helper()
	var wrap func(http.RoundTripper) http.RoundTripper
	if f != nil {
		wrap = func(next http.RoundTripper) http.RoundTripper { f.next = next; return f }
	}
	db := a.tg.client(t, wrap)
	opts = append([]dynamostore.AggregatorOption{dynamostore.WithAggregatorClock(time.Now), dynamostore.WithAggregatorTimeout(time.Minute)}, opts...)
	agg, err := dynamostore.NewAggregator(db, a.tg.table, opts...)
	require.NoError(t, err)
	return agg
}

// adTotals reads the campaign's per-ad breakdown straight after Apply, as
// counts does, and checks that it adds up to the campaign's counts and
// that each ad's series agree with its counts: the per-ad items are as
// exact as the campaign's. It returns the ads' totals by ID.
func (a *aggTarget) adTotals(t *testing.T, id string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	st, err := a.store.Stats(ctx, id)
	require.NoError(t, err)
	page, err := a.store.AdStats(ctx, id, adcount.AdQuery{Limit: adcount.MaxPageLimit})
	require.NoError(t, err)
	require.Nil(t, page.Next)
	now := a.clock.Now()
	out := make(map[string]int64)
	var sum adcount.AdStats
	for _, ad := range page.Ads {
		out[ad.AdID] = ad.Total
		sum.LastHour += ad.LastHour
		sum.LastDay += ad.LastDay
		sum.Total += ad.Total
		sum.Filtered += ad.Filtered
		minutes, err := a.store.Series(ctx, id, adcount.SeriesQuery{From: now.Add(-59 * time.Minute), To: now.Add(time.Minute), Interval: adcount.Minute, AdID: ad.AdID})
		require.NoError(t, err)
		assert.Equal(t, ad.LastHour, sumPoints(minutes), "ad %s: minute points over its last hour", ad.AdID)
		days, err := a.store.Series(ctx, id, adcount.SeriesQuery{From: now.Add(-48 * time.Hour), To: now.Add(time.Minute), Interval: adcount.Day, AdID: ad.AdID})
		require.NoError(t, err)
		assert.Equal(t, ad.Total, sumPoints(days), "ad %s: day points", ad.AdID)
	}
	assert.Equal(t, [4]int64{st.LastHour, st.LastDay, st.Total, st.Filtered}, [4]int64{sum.LastHour, sum.LastDay, sum.Total, sum.Filtered},
		"the ads add up to the campaign")
	hours, err := a.store.Series(ctx, id, adcount.SeriesQuery{From: now.Add(-2 * time.Hour), To: now.Add(time.Minute), Interval: adcount.Hour})
	require.NoError(t, err)
	assert.Equal(t, st.Total, sumPoints(hours), "the campaign's hour points")
	return out
}

func sumPoints(s adcount.Series) int64 {
	var n int64
	for _, p := range s.Points {
		n += p.Count
	}
	return n
}

// users reads the campaign's unique users straight after Apply, as counts
// does.
func (a *aggTarget) users(t *testing.T, id string) adcount.UniqueUsers {
	t.Helper()
	st, err := a.store.Stats(context.Background(), id)
	require.NoError(t, err)
	return st.UniqueUsers
}

// counts reads the campaign's counts straight after Apply: the aggregator
// has committed them, so no watermark needs waiting for.
func (a *aggTarget) counts(t *testing.T, id string) [4]int64 {
	t.Helper()
	st, err := a.store.Stats(context.Background(), id)
	require.NoError(t, err)
	return [4]int64{st.LastHour, st.LastDay, st.Total, st.Filtered}
}

// TestApplyCountsOnlyNewlyWrittenMarkers feeds one record of each kind the
// stream carries and checks which of them count.
func TestApplyCountsOnlyNewlyWrittenMarkers(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	other := func(pk string) dynamostore.StreamRecord {
		r := a.recs.next(c.ID, "x", "o", "", false)
		r.New["pk"] = &types.AttributeValueMemberS{Value: pk}
		return r
	}
	legacy := a.recs.next(c.ID, "x", "o", "", false)
	delete(legacy.New, "c")
	removed := a.recs.next(c.ID, "x", "o", "", false)
	removed.EventName, removed.Old, removed.New = "REMOVE", removed.New, nil
	cases := []struct {
		name string
		rec  dynamostore.StreamRecord
		want [4]int64
	}{
		// A new marker is a counted impression.
		{"Inserted", a.recs.next(c.ID, "ad", "o1", "", false), [4]int64{1, 1, 1, 0}},
		// A marker rewritten by a new owner: the key's window had ended
		// and the impression counted again.
		{"RecountedByNewOwner", a.recs.next(c.ID, "ad", "o2", "o1", false), [4]int64{1, 1, 1, 0}},
		// The same owner in both images is no new count.
		{"SameOwner", a.recs.next(c.ID, "ad", "o3", "o3", false), [4]int64{}},
		// A filtered impression counts apart.
		{"Filtered", a.recs.next(c.ID, "ad", "o4", "", true), [4]int64{0, 0, 0, 1}},
		// The earlier write path counted its markers when it wrote them.
		{"LegacyMarker", legacy, [4]int64{}},
		// TTL deletions count nothing.
		{"Removed", removed, [4]int64{}},
		// The aggregator's own writes come back through the stream.
		{"CounterItem", other("CAMPAIGN#" + c.ID), [4]int64{}},
		{"Checkpoint", other("STREAM"), [4]int64{}},
	}
	agg := a.aggregator(t, nil)
	shard := uuid.NewString()
	var want [4]int64
	for _, tc := range cases {
		res, err := agg.Apply(context.Background(), shard, []dynamostore.StreamRecord{tc.rec})
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.rec.Seq, res.Through, tc.name)
		for i := range want {
			want[i] += tc.want[i]
		}
		assert.Equal(t, want, a.counts(t, c.ID), tc.name)
	}
}

// TestApplyExactlyOnce delivers records the ways a stream and its readers
// can: twice, in part, concurrently, after a lost commit, in batches too
// big for one transaction. Every counted marker must count exactly once.
func TestApplyExactlyOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// deliver applies recs as the case's failure would, and leaves
		// every record applied at least once.
		deliver func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord)
		// campaigns is how many campaigns the records are spread over.
		campaigns int
	}{
		// Lambda retries a whole batch after a timeout.
		{"WholeBatchRedelivered", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			agg, shard := a.aggregator(t, nil), uuid.NewString()
			first, err := agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			again, err := agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, len(recs), again.Skipped)
			assert.Zero(t, again.Transactions, "nothing is written again")
			assert.Zero(t, again.Sketches, "no reach either")
			assert.Equal(t, first.Through, again.Through)
		}, 2},
		// A partial batch response or a bisected batch sends the tail
		// again, and a reader's next batch overlaps what it had.
		{"PartOfBatchRedelivered", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			agg, shard := a.aggregator(t, nil), uuid.NewString()
			_, err := agg.Apply(context.Background(), shard, recs[:30])
			require.NoError(t, err)
			res, err := agg.Apply(context.Background(), shard, recs[10:])
			require.NoError(t, err)
			assert.Equal(t, 20, res.Skipped)
			assert.Equal(t, recs[len(recs)-1].Seq, res.Through)
		}, 2},
		// The commit lands but its answer is lost, every attempt, as when
		// the aggregator crashes between writing and hearing back: the
		// redelivery finds the checkpoint moved with the counts.
		{"CommitAnsweredNever", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f), uuid.NewString()
			f.set("TransactWriteItems", faultLostResponse, -1)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.Error(t, err)
			assert.Empty(t, res.Through, "the aggregator cannot know it applied anything")
			f.clear()
			res, err = agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, len(recs), res.Skipped, "the lost commit had applied everything")
		}, 2},
		// The SDK retries a commit whose answer was lost; the retry finds
		// the checkpoint moved and the aggregator reads it again.
		{"CommitRetriedBySDK", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f), uuid.NewString()
			f.set("TransactWriteItems", faultLostResponse, 1)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, recs[len(recs)-1].Seq, res.Through)
		}, 2},
		// Aggregators of other shards add to the same counter items at
		// the same moment: DynamoDB cancels with TransactionConflict and
		// the aggregator submits again, having applied nothing.
		{"ConflictWithAnotherTransaction", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f), uuid.NewString()
			f.set("TransactWriteItems", faultConflict, 2)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, 3, f.requests(), "two cancelled, one committed")
			assert.Equal(t, 1, res.Transactions)
		}, 2},
		// Two aggregators work on one shard at once, as Lambda does for a
		// moment when it moves a shard's lease.
		{"ConcurrentAggregators", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			shard := uuid.NewString()
			var wg sync.WaitGroup
			for i := range 4 {
				agg := a.aggregator(t, nil)
				wg.Go(func() {
					// Each delivers a different stretch from the shard's
					// start, as a reader resuming from an older position
					// would, and then the rest.
					_, err := agg.Apply(context.Background(), shard, recs[:15+i*15])
					assert.NoError(t, err)
					_, err = agg.Apply(context.Background(), shard, recs)
					assert.NoError(t, err)
				})
			}
			wg.Wait()
		}, 3},
		// 40 campaigns, with 60 (campaign, ad) pairs, need 301 counter
		// items: a stage of 4 parts. The third transaction fails, so the
		// stage is
		// unfinished: Through and the checkpoint stop before the batch,
		// which is delivered again, and that finishes the stage from the
		// stored parts and skips every record.
		{"MoreItemsThanOneTransaction", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f), uuid.NewString()
			f.setAfter("TransactWriteItems", faultInternal, 2, -1)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			assert.Equal(t, 2, res.Transactions, "the stage with its first part, and the second part")
			assert.Empty(t, res.Through, "an unfinished stage's records must come again")
			f.clear()
			cp, err := agg.Checkpoint(context.Background(), shard)
			require.NoError(t, err)
			assert.Empty(t, cp, "a reader starts before the unfinished stage")
			res, err = agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, len(recs), res.Skipped, "the stage had taken every record")
			assert.Equal(t, 2, res.Transactions, "the other two parts")
			assert.Equal(t, recs[len(recs)-1].Seq, res.Through)
			cp, err = agg.Checkpoint(context.Background(), shard)
			require.NoError(t, err)
			assert.Equal(t, recs[len(recs)-1].Seq, cp)
		}, 40},
		// The aggregator that staged a batch is gone after its first
		// transaction; another, given only records after the batch (or
		// none), finishes the stage from the stored parts first.
		{"StageFinishedByAnotherAggregator", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			first, shard := a.aggregator(t, f), uuid.NewString()
			f.setAfter("TransactWriteItems", faultInternal, 1, -1)
			_, err := first.Apply(context.Background(), shard, recs[:len(recs)-1])
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			other := a.aggregator(t, nil)
			res, err := other.Apply(context.Background(), shard, nil)
			require.NoError(t, err)
			assert.Equal(t, 3, res.Transactions, "the three parts left")
			res, err = other.Apply(context.Background(), shard, recs[len(recs)-1:])
			require.NoError(t, err)
			assert.Equal(t, int64(0), res.Counted, "the last record is the filtered one")
			assert.Equal(t, int64(1), res.Filtered)
			f.clear()
			res, err = first.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, len(recs), res.Skipped)
			assert.Zero(t, res.Transactions)
		}, 40},
		// A part's commit lands but its answer is lost; the SDK's retry
		// finds the part counted done, and the aggregator goes on with
		// the next.
		{"StagePartRetriedBySDK", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f), uuid.NewString()
			f.setAfter("TransactWriteItems", faultLostResponse, 1, 1)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, recs[len(recs)-1].Seq, res.Through)
		}, 40},
		// Four aggregators deliver the same big batch at once: they race
		// for the stage and then for each of its parts.
		{"ConcurrentAggregatorsOnAStage", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			shard := uuid.NewString()
			var wg sync.WaitGroup
			for range 4 {
				agg := a.aggregator(t, nil)
				wg.Go(func() {
					_, err := agg.Apply(context.Background(), shard, recs)
					assert.NoError(t, err)
				})
			}
			wg.Wait()
		}, 40},
		// A batch too big for one stage (here 150 counter items: the
		// first 25 records, the next 25, then the rest, 62 items) is
		// applied as several, each a prefix of the rest with its own
		// checkpoint; a failure in the second's second part resumes
		// there.
		{"MoreItemsThanOneStage", func(t *testing.T, a *aggTarget, recs []dynamostore.StreamRecord) {
			f := &faults{}
			agg, shard := a.aggregator(t, f, dynamostore.WithStageItems(150)), uuid.NewString()
			f.setAfter("TransactWriteItems", faultInternal, 3, -1)
			res, err := agg.Apply(context.Background(), shard, recs)
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			assert.Equal(t, 3, res.Transactions, "the first stage's two parts and the second's first")
			assert.Equal(t, recs[24].Seq, res.Through, "the first stage's records are applied")
			f.clear()
			res, err = agg.Apply(context.Background(), shard, recs)
			require.NoError(t, err)
			assert.Equal(t, 50, res.Skipped, "the first two stages' records")
			assert.Equal(t, 2, res.Transactions, "the second stage's last part, and the rest in one")
			assert.Equal(t, recs[len(recs)-1].Seq, res.Through)
		}, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAggTarget(t)
			ids := make([]string, tc.campaigns)
			var recs []dynamostore.StreamRecord
			for i := range ids {
				ids[i] = createCampaign(t, a.store, storetest.Epoch).ID
			}
			// Seven ads, so that the records' (campaign, ad) pairs
			// interleave as a real stream's do.
			want := make(map[string]map[string]int64)
			add := func(id, ad string) {
				recs = append(recs, a.recs.next(id, ad, uuid.NewString(), "", false))
				if want[id] == nil {
					want[id] = make(map[string]int64)
				}
				want[id][ad]++
			}
			for i := range 60 {
				add(ids[i%len(ids)], fmt.Sprint("ad-", i%7))
			}
			if tc.campaigns > 60 {
				for i, id := range ids[60:] {
					add(id, fmt.Sprint("ad-", i%7))
				}
			}
			recs = append(recs, a.recs.next(ids[0], "f", "x", "", true))
			want[ids[0]]["f"] = 0
			tc.deliver(t, a, recs)
			var total, filtered int64
			for i, id := range ids {
				got := a.counts(t, id)
				assert.Equal(t, got[0], got[2], "every impression is in the last hour")
				// Each record is a user of its own: a merge applied
				// twice, or lost to a race, shows here.
				assert.Equal(t, adcount.UniqueUsers{LastHour: got[2], LastDay: got[2], Total: got[2]}, a.users(t, id), "each user once")
				total += got[2]
				filtered += got[3]
				if i < 3 {
					// Each Query costs the in-process server a pass over
					// the whole table: a few campaigns in full, and every
					// ad's total below.
					assert.Equal(t, want[id], a.adTotals(t, id), "each ad's total")
				}
			}
			assert.Equal(t, int64(len(recs)-1), total, "each counted marker exactly once")
			assert.Equal(t, int64(1), filtered)
			assert.Equal(t, want, a.tg.adTotalItems(t), "each ad's total")
		})
	}
}

// TestApplyPassesOverABadRecord checks that a marker that cannot be
// counted is reported and passed over, so that it cannot wedge its shard,
// while a sequence number no stream sends fails the batch at its position:
// the records before it are applied, and Through says so, so that a
// partial batch response retries from it.
func TestApplyPassesOverABadRecord(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	cases := []struct {
		name  string
		spoil func(r *dynamostore.StreamRecord)
		// stops says the batch fails at the bad record.
		stops bool
	}{
		{"SequenceNumberNotDigits", func(r *dynamostore.StreamRecord) { r.Seq = "12ab" }, true},
		{"SequenceNumberTooLong", func(r *dynamostore.StreamRecord) { r.Seq = fmt.Sprintf("%041d", 1) }, true},
		{"MarkerWithoutMinute", func(r *dynamostore.StreamRecord) { delete(r.New, "b") }, false},
		{"MarkerWithoutOwner", func(r *dynamostore.StreamRecord) { delete(r.New, "owner") }, false},
		// A fingerprint that the store cannot have written.
		{"FingerprintNotANumber", func(r *dynamostore.StreamRecord) { r.New["u"] = &types.AttributeValueMemberS{Value: "u"} }, false},
		{"FingerprintPast48Bits", func(r *dynamostore.StreamRecord) {
			r.New["u"] = &types.AttributeValueMemberN{Value: strconv.FormatUint(1<<48, 10)}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.counts(t, c.ID)
			recs := a.recs.counted(c.ID, 5)
			tc.spoil(&recs[3])
			res, err := a.aggregator(t, nil).Apply(context.Background(), uuid.NewString(), recs)
			if tc.stops {
				require.ErrorIs(t, err, dynamostore.ErrMalformedItem)
				assert.Equal(t, recs[2].Seq, res.Through)
				assert.Equal(t, int64(3), res.Counted)
				assert.Equal(t, before[2]+3, a.counts(t, c.ID)[2])
				return
			}
			require.NoError(t, err)
			require.Len(t, res.Malformed, 1)
			assert.Equal(t, recs[3].Seq, res.Malformed[0].Seq)
			assert.ErrorIs(t, res.Malformed[0].Err, dynamostore.ErrMalformedItem)
			assert.Equal(t, recs[4].Seq, res.Through, "the checkpoint moved past it")
			assert.Equal(t, before[2]+4, a.counts(t, c.ID)[2], "the others count")
		})
	}
}

// TestStatsReportTheWatermark checks AsOf: the newest watermark of a live
// Streams reader, never a guess from the shards' checkpoints.
func TestStatsReportTheWatermark(t *testing.T) {
	t.Parallel()
	tg := newQuietTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	agg, err := dynamostore.NewAggregator(tg.client(t, nil), tg.table)
	require.NoError(t, err)
	ctx := context.Background()
	asOf := func() time.Time {
		t.Helper()
		st, err := s.Stats(ctx, c.ID)
		require.NoError(t, err)
		return st.AsOf
	}

	assert.True(t, asOf().IsZero(), "no aggregator has run")

	recs := newRec(clock)
	now := time.Now().UTC().Truncate(time.Second)
	one, two := recs.counted(c.ID, 1), recs.counted(c.ID, 1)
	one[0].Created, two[0].Created = now.Add(-5*time.Second), now.Add(-2*time.Second)
	_, err = agg.Apply(ctx, "shard-1", one)
	require.NoError(t, err)
	_, err = agg.Apply(ctx, "shard-2", two)
	require.NoError(t, err)
	assert.True(t, asOf().IsZero(), "shards' checkpoints say nothing of the shards no aggregator has been given")

	// A reader that stopped two hours ago: its item is past its expiry,
	// though TTL has not deleted it yet.
	gone, err := dynamostore.NewAggregator(tg.client(t, nil), tg.table,
		dynamostore.WithAggregatorClock(func() time.Time { return now.Add(-2 * time.Hour) }))
	require.NoError(t, err)
	require.NoError(t, gone.Advance(ctx, "reader-gone", now.Add(-2*time.Hour)))
	assert.True(t, asOf().IsZero(), "a reader past its expiry is not live")

	require.NoError(t, agg.Advance(ctx, "reader-1", now.Add(-10*time.Second)))
	assert.Equal(t, now.Add(-10*time.Second), asOf(), "a live reader, which read every shard")
	require.NoError(t, agg.Advance(ctx, "reader-1", now.Add(-time.Second)))
	assert.Equal(t, now.Add(-time.Second), asOf())
	require.NoError(t, agg.Advance(ctx, "reader-1", now.Add(-3*time.Second)))
	assert.Equal(t, now.Add(-time.Second), asOf(), "a watermark never goes back")

	settled, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Settle(settled), context.DeadlineExceeded, "nothing has read past now")
	require.NoError(t, agg.Advance(ctx, "reader-2", time.Now().Add(time.Second)))
	assert.NoError(t, s.Settle(ctx))
}

// TestCheckpointReadsBack checks what a Streams reader resumes after.
func TestCheckpointReadsBack(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	agg, shard := a.aggregator(t, nil), uuid.NewString()
	seq, err := agg.Checkpoint(context.Background(), shard)
	require.NoError(t, err)
	assert.Empty(t, seq, "nothing applied yet")
	recs := a.recs.counted(c.ID, 3)
	_, err = agg.Apply(context.Background(), shard, recs)
	require.NoError(t, err)
	seq, err = agg.Checkpoint(context.Background(), shard)
	require.NoError(t, err)
	assert.Equal(t, recs[2].Seq, seq)
}

// TestEarlierItemsStillCount is the migration: a table written by the
// earlier, transactional write path keeps its counts. Its total shards
// count for good and its hour shards until they expire, beside what the
// aggregator adds; its markers still deduplicate.
func TestEarlierItemsStillCount(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	db := a.tg.client(t, nil)
	hour := adcount.Bucket(storetest.Epoch) / adcount.HourBuckets
	hourKey := fmt.Sprintf("%016x", uint64(hour)^(1<<63))
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	k := imp.Key()
	expMs := storetest.Epoch.Add(time.Hour).UnixMilli()
	put := func(item map[string]types.AttributeValue) {
		_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(a.tg.table), Item: item})
		require.NoError(t, err)
	}
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	put(map[string]types.AttributeValue{"pk": s("CAMPAIGN#" + c.ID), "sk": s("TOTAL#000"), "n": n(5), "f": n(1)})
	put(map[string]types.AttributeValue{"pk": s("CAMPAIGN#" + c.ID), "sk": s("TOTAL#003"), "n": n(2)})
	put(map[string]types.AttributeValue{"pk": s("CAMPAIGN#" + c.ID), "sk": s("HOUR#" + hourKey + "#000"), "m00": n(4)})
	put(map[string]types.AttributeValue{"pk": s("CAMPAIGN#" + c.ID), "sk": s("HOUR#" + hourKey + "#003"), "m00": n(2)})
	put(map[string]types.AttributeValue{"pk": s(fmt.Sprintf("DEDUP#%x", k[:])), "sk": s("MARKER"), "expMs": n(expMs), "owner": s("old"), "ttl": n(expMs / 1000)})
	assert.Equal(t, [4]int64{6, 6, 7, 1}, a.counts(t, c.ID), "the earlier items' counts")

	assert.False(t, record(t, a.store, imp), "an earlier marker still deduplicates")
	_, err := a.aggregator(t, nil).Apply(context.Background(), uuid.NewString(), a.recs.counted(c.ID, 3))
	require.NoError(t, err)
	assert.Equal(t, [4]int64{9, 9, 10, 1}, a.counts(t, c.ID), "the aggregator's counts add to them")
	minutes, err := a.store.Series(context.Background(), c.ID, adcount.SeriesQuery{From: storetest.Epoch, To: storetest.Epoch.Add(time.Hour), Interval: adcount.Minute})
	require.NoError(t, err)
	assert.Equal(t, int64(9), minutes.Points[0].Count, "the minute points add the earlier hour shards, as Stats does")

	a.clock.Advance(25 * time.Hour)
	assert.Equal(t, [4]int64{0, 0, 10, 1}, a.counts(t, c.ID), "the windows slide past them")
}
