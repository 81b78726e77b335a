package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestReachOverHTTP drives the memory store's reach through the API on a
// moved clock: the stats' unique users and frequency follow the counted
// impressions only (not a duplicate, not a bot's), the windows slide, and
// a series carries unique_users on the hour points of the last 24 hours
// and the day points of the last 7 days, and on no minute point and no
// point of one ad.
func TestReachOverHTTP(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch) // 2026-01-05T10:00:00Z
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithClock(clock.Now), httpapi.WithBotFilter(isBot),
		httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	s := &server{Server: srv, clock: clock}
	id := s.createCampaign(t, "Reach", time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC))

	record := func(user, ad, ua, outcome string) {
		t.Helper()
		r := s.doUA(t, "POST", "/api/v1/impressions", ua, impression(id, user, ad))
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Equal(t, outcome, r.body["outcome"], "%s %s", user, ad)
	}
	windows := func(hour, day, total any) map[string]any {
		return map[string]any{"last_hour": hour, "last_day": day, "total": total}
	}
	reach := func() (users, frequency map[string]any) {
		t.Helper()
		stats := s.stats(t, id)
		return stats["unique_users"].(map[string]any), stats["frequency"].(map[string]any)
	}

	// Two users saw three counted impressions; a repeat and a bot's add
	// no one.
	record("u1", "a1", chromeUA, "counted")
	record("u1", "a2", chromeUA, "counted")
	record("u2", "a1", chromeUA, "counted")
	record("u1", "a1", chromeUA, "duplicate")
	record("u3", "a1", googlebotUA, "filtered")
	users, freq := reach()
	assert.Equal(t, windows(2.0, 2.0, 2.0), users)
	assert.Equal(t, windows(1.5, 1.5, 1.5), freq)

	// An hour on, the hour's window holds nobody, and its frequency is 0.
	clock.Advance(time.Hour + 5*time.Minute) // 11:05
	users, freq = reach()
	assert.Equal(t, windows(0.0, 2.0, 2.0), users)
	assert.Equal(t, windows(0.0, 1.5, 1.5), freq)

	// The bot's user counts once one of their impressions does: 4/3 of
	// an impression per user rounds to 1.33.
	record("u3", "a1", chromeUA, "counted")
	users, freq = reach()
	assert.Equal(t, windows(1.0, 3.0, 3.0), users)
	assert.Equal(t, windows(1.0, 1.33, 1.33), freq)

	// series answers the points' unique users by start, nil where a point
	// has none.
	series := func(query string) map[string]any {
		t.Helper()
		r := s.do(t, "GET", "/api/v1/campaigns/"+id+"/timeseries?"+query, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		got := map[string]any{}
		for _, p := range r.body["points"].([]any) {
			point := p.(map[string]any)
			got[point["start"].(string)] = point["unique_users"]
		}
		return got
	}
	at := func(t time.Time) string { return url.QueryEscape(t.UTC().Format(time.RFC3339)) }
	kept := func(i adcount.Interval, points map[string]any, want map[string]any) {
		t.Helper()
		now := clock.Now()
		for start, users := range points {
			st, err := time.Parse(time.RFC3339, start)
			require.NoError(t, err)
			if !adcount.ReachKept(i, i.Index(st), now) {
				assert.Nil(t, users, "%s point %s is older than reach is kept", i, start)
				continue
			}
			w, ok := want[start]
			if !ok {
				w = 0.0
			}
			assert.Equal(t, w, users, "%s point %s", i, start)
		}
	}

	// Minute points never carry reach, nor one ad's points.
	for _, q := range []string{"interval=minute", "interval=hour&ad_id=a1", "interval=day&ad_id=a1&from=" + at(clock.Now().Add(-72*time.Hour))} {
		for start, users := range series(q) {
			assert.Nil(t, users, "%s: point %s", q, start)
		}
	}

	// Hours: the last 24 carry their users, 0 included; the 7 before do
	// not. Days: the last 7 do, the 3 before do not.
	hours := series("interval=hour&from=" + at(clock.Now().Add(-30*time.Hour)))
	require.Len(t, hours, 31)
	kept(adcount.Hour, hours, map[string]any{"2026-01-05T10:00:00.000Z": 2.0, "2026-01-05T11:00:00.000Z": 1.0})
	assert.Equal(t, 2.0, hours["2026-01-05T10:00:00.000Z"])
	days := series("interval=day&from=" + at(clock.Now().Add(-9*24*time.Hour)))
	require.Len(t, days, 10)
	kept(adcount.Day, days, map[string]any{"2026-01-05T00:00:00.000Z": 3.0})
	assert.Nil(t, days["2025-12-29T00:00:00.000Z"], "the 8th day, counting today")
	assert.Equal(t, 0.0, days["2025-12-30T00:00:00.000Z"], "the 7th day, counting today")

	// At 10:05 the next day, the hour that saw u1 and u2 is the 25th,
	// counting the current one, and no longer kept; the one that saw u3
	// is the 24th. Its day is kept for as long as it is one of the last
	// 7 days.
	clock.Advance(23 * time.Hour) // 2026-01-06T10:05
	hours = series("interval=hour&from=" + at(clock.Now().Add(-30*time.Hour)))
	assert.Nil(t, hours["2026-01-05T10:00:00.000Z"], "the 25th hour")
	assert.Equal(t, 1.0, hours["2026-01-05T11:00:00.000Z"], "the 24th hour")
	clock.Advance(5 * 24 * time.Hour) // 2026-01-11
	days = series("interval=day&from=" + at(clock.Now().Add(-9*24*time.Hour)))
	assert.Equal(t, 3.0, days["2026-01-05T00:00:00.000Z"], "the 7th day")
	clock.Advance(24 * time.Hour) // 2026-01-12
	days = series("interval=day&from=" + at(clock.Now().Add(-9*24*time.Hour)))
	assert.Nil(t, days["2026-01-05T00:00:00.000Z"], "the 8th day")
	users, freq = reach()
	assert.Equal(t, windows(0.0, 0.0, 3.0), users)
	assert.Equal(t, windows(0.0, 0.0, 1.33), freq)
}
