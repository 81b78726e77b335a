package memstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// everything is every answer a store gives about its campaigns at one
// moment: what a restart must give back exactly.
type everything struct {
	Lists     map[adcount.Status][]adcount.Campaign
	Campaigns map[string]adcount.Campaign
	Stats     map[string]adcount.Stats
	Series    map[string]adcount.Series // by campaign, ad and interval
	Ads       map[string][]adcount.AdPage
}

// readEverything reads every answer of s about the campaigns ids, and the
// series of the ads ads, at the clock's time.
func readEverything(t *testing.T, s adcount.Store, now time.Time, ids []string, ads []string) everything {
	t.Helper()
	ctx := context.Background()
	e := everything{
		Lists:     map[adcount.Status][]adcount.Campaign{},
		Campaigns: map[string]adcount.Campaign{},
		Stats:     map[string]adcount.Stats{},
		Series:    map[string]adcount.Series{},
		Ads:       map[string][]adcount.AdPage{},
	}
	for _, status := range append([]adcount.Status{""}, adcount.Statuses...) {
		q := adcount.CampaignQuery{Limit: 2, Status: status, Now: now}
		for {
			page, err := s.ListCampaigns(ctx, q)
			require.NoError(t, err)
			e.Lists[status] = append(e.Lists[status], page.Campaigns...)
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
	}
	for _, id := range ids {
		c, err := s.Campaign(ctx, id)
		require.NoError(t, err)
		e.Campaigns[id] = c
		e.Stats[id] = fullStats(t, s, id)
		for _, ad := range append([]string{""}, ads...) {
			for _, iv := range []adcount.Interval{adcount.Minute, adcount.Hour, adcount.Day} {
				keep := adcount.Retention(iv, ad != "")
				if keep == 0 || keep > adcount.MaxSeriesPoints {
					keep = adcount.MaxSeriesPoints
				}
				to := iv.Start(iv.Index(now) + 1)
				q := adcount.SeriesQuery{From: to.Add(-time.Duration(keep) * iv.Duration()), To: to, Interval: iv, AdID: ad}
				require.NoError(t, q.Check(now))
				series, err := s.Series(ctx, id, q)
				require.NoError(t, err)
				e.Series[fmt.Sprint(id, "/", ad, "/", iv)] = series
			}
		}
		q := adcount.AdQuery{Limit: 100}
		for {
			page, err := s.AdStats(ctx, id, q)
			require.NoError(t, err)
			e.Ads[id] = append(e.Ads[id], page)
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
	}
	return e
}

// TestReportsSurviveARestart records four days of traffic into three
// campaigns, one of them with more ads than a snapshot record holds,
// changes the campaigns along the way, and checks that a restart gives
// back every answer exactly: the list, the campaigns, the stats, every
// series and the whole breakdown. Then it records more into the restored
// store and restarts again, so that what a restored store writes comes
// back too.
func TestReportsSurviveARestart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// snapshotAt is the step before which a snapshot is taken, -1
		// for none.
		snapshotAt int
		// crash leaves without Close's final snapshot.
		crash bool
	}{
		// Everything from the log alone.
		{"LogOnly", -1, true},
		// A snapshot in the middle, after some campaign updates and
		// before others, then log records.
		{"SnapshotThenLog", 60, true},
		// A graceful close: everything from the final snapshot.
		{"SnapshotOnly", -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			// Keys outlive a step, so that repeats across steps are
			// duplicates.
			const ttl = 2 * time.Hour
			s, err := openStore(t, dir, clock.Now, ttl)
			require.NoError(t, err)
			ids := []string{"few-ads", "many-ads", "later"}
			createCampaign(t, s, ids[0], storetest.Epoch)
			createCampaign(t, s, ids[1], storetest.Epoch.Add(time.Second))
			ads := []string{"ad-0", "ad-1", "ad-7", "ad-300", "ad-599", "no-such-ad"}

			user := 0
			step := func(i int) {
				t.Helper()
				var imps []adcount.Impression
				for k := range 3 + i%5 {
					user++
					imps = append(imps,
						adcount.Impression{CampaignID: ids[0], UserID: fmt.Sprint("u", user), AdID: fmt.Sprint("ad-", k%3), Filtered: k == 2},
						adcount.Impression{CampaignID: ids[1], UserID: fmt.Sprint("u", user), AdID: fmt.Sprint("ad-", 2*user%600)},
						adcount.Impression{CampaignID: ids[1], UserID: fmt.Sprint("u", user), AdID: fmt.Sprint("ad-", (2*user+1)%600)},
						adcount.Impression{CampaignID: ids[1], UserID: fmt.Sprint("u", user-1), AdID: fmt.Sprint("ad-", 2*(user-1)%600)}, // a repeat
					)
					if i >= 30 {
						imps = append(imps, adcount.Impression{CampaignID: ids[2], UserID: fmt.Sprint("u", user), AdID: "ad-1"})
					}
				}
				if i%2 == 0 {
					recordAll(t, s, imps)
				} else {
					for _, imp := range imps {
						if _, err := s.RecordImpression(ctx, imp); err != nil {
							require.ErrorIs(t, err, adcount.ErrEnded, "only the campaign that ended refuses")
						}
					}
				}
			}
			update := func(id string, p adcount.CampaignPatch) {
				t.Helper()
				_, err := s.UpdateCampaign(ctx, id, p)
				require.NoError(t, err)
			}
			// Every 53 minutes for four days and a bit: 110 steps.
			for i := range 110 {
				if i == tc.snapshotAt {
					require.NoError(t, s.Snapshot())
				}
				switch i {
				case 30:
					createCampaign(t, s, ids[2], clock.Now())
				case 40:
					update(ids[0], adcount.CampaignPatch{Name: ptr("Renamed"), EndTime: ptr(storetest.Epoch.Add(30 * 24 * time.Hour))})
				case 50:
					update(ids[2], adcount.CampaignPatch{Paused: ptr(true)})
				case 70:
					update(ids[2], adcount.CampaignPatch{Paused: ptr(false)})
				case 80:
					update(ids[0], adcount.CampaignPatch{EndTime: ptr(time.Time{})})
				case 100:
					update(ids[2], adcount.CampaignPatch{EndTime: ptr(clock.Now().Add(time.Hour))})
				}
				if i < 50 || i >= 70 {
					step(i)
				}
				clock.Advance(53 * time.Minute)
			}
			restart := func(s *memstore.Store) *memstore.Store {
				t.Helper()
				if tc.crash {
					require.NoError(t, s.Crash())
				} else {
					require.NoError(t, s.Close())
				}
				s, err := openStore(t, dir, clock.Now, ttl)
				require.NoError(t, err)
				return s
			}

			before := readEverything(t, s, clock.Now(), ids, ads)
			require.Len(t, before.Lists[""], 3)
			require.Len(t, before.Ads[ids[1]], 6, "many-ads has 600 ads, on pages of 100")
			require.NotZero(t, before.Stats[ids[0]].Filtered)
			require.Equal(t, adcount.StatusEnded, before.Campaigns[ids[2]].Status(clock.Now()))
			s = restart(s)
			assert.Equal(t, before, readEverything(t, s, clock.Now(), ids, ads), "after the first restart")

			// More traffic into the restored store, a snapshot only in the
			// case that had one, more after it, and another restart.
			for i := range 10 {
				if i == 5 && tc.snapshotAt >= 0 {
					require.NoError(t, s.Snapshot())
				}
				step(200 + i)
				clock.Advance(7 * time.Minute)
			}
			before = readEverything(t, s, clock.Now(), ids, ads)
			s = restart(s)
			defer func() { assert.NoError(t, s.Close()) }()
			assert.Equal(t, before, readEverything(t, s, clock.Now(), ids, ads), "after the second restart")
		})
	}
}

// TestSnapshotsAmidTrafficRestoreExactly takes snapshots while impressions
// flow into campaigns with more ads than one snapshot record holds, so
// that records after a snapshot's cut are often in its copies already,
// some in a campaign's counters and not in an ad's, or the reverse. A
// restart from the last snapshot and the log after it must count each of
// them exactly once.
func TestSnapshotsAmidTrafficRestoreExactly(t *testing.T) {
	t.Parallel()
	const (
		workers = 4
		rounds  = 60
		ads     = 3 * 256
	)
	ctx := context.Background()
	dir := t.TempDir()
	clock := storetest.NewClock(storetest.Epoch)
	s, err := openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	ids := []string{"c0", "c1"}
	for _, id := range ids {
		createCampaign(t, s, id, storetest.Epoch)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				imps := make([]adcount.Impression, 0, 200)
				for i := range cap(imps) {
					n := (w*rounds+r)*cap(imps) + i
					imps = append(imps, adcount.Impression{CampaignID: ids[n%2], UserID: fmt.Sprint("u", n), AdID: fmt.Sprint("ad-", n*7%ads), Filtered: n%11 == 0})
				}
				if _, err := s.RecordImpressions(ctx, imps); !assert.NoError(t, err) {
					return
				}
				if w == 0 && r%10 == 9 {
					clock.Advance(time.Minute)
				}
			}
		})
	}
	snapshots := make(chan int, 1)
	go func() {
		n := 0
		defer func() { snapshots <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !assert.NoError(t, s.Snapshot()) {
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	require.Positive(t, <-snapshots)
	// More after the last snapshot, so the log holds some too.
	recordAll(t, s, []adcount.Impression{{CampaignID: "c0", UserID: "last", AdID: "ad-1"}})

	now := clock.Now()
	before := readEverything(t, s, now, ids, []string{"ad-0", "ad-1", "ad-700"})
	var total int64
	for _, page := range before.Ads["c0"] {
		for _, a := range page.Ads {
			total += a.Total
		}
	}
	require.Equal(t, before.Stats["c0"].Total, total, "the ads' totals make the campaign's")
	require.NoError(t, s.Crash())
	s, err = openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	defer func() { assert.NoError(t, s.Close()) }()
	assert.Equal(t, before, readEverything(t, s, now, ids, []string{"ad-0", "ad-1", "ad-700"}))
}
