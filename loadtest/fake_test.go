package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeOptions make the fake API wrong in the ways a correct server cannot
// be made to be, for checking that the harness catches them.
type fakeOptions struct {
	skew         int64 // added to every campaign's total
	filteredSkew int64 // added to every campaign's filtered stat
	noFilter     bool  // count bots' impressions like any other
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
// ones the harness sends (Googlebot, and Go's default), and stats with
// total and filtered. It returns the base URL.
func fakeAPI(t *testing.T, o fakeOptions) string {
	t.Helper()
	var (
		mu        sync.Mutex
		campaigns int
		seen      = map[fakeKey]bool{}
	)
	// record returns an impression's outcome; the caller holds mu.
	record := func(campaign, user, ad string, ua *string) string {
		bot := ua != nil && !o.noFilter && (strings.Contains(*ua, "Googlebot") || strings.HasPrefix(*ua, "Go-http-client"))
		k := fakeKey{campaign, user, ad, bot}
		first := !seen[k]
		seen[k] = true
		switch {
		case bot:
			return "filtered"
		case first:
			return "counted"
		}
		return "duplicate"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/campaigns", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		campaigns++
		id := fmt.Sprintf("c%d", campaigns)
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
		for k := range seen {
			switch {
			case k.campaign != id:
			case k.bot:
				s.Filtered++
			default:
				s.Total++
			}
		}
		mu.Unlock()
		s.LastHour, s.LastDay = s.Total, s.Total
		_ = json.NewEncoder(w).Encode(s)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// wrongCounter is the fake API with totals off by skew.
func wrongCounter(t *testing.T, skew int64) string {
	t.Helper()
	return fakeAPI(t, fakeOptions{skew: skew})
}
