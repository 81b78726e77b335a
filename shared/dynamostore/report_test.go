package dynamostore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestAdStatsPagesThroughManyAds gives 45 ads different totals, ties
// among them, and one ad only filtered traffic, and pages through the
// breakdown at several limits: every page is in MoreFirst order and the
// pages together are every ad once. Each page reads its ads' window items
// only: at most four items an ad, whatever the campaign's number of ads.
func TestAdStatsPagesThroughManyAds(t *testing.T) {
	t.Parallel()
	r := newCostRig(t, 2)
	ctx := context.Background()
	c := createCampaign(t, r.store, storetest.Epoch)
	var imps []adcount.Impression
	want := map[string]adcount.AdStats{}
	for i := range 45 {
		ad := fmt.Sprintf("ad-%02d", i)
		n := 1 + i%6
		for u := range n {
			imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", u), AdID: ad})
		}
		want[ad] = adcount.AdStats{AdID: ad, LastHour: int64(n), LastDay: int64(n), Total: int64(n)}
	}
	imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: "bot", AdID: "bot-only", Filtered: true})
	want["bot-only"] = adcount.AdStats{AdID: "bot-only", Filtered: 1}
	_, err := r.store.RecordImpressions(ctx, imps)
	require.NoError(t, err)
	r.drain(t)
	all := slices.SortedFunc(func(yield func(adcount.AdStats) bool) {
		for _, a := range want {
			if !yield(a) {
				return
			}
		}
	}, adcount.MoreFirst)

	for _, limit := range []int{1, 7, 45, 46, adcount.MaxPageLimit} {
		r.srv.ResetUsage()
		var got []adcount.AdStats
		var after *adcount.AdCursor
		pages := 0
		for {
			p, err := r.store.AdStats(ctx, c.ID, adcount.AdQuery{Limit: limit, After: after})
			require.NoError(t, err)
			pages++
			got = append(got, p.Ads...)
			if p.Next == nil {
				break
			}
			after = p.Next
		}
		assert.Equal(t, all, got, "limit %d", limit)
		read := r.srv.CallerUsage("store").Operations["BatchGetItem"].ItemsRead
		assert.LessOrEqual(t, read, int64(4*len(all)), "limit %d: window items of the pages' ads only", limit)
		assert.LessOrEqual(t, read, int64(4*min(limit, len(all))*pages), "limit %d", limit)
	}
}

// TestReportReadsAreBounded counts the requests and items that each
// report reads, on a server that bills them, for a campaign with traffic
// every half hour for three days: each is a fixed handful of requests
// whose items are bounded by the points asked for, not by the traffic.
// docs/dynamodb.md quotes the read units it logs.
func TestReportReadsAreBounded(t *testing.T) {
	t.Parallel()
	r := newCostRig(t, 2)
	ctx := context.Background()
	c := createCampaign(t, r.store, storetest.Epoch)
	for i := range 3 * 24 * 2 {
		_, err := r.store.RecordImpressions(ctx, []adcount.Impression{
			{CampaignID: c.ID, UserID: fmt.Sprint("u", i), AdID: fmt.Sprint("ad-", i%10)},
		})
		require.NoError(t, err)
		r.clock.Advance(30 * time.Minute)
	}
	r.drain(t)
	now := r.clock.Now()
	cases := []struct {
		name string
		read func() error
		// items bounds the counter items read, besides the campaign and
		// the reader's watermark.
		items int64
	}{
		// A day of minutes: the 24 or 25 hour items it touches.
		{"MinutesOfADay", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-24 * time.Hour), To: now, Interval: adcount.Minute}), 25},
		// 1,500 hours reach back 63 days: the days with items.
		{"HoursOf62Days", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-1499 * time.Hour), To: now, Interval: adcount.Hour}), 63},
		// 1,500 days: the day items there are.
		{"Days", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-1499 * 24 * time.Hour), To: now, Interval: adcount.Day}), 1500},
		// An ad's last hour, day and 90 days.
		{"AdMinutes", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-time.Hour), To: now, Interval: adcount.Minute, AdID: "ad-3"}), 2},
		{"AdHours", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-24 * time.Hour), To: now, Interval: adcount.Hour, AdID: "ad-3"}), 2},
		{"AdDays", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-89 * 24 * time.Hour), To: now, Interval: adcount.Day, AdID: "ad-3"}), 90},
		// A page of the breakdown: every ad's total, and four window
		// items for each ad of the page.
		{"AdStatsPageOf5", func() error {
			_, err := r.store.AdStats(ctx, c.ID, adcount.AdQuery{Limit: 5})
			return err
		}, 10 + 4*5},
	}
	for _, tc := range cases {
		r.srv.ResetUsage()
		require.NoError(t, tc.read(), tc.name)
		u := r.srv.CallerUsage("store")
		var requests, items int64
		var rru float64
		for _, op := range u.Operations {
			requests += op.Requests
			items += op.ItemsRead
			rru += op.ReadUnits
		}
		t.Logf("%s: %d requests, %d items, %.1f RRU", tc.name, requests, items, rru)
		assert.LessOrEqual(t, requests, int64(4), "%s: the campaign, the range, the watermark (and the windows)", tc.name)
		assert.LessOrEqual(t, items, tc.items+2, tc.name)
	}
}

func series(s *dynamostore.Store, id string, q adcount.SeriesQuery) func() error {
	return func() error {
		_, err := s.Series(context.Background(), id, q)
		return err
	}
}

// TestReportsRefuseMalformedCounters corrupts one counter that a report
// reads, as a hand edit would, and checks that the report fails with an
// error naming the item rather than reading the counter as zero.
func TestReportsRefuseMalformedCounters(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	cases := []struct {
		name string
		// ad says the item is in the ad's partition, not the
		// campaign's; sk picks it by its sort key's prefix, attr is the
		// counter corrupted.
		ad       bool
		sk, attr string
		read     func(s *dynamostore.Store, id string, now time.Time) error
	}{
		// The campaign's hour points come from its day items.
		{"CampaignHour", false, "DAY#", "h10", func(s *dynamostore.Store, id string, now time.Time) error {
			_, err := s.Series(context.Background(), id, adcount.SeriesQuery{From: now.Add(-time.Hour), To: now, Interval: adcount.Hour})
			return err
		}},
		// The breakdown reads every ad's total, and each page's windows.
		{"AdTotal", false, "ADTOTAL#", "n", func(s *dynamostore.Store, id string, _ time.Time) error {
			_, err := s.AdStats(context.Background(), id, adcount.AdQuery{Limit: 10})
			return err
		}},
		{"AdMinute", true, "HOUR#", "m30", func(s *dynamostore.Store, id string, _ time.Time) error {
			_, err := s.AdStats(context.Background(), id, adcount.AdQuery{Limit: 10})
			return err
		}},
		// An ad's day points come from its day items.
		{"AdDay", true, "DAY#", "h10", func(s *dynamostore.Store, id string, now time.Time) error {
			_, err := s.Series(context.Background(), id, adcount.SeriesQuery{From: now.Add(-time.Hour), To: now, Interval: adcount.Day, AdID: "a"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(storetest.Epoch.Add(30 * time.Minute))
			s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
			c := createCampaign(t, s, storetest.Epoch)
			require.True(t, record(t, s, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}))
			require.Equal(t, int64(1), stats(t, s, c.ID).Total, "aggregated")
			items, pk := tg.items(t, c.ID), "CAMPAIGN#"+c.ID
			if tc.ad {
				items, pk = tg.adItems(t, c.ID, "a"), fmt.Sprintf("AD#%d#%s#a", len(c.ID), c.ID)
			}
			var sk string
			for _, it := range items {
				if got := sortKeys([]map[string]types.AttributeValue{it})[0]; strings.HasPrefix(got, tc.sk) {
					require.Contains(t, it, tc.attr)
					sk = got
				}
			}
			require.NotEmpty(t, sk)
			_, err := tg.client(t, nil).UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 aws.String(tg.table),
				Key:                       itemKey(pk, sk),
				UpdateExpression:          aws.String("SET #a = :v"),
				ExpressionAttributeNames:  map[string]string{"#a": tc.attr},
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: "1"}},
			})
			require.NoError(t, err)
			err = tc.read(s, c.ID, clock.Now())
			require.ErrorIs(t, err, dynamostore.ErrMalformedItem)
			assert.ErrorContains(t, err, sk, "the error names the item")
			assert.NotErrorIs(t, err, adcount.ErrUnavailable, "a retry cannot help")
		})
	}
}
