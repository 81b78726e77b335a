//go:build linux

package functions_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
)

// browserUA is a browser's User-Agent, which the bot filter lets count;
// crawlerUA is Googlebot's, which it filters.
const (
	browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	crawlerUA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// statsWith is a stats answer, without its as_of, for a campaign all of
// whose count impressions, by users distinct users, were counted within
// the last hour, with filtered filtered ones, and frequency, the count
// over the users to two decimals, in every window.
func statsWith(id string, count, filtered, users, frequency float64) map[string]any {
	return map[string]any{"campaign_id": id, "last_hour": count, "last_day": count, "total": count, "filtered": filtered,
		"unique_users": map[string]any{"last_hour": users, "last_day": users, "total": users},
		"frequency":    map[string]any{"last_hour": frequency, "last_day": frequency, "total": frequency}}
}

// seriesReach checks the unique users of a time series answer's points:
// a campaign's hour and day points carry them while the store keeps them
// (the last 24 hours, the last 7 days), at most their point's count, and
// minute points and one ad's points never do. Every point that holds
// counts here is recent, so kept; when one point holds them all, its
// unique users are the campaign's, users.
func seriesReach(t *testing.T, s map[string]any, users float64) {
	t.Helper()
	_, perAd := s["ad_id"]
	carries := !perAd && s["interval"] != "minute"
	var counted []map[string]any
	for i, raw := range s["points"].([]any) {
		pt := raw.(map[string]any)
		u, ok := pt["unique_users"]
		if !carries {
			assert.False(t, ok, "point %d of a %v series (ad %v) carries no unique users: %v", i, s["interval"], s["ad_id"], pt)
			continue
		}
		if pt["count"].(float64) > 0 {
			if !assert.True(t, ok, "point %d holds recent counts, so the store keeps its unique users: %v", i, pt) {
				continue
			}
			counted = append(counted, pt)
		}
		if ok {
			assert.LessOrEqual(t, u.(float64), pt["count"].(float64), "point %d: no more users than impressions", i)
		}
	}
	if carries && len(counted) == 1 {
		assert.Equal(t, users, counted[0]["unique_users"], "the one %v point with counts holds every user", s["interval"])
	}
}

// TestMemoryStoreReachUnderEmulator counts a small population through the
// ingest function with the memory store, and reads its reach through the
// admin function. Each function serves only its own routes, and with
// STORE=memory each instance has a store of its own, so the state passes
// between them through DATA_DIR, one instance after another, as one
// disk's instances restarting would: an admin instance creates the
// campaigns and stops; an ingest instance counts, and stops; a second
// admin instance opens the directory and reads. Reach is exact, repeats,
// filtered and refused impressions add no user, and it survives each
// restart, through the write-ahead log.
func TestMemoryStoreReachUnderEmulator(t *testing.T) {
	t.Parallel()
	gw := apigwtest.NewGateway(httpapi.Routes())
	const p = lambdaproxy.PayloadV2
	env := []string{"STORE=memory", "DATA_DIR=" + t.TempDir(), lambdaproxy.PayloadEnv + "=" + string(p)}

	admin := startFunction(t, serve.Admin, env...)
	began := time.Now()
	start := began.Add(-time.Hour).UTC().Truncate(time.Second)
	create := func(name string, start time.Time) string {
		c := adminCall(t, admin, gw, p, http.StatusCreated, apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns",
			Body: fmt.Sprintf(`{"name":%q,"start_time":%q}`, name, start.Format(time.RFC3339))})
		return c["id"].(string)
	}
	id, later := create("Reach", start), create("Later", began.Add(24*time.Hour))
	// Only one process may hold the directory.
	admin.stop()

	ingest := startFunction(t, serve.Ingest, env...)
	outcomes := map[string]int{}
	// Five users see two ads each, twice: ten impressions count, ten are
	// repeats.
	for range 2 {
		for u := range 5 {
			for a := range 2 {
				r := ingest.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions",
					Header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {browserUA}},
					Body:   fmt.Sprintf(`{"campaign_id":%q,"user_id":"u-%d","ad_id":"ad-%d"}`, id, u, a)})
				require.Equal(t, http.StatusOK, r.Status, r.Body)
				outcomes[r.jsonBody(t)["outcome"].(string)]++
			}
		}
	}
	// A batch: a new user, their repeat, an old user's repeat, a
	// crawler's impression and one for the campaign that has not
	// started. One more user.
	batch := ingest.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body: fmt.Sprintf(`{"impressions":[{"campaign_id":%[1]q,"user_id":"u-5","ad_id":"ad-0","user_agent":%[3]q},`+
			`{"campaign_id":%[1]q,"user_id":"u-5","ad_id":"ad-0","user_agent":%[3]q},{"campaign_id":%[1]q,"user_id":"u-0","ad_id":"ad-0","user_agent":%[3]q},`+
			`{"campaign_id":%[1]q,"user_id":"crawler-0","ad_id":"ad-0","user_agent":%[4]q},{"campaign_id":%[2]q,"user_id":"u-6","ad_id":"ad-0","user_agent":%[3]q}]}`,
			id, later, browserUA, crawlerUA)})
	require.Equal(t, http.StatusOK, batch.Status, batch.Body)
	assert.Equal(t, map[string]any{"counted": 1.0, "duplicates": 2.0, "filtered": 1.0, "rejected": 1.0}, batch.jsonBody(t)["summary"])
	// The pixel: a browser's new user counts, a crawler's is filtered.
	for _, px := range []struct{ user, agent, outcome string }{{"px-0", browserUA, "counted"}, {"crawler-1", crawlerUA, "filtered"}} {
		r := ingest.call(t, gw, p, apigwtest.Request{Method: "GET",
			Target: "/api/v1/pixel.gif?campaign_id=" + url.QueryEscape(id) + "&user_id=" + px.user + "&ad_id=ad-1",
			Header: http.Header{"User-Agent": {px.agent}}})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, px.outcome, r.Header.Get("X-Impression-Outcome"), px.user)
	}
	assert.Equal(t, map[string]int{"counted": 10, "duplicate": 10}, outcomes)
	ingest.stop()

	reports := startFunction(t, serve.Admin, env...)
	stats := func(id string) map[string]any {
		s := adminCall(t, reports, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + url.PathEscape(id) + "/stats"})
		delete(s, "as_of")
		return s
	}
	// 12 impressions by 7 users (u-0 to u-5, px-0): 1.71 each.
	assert.Equal(t, statsWith(id, 12, 2, 7, 1.71), stats(id), "reach is exact, and the crawlers add none")
	assert.Equal(t, statsWith(later, 0, 0, 0, 0), stats(later), "a refused impression adds no user, and no users is a frequency of 0")

	campaign := "/api/v1/campaigns/" + url.PathEscape(id)
	at := func(t time.Time) string { return url.QueryEscape(t.UTC().Format(time.RFC3339Nano)) }
	for _, query := range []string{
		"",                               // the default: hours over the last day
		"interval=day&from=" + at(start), // days since the start
		"interval=minute&from=" + at(began.Add(-time.Minute)),        // minutes: no reach
		"interval=hour&ad_id=ad-0&from=" + at(began.Add(-time.Hour)), // one ad: no reach
	} {
		s := adminCall(t, reports, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/timeseries?" + query})
		seriesReach(t, s, 7)
	}
	ads := adminCall(t, reports, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/ads"})
	for _, a := range ads["ads"].([]any) {
		assert.NotContains(t, a, "unique_users", "the per-ad breakdown carries no reach")
	}
}
