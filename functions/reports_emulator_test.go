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

	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
)

// reportErrorCases are the admin function's answers to bad requests of
// the campaign list, PATCH, the time series and the per-ad breakdown,
// each a 400 naming what is wrong, or the 404 of an unknown campaign. The
// times are relative to now, as the limits they test are.
func reportErrorCases(now time.Time) []emulatorCase {
	at := func(d time.Duration) string { return url.QueryEscape(now.Add(d).UTC().Format(time.RFC3339)) }
	series := "/api/v1/campaigns/no-such-campaign/timeseries"
	return []emulatorCase{
		// A page holds 1 to 500 campaigns.
		{"ListLimitZeroIs400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?limit=0"}, 400, "limit", ""},
		{"ListLimitOver500Is400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?limit=501"}, 400, "limit", ""},
		// A cursor this API did not hand out.
		{"ListForgedCursorIs400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?cursor=not-a-cursor"}, 400, "cursor", ""},
		// Statuses are scheduled, active, paused and ended.
		{"ListUnknownStatusIs400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?status=running"}, 400, "status", ""},
		// PATCH of a campaign this instance never saw.
		{"PatchUnknownCampaignIs404", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/no-such-campaign", Body: `{"paused":true}`}, 404, "campaign not found", ""},
		// A patch that changes nothing is most likely a mistake.
		{"EmptyPatchIs400", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/no-such-campaign", Body: `{}`}, 400, "changes nothing", ""},
		// A misspelt field is refused, never ignored.
		{"PatchUnknownFieldIs400", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/no-such-campaign", Body: `{"colour":"red"}`}, 400, "colour", ""},
		// The campaign route takes GET and PATCH; the list POST and GET.
		{"WrongMethodOnCampaignIs405", apigwtest.Request{Method: "PUT", Target: "/api/v1/campaigns/x"}, 405, "not allowed", "GET, HEAD, PATCH"},
		// Intervals are minute, hour and day.
		{"SeriesUnknownIntervalIs400", apigwtest.Request{Method: "GET", Target: series + "?interval=week"}, 400, "interval", ""},
		// A series holds at most 1,500 points.
		{"SeriesTooManyPointsIs400", apigwtest.Request{Method: "GET", Target: series + "?interval=hour&from=" + at(-80*24*time.Hour)}, 400, "1500", ""},
		// A campaign's minute points are kept for 24 hours.
		{"SeriesMinutesTooOldIs400", apigwtest.Request{Method: "GET", Target: series + "?interval=minute&from=" + at(-48*time.Hour) + "&to=" + at(-47*time.Hour)}, 400, "24 hours", ""},
		// from must come before to.
		{"SeriesFromAfterToIs400", apigwtest.Request{Method: "GET", Target: series + "?from=" + at(time.Hour)}, 400, "before to", ""},
		// A time that is not RFC 3339.
		{"SeriesBadTimeIs400", apigwtest.Request{Method: "GET", Target: series + "?from=yesterday"}, 400, "RFC 3339", ""},
		// A good query of a campaign this instance never saw.
		{"UnknownCampaignSeriesIs404", apigwtest.Request{Method: "GET", Target: series}, 404, "campaign not found", ""},
		// The breakdown's pages are like the list's.
		{"AdsLimitOver500Is400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/ads?limit=501"}, 400, "limit", ""},
		{"AdsForgedCursorIs400", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/ads?cursor=not-a-cursor"}, 400, "cursor", ""},
		{"UnknownCampaignAdsIs404", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/ads"}, 404, "campaign not found", ""},
		{"WrongMethodOnAdsIs405", apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns/x/ads"}, 405, "not allowed", "GET, HEAD"},
	}
}

// adminCall sends r to f as an admin and returns the reply with the
// status wanted, its JSON body decoded.
func adminCall(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, want int, r apigwtest.Request) map[string]any {
	t.Helper()
	if r.Body != "" {
		r.Header = http.Header{"Content-Type": {"application/json"}}
	}
	got := f.call(t, gw, p, asAdmin(r))
	require.Equal(t, want, got.Status, "%s %s: %s", r.Method, r.Target, got.Body)
	return got.jsonBody(t)
}

// names are the names of the campaigns of a list answer, in its order.
func names(t *testing.T, list map[string]any) []string {
	t.Helper()
	cs, ok := list["campaigns"].([]any)
	require.True(t, ok, "campaigns is a list, empty or not: %v", list)
	out := []string{}
	for _, c := range cs {
		out = append(out, c.(map[string]any)["name"].(string))
	}
	return out
}

// listAll walks the campaign list through next_cursor, limit at a time,
// and returns the names in order.
func listAll(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, query url.Values) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20, "the list never ends")
		page := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?" + query.Encode()})
		all = append(all, names(t, page)...)
		next, ok := page["next_cursor"].(string)
		if !ok {
			require.Nil(t, page["next_cursor"], "next_cursor is a string or null")
			return all
		}
		query.Set("cursor", next)
	}
}

// seriesPoints checks a time series answer's shape: its campaign,
// interval and as_of, and points that are whole intervals in UTC, one
// after the other. It returns the counts.
func seriesPoints(t *testing.T, s map[string]any, id, interval string) []float64 {
	t.Helper()
	width := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[interval]
	assert.Equal(t, id, s["campaign_id"])
	assert.Equal(t, interval, s["interval"])
	for _, field := range []string{"from", "to"} {
		_, err := time.Parse(time.RFC3339, s[field].(string))
		assert.NoError(t, err, "%s is RFC 3339", field)
	}
	points := s["points"].([]any)
	require.NotEmpty(t, points)
	var counts []float64
	var prev time.Time
	for i, raw := range points {
		pt := raw.(map[string]any)
		text := pt["start"].(string)
		start, err := time.Parse(time.RFC3339, text)
		require.NoError(t, err)
		assert.Regexp(t, `Z$`, text, "point starts are in UTC")
		assert.True(t, start.Equal(start.Truncate(width)), "point %d starts on a whole %s: %s", i, interval, text)
		if i > 0 {
			assert.Equal(t, prev.Add(width), start, "point %d follows point %d", i, i-1)
		}
		prev = start
		counts = append(counts, pt["count"].(float64))
	}
	return counts
}

func sum(xs []float64) float64 {
	var n float64
	for _, x := range xs {
		n += x
	}
	return n
}

// campaignLifecycle creates a campaign through one admin instance, lists,
// ends, pauses, resumes and renames it, and reads its series and its
// breakdown, all through the same instance, whose memory store holds it.
// No ingest route reaches this instance, so every count is zero; the
// DynamoDB test reads real counts. The instance created "Encoded" and
// "Launch" before.
func campaignLifecycle(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload) {
	t.Run("CampaignLifecycleAndReports", func(t *testing.T) {
		now := time.Now().UTC()
		start := now.Add(-time.Hour).Truncate(time.Second)
		end := now.Add(30 * 24 * time.Hour).Truncate(time.Second)
		created := adminCall(t, f, gw, p, http.StatusCreated, apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns",
			Body: fmt.Sprintf(`{"name":"Reports","start_time":%q,"end_time":%q}`, start.Format(time.RFC3339), end.Format(time.RFC3339))})
		id := created["id"].(string)
		assert.Equal(t, "active", created["status"])
		assert.Equal(t, false, created["paused"])
		assert.Equal(t, end.Format(time.RFC3339), created["end_time"])
		createdAt, err := time.Parse(time.RFC3339, created["created_at"].(string))
		require.NoError(t, err, "a new campaign says when it was created")
		assert.WithinDuration(t, time.Now(), createdAt, time.Minute)
		campaign := "/api/v1/campaigns/" + url.PathEscape(id)

		// Newest first, one a page, through the cursor.
		assert.Equal(t, []string{"Reports", "Launch", "Encoded"}, listAll(t, f, gw, p, url.Values{"limit": {"1"}}))
		first := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?limit=1"})
		assert.Equal(t, []any{created}, first["campaigns"], "a listed campaign reads as created")
		assert.Empty(t, listAll(t, f, gw, p, url.Values{"status": {"paused"}}), "none is paused")

		// Paused: its status says so, and the filter finds it alone.
		paused := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign, Body: `{"paused":true}`})
		assert.Equal(t, "paused", paused["status"])
		assert.Equal(t, true, paused["paused"])
		assert.Equal(t, []string{"Reports"}, listAll(t, f, gw, p, url.Values{"status": {"paused"}}))
		assert.Equal(t, paused, adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign}))

		// A bad patch changes nothing, not even its good fields.
		bad := adminCall(t, f, gw, p, http.StatusBadRequest, apigwtest.Request{Method: "PATCH", Target: campaign,
			Body: fmt.Sprintf(`{"name":"Renamed","end_time":%q}`, start.Add(-time.Minute).Format(time.RFC3339))})
		assert.Contains(t, bad["error"], "end_time")
		assert.Equal(t, paused, adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign}))

		// Ended a minute ago: an end wins over a pause.
		ended := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign,
			Body: fmt.Sprintf(`{"end_time":%q}`, now.Add(-time.Minute).Truncate(time.Second).Format(time.RFC3339))})
		assert.Equal(t, "ended", ended["status"])
		assert.Equal(t, []string{"Reports"}, listAll(t, f, gw, p, url.Values{"status": {"ended"}}))

		// Resumed, renamed and without an end: active again.
		resumed := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign,
			Body: `{"paused":false,"end_time":null,"name":" Renamed "}`})
		assert.Equal(t, "active", resumed["status"])
		assert.Equal(t, "Renamed", resumed["name"])
		assert.NotContains(t, resumed, "end_time", "a campaign without an end has no end_time")
		assert.Equal(t, created["created_at"], resumed["created_at"], "a patch never moves a campaign in the list")
		assert.Equal(t, []string{"Renamed", "Launch", "Encoded"}, listAll(t, f, gw, p, url.Values{"status": {"active"}, "limit": {"2"}}))
		// The name search, whatever the case, alone and with a status.
		assert.Equal(t, []string{"Renamed"}, listAll(t, f, gw, p, url.Values{"name": {"rENAMED"}}))
		assert.Equal(t, []string{"Launch"}, listAll(t, f, gw, p, url.Values{"name": {"aun"}, "status": {"active"}, "limit": {"1"}}))
		assert.Empty(t, listAll(t, f, gw, p, url.Values{"name": {"Renamed"}, "status": {"paused"}}))

		// The default series: hours over the last day, zeros filled in.
		def := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/timeseries"})
		hours := seriesPoints(t, def, id, "hour")
		assert.Contains(t, []int{24, 25}, len(hours), "the hours holding a moment of the last 24")
		assert.Zero(t, sum(hours))
		assert.NotContains(t, def, "ad_id")
		assert.NotEmpty(t, def["as_of"], "the memory store's counts are as of the read")
		// Minutes since a time, and days since the start.
		minutes := seriesPoints(t, adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET",
			Target: campaign + "/timeseries?interval=minute&from=" + url.QueryEscape(now.Add(-10*time.Minute).Format(time.RFC3339Nano))}), id, "minute")
		assert.Contains(t, []int{10, 11}, len(minutes))
		days := seriesPoints(t, adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET",
			Target: campaign + "/timeseries?interval=day&from=" + url.QueryEscape(start.Format(time.RFC3339))}), id, "day")
		assert.Contains(t, []int{1, 2}, len(days))
		// One ad's series echoes the ad.
		ad := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET",
			Target: campaign + "/timeseries?interval=minute&ad_id=ad-1&from=" + url.QueryEscape(now.Add(-30*time.Minute).Format(time.RFC3339))})
		assert.Equal(t, "ad-1", ad["ad_id"])
		assert.Zero(t, sum(seriesPoints(t, ad, id, "minute")))

		// Nobody has seen it: no users, and a frequency of 0 rather than
		// a division by zero; no point has more users than impressions.
		st := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/stats"})
		assert.NotEmpty(t, st["as_of"])
		delete(st, "as_of")
		assert.Equal(t, statsWith(id, 0, 0, 0, 0), st)
		seriesReach(t, def, 0)
		seriesReach(t, ad, 0)

		// No ad has been seen: an empty last page.
		ads := adminCall(t, f, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/ads?limit=10"})
		assert.Equal(t, id, ads["campaign_id"])
		assert.Equal(t, []any{}, ads["ads"])
		assert.Contains(t, ads, "next_cursor")
		assert.Nil(t, ads["next_cursor"])
		assert.NotEmpty(t, ads["as_of"])
	})
}

// campaignRefresh is how long after a DynamoDB store read a campaign it
// may still act on that read: a pause or an end reaches every instance
// within it. The functions run with the store's default.
const campaignRefresh = dynamostore.CampaignRefresh

// dynamoReports reads, through an admin instance other than the one that
// created them, the list of the two campaigns of TestDynamoDBUnderEmulator
// and the reports of the one that counted: 13 impressions by users
// distinct users, 8 of ad-0 and 5 of ad-1, and 2 filtered, of ad-0, all
// since began. The stats are settled already. No scheduled reader runs
// here, so no answer carries as_of, as the stats do not
// (TestConformanceUnderEmulator runs one).
func dynamoReports(t *testing.T, admin *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, id string, began, start time.Time, users float64) {
	t.Run("List", func(t *testing.T) {
		assert.Equal(t, []string{"Next week", "Launch"}, listAll(t, admin, gw, p, url.Values{"limit": {"1"}}), "newest first, through the cursor")
		assert.Equal(t, []string{"Next week"}, listAll(t, admin, gw, p, url.Values{"status": {"scheduled"}}))
		assert.Equal(t, []string{"Launch"}, listAll(t, admin, gw, p, url.Values{"status": {"active"}}))
	})
	campaign := "/api/v1/campaigns/" + url.PathEscape(id)
	at := func(t time.Time) string { return url.QueryEscape(t.UTC().Format(time.RFC3339Nano)) }
	t.Run("SeriesSumToTheStats", func(t *testing.T) {
		cases := []struct {
			name, query, interval string
			want                  float64
		}{
			// The minutes of the run hold every impression...
			{"Minutes", "interval=minute&from=" + at(began.Add(-time.Minute)), "minute", 13},
			// ...and so do the default's hours over the last day...
			{"DefaultHours", "", "hour", 13},
			// ...and the days since the start.
			{"Days", "interval=day&from=" + at(start), "day", 13},
			// One ad's minutes, hours and days hold its own.
			{"AdMinutes", "interval=minute&ad_id=ad-0&from=" + at(began.Add(-time.Minute)), "minute", 8},
			{"AdHours", "interval=hour&ad_id=ad-1&from=" + at(time.Now().Add(-23*time.Hour)), "hour", 5},
			{"AdDays", "interval=day&ad_id=ad-1&from=" + at(start), "day", 5},
		}
		for _, tc := range cases {
			s := adminCall(t, admin, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/timeseries?" + tc.query})
			assert.Equal(t, tc.want, sum(seriesPoints(t, s, id, tc.interval)), tc.name)
			// The campaign's hours and days carry its reach; its minutes
			// and an ad's points do not.
			seriesReach(t, s, users)
		}
	})
	t.Run("AdsPageByPage", func(t *testing.T) {
		var ads []any
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 4, "two ads take two pages of one, and perhaps an empty third")
			page := adminCall(t, admin, gw, p, http.StatusOK, apigwtest.Request{Method: "GET", Target: campaign + "/ads?limit=1" + cursor})
			assert.Equal(t, id, page["campaign_id"])
			got := page["ads"].([]any)
			require.LessOrEqual(t, len(got), 1)
			ads = append(ads, got...)
			next, ok := page["next_cursor"].(string)
			if !ok {
				break
			}
			cursor = "&cursor=" + url.QueryEscape(next)
		}
		assert.Equal(t, []any{
			map[string]any{"ad_id": "ad-0", "last_hour": 8.0, "last_day": 8.0, "total": 8.0, "filtered": 2.0},
			map[string]any{"ad_id": "ad-1", "last_hour": 5.0, "last_day": 5.0, "total": 5.0, "filtered": 0.0},
		}, ads, "most impressions first, each ad's counts exact, and no reach: the per-ad breakdown carries none")
	})
}

// timedReply is a reply and when its request was sent.
type timedReply struct {
	sent time.Time
	reply
}

// untilRefreshed sends the request next(n) makes, n from 0, to f every 20
// ms until one sent campaignRefresh after since has been answered, and
// returns every reply.
func untilRefreshed(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, since time.Time, next func(n int) apigwtest.Request) []timedReply {
	t.Helper()
	var out []timedReply
	for n := 0; ; n++ {
		sent := time.Now()
		out = append(out, timedReply{sent, f.call(t, gw, p, next(n))})
		if !sent.Before(since.Add(campaignRefresh)) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// late reports whether r was sent when every instance must have seen a
// change answered at since.
func (r timedReply) late(since time.Time) bool { return !r.sent.Before(since.Add(campaignRefresh)) }

// lifecycleReachesIngest pauses, resumes and ends the campaign through an
// admin instance, and checks that each change reaches both ingest
// instances within campaignRefresh of its answer: after it, every
// impression is refused while paused, with the paused code, counts again
// once resumed (the refused key was never kept) and is refused as ended
// on the batch route and by the pixel. It returns how many impressions
// counted before a change arrived.
func lifecycleReachesIngest(t *testing.T, admin *function, trackers []*function, gw *apigwtest.Gateway, p lambdaproxy.Payload, id string) (counted int) {
	campaign := "/api/v1/campaigns/" + url.PathEscape(id)
	impression := func(user string) apigwtest.Request {
		return apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Header: http.Header{"Content-Type": {"application/json"}},
			Body: fmt.Sprintf(`{"campaign_id":%q,"user_id":%q,"ad_id":"ad-1"}`, id, user)}
	}
	// tally counts the replies that counted, and checks that each one
	// refused was refused for why.
	tally := func(t *testing.T, r reply, code string) {
		t.Helper()
		switch r.Status {
		case http.StatusOK:
			if r.jsonBody(t)["outcome"] == "counted" {
				counted++
			}
		case http.StatusConflict:
			assert.Equal(t, code, r.jsonBody(t)["code"], r.Body)
		default:
			t.Errorf("want 200 or 409 %s, got %d: %s", code, r.Status, r.Body)
		}
	}

	refused := make([]string, len(trackers))
	t.Run("Pause", func(t *testing.T) {
		adminCall(t, admin, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign, Body: `{"paused":true}`})
		since := time.Now()
		for i, f := range trackers {
			replies := untilRefreshed(t, f, gw, p, since, func(n int) apigwtest.Request { return impression(fmt.Sprintf("pause-%d-%d", i, n)) })
			for n, r := range replies {
				tally(t, r.reply, "paused")
				if r.late(since) {
					require.Equal(t, http.StatusConflict, r.Status, "instance %d, %v after the pause: %s", i, r.sent.Sub(since), r.Body)
					refused[i] = fmt.Sprintf("pause-%d-%d", i, n)
				}
			}
		}
	})
	t.Run("Resume", func(t *testing.T) {
		adminCall(t, admin, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign, Body: `{"paused":false}`})
		since := time.Now()
		for i, f := range trackers {
			// The key refused while paused counts once resumed: a refusal
			// keeps no dedup key.
			replies := untilRefreshed(t, f, gw, p, since, func(int) apigwtest.Request { return impression(refused[i]) })
			var outcomes []any
			for _, r := range replies {
				tally(t, r.reply, "paused")
				if r.Status == http.StatusOK {
					outcomes = append(outcomes, r.jsonBody(t)["outcome"])
				}
				if r.late(since) {
					require.Equal(t, http.StatusOK, r.Status, "instance %d, %v after the resume: %s", i, r.sent.Sub(since), r.Body)
				}
			}
			require.NotEmpty(t, outcomes)
			assert.Equal(t, "counted", outcomes[0], "instance %d: the refused key counts once resumed", i)
			for _, o := range outcomes[1:] {
				assert.Equal(t, "duplicate", o, "instance %d", i)
			}
		}
	})
	t.Run("End", func(t *testing.T) {
		end := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
		ended := adminCall(t, admin, gw, p, http.StatusOK, apigwtest.Request{Method: "PATCH", Target: campaign, Body: fmt.Sprintf(`{"end_time":%q}`, end)})
		assert.Equal(t, "ended", ended["status"])
		since := time.Now()
		// A batch on one instance: each item's result says ended.
		for _, r := range untilRefreshed(t, trackers[0], gw, p, since, func(n int) apigwtest.Request {
			return apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch", Header: http.Header{"Content-Type": {"application/json"}},
				Body: fmt.Sprintf(`{"impressions":[{"campaign_id":%q,"user_id":"end-%d","ad_id":"ad-1"}]}`, id, n)}
		}) {
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			result := r.jsonBody(t)["results"].([]any)[0].(map[string]any)
			switch result["outcome"] {
			case "counted":
				require.False(t, r.late(since), "%v after the end: %v", r.sent.Sub(since), result)
				counted++
			case "rejected":
				assert.Equal(t, map[string]any{"outcome": "rejected", "status": 409.0, "code": "ended", "error": result["error"]}, result)
			default:
				t.Errorf("a new key is counted or rejected as ended, got %v", result)
			}
		}
		// The pixel on the other: its headers say ended.
		for _, r := range untilRefreshed(t, trackers[1], gw, p, since, func(n int) apigwtest.Request {
			return apigwtest.Request{Method: "GET", Target: fmt.Sprintf("/api/v1/pixel.gif?campaign_id=%s&user_id=end-px-%d&ad_id=ad-1", url.QueryEscape(id), n),
				Header: http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}}}
		}) {
			assert.Equal(t, "image/gif", r.Header.Get("Content-Type"))
			switch r.Header.Get("X-Impression-Outcome") {
			case "counted":
				require.False(t, r.late(since), "%v after the end", r.sent.Sub(since))
				counted++
			case "rejected":
				assert.Equal(t, http.StatusConflict, r.Status)
				assert.Equal(t, "ended", r.Header.Get("X-Impression-Error"))
			default:
				t.Errorf("a new key is counted or rejected as ended, got %q", r.Header.Get("X-Impression-Outcome"))
			}
		}
	})
	return counted
}
