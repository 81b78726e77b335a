package memstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/adcount/impression-counter/shared/adcount"
)

// campaignIndex is the campaign list's order: every campaign, oldest
// first by (CreatedAt, ID), the reverse of adcount.NewerFirst. New
// campaigns are created at the clock's time, so they almost always go at
// the end, and an insert is an append. A page finds its cursor by binary
// search and walks back from there, so it costs O(log n + limit) without a
// status filter, whatever the number of campaigns; with one, it walks on
// past the campaigns of other statuses.
type campaignIndex struct {
	mu  sync.RWMutex
	asc []*campaignState
}

// olderFirst orders campaign states as the index holds them.
func olderFirst(a, b *campaignState) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// insert adds cs in its place. The caller holds the store's createMu.
func (x *campaignIndex) insert(cs *campaignState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := len(x.asc); n == 0 || olderFirst(x.asc[n-1], cs) < 0 {
		x.asc = append(x.asc, cs)
		return
	}
	i, _ := slices.BinarySearchFunc(x.asc, cs, olderFirst)
	x.asc = slices.Insert(x.asc, i, cs)
}

// build indexes every campaign of s at once, for a store just restored.
func (x *campaignIndex) build(s *Store) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.asc = x.asc[:0]
	s.campaigns.Range(func(_, v any) bool {
		x.asc = append(x.asc, v.(*campaignState))
		return true
	})
	slices.SortFunc(x.asc, olderFirst)
}

// ListCampaigns returns one page of the campaigns, newest first, after
// q.After, with only those q.Keeps: of q.Status at q.Now and with q.Name
// in their name, if set. It returns ErrInvalid for a query that
// adcount.CampaignQuery.Check refuses. It reads the whole index if it
// must to fill the page: in memory that is cheap, and the page is never
// short. Pages are stable while campaigns are
// created, as adcount.CampaignCursor says; campaigns from before CreatedAt
// existed list last.
func (s *Store) ListCampaigns(ctx context.Context, q adcount.CampaignQuery) (adcount.CampaignPage, error) {
	if err := ctx.Err(); err != nil {
		return adcount.CampaignPage{}, fmt.Errorf("memstore: list campaigns: %w", err)
	}
	if err := q.Check(); err != nil {
		return adcount.CampaignPage{}, fmt.Errorf("memstore: list campaigns: %w", err)
	}
	x := &s.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	end := len(x.asc)
	if k := q.After; k != nil {
		// Covers holds from some place on, in this order.
		end = sort.Search(len(x.asc), func(i int) bool {
			return k.Covers(adcount.Campaign{ID: x.asc[i].id, CreatedAt: x.asc[i].created})
		})
	}
	page := adcount.CampaignPage{Campaigns: make([]adcount.Campaign, 0, min(q.Limit, end))}
	for i := end - 1; i >= 0; i-- {
		c := x.asc[i].get()
		if !q.Keeps(c) {
			continue
		}
		if len(page.Campaigns) == q.Limit {
			next := adcount.CursorAfter(page.Campaigns[q.Limit-1])
			page.Next = &next
			break
		}
		page.Campaigns = append(page.Campaigns, c)
	}
	return page, nil
}

// Series returns the campaign's counted impressions per interval of q, or
// of q.AdID's impressions if it is set, zero-filled, or ErrNotFound. An ad
// that has no impressions has a series of zeros. The caller has checked q
// with SeriesQuery.Check; a query of no points or more than
// adcount.MaxSeriesPoints is ErrInvalid all the same, since it would cost
// what it asks for. Points the store no longer keeps are zero.
//
// Without q.AdID, the hour and day points that adcount.ReachKept carry
// their unique users, from the same sets Stats merges; minute points and
// an ad's series carry none. A past point's count is taken once and kept;
// the current one's is estimated after the campaign's lock is let go.
//
// Minute points come from the same ring as Stats, so they agree with it
// exactly when read at the same moment; the day points sum to Stats.Total,
// but for impressions that a data directory of the former format had
// counted more than a day before its last snapshot (see codec.go).
func (s *Store) Series(ctx context.Context, campaignID string, q adcount.SeriesQuery) (adcount.Series, error) {
	cs, err := s.load(ctx, "series", campaignID)
	if err != nil {
		return adcount.Series{}, err
	}
	if err := checkSeriesSize(q); err != nil {
		return adcount.Series{}, fmt.Errorf("memstore: series %s: %w", campaignID, err)
	}
	first, last := q.Range()
	out := adcount.NewSeries(q)
	now := s.now()
	pts := out.Points
	// The points that carry unique users, counted once the lock is let go.
	type reachPoint struct {
		idx   int64
		users pendingCount
	}
	var reachPoints []reachPoint
	cs.mu.Lock()
	if q.AdID == "" {
		switch q.Interval {
		case adcount.Minute:
			for k := range pts {
				pts[k].Count = cs.series.minuteAt(first + int64(k))
			}
		case adcount.Hour:
			for k := range pts {
				pts[k].Count = cs.series.hourAt(first + int64(k))
			}
		default:
			d := &cs.days
			i, _ := slices.BinarySearch(d.days, int32(min(max(first, math.MinInt32), math.MaxInt32)))
			for ; i < len(d.days) && int64(d.days[i]) <= last; i++ {
				out.Add(adcount.Day, int64(d.days[i]), d.counts[i])
			}
		}
		if q.Interval != adcount.Minute {
			// Only the points ReachKept: the last day's hours, the last
			// week's days.
			cur := q.Interval.Index(now)
			for idx := max(first, cur-reachHours+1); idx <= min(last, cur); idx++ {
				if adcount.ReachKept(q.Interval, idx, now) {
					reachPoints = append(reachPoints, reachPoint{idx, cs.reach.point(q.Interval, idx)})
				}
			}
		}
	} else if a := cs.byAd[q.AdID]; a != nil {
		for k := range pts {
			idx := first + int64(k)
			switch q.Interval {
			case adcount.Minute:
				pts[k].Count = a.minutes.at(idx)
			case adcount.Hour:
				pts[k].Count = a.hours.at(idx)
			default:
				pts[k].Count = a.days.at(idx)
			}
		}
	}
	lsn, total := cs.lsn, cs.total
	cs.mu.Unlock()
	estimated := false
	for i := range reachPoints {
		p := &reachPoints[i]
		p.users.n = p.users.count()
		estimated = estimated || p.users.set != nil
		out.SetUniqueUsers(q.Interval, p.idx, p.users.n)
	}
	if estimated {
		// Kept for the next read if no user has counted since.
		cs.mu.Lock()
		if cs.total == total {
			for _, p := range reachPoints {
				if p.users.set != nil {
					cs.reach.keepPoint(q.Interval, p.idx, p.users.n)
				}
			}
		}
		cs.mu.Unlock()
	}
	if err := s.journal.durableThrough(ctx, lsn); err != nil {
		return adcount.Series{}, fmt.Errorf("memstore: series %s: %w: %w", campaignID, adcount.ErrUnavailable, err)
	}
	out.AsOf = now
	return out, nil
}

// checkSeriesSize refuses what SeriesQuery.Check would: an interval of
// none of the three kinds, or a query of no points or too many. It leaves
// retention to the caller's Check, which read the clock first.
func checkSeriesSize(q adcount.SeriesQuery) error {
	if _, err := adcount.ParseInterval(string(q.Interval)); err != nil {
		return err
	}
	if !q.From.Before(q.To) {
		return q.Check(q.To) // names the order
	}
	if first, last := q.Range(); last-first+1 > adcount.MaxSeriesPoints {
		return q.Check(q.To) // names the size, which it checks before retention
	}
	return nil
}

// AdStats returns one page of the campaign's per-ad breakdown, in
// adcount.MoreFirst order after q.After, or ErrNotFound; ErrInvalid for a
// limit that adcount.CheckPageLimit refuses. It makes one pass over the
// campaign's ads, keeping the best q.Limit+1 of them in a heap, so its
// memory is O(limit) and its time O(ads × log limit) however many ads the
// campaign has; only the ads it answers with have their windows summed.
// The campaign's impressions wait for the pass: about a millisecond for
// 100,000 ads (BenchmarkAdStats100kAds).
//
// LastHour is exact to the minute, as the campaign's; LastDay sums whole
// hours, the current one and the 23 before it (see adcount.AdStats).
func (s *Store) AdStats(ctx context.Context, campaignID string, q adcount.AdQuery) (adcount.AdPage, error) {
	cs, err := s.load(ctx, "ad stats", campaignID)
	if err != nil {
		return adcount.AdPage{}, err
	}
	if err := adcount.CheckPageLimit(q.Limit); err != nil {
		return adcount.AdPage{}, fmt.Errorf("memstore: ad stats %s: %w", campaignID, err)
	}
	now := s.now()
	hour := adcount.LastHour(now)
	h := adcount.Hour.Index(now)
	top := adHeap{ads: make([]*adState, 0, q.Limit+1)}
	cs.mu.Lock()
	for _, a := range cs.ads {
		if q.After != nil && q.After.Covers(adcount.AdStats{AdID: a.id, Total: a.total}) {
			continue
		}
		top.offer(a, q.Limit+1)
	}
	more := len(top.ads) > q.Limit
	if more {
		top.pop()
	}
	page := adcount.AdPage{Ads: make([]adcount.AdStats, len(top.ads)), AsOf: now}
	// Popping gives the page from its last ad to its first.
	for i := len(page.Ads) - 1; i >= 0; i-- {
		a := top.pop()
		page.Ads[i] = adcount.AdStats{
			AdID:     a.id,
			LastHour: a.minutes.sum(hour.First, hour.Last),
			LastDay:  a.hours.sum(h-adHours+1, h),
			Total:    a.total,
			Filtered: a.filtered,
		}
	}
	lsn := cs.lsn
	cs.mu.Unlock()
	if err := s.journal.durableThrough(ctx, lsn); err != nil {
		return adcount.AdPage{}, fmt.Errorf("memstore: ad stats %s: %w: %w", campaignID, adcount.ErrUnavailable, err)
	}
	if more {
		last := page.Ads[len(page.Ads)-1]
		page.Next = &adcount.AdCursor{Total: last.Total, AdID: last.AdID}
	}
	return page, nil
}

// adHeap keeps the ads that come first in adcount.MoreFirst order among
// those offered, with the one that comes last of them at the root, so that
// a better ad replaces it in O(log n). It is written out rather than built
// on container/heap, whose interface would allocate on every push.
type adHeap struct {
	ads []*adState
}

// after reports whether a comes after b in MoreFirst order. AdIDs are
// unique within a campaign, so no two ads tie.
func after(a, b *adState) bool {
	if a.total != b.total {
		return a.total < b.total
	}
	return a.id > b.id
}

// offer keeps a if the heap holds fewer than n ads or a comes before the
// last of them.
func (h *adHeap) offer(a *adState, n int) {
	if len(h.ads) < n {
		h.ads = append(h.ads, a)
		h.up(len(h.ads) - 1)
		return
	}
	if after(a, h.ads[0]) {
		return
	}
	h.ads[0] = a
	h.down(0)
}

// pop removes and returns the ad that comes last.
func (h *adHeap) pop() *adState {
	root := h.ads[0]
	n := len(h.ads) - 1
	h.ads[0] = h.ads[n]
	h.ads[n] = nil
	h.ads = h.ads[:n]
	if n > 0 {
		h.down(0)
	}
	return root
}

func (h *adHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !after(h.ads[i], h.ads[p]) {
			return
		}
		h.ads[i], h.ads[p] = h.ads[p], h.ads[i]
		i = p
	}
}

func (h *adHeap) down(i int) {
	n := len(h.ads)
	for {
		worst := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < n && after(h.ads[c], h.ads[worst]) {
				worst = c
			}
		}
		if worst == i {
			return
		}
		h.ads[i], h.ads[worst] = h.ads[worst], h.ads[i]
		i = worst
	}
}
