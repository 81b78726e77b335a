package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// memoryRig is a store whose dedup keys are gone before each heap
// measurement, so that what a measurement finds is the campaigns' state:
// keys live a millisecond, and flush moves the clock on and sends enough
// distinct impressions to a campaign of its own, on one ad, that every
// dedup shard drops its older keys. Each flush leaves the same number of
// keys behind, so they cancel out between two measurements.
type memoryRig struct {
	s     *memstore.Store
	clock *storetest.Clock
	n     int    // flushes so far
	live  uint64 // the heap's live bytes (HeapAlloc) at the last measurement
}

func newMemoryRig(b *testing.B) *memoryRig {
	b.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	r := &memoryRig{s: newStore(b, clock.Now, adcount.MinDedupTTL), clock: clock}
	createCampaign(b, r.s, "flush", storetest.Epoch)
	return r
}

// heap returns the heap in use once the dedup keys of everything before
// are dropped.
func (r *memoryRig) heap(b *testing.B) uint64 {
	b.Helper()
	r.clock.Advance(time.Second)
	imps := make([]adcount.Impression, adcount.MaxBatch)
	for round := range 4 {
		for i := range imps {
			imps[i] = adcount.Impression{CampaignID: "flush", UserID: fmt.Sprint(r.n, "-", round, "-", i), AdID: "f"}
		}
		if _, err := r.s.RecordImpressions(context.Background(), imps); err != nil {
			b.Fatal(err)
		}
	}
	r.n++
	inUse := heapInUse()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.live = m.HeapAlloc
	return inUse
}

// record sends one impression per ad of each campaign, at the rig's clock.
func (r *memoryRig) record(b *testing.B, campaigns []string, ads []string) {
	b.Helper()
	imps := make([]adcount.Impression, 0, adcount.MaxBatch)
	send := func() {
		res, err := r.s.RecordImpressions(context.Background(), imps)
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range res {
			if x.Outcome != adcount.Counted {
				b.Fatalf("%+v", x)
			}
		}
		imps = imps[:0]
	}
	for _, c := range campaigns {
		for _, ad := range ads {
			imps = append(imps, adcount.Impression{CampaignID: c, UserID: "u", AdID: ad})
			if len(imps) == cap(imps) {
				send()
			}
		}
	}
	if len(imps) > 0 {
		send()
	}
}

func adIDs(from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ad-%06d", from+i)
	}
	return ids
}

// BenchmarkCampaignMemory measures on the heap what the memory budget of
// docs/performance.md bounds: the state of a campaign with 10 ads, after
// a year of traffic on every day (B/campaign, at most 64 KiB), and what
// each further ad adds (B/ad, at most 2 KiB). Everything the store keeps
// for a campaign is in the figure: its minute and hour rings, its year of
// day counts, its ads' rings and counts, the map and the list that find
// them, their IDs, and the campaign itself. Dedup keys are not: see
// memoryRig, and BenchmarkDedupMemory for what they cost. B/idle-campaign
// is what a campaign costs before its first impression, the bound on what
// a flood of creates claims.
func BenchmarkCampaignMemory(b *testing.B) {
	const (
		campaigns = 50
		days      = 365
		further   = 2000 // ads added to each campaign
		idle      = 1000 // campaigns that count nothing
	)
	for b.Loop() {
		r := newMemoryRig(b)
		ids := make([]string, campaigns)
		for i := range ids {
			ids[i] = fmt.Sprint("campaign-", i)
		}
		ads := adIDs(0, 10)
		before := r.heap(b)
		for i := range idle {
			createCampaign(b, r.s, fmt.Sprint("idle-", i), storetest.Epoch)
		}
		afterIdle := r.heap(b)
		for _, id := range ids {
			createCampaign(b, r.s, id, storetest.Epoch)
		}
		for range days {
			r.record(b, ids, ads)
			r.clock.Advance(24 * time.Hour)
		}
		withTen := r.heap(b)
		r.record(b, ids, adIDs(len(ads), further))
		more := r.heap(b)
		b.ReportMetric(float64(afterIdle-before)/idle, "B/idle-campaign")
		b.ReportMetric(float64(withTen-afterIdle)/campaigns, "B/campaign")
		b.ReportMetric(float64(more-withTen)/(campaigns*further), "B/ad")
		runtime.KeepAlive(r.s)
	}
}

// BenchmarkAdStats100kAds reads the first page of the breakdown, and a
// page from the middle, of a campaign with 100,000 ads: the time is one
// pass over the ads, and the allocations are the page's, whatever the
// number of ads.
func BenchmarkAdStats100kAds(b *testing.B) {
	const ads = 100_000
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(b, clock.Now, time.Hour)
	createCampaign(b, s, "c", storetest.Epoch)
	imps := make([]adcount.Impression, 0, adcount.MaxBatch)
	for i := range ads {
		// Totals from 1 to 10, so that many ads tie.
		for k := range 1 + i*7919%10 {
			imps = append(imps, adcount.Impression{CampaignID: "c", UserID: fmt.Sprint("u", k), AdID: fmt.Sprintf("ad-%06d", i)})
			if len(imps) == cap(imps) {
				_, err := s.RecordImpressions(context.Background(), imps)
				require.NoError(b, err)
				imps = imps[:0]
			}
		}
	}
	_, err := s.RecordImpressions(context.Background(), imps)
	require.NoError(b, err)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		after *adcount.AdCursor
	}{
		{"FirstPage", nil},
		{"Middle", &adcount.AdCursor{Total: 5, AdID: "ad-050000"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.AdStats(ctx, "c", adcount.AdQuery{Limit: adcount.DefaultPageLimit, After: tc.after})
				if err != nil || len(page.Ads) != adcount.DefaultPageLimit || page.Next == nil {
					b.Fatalf("%d ads, next %v, %v", len(page.Ads), page.Next, err)
				}
			}
		})
	}
}

// BenchmarkListCampaigns100k reads pages of a list of 100,000 campaigns:
// the first and one from the middle, which each find their place by
// binary search, and a status filter that only one campaign in 100
// passes, which walks on past the others.
func BenchmarkListCampaigns100k(b *testing.B) {
	const campaigns = 100_000
	s, err := memstore.New(memstore.WithMaxCampaigns(campaigns))
	require.NoError(b, err)
	ctx := context.Background()
	var middle adcount.Campaign
	for i := range campaigns {
		c := createCampaign(b, s, fmt.Sprintf("c%06d", i), storetest.Epoch.Add(time.Duration(i)*time.Second))
		if i%100 == 0 {
			_, err := s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{Paused: ptr(true)})
			require.NoError(b, err)
		}
		if i == campaigns/2 {
			middle = c
		}
	}
	mid := adcount.CursorAfter(middle)
	for _, tc := range []struct {
		name string
		q    adcount.CampaignQuery
	}{
		{"FirstPage", adcount.CampaignQuery{Limit: adcount.DefaultPageLimit}},
		{"Middle", adcount.CampaignQuery{Limit: adcount.DefaultPageLimit, After: &mid}},
		{"PausedOnly", adcount.CampaignQuery{Limit: adcount.DefaultPageLimit, Status: adcount.StatusPaused, Now: storetest.Epoch}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.ListCampaigns(ctx, tc.q)
				if err != nil || len(page.Campaigns) != tc.q.Limit {
					b.Fatalf("%d campaigns, %v", len(page.Campaigns), err)
				}
			}
		})
	}
}
