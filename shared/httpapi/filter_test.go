package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/storetest"
)

// User-Agents the tests send.
const (
	chromeUA    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	googlebotUA = "Googlebot/2.1 (+http://www.google.com/bot.html)"
)

// isBot is the tests' stand-in for the crawler list: a User-Agent that
// says "bot" is one. The handler only asks the filter; which list it
// holds is the filter's business.
func isBot(ua string) bool { return strings.Contains(strings.ToLower(ua), "bot") }

// filterStore is a hand-written store that keeps the contract's filtered
// impressions as the contract says: after the checks of any impression, a
// filtered one answers Filtered, counts in Stats.Filtered once per key,
// and never in the impression counts. It has no windows (its clock never
// moves), so the handler's tests of filtering depend on no real store.
type filterStore struct {
	mu        sync.Mutex
	campaigns map[string]adcount.Campaign
	seen      map[adcount.DedupKey]bool
	total     map[string]int64
	filtered  map[string]int64
}

var _ adcount.Store = (*filterStore)(nil)

func newFilterStore(t *testing.T, live ...string) *filterStore {
	t.Helper()
	s := &filterStore{campaigns: map[string]adcount.Campaign{}, seen: map[adcount.DedupKey]bool{},
		total: map[string]int64{}, filtered: map[string]int64{}}
	for _, id := range live {
		c, err := adcount.NewCampaign(id, id, storetest.Epoch)
		require.NoError(t, err)
		require.NoError(t, s.CreateCampaign(context.Background(), c))
	}
	return s
}

func (s *filterStore) CreateCampaign(_ context.Context, c adcount.Campaign) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.campaigns[c.ID]; ok {
		return adcount.ErrConflict
	}
	s.campaigns[c.ID] = c
	return nil
}

func (s *filterStore) Campaign(_ context.Context, id string) (adcount.Campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.campaigns[id]
	if !ok {
		return adcount.Campaign{}, adcount.ErrNotFound
	}
	return c, nil
}

func (s *filterStore) RecordImpression(_ context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	if err := imp.Validate(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.campaigns[imp.CampaignID]
	if !ok {
		return 0, fmt.Errorf("filterstore: %w", adcount.ErrNotFound)
	}
	if err := c.Live(storetest.Epoch); err != nil {
		return 0, fmt.Errorf("filterstore: %w", err)
	}
	key := imp.Key()
	first := !s.seen[key]
	s.seen[key] = true
	switch {
	case imp.Filtered:
		if first {
			s.filtered[imp.CampaignID]++
		}
		return adcount.Filtered, nil
	case first:
		s.total[imp.CampaignID]++
		return adcount.Counted, nil
	}
	return adcount.Duplicate, nil
}

func (s *filterStore) RecordImpressions(ctx context.Context, imps []adcount.Impression) ([]adcount.Result, error) {
	if len(imps) > adcount.MaxBatch {
		return nil, adcount.ErrInvalid
	}
	results := make([]adcount.Result, len(imps))
	for i, imp := range imps {
		results[i].Outcome, results[i].Err = s.RecordImpression(ctx, imp)
	}
	return results, nil
}

func (s *filterStore) Stats(_ context.Context, id string) (adcount.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.campaigns[id]; !ok {
		return adcount.Stats{}, adcount.ErrNotFound
	}
	n := s.total[id]
	return adcount.Stats{CampaignID: id, LastHour: n, LastDay: n, Total: n, Filtered: s.filtered[id]}, nil
}

// addNotLive adds to s the campaigns that are not live at its clock's
// time, storetest.Epoch: "future" (not started), "paused" and "ended".
func (s *filterStore) addNotLive(t *testing.T) {
	t.Helper()
	for _, c := range []adcount.Campaign{
		{ID: "future", Name: "future", StartTime: storetest.Epoch.Add(time.Hour)},
		{ID: "paused", Name: "paused", StartTime: storetest.Epoch.Add(-time.Hour), Paused: true},
		{ID: "ended", Name: "ended", StartTime: storetest.Epoch.Add(-time.Hour), EndTime: storetest.Epoch},
	} {
		require.NoError(t, s.CreateCampaign(context.Background(), c))
	}
}

// newFilterServer serves the API with the tests' bot filter over a
// filterStore with the live campaign "live" and those of addNotLive.
func newFilterServer(t *testing.T, opts ...httpapi.Option) *server {
	t.Helper()
	store := newFilterStore(t, "live")
	store.addNotLive(t)
	opts = append([]httpapi.Option{httpapi.WithBotFilter(isBot), httpapi.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	srv := httptest.NewServer(httpapi.NewHandler(store, opts...))
	t.Cleanup(srv.Close)
	return &server{Server: srv, store: store}
}

// doUA sends a request with a User-Agent header, or none when ua is empty.
func (s *server) doUA(t *testing.T, method, path, ua, body string) reply {
	t.Helper()
	return s.doHeader(t, method, path, http.Header{"User-Agent": {ua}}, body)
}

// TestSingleRouteJudgesUserAgent: the single route judges the body's
// user_agent when it is sent, else the request's User-Agent header; a
// filtered impression answers 200 with outcome filtered, counts apart in
// the stats, and a repeat of it never inflates the filtered count.
func TestSingleRouteJudgesUserAgent(t *testing.T) {
	t.Parallel()
	s := newFilterServer(t)
	withUA := func(user, ua string) string {
		return fmt.Sprintf(`{"campaign_id":"live","user_id":%q,"ad_id":"a","user_agent":%q}`, user, ua)
	}
	cases := []struct {
		name    string
		header  string // the request's User-Agent
		body    string
		outcome string
	}{
		// A browser's impression counts.
		{"BrowserHeader", chromeUA, impression("live", "u1", "a"), "counted"},
		{"BrowserHeaderAgain", chromeUA, impression("live", "u1", "a"), "duplicate"},
		// A crawler's is filtered, however often it comes.
		{"BotHeader", googlebotUA, impression("live", "u2", "a"), "filtered"},
		{"BotHeaderAgain", googlebotUA, impression("live", "u2", "a"), "filtered"},
		// The body's user_agent speaks for the viewer: an ad server that
		// forwards impressions sends it, and its own header is not judged.
		{"BodyBotOverBrowserHeader", chromeUA, withUA("u3", googlebotUA), "filtered"},
		{"BodyBrowserOverBotHeader", googlebotUA, withUA("u4", chromeUA), "counted"},
		// Sent empty, it is still the one judged.
		{"BodyEmptyOverBotHeader", googlebotUA, withUA("u5", ""), "counted"},
		// null is not sent: the header is judged.
		{"BodyNullIsNotSent", googlebotUA, `{"campaign_id":"live","user_id":"u6","ad_id":"a","user_agent":null}`, "filtered"},
		// A filtered impression never spends a real one's dedup key.
		{"BrowserAfterBot", chromeUA, impression("live", "u2", "a"), "counted"},
	}
	for _, tc := range cases {
		r := s.doUA(t, "POST", "/api/v1/impressions", tc.header, tc.body)
		require.Equal(t, http.StatusOK, r.status, "%s: %v", tc.name, r.body)
		assert.Equal(t, tc.outcome, r.body["outcome"], tc.name)
		assert.Equal(t, tc.outcome == "counted", r.body["counted"], tc.name)
	}
	bot := s.doUA(t, "POST", "/api/v1/impressions", googlebotUA, impression("live", "u7", "a"))
	assert.Equal(t, map[string]any{"message": "Impression filtered as invalid traffic: the User-Agent is a known bot or crawler, so it is not counted",
		"counted": false, "outcome": "filtered"}, bot.body)
	noReach := map[string]any{"last_hour": 0.0, "last_day": 0.0, "total": 0.0} // this fake keeps no reach
	assert.Equal(t, map[string]any{"campaign_id": "live", "last_hour": 4.0, "last_day": 4.0, "total": 4.0, "filtered": 4.0,
		"unique_users": noReach, "frequency": noReach}, s.stats(t, "live"))

	// Only valid impressions of a started campaign are ever judged.
	missing := s.doUA(t, "POST", "/api/v1/impressions", googlebotUA, impression("nope", "u", "a"))
	assert.Equal(t, http.StatusNotFound, missing.status)
	wrongType := s.doUA(t, "POST", "/api/v1/impressions", chromeUA, `{"campaign_id":"live","user_id":"u","ad_id":"a","user_agent":7}`)
	assert.Equal(t, http.StatusBadRequest, wrongType.status)
	assert.Equal(t, "user_agent: must be a string, got number", wrongType.body["error"])
	twice := s.doUA(t, "POST", "/api/v1/impressions", chromeUA, `{"campaign_id":"live","user_id":"u","ad_id":"a","user_agent":"x","user_agent":"y"}`)
	assert.Equal(t, "user_agent: is sent more than once; send each field once", twice.body["error"])
}

// TestNoFilterCountsBots: without WithBotFilter, as with FILTER_BOTS=false,
// nothing is judged and a crawler's impression counts.
func TestNoFilterCountsBots(t *testing.T) {
	t.Parallel()
	store := newFilterStore(t, "live")
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	s := &server{Server: srv}
	r := s.doUA(t, "POST", "/api/v1/impressions", googlebotUA, impression("live", "u", "a"))
	assert.Equal(t, "counted", r.body["outcome"])
	batch := s.doUA(t, "POST", "/api/v1/impressions/batch", googlebotUA,
		`{"impressions":[{"campaign_id":"live","user_id":"v","ad_id":"a","user_agent":"`+googlebotUA+`"}]}`)
	assert.Equal(t, map[string]any{"counted": 1.0, "duplicates": 0.0, "filtered": 0.0, "rejected": 0.0}, batch.body["summary"])
}

// errNoReports: filterStore keeps no reports; the handler's reporting
// routes are tested against the real stores.
var errNoReports = errors.New("filterStore keeps no reports")

func (s *filterStore) ListCampaigns(context.Context, adcount.CampaignQuery) (adcount.CampaignPage, error) {
	return adcount.CampaignPage{}, errNoReports
}

func (s *filterStore) UpdateCampaign(context.Context, string, adcount.CampaignPatch) (adcount.Campaign, error) {
	return adcount.Campaign{}, errNoReports
}

func (s *filterStore) Series(context.Context, string, adcount.SeriesQuery) (adcount.Series, error) {
	return adcount.Series{}, errNoReports
}

func (s *filterStore) AdStats(context.Context, string, adcount.AdQuery) (adcount.AdPage, error) {
	return adcount.AdPage{}, errNoReports
}
