package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// reachEnd is the moment the reach benchmarks read at: the last ten-minute
// bucket of a day a week after storetest.Epoch.
var reachEnd = storetest.Epoch.Truncate(24*time.Hour).AddDate(0, 0, 7).Add(23*time.Hour + 50*time.Minute)

// reachTraffic is a worst case for a campaign's reach.
type reachTraffic struct {
	name string
	// users is how many users each moment of memstore.ReachMoments sends.
	users int
	// same sends the same users at every moment of a day, so that every
	// set of the rings holds exactly users of them; otherwise every
	// moment's users are new.
	same bool
	// campaigns is how many campaigns BenchmarkReachMemory averages over:
	// fewer for the dense case, which sends each 3.5 million impressions.
	campaigns int
}

var reachWorstCases = []reachTraffic{
	// Every set at ExactReach, the most an exact set holds: 6,000 bytes
	// of fingerprints each, the largest a set is.
	{"Exact1000", adcount.ExactReach, true, 32},
	// Every set a sketch of 4 KiB, with far more users than it needs to
	// be one.
	{"Dense100k", 100_000, false, 2},
}

// userID returns the ID of user u of moment i of tr.
func (tr reachTraffic) userID(i int, at time.Time, u int) string {
	if tr.same {
		return fmt.Sprint("day-", at.Truncate(24*time.Hour).Unix(), "-", u)
	}
	return fmt.Sprint("m", i, "-", u)
}

// fill sends tr to each campaign, moving the clock through
// memstore.ReachMoments(end), and leaves the clock at end. The clock must not step
// back: a dedup key made at a later time would outlive its TTL.
func (r *memoryRig) fill(b *testing.B, tr reachTraffic, campaigns []string, end time.Time) {
	b.Helper()
	imps := make([]adcount.Impression, 0, adcount.MaxBatch)
	for i, at := range memstore.ReachMoments(end) {
		r.clock.Set(at)
		for from := 0; from < tr.users; from += adcount.MaxBatch {
			imps = imps[:0]
			for u := from; u < min(from+adcount.MaxBatch, tr.users); u++ {
				imps = append(imps, adcount.Impression{UserID: tr.userID(i, at, u), AdID: "a"})
			}
			for _, c := range campaigns {
				for k := range imps {
					imps[k].CampaignID = c
				}
				res, err := r.s.RecordImpressions(context.Background(), imps)
				if err != nil {
					b.Fatal(err)
				}
				for _, x := range res {
					if x.Outcome != adcount.Counted {
						b.Fatalf("%+v", x)
					}
				}
			}
		}
	}
	r.clock.Set(end)
}

// read reads a campaign's stats and the series of its hours and days
// that keep reach, at end.
func (r *memoryRig) read(b *testing.B, id string, end time.Time) {
	b.Helper()
	ctx := context.Background()
	if _, err := r.s.Stats(ctx, id); err != nil {
		b.Fatal(err)
	}
	for _, q := range reachQueries(end) {
		if _, err := r.s.Series(ctx, id, q); err != nil {
			b.Fatal(err)
		}
	}
}

// reachQueries are the series of the hours and the days that keep reach
// at end.
func reachQueries(end time.Time) []adcount.SeriesQuery {
	day := end.Truncate(24 * time.Hour)
	return []adcount.SeriesQuery{
		{From: end.Add(-23 * time.Hour).Truncate(time.Hour), To: end.Truncate(time.Hour).Add(time.Hour), Interval: adcount.Hour},
		{From: day.AddDate(0, 0, -6), To: day.AddDate(0, 0, 1), Interval: adcount.Day},
	}
}

// BenchmarkReachMemory measures on the heap what a campaign's reach costs
// at its worst (reachWorstCases), against a light campaign with one user
// at each of the same moments, which has the same rings, day counts and
// ad, and a reach of one user a set (under 3 KB); each is read as Stats
// and Series read it, so that the unions and counts that reads keep are
// in the figures. B/campaign is the heap
// in use (HeapInuse) for a worst-case campaign, as BenchmarkCampaignMemory
// measures, and so includes the spans the allocator keeps partly used;
// B/reach is the live bytes (HeapAlloc) it holds beyond a light one. The
// budget of docs/performance.md is 256 KiB of reach;
// TestReachMemoryStaysInBudget holds the same traffic to it.
func BenchmarkReachMemory(b *testing.B) {
	for _, tr := range reachWorstCases {
		campaigns := tr.campaigns
		b.Run(tr.name, func(b *testing.B) {
			for b.Loop() {
				r := newMemoryRig(b)
				full, light := make([]string, campaigns), make([]string, campaigns)
				for i := range campaigns {
					full[i], light[i] = fmt.Sprint("full-", i), fmt.Sprint("light-", i)
				}
				r.heap(b)
				beforeLive := r.live
				for _, id := range light {
					createCampaign(b, r.s, id, storetest.Epoch)
				}
				r.fill(b, reachTraffic{users: 1, campaigns: campaigns}, light, reachEnd)
				afterLight := r.heap(b)
				lightLive := r.live
				for _, id := range full {
					createCampaign(b, r.s, id, storetest.Epoch)
				}
				// Four weeks on: the clock never steps back.
				end := reachEnd.AddDate(0, 0, 28)
				r.fill(b, tr, full, end)
				// Read each, so that what reads keep is in the figure too.
				for _, id := range full {
					r.read(b, id, end)
				}
				afterFull := r.heap(b)
				n := float64(campaigns)
				b.ReportMetric(float64(afterFull-afterLight)/n, "B/campaign")
				b.ReportMetric((float64(r.live-lightLive)-float64(lightLive-beforeLive))/n, "B/reach")
				runtime.KeepAlive(r.s)
			}
		})
	}
}

// BenchmarkStatsReach reads the stats, and the series of the hours and
// days that keep reach, of a campaign whose every reach set is full
// (memstore.ReachMoments): the most a read merges and estimates. Idle
// reads follow one another, and find what the read before counted; Busy
// reads each follow a counted impression of a new user, so each merges
// the windows' current buckets with the unions of their past ones, and
// estimates every window a sketch holds (the impression's cost, about a
// microsecond, is in the figure). The series count 24 hour sets and 7 day
// sets, each past one once.
func BenchmarkStatsReach(b *testing.B) {
	for _, tr := range []reachTraffic{
		// The same ExactReach users in every set: exact unions.
		reachWorstCases[0],
		// 900 new users in each set: exact sets whose union is a sketch.
		{name: "Distinct900", users: 900},
		// Sketches everywhere.
		{name: "Dense2000", users: 2 * adcount.ExactReach},
	} {
		b.Run(tr.name, func(b *testing.B) {
			r := newMemoryRig(b)
			createCampaign(b, r.s, "c", storetest.Epoch)
			r.fill(b, tr, []string{"c"}, reachEnd)
			ctx := context.Background()
			reads := map[string]func() error{
				"Stats": func() error {
					st, err := r.s.Stats(ctx, "c")
					if err == nil && st.UniqueUsers.LastHour == 0 {
						err = fmt.Errorf("%+v", st)
					}
					return err
				},
				"Series": func() error {
					for _, q := range reachQueries(reachEnd) {
						s, err := r.s.Series(ctx, "c", q)
						if err != nil {
							return err
						}
						if !s.Points[len(s.Points)-1].HasUniqueUsers {
							return fmt.Errorf("%+v", s)
						}
					}
					return nil
				},
			}
			for _, name := range []string{"Stats", "Series"} {
				for _, busy := range []bool{false, true} {
					sub := name + "/Idle"
					if busy {
						sub = name + "/Busy"
					}
					b.Run(sub, func(b *testing.B) {
						b.ReportAllocs()
						for i := 0; b.Loop(); i++ {
							if busy {
								imp := adcount.Impression{CampaignID: "c", UserID: fmt.Sprint("busy-", sub, "-", i), AdID: "a"}
								if out, err := r.s.RecordImpression(ctx, imp); err != nil || out != adcount.Counted {
									b.Fatal(out, err)
								}
							}
							if err := reads[name](); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			}
		})
	}
}

// BenchmarkRecordImpressionReach measures the single record path with
// the campaign's reach in each of its forms: Exact cycles through
// ExactReach users, each impression on a new ad so that it counts, so
// that every set the impression goes to is exact and full (a binary
// search of 1,000 fingerprints, and no insert once warm); Sketch sends a
// new user each time, so that every set is a sketch after its first
// ExactReach users (one register each). The clock is fixed, as in
// BenchmarkRecordImpression.
func BenchmarkRecordImpressionReach(b *testing.B) {
	const pool = 1 << 20
	for _, tc := range []struct {
		name string
		user func(i int) string
	}{
		{"Exact", func(i int) string { return fmt.Sprintf("user-%09d", i%adcount.ExactReach) }},
		{"Sketch", func(i int) string { return fmt.Sprintf("user-%09d", i) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := newStore(b, func() time.Time { return storetest.Epoch }, time.Hour)
			createCampaign(b, s, "c", storetest.Epoch)
			imps := make([]adcount.Impression, pool)
			for i := range imps {
				imps[i] = adcount.Impression{CampaignID: "c", UserID: tc.user(i), AdID: fmt.Sprint("ad-", i/adcount.ExactReach)}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if out, err := s.RecordImpression(ctx, imps[i%pool]); err != nil || (i < pool && out != adcount.Counted) {
					b.Fatal(out, err)
				}
			}
		})
	}
}
