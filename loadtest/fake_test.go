package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

// fakeOptions make the fake API wrong in the ways a correct server cannot
// be made to be, for checking that the harness catches them.
type fakeOptions struct {
	skew         int64 // added to every campaign's total
	filteredSkew int64 // added to every campaign's filtered stat
	noFilter     bool  // count bots' impressions like any other
	seriesSkew   int64 // added to the last point of every campaign series
	adShift      bool  // move one count from the first ad listed to the last
	repeatAd     bool  // start each page of ads with the last ad of the page before
	noReports    bool  // serve no campaign, time series or per-ad route, as before them
	noReach      bool  // stats without unique_users and frequency, as before reach
	reachSkew    int64 // added to every window's unique users
	// reachScale multiplies the unique users of a campaign that reached
	// more than reachcheck.Exact, as an estimate off by that much would;
	// 0 and 1 leave them exact.
	reachScale float64
	freqSkew   float64 // added to the total's frequency
	botReach   bool    // count the users of filtered impressions in reach
}

// fakeKey is a dedup key as the service keeps it: a bot's impression is a
// key of its own.
type fakeKey struct {
	campaign, user, ad string
	bot                bool
}

// fakeAPI is the API of the brief in a few lines: the single route, the
// batch route and the pixel, each impression deduplicated in order, the
// bot filter judging User-Agents like the service's list does for the
// ones the harness sends (Googlebot, and Go's default), stats with total,
// filtered, unique users (exact) and frequency, and the reports: a campaign, its time series and its
// per-ad breakdown, paginated. It returns the base URL.
func fakeAPI(t *testing.T, o fakeOptions) string {
	t.Helper()
	var (
		mu        sync.Mutex
		campaigns = map[string]time.Time{} // start times
		// seen holds when each key was first recorded.
		seen = map[fakeKey]time.Time{}
	)
	// record returns an impression's outcome; the caller holds mu.
	record := func(campaign, user, ad string, ua *string) string {
		bot := ua != nil && !o.noFilter && (strings.Contains(*ua, "Googlebot") || strings.HasPrefix(*ua, "Go-http-client"))
		k := fakeKey{campaign, user, ad, bot}
		_, dup := seen[k]
		first := !dup
		if first {
			seen[k] = time.Now()
		}
		switch {
		case bot:
			return "filtered"
		case first:
			return "counted"
		}
		return "duplicate"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/campaigns", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			StartTime time.Time `json:"start_time"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		id := fmt.Sprintf("c%d", len(campaigns)+1)
		campaigns[id] = b.StartTime
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"id":%q}`, id)
	})
	mux.HandleFunc("POST /api/v1/impressions", func(w http.ResponseWriter, r *http.Request) {
		var b impressionBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		ua := r.Header.Get("User-Agent")
		if b.UserAgent != nil {
			ua = *b.UserAgent
		}
		mu.Lock()
		out := record(b.CampaignID, b.UserID, b.AdID, &ua)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"message": "ok", "counted": out == "counted", "outcome": out})
	})
	mux.HandleFunc("POST /api/v1/impressions/batch", func(w http.ResponseWriter, r *http.Request) {
		var b batchBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Impressions) == 0 {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		type result struct {
			Outcome string `json:"outcome"`
		}
		var reply struct {
			Summary batchSummary `json:"summary"`
			Results []result     `json:"results"`
		}
		mu.Lock()
		for _, it := range b.Impressions {
			// An item is judged by its own user_agent only.
			out := record(it.CampaignID, it.UserID, it.AdID, it.UserAgent)
			reply.Results = append(reply.Results, result{out})
			switch out {
			case "counted":
				reply.Summary.Counted++
			case "duplicate":
				reply.Summary.Duplicates++
			case "filtered":
				reply.Summary.Filtered++
			}
		}
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(reply)
	})
	mux.HandleFunc("GET /api/v1/pixel.gif", func(w http.ResponseWriter, r *http.Request) {
		q, ua := r.URL.Query(), r.Header.Get("User-Agent")
		mu.Lock()
		out := record(q.Get("campaign_id"), q.Get("user_id"), q.Get("ad_id"), &ua)
		mu.Unlock()
		w.Header().Set("Content-Type", "image/gif")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(outcomeHeader, out)
		_, _ = w.Write([]byte("GIF89a"))
	})
	mux.HandleFunc("GET /api/v1/campaigns/{id}/stats", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		mu.Lock()
		s := Stats{Total: o.skew, Filtered: o.filteredSkew}
		users := map[string]bool{}
		for k := range seen {
			switch {
			case k.campaign != id:
			case k.bot:
				s.Filtered++
				users[k.user] = users[k.user] || o.botReach
			default:
				s.Total++
				users[k.user] = true
			}
		}
		mu.Unlock()
		s.LastHour, s.LastDay = s.Total, s.Total
		if !o.noReach {
			var n int64
			for _, reached := range users {
				if reached {
					n++
				}
			}
			if n > reachcheck.Exact && o.reachScale != 0 {
				n = int64(math.Round(float64(n) * o.reachScale))
			}
			// Bounded by the count, as the service bounds an estimate.
			n = min(n+o.reachSkew, s.Total)
			s.UniqueUsers = &Reach{LastHour: n, LastDay: n, Total: n}
			f := reachcheck.Frequency(s.Total, n)
			s.Frequency = &Frequency{LastHour: f, LastDay: f, Total: f + o.freqSkew}
		}
		_ = json.NewEncoder(w).Encode(s)
	})
	if !o.noReports {
		fakeReports(mux, o, &mu, campaigns, seen)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// wrongCounter is the fake API with totals off by skew.
func wrongCounter(t *testing.T, skew int64) string {
	t.Helper()
	return fakeAPI(t, fakeOptions{skew: skew})
}

// fakeReports adds the reporting routes to the fake API, over its
// campaigns and the keys it has seen, guarded by mu. Campaigns the fake
// did not create (-campaign-ids) started at the zero time.
func fakeReports(mux *http.ServeMux, o fakeOptions, mu *sync.Mutex, campaigns map[string]time.Time, seen map[fakeKey]time.Time) {
	mux.HandleFunc("GET /api/v1/campaigns/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		mu.Lock()
		start := campaigns[id]
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "name": id, "start_time": start, "paused": false, "status": "active"})
	})
	mux.HandleFunc("GET /api/v1/campaigns/{id}/timeseries", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		widths := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
		width, ok := widths[q.Get("interval")]
		from, err := time.Parse(time.RFC3339Nano, q.Get("from"))
		if !ok || err != nil {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		to := time.Now().UTC()
		first, last := from.Truncate(width), to.Add(-time.Nanosecond).Truncate(width)
		s := Series{Interval: q.Get("interval"), From: from, To: to, AdID: q.Get("ad_id"), AsOf: to}
		for at := first; !at.After(last); at = at.Add(width) {
			s.Points = append(s.Points, Point{Start: at})
		}
		mu.Lock()
		for k, at := range seen {
			if k.campaign != r.PathValue("id") || k.bot || (s.AdID != "" && k.ad != s.AdID) || at.Before(first) || !at.Before(to) {
				continue
			}
			s.Points[at.Sub(first)/width].Count++
		}
		mu.Unlock()
		if s.AdID == "" {
			s.Points[len(s.Points)-1].Count += o.seriesSkew
		}
		_ = json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("GET /api/v1/campaigns/{id}/ads", func(w http.ResponseWriter, r *http.Request) {
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit < 1 || limit > maxPageLimit {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		byAd := map[string]*AdStats{}
		mu.Lock()
		for k := range seen {
			if k.campaign != r.PathValue("id") {
				continue
			}
			a := byAd[k.ad]
			if a == nil {
				a = &AdStats{AdID: k.ad}
				byAd[k.ad] = a
			}
			if k.bot {
				a.Filtered++
			} else {
				a.Total++
			}
		}
		mu.Unlock()
		var ads []AdStats
		for _, a := range byAd {
			a.LastHour, a.LastDay = a.Total, a.Total
			ads = append(ads, *a)
		}
		slices.SortFunc(ads, moreFirst)
		if o.adShift && len(ads) > 1 {
			ads[0].Total--
			ads[len(ads)-1].Total++
		}
		// The cursor is the position after the page: opaque enough for a
		// fake.
		at, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		at = min(max(at, 0), len(ads))
		end := min(at+limit, len(ads))
		p := adPage{Ads: ads[at:end], AsOf: time.Now()}
		if end < len(ads) {
			next := end
			if o.repeatAd {
				next--
			}
			cursor := strconv.Itoa(next)
			p.NextCursor = &cursor
		}
		_ = json.NewEncoder(w).Encode(p)
	})
}
