package dynamostore_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	"github.com/adcount/impression-counter/shared/reach"
	"github.com/adcount/impression-counter/shared/storetest"
)

// users returns the records of impressions of campaign by the users
// named prefix+from to prefix+to-1, one each, on ad "a".
func (r *rec) users(campaign, prefix string, from, to int) []dynamostore.StreamRecord {
	out := make([]dynamostore.StreamRecord, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, r.user(campaign, "a", fmt.Sprint(prefix, i)))
	}
	return out
}

// TestApplyMergesReach walks a campaign through its reach windows on a
// moved clock: each step applies a batch and checks the unique users that
// Stats reports, and which of the reach items the batch wrote.
func TestApplyMergesReach(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	agg, shard := a.aggregator(t, nil), uuid.NewString()
	withoutFingerprint := func(r dynamostore.StreamRecord) dynamostore.StreamRecord {
		delete(r.New, "u")
		return r
	}
	steps := []struct {
		name    string
		advance time.Duration
		recs    func() []dynamostore.StreamRecord
		// want is the unique users after the step, and sketches the
		// reach items the step wrote.
		want     adcount.UniqueUsers
		sketches int
	}{
		// Five users, one of them twice on two ads: the ten-minute
		// bucket, the hour, the day and the total, each written once.
		{"FirstUsers", 0, func() []dynamostore.StreamRecord {
			return append(a.recs.users(c.ID, "u", 0, 5), a.recs.user(c.ID, "b", "u0"))
		}, adcount.UniqueUsers{LastHour: 5, LastDay: 5, Total: 5}, 4},
		// The same users counted again (their windows ended): nothing
		// changes, so nothing is written.
		{"SameUsersAgain", time.Minute, func() []dynamostore.StreamRecord {
			return a.recs.users(c.ID, "u", 0, 5)
		}, adcount.UniqueUsers{LastHour: 5, LastDay: 5, Total: 5}, 0},
		// A new ten-minute bucket with three users seen before and three
		// new: a new bucket item, and the hour, day and total grow.
		{"NextBucket", 10 * time.Minute, func() []dynamostore.StreamRecord {
			return a.recs.users(c.ID, "u", 2, 8)
		}, adcount.UniqueUsers{LastHour: 8, LastDay: 8, Total: 8}, 4},
		// Filtered impressions never add reach, and markers written
		// before reach count but add nobody: nothing to write.
		{"FilteredAndWithoutFingerprint", time.Minute, func() []dynamostore.StreamRecord {
			return []dynamostore.StreamRecord{
				a.recs.next(c.ID, "a", "bot", "", true),
				withoutFingerprint(a.recs.user(c.ID, "a", "old-marker")),
			}
		}, adcount.UniqueUsers{LastHour: 8, LastDay: 8, Total: 8}, 0},
		// At 1:05 the first bucket (0:00 to 0:10) has left last_hour,
		// whose six buckets start at 0:10: the users of 0:10 to 0:12
		// remain. The counts' last hour, by minutes, holds 0:06 to 1:05.
		{"FirstBucketLeavesLastHour", time.Hour + 5*time.Minute - 12*time.Minute, nil,
			adcount.UniqueUsers{LastHour: 6, LastDay: 8, Total: 8}, 0},
		// A day later only the total remains.
		{"DayLater", 24 * time.Hour, nil, adcount.UniqueUsers{Total: 8}, 0},
		// New users the next day: a new bucket, hour and day; the total
		// grows.
		{"NextDay", 0, func() []dynamostore.StreamRecord {
			return a.recs.users(c.ID, "v", 0, 3)
		}, adcount.UniqueUsers{LastHour: 3, LastDay: 3, Total: 11}, 4},
	}
	for _, st := range steps {
		a.clock.Advance(st.advance)
		if st.recs != nil {
			res, err := agg.Apply(context.Background(), shard, st.recs())
			require.NoError(t, err, st.name)
			assert.Equal(t, st.sketches, res.Sketches, "%s: reach items written", st.name)
			assert.Zero(t, res.SketchConflicts, st.name)
		}
		assert.Equal(t, st.want, a.users(t, c.ID), st.name)
	}
}

// TestMarkersCarryTheirUser checks the hot path end to end: markers
// written by RecordImpressions carry their user's fingerprint, so that
// the aggregator's reach counts each user once however many impressions,
// ads and batches they have, and a repeat or a filtered impression adds
// nobody.
func TestMarkersCarryTheirUser(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch.Add(time.Minute))
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	var imps []adcount.Impression
	for i := range 30 {
		imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", i%12), AdID: fmt.Sprint("ad-", i%5)})
	}
	imps = append(imps, imps[0], adcount.Impression{CampaignID: c.ID, UserID: "bot", AdID: "ad-0", Filtered: true})
	_, err := s.RecordImpressions(context.Background(), imps)
	require.NoError(t, err)
	st := reachStats(t, s, c.ID)
	assert.Equal(t, int64(30), st.Total, "30 distinct (user, ad) keys")
	assert.Equal(t, adcount.UniqueUsers{LastHour: 12, LastDay: 12, Total: 12}, st.UniqueUsers, "12 users")
	assert.InDelta(t, 2.5, st.Frequency().Total, 0.001)
}

// TestReachPastExactIsTheSketch counts more users than a Set holds
// exactly: the items hold the same sketch as one Set fed every user, so
// Stats estimate exactly what reach.Set does, within the counts. A sketch
// is stored compressed, in about a third of its 4 KB.
func TestReachPastExactIsTheSketch(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	agg, shard := a.aggregator(t, nil), uuid.NewString()
	var want reach.Set
	for b := range 3 {
		recs := a.recs.users(c.ID, "u", b*900, b*900+1000)
		for i := b * 900; i < b*900+1000; i++ {
			want.Add(reach.Hash(fmt.Sprint("u", i)))
		}
		_, err := agg.Apply(context.Background(), shard, recs)
		require.NoError(t, err)
	}
	require.False(t, want.Exact())
	n := min(want.Count(), 3000)
	assert.Equal(t, adcount.UniqueUsers{LastHour: n, LastDay: n, Total: n}, a.users(t, c.ID))
	assert.InEpsilon(t, 2800, n, 0.05, "2,800 users, within the sketch's error")
	for _, it := range a.tg.reachItems(t, c.ID) {
		z, ok := it["z"].(*types.AttributeValueMemberB)
		require.True(t, ok, "%s: a sketch is stored compressed", it["sk"])
		assert.NotContains(t, it, "s")
		assert.Less(t, len(z.Value), 2048, "%s: within 2 write units", it["sk"])
	}
}

// TestReachItemsExpireWhenNoWindowReadsThem checks each reach item's TTL:
// a margin after the last moment a window or a kept point reads it.
func TestReachItemsExpireWhenNoWindowReadsThem(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	at := storetest.Epoch.Add(26*time.Hour + 17*time.Minute)
	a.clock.Advance(at.Sub(storetest.Epoch))
	// Truncating a time counts from year 1, a UTC midnight.
	_, err := a.aggregator(t, nil).Apply(context.Background(), uuid.NewString(), a.recs.users(c.ID, "u", 0, 1))
	require.NoError(t, err)
	bucketEnd := at.Truncate(10 * time.Minute).Add(10 * time.Minute)
	hourEnd := at.Truncate(time.Hour).Add(time.Hour)
	dayEnd := at.Truncate(24 * time.Hour).Add(24 * time.Hour)
	want := map[string]time.Time{
		// last_hour reads a bucket until 50 minutes after it ends.
		"B#": bucketEnd.Add(2 * time.Hour),
		// last_day and the hour points read an hour until 23 hours
		// after it ends.
		"H#": hourEnd.Add(25 * time.Hour),
		// The day points read a day until 6 days after it ends.
		"D#": dayEnd.Add(8 * 24 * time.Hour),
	}
	items := a.tg.reachItems(t, c.ID)
	require.Len(t, items, 4)
	for _, it := range items {
		sk := it["sk"].(*types.AttributeValueMemberS).Value
		if sk == "TOTAL" {
			assert.NotContains(t, it, "ttl", "the total is kept for good")
			continue
		}
		ttl, ok := it["ttl"].(*types.AttributeValueMemberN)
		require.True(t, ok, sk)
		assert.Equal(t, strconv.FormatInt(want[sk[:2]].Unix(), 10), ttl.Value, sk)
	}
}

// TestSeriesCarryReachWhereKept reads a campaign's series after traffic
// every hour for nine days: hour points carry unique users for the last
// 24 hours, day points for the last 7 days, and nothing else does.
func TestSeriesCarryReachWhereKept(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	agg, shard := a.aggregator(t, nil), uuid.NewString()
	// From the first UTC midnight after the campaign's start (truncating
	// counts from year 1, a UTC midnight).
	midnight := storetest.Epoch.Truncate(24 * time.Hour).Add(24 * time.Hour)
	a.clock.Advance(midnight.Sub(storetest.Epoch))
	// Each hour, three users: one seen every hour ("all"), one seen
	// every hour of that day, and one of its own.
	var recs []dynamostore.StreamRecord
	for h := range 9 * 24 {
		recs = append(recs,
			a.recs.user(c.ID, "a", "all"),
			a.recs.user(c.ID, "a", fmt.Sprint("day-", h/24)),
			a.recs.user(c.ID, "a", fmt.Sprint("hour-", h)))
		a.clock.Advance(time.Hour)
	}
	a.clock.Advance(-30 * time.Minute) // the middle of the last hour
	_, err := agg.Apply(context.Background(), shard, recs)
	require.NoError(t, err)
	now := a.clock.Now()
	ctx := context.Background()

	hours, err := a.store.Series(ctx, c.ID, adcount.SeriesQuery{From: now.Add(-48 * time.Hour), To: now, Interval: adcount.Hour})
	require.NoError(t, err)
	require.Len(t, hours.Points, 49)
	for i, p := range hours.Points {
		kept := i >= 25
		assert.Equal(t, kept, p.HasUniqueUsers, "hour point %d", i)
		assert.Equal(t, int64(3), p.Count)
		if kept {
			assert.Equal(t, int64(3), p.UniqueUsers, "hour point %d", i)
		} else {
			assert.Zero(t, p.UniqueUsers)
		}
	}
	days, err := a.store.Series(ctx, c.ID, adcount.SeriesQuery{From: midnight, To: now, Interval: adcount.Day})
	require.NoError(t, err)
	require.Len(t, days.Points, 9)
	for i, p := range days.Points {
		assert.Equal(t, i >= 2, p.HasUniqueUsers, "day point %d", i)
		if i >= 2 {
			// "all", the day's user and its 24 hourly users.
			assert.Equal(t, int64(26), p.UniqueUsers, "day point %d", i)
		}
	}
	for _, q := range []adcount.SeriesQuery{
		// Minutes never carry reach, nor does one ad's series.
		{From: now.Add(-time.Hour), To: now, Interval: adcount.Minute},
		{From: now.Add(-24 * time.Hour), To: now, Interval: adcount.Hour, AdID: "a"},
		{From: now.Add(-7 * 24 * time.Hour), To: now, Interval: adcount.Day, AdID: "a"},
	} {
		s, err := a.store.Series(ctx, c.ID, q)
		require.NoError(t, err)
		for _, p := range s.Points {
			require.False(t, p.HasUniqueUsers, "%+v", q)
		}
	}
	// The point holding now is what Stats merge for it.
	st, err := a.store.Stats(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, adcount.UniqueUsers{LastHour: 3, LastDay: 2 + 24, Total: 1 + 9 + 9*24}, st.UniqueUsers,
		"the last day's 24 hours are one day's: \"all\", that day's user and 24 hourly users")
}

// interpose runs fn once, before the first request of op that passes
// through it: a write of another process landing between this client's
// read and its write.
type interpose struct {
	next http.RoundTripper
	op   string
	once sync.Once
	fn   func()
}

func (i *interpose) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+i.op) {
		i.once.Do(i.fn)
	}
	return i.next.RoundTrip(r)
}

// TestReachMergeRetriesAConflict makes another shard's aggregator write the
// same reach items between this aggregator's read and its write: the write
// is refused on the version, merged into the item as it now is, and
// written again, so that neither batch's users are lost.
func TestReachMergeRetriesAConflict(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	other := a.aggregator(t, nil)
	first, second := a.recs.users(c.ID, "x", 0, 40), a.recs.users(c.ID, "y", 0, 40)
	var otherErr error
	ip := &interpose{op: "UpdateItem", fn: func() {
		_, otherErr = other.Apply(context.Background(), uuid.NewString(), second)
	}}
	db := a.tg.client(t, func(next http.RoundTripper) http.RoundTripper { ip.next = next; return ip })
	agg, err := dynamostore.NewAggregator(db, a.tg.table, dynamostore.WithAggregatorTimeout(time.Minute))
	require.NoError(t, err)
	res, err := agg.Apply(context.Background(), uuid.NewString(), first)
	require.NoError(t, err)
	require.NoError(t, otherErr)
	assert.GreaterOrEqual(t, res.SketchConflicts, 1, "the other aggregator wrote in between")
	assert.Equal(t, adcount.UniqueUsers{LastHour: 80, LastDay: 80, Total: 80}, a.users(t, c.ID))
}

// TestConcurrentAggregatorsLoseNoUser runs aggregators of different shards
// at once, each merging overlapping users into the same reach items, both
// while the items are exact and once they are sketches: the items end up
// as one Set fed every user would be. Run it many times
// (-count=20 -cpu 1,2): the interleavings differ every run.
func TestConcurrentAggregatorsLoseNoUser(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// Each of the shards applies users [k*step, k*step+per) in
		// batches of batch.
		shards, step, per, batch int
	}{
		// 6 × 60 impressions of 210 users: exact.
		{"Exact", 6, 30, 60, 20},
		// 4 × 600 impressions of 1,500 users: sketches, merged with
		// exact sets on the way.
		{"Sketch", 4, 300, 600, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAggTarget(t)
			c := createCampaign(t, a.store, storetest.Epoch)
			var want reach.Set
			recs := make([][]dynamostore.StreamRecord, tc.shards)
			for k := range recs {
				recs[k] = a.recs.users(c.ID, "u", k*tc.step, k*tc.step+tc.per)
				for i := k * tc.step; i < k*tc.step+tc.per; i++ {
					want.Add(reach.Hash(fmt.Sprint("u", i)))
				}
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			conflicts := 0
			for k := range recs {
				agg := a.aggregator(t, nil)
				wg.Go(func() {
					shard := uuid.NewString()
					for i := 0; i < len(recs[k]); i += tc.batch {
						res, err := agg.Apply(context.Background(), shard, recs[k][i:i+tc.batch])
						assert.NoError(t, err)
						mu.Lock()
						conflicts += res.SketchConflicts
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			t.Logf("%d writes refused on a concurrent change and merged again", conflicts)
			n := min(want.Count(), int64(tc.shards*tc.per))
			assert.Equal(t, adcount.UniqueUsers{LastHour: n, LastDay: n, Total: n}, a.users(t, c.ID))
			assert.Equal(t, int64(tc.shards*tc.per), a.counts(t, c.ID)[2])
		})
	}
}

// TestCorruptReachIsAnError spoils one reach item the ways a hand edit or
// another program could: Stats, Series and the aggregator each fail with
// ErrMalformedItem naming the item, never read it as nobody nor write
// over it, and never panic.
func TestCorruptReachIsAnError(t *testing.T) {
	t.Parallel()
	deflate := func(b []byte) []byte {
		var buf bytes.Buffer
		w, err := flate.NewWriter(&buf, flate.BestCompression)
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	bin := func(b []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: b} }
	cases := []struct {
		name string
		// set and remove are the item's attributes to set and remove.
		set    map[string]types.AttributeValue
		remove []string
		// invalid says the error also matches reach.ErrInvalidEncoding.
		invalid bool
	}{
		// Bytes of no form a Set encodes to.
		{"UnknownForm", map[string]types.AttributeValue{"s": bin([]byte{9, 1, 2})}, []string{"z"}, true},
		// Fingerprints cut short.
		{"TruncatedExact", map[string]types.AttributeValue{"s": bin([]byte{1, 1, 2, 3})}, []string{"z"}, true},
		// A sketch cut short.
		{"TruncatedSketch", map[string]types.AttributeValue{"s": bin([]byte{2, 1, 12, 0, 0, 7})}, []string{"z"}, true},
		// Compressed bytes that do not decompress.
		{"NotDeflate", map[string]types.AttributeValue{"z": bin([]byte{0xff, 0xfe, 0xfd})}, []string{"s"}, false},
		// A compressed form that would inflate to 100 KB.
		{"DeflateBomb", map[string]types.AttributeValue{"z": bin(deflate(make([]byte, 100<<10)))}, []string{"s"}, false},
		// Compressed garbage.
		{"DeflatedGarbage", map[string]types.AttributeValue{"z": bin(deflate([]byte{1, 2, 3}))}, []string{"s"}, true},
		// Both forms at once, or a string where bytes belong.
		{"BothForms", map[string]types.AttributeValue{"s": bin([]byte{1}), "z": bin(deflate([]byte{1}))}, nil, false},
		{"StringSet", map[string]types.AttributeValue{"s": &types.AttributeValueMemberS{Value: "x"}}, []string{"z"}, false},
		// A version that is not one.
		{"VersionNotANumber", map[string]types.AttributeValue{"v": &types.AttributeValueMemberS{Value: "1"}}, nil, false},
	}
	tg := newQuietTarget(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a := &aggTarget{tg: tg, clock: storetest.NewClock(storetest.Epoch.Add(30 * time.Minute))}
			a.store, a.recs = tg.store(t, nil, dynamostore.WithClock(a.clock.Now)), newRec(a.clock)
			c := createCampaign(t, a.store, storetest.Epoch)
			agg := a.aggregator(t, nil)
			_, err := agg.Apply(ctx, uuid.NewString(), a.recs.users(c.ID, "u", 0, 3))
			require.NoError(t, err)
			hourSK := ""
			for _, sk := range sortKeys(tg.reachItems(t, c.ID)) {
				if strings.HasPrefix(sk, "H#") {
					hourSK = sk
				}
			}
			require.NotEmpty(t, hourSK)
			db := tg.client(t, nil)
			names, values := map[string]string{}, map[string]types.AttributeValue{}
			var sets, removes []string
			for attr, v := range tc.set {
				names["#"+attr], values[":"+attr] = attr, v
				sets = append(sets, "#"+attr+" = :"+attr)
			}
			for _, attr := range tc.remove {
				names["#"+attr] = attr
				removes = append(removes, "#"+attr)
			}
			expr := "SET " + strings.Join(sets, ", ")
			if len(removes) > 0 {
				expr += " REMOVE " + strings.Join(removes, ", ")
			}
			_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(tg.table), Key: itemKey("REACH#"+c.ID, hourSK),
				UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values,
			})
			require.NoError(t, err)
			check := func(what string, err error) {
				t.Helper()
				require.ErrorIs(t, err, dynamostore.ErrMalformedItem, what)
				assert.ErrorContains(t, err, hourSK, "%s: the error names the item", what)
				assert.NotErrorIs(t, err, adcount.ErrUnavailable, "%s: a retry cannot help", what)
				if tc.invalid {
					assert.ErrorIs(t, err, reach.ErrInvalidEncoding, what)
				}
			}
			if tc.name != "VersionNotANumber" {
				// Readers ignore the version.
				_, err = a.store.Stats(ctx, c.ID)
				check("stats", err)
				_, err = a.store.Series(ctx, c.ID, adcount.SeriesQuery{From: storetest.Epoch, To: a.clock.Now(), Interval: adcount.Hour})
				check("series", err)
			}
			// Stats fail, so the ads' breakdown, which reads no reach,
			// tells the count.
			total := func() int64 {
				page, err := a.store.AdStats(ctx, c.ID, adcount.AdQuery{Limit: 10})
				require.NoError(t, err)
				require.Len(t, page.Ads, 1)
				return page.Ads[0].Total
			}
			require.Equal(t, int64(3), total())
			res, err := agg.Apply(ctx, uuid.NewString(), a.recs.users(c.ID, "v", 0, 2))
			check("apply", err)
			assert.Empty(t, res.Through, "the batch is not applied, and must come again")
			assert.Equal(t, int64(3), total(), "nor counted")
		})
	}
}
