package dynamostore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/reach"
	"github.com/adcount/impression-counter/shared/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		return newTarget(t).store(t, nil, dynamostore.WithClock(now), dynamostore.WithDedupTTL(ttl))
	})
}

func TestNewRejectsBadSettings(t *testing.T) {
	t.Parallel()
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1"})
	cases := []struct {
		name  string
		table string
		opts  []dynamostore.Option
		want  string
	}{
		// Without a table there is nowhere to count.
		{"NoTable", "", nil, "table name"},
		// Dedup is exact to the millisecond; a shorter window cannot be kept.
		{"TTLUnderAMillisecond", "t", []dynamostore.Option{dynamostore.WithDedupTTL(time.Microsecond)}, "dedup_ttl"},
		{"TTLTooLong", "t", []dynamostore.Option{dynamostore.WithDedupTTL(adcount.MaxDedupTTL + time.Millisecond)}, "dedup_ttl"},
		{"NegativeTimeout", "t", []dynamostore.Option{dynamostore.WithTimeout(-time.Second)}, "timeout"},
		// A readiness answer cannot be reused for less than no time.
		{"NegativePingCache", "t", []dynamostore.Option{dynamostore.WithPingCache(-time.Second)}, "ping cache"},
		// A campaign cannot be trusted for less than no time.
		{"NegativeCampaignRefresh", "t", []dynamostore.Option{dynamostore.WithCampaignRefresh(-time.Second)}, "campaign refresh"},
		// A batch needs at least one transaction in flight, and never more
		// than it has impressions.
		{"NoBatchConcurrency", "t", []dynamostore.Option{dynamostore.WithBatchConcurrency(0)}, "batch concurrency"},
		{"TooMuchBatchConcurrency", "t", []dynamostore.Option{dynamostore.WithBatchConcurrency(adcount.MaxBatch + 1)}, "batch concurrency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dynamostore.New(db, tc.table, tc.opts...)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestStoresShareOneTableExactly runs several stores, each with its own
// client as separate Lambda instances would have, against one table. Every
// key is sent several times, through different stores at once, and must
// count exactly once per dedup window.
func TestStoresShareOneTableExactly(t *testing.T) {
	t.Parallel()
	const (
		instances = 3
		workers   = 3 // per instance
		keys      = 100
		repeats   = 3 // each key is sent this many times, by different instances
	)
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	stores := make([]*dynamostore.Store, instances)
	for i := range stores {
		stores[i] = tg.store(t, nil, dynamostore.WithClock(clock.Now))
	}
	c := createCampaign(t, stores[0], storetest.Epoch)

	send := func(round string) {
		t.Helper()
		var counted sync.Map
		var wg sync.WaitGroup
		errs := make(chan error, instances*workers)
		for i := range instances {
			for w := range workers {
				wg.Go(func() {
					for n := w; n < keys*repeats; n += workers {
						// Instances walk the keys from different offsets, so the
						// copies of one key meet in different instances at once.
						k := (n + i*keys/instances) % keys
						imp := adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("user-", k), AdID: "ad"}
						ok, err := stores[i].RecordImpression(context.Background(), imp)
						if err != nil {
							errs <- err
							return
						}
						// Only a reply that counted is recorded: a duplicate
						// may be answered before or after the reply that
						// counted its key, and either order is right.
						if ok != adcount.Counted {
							continue
						}
						if _, dup := counted.LoadOrStore(imp, true); dup {
							errs <- fmt.Errorf("%s: %+v counted twice", round, imp)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		n := 0
		counted.Range(func(any, any) bool { n++; return true })
		require.Equal(t, keys, n, "%s: exactly one reply per key says it counted", round)
	}

	send("first window")
	want := adcount.Stats{CampaignID: c.ID, LastHour: keys, LastDay: keys, Total: keys}
	for i, s := range stores {
		assert.Equal(t, want, stats(t, s, c.ID), "every instance reads the same exact count (instance %d)", i)
	}

	// A window later every key counts once more, still exactly once.
	clock.Advance(storetest.TTL)
	send("second window")
	want = adcount.Stats{CampaignID: c.ID, LastHour: keys, LastDay: 2 * keys, Total: 2 * keys}
	assert.Equal(t, want, stats(t, stores[1], c.ID))
}

// TestOneWritePerImpression checks the hot path's whole footprint: an
// impression writes its dedup marker, carrying what the aggregator needs,
// and nothing in the campaign's partition; the aggregator then writes the
// total, the hour's minutes and the day's hours.
func TestOneWritePerImpression(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch.Add(90 * time.Second))
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "ad-7"}
	require.True(t, record(t, s, imp))

	items := tg.items(t, c.ID, imp)
	require.Equal(t, []string{"META", "MARKER"}, sortKeys(items)[:2], "the hot path writes the marker alone")
	marker := items[len(items)-1]
	assert.Equal(t, &types.AttributeValueMemberS{Value: c.ID}, marker["c"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "ad-7"}, marker["a"])
	assert.Equal(t, &types.AttributeValueMemberN{Value: strconv.FormatInt(adcount.Bucket(clock.Now()), 10)}, marker["b"])
	assert.NotEmpty(t, marker["owner"])
	assert.NotContains(t, marker, "f")
	assert.Equal(t, &types.AttributeValueMemberN{Value: strconv.FormatUint(reach.Hash("u")>>16, 10)}, marker["u"], "the user's fingerprint's 48 bits, for reach")

	assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 1, LastDay: 1, Total: 1, UniqueUsers: adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}},
		reachStats(t, s, c.ID))
	var aggregated []string
	campaignItems := tg.items(t, c.ID)
	for _, sk := range sortKeys(campaignItems) {
		if sk != "META" {
			aggregated = append(aggregated, sk[:min(len(sk), 4)])
		}
	}
	assert.Equal(t, []string{"ADTO", "DAY#", "HOUR", "TOTA"}, aggregated, "the ad's total, one day, one hour and the total")
	assert.Equal(t, "ADTOTAL#ad-7", sortKeys(campaignItems)[0])
	assert.NotContains(t, campaignItems[1], "ttl", "the campaign's day points are kept for good")
	assert.Contains(t, campaignItems[2], "ttl", "its minutes are not")
	adItems := tg.adItems(t, c.ID, "ad-7")
	require.Len(t, adItems, 2, "the ad's own day and hour")
	for _, it := range adItems {
		assert.Contains(t, it, "ttl", "an ad's points expire: %v", it["sk"])
	}
	reachItems := tg.reachItems(t, c.ID)
	require.Len(t, reachItems, 4, "the campaign's reach: its ten-minute bucket, day, hour and total")
	for i, prefix := range []string{"B#", "D#", "H#", "TOTAL"} {
		sk := sortKeys(reachItems)[i]
		assert.True(t, strings.HasPrefix(sk, prefix), "%s is a %s item", sk, prefix)
		if prefix == "TOTAL" {
			assert.NotContains(t, reachItems[i], "ttl", "the total reach is kept for good")
		} else {
			assert.Contains(t, reachItems[i], "ttl", "%s expires", sk)
		}
	}
}

// TestExpiredMarkerStillInTableCountsAgain keeps a dedup marker in the table
// after its window, as DynamoDB's lazy TTL may for days, and checks that the
// condition's own expiry comparison lets the impression count again.
func TestExpiredMarkerStillInTableCountsAgain(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now), dynamostore.WithDedupTTL(time.Minute))
	c := createCampaign(t, s, storetest.Epoch)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	require.True(t, record(t, s, imp))

	items := tg.items(t, c.ID, imp)
	marker := items[len(items)-1]
	wantExp := storetest.Epoch.Add(time.Minute).UnixMilli()
	assert.Equal(t, strconv.FormatInt(wantExp, 10), marker["expMs"].(*types.AttributeValueMemberN).Value)
	assert.Equal(t, strconv.FormatInt(wantExp/1000, 10), marker["ttl"].(*types.AttributeValueMemberN).Value, "TTL removes the marker once it has expired")

	clock.Advance(time.Minute)
	assert.Contains(t, sortKeys(tg.items(t, c.ID, imp)), "MARKER", "the expired marker is still in the table")
	assert.True(t, record(t, s, imp), "an expired marker does not suppress a count")
	assert.Equal(t, int64(2), stats(t, s, c.ID).Total)
}

func createCampaign(t testing.TB, s adcount.Store, start time.Time) adcount.Campaign {
	t.Helper()
	c, err := adcount.NewCampaign(uuid.NewString(), "Spring sale", start)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(context.Background(), c))
	return c
}

func record(t testing.TB, s adcount.Store, imp adcount.Impression) bool {
	t.Helper()
	out, err := s.RecordImpression(context.Background(), imp)
	require.NoError(t, err)
	return out == adcount.Counted
}

// stats returns the campaign's counts once they include every impression
// recorded so far, with AsOf checked and then cleared, and the unique
// users cleared (reachStats keeps them), so that tests can compare counts
// whole.
func stats(t testing.TB, s adcount.Store, id string) adcount.Stats {
	t.Helper()
	st := reachStats(t, s, id)
	st.UniqueUsers = adcount.UniqueUsers{}
	return st
}

// reachStats is stats with the unique users.
func reachStats(t testing.TB, s adcount.Store, id string) adcount.Stats {
	t.Helper()
	if st, ok := s.(adcount.Settler); ok {
		ctx, cancel := context.WithTimeout(context.Background(), storetest.SettleBound)
		defer cancel()
		require.NoError(t, st.Settle(ctx))
	}
	st, err := s.Stats(context.Background(), id)
	require.NoError(t, err)
	assert.False(t, st.AsOf.IsZero(), "stats say how fresh they are")
	st.AsOf = time.Time{}
	return st
}

// TestStatsRefuseMalformedCounters corrupts one counter of a campaign that
// has counted an impression, through the SDK as a hand edit or another
// program would, and checks that Stats fails with an error naming the item,
// and that the API answers 500, rather than reading the counter as zero.
func TestStatsRefuseMalformedCounters(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	num := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	cases := []struct {
		name string
		// item picks the item to corrupt by its sort key's prefix.
		item string
		// set and remove change its counter attribute, or attr if given;
		// put, if set, instead adds a whole item with this sort key.
		attr   string
		set    types.AttributeValue
		remove bool
		put    string
	}{
		// A total whose count was written as a string.
		{name: "TotalIsAString", item: "TOTAL", set: str("12")},
		// Counters only ever grow by one: a fraction or a negative count
		// was not written by the store.
		{name: "TotalIsAFraction", item: "TOTAL", set: num("1.5")},
		{name: "TotalIsNegative", item: "TOTAL", set: num("-3")},
		// A total without its count.
		{name: "TotalIsMissing", item: "TOTAL", remove: true},
		{name: "TotalOverflows", item: "TOTAL", set: num("99999999999999999999")},
		// The filtered count of a total.
		{name: "FilteredIsAString", item: "TOTAL", attr: "f", set: str("1")},
		{name: "FilteredIsNegative", item: "TOTAL", attr: "f", set: num("-1")},
		// A minute counter of an hour item.
		{name: "MinuteIsAString", item: "HOUR#", set: str("x")},
		{name: "MinuteIsABoolean", item: "HOUR#", set: &types.AttributeValueMemberBOOL{Value: true}},
		// An hour item whose sort key names no hour.
		{name: "HourKeyUnreadable", put: "HOUR#zz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(storetest.Epoch)
			s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
			c := createCampaign(t, s, storetest.Epoch)
			require.True(t, record(t, s, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}))
			out, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a", Filtered: true})
			require.NoError(t, err)
			require.Equal(t, adcount.Filtered, out)
			require.Equal(t, int64(1), stats(t, s, c.ID).Total, "aggregated")
			db := tg.client(t, nil)

			sk := tc.put
			if tc.put != "" {
				_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
					TableName: aws.String(tg.table),
					Item: map[string]types.AttributeValue{
						"pk": str("CAMPAIGN#" + c.ID), "sk": str(tc.put), "m00": num("1"),
					},
				})
				require.NoError(t, err)
			} else {
				var attr string
				for _, item := range tg.items(t, c.ID) {
					if got := sortKeys([]map[string]types.AttributeValue{item})[0]; strings.HasPrefix(got, tc.item) {
						sk = got
						for name := range item {
							if name == tc.attr || tc.attr == "" && (name == "n" || (len(name) == 3 && name[0] == 'm')) {
								attr = name
							}
						}
					}
				}
				require.NotEmpty(t, attr, "the impression wrote a counter to an item %s…", tc.item)
				var err error
				if tc.remove {
					// The item replaced by its key alone. (minidyn
					// ignores REMOVE with an attribute name placeholder.)
					_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tg.table), Item: itemKey("CAMPAIGN#"+c.ID, sk)})
				} else {
					_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
						TableName:                 aws.String(tg.table),
						Key:                       itemKey("CAMPAIGN#"+c.ID, sk),
						UpdateExpression:          aws.String("SET #a = :v"),
						ExpressionAttributeNames:  map[string]string{"#a": attr},
						ExpressionAttributeValues: map[string]types.AttributeValue{":v": tc.set},
					})
				}
				require.NoError(t, err)
			}

			_, err = s.Stats(ctx, c.ID)
			require.ErrorIs(t, err, dynamostore.ErrMalformedItem)
			assert.ErrorContains(t, err, c.ID, "the error names the campaign")
			assert.ErrorContains(t, err, sk, "the error names the item")
			assert.NotErrorIs(t, err, adcount.ErrUnavailable, "a retry cannot help")

			api := httptest.NewServer(httpapi.NewHandler(s, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
			t.Cleanup(api.Close)
			resp, err := http.Get(api.URL + "/api/v1/campaigns/" + c.ID + "/stats")
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		})
	}
}
