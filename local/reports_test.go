package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/storetest"
)

// send sends a request with a browser's User-Agent and returns its status
// and its decoded JSON answer; for the pixel, whose answer is an image,
// its outcome and error headers stand in for the body.
func send(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("User-Agent", browserUA)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]any{}
	if resp.Header.Get("Content-Type") == "image/gif" {
		out["outcome"], out["code"] = resp.Header.Get("X-Impression-Outcome"), resp.Header.Get("X-Impression-Error")
	} else {
		require.NoError(t, json.Unmarshal(raw, &out), "%s %s: %s", method, url, raw)
	}
	return resp.StatusCode, out
}

// settled reads a report (a series or a breakdown) once its as_of has
// passed since, as a store that aggregates behind its writes needs, and
// returns it without as_of. Like settledStats, it reads again, backing
// off, for up to storetest.SettleBound, and never sleeps a fixed time.
func settled(t *testing.T, url string, since time.Time) map[string]any {
	t.Helper()
	deadline := time.Now().Add(storetest.SettleBound)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		status, got := send(t, "GET", url, "")
		require.Equal(t, http.StatusOK, status, got)
		text, _ := got["as_of"].(string)
		at, err := time.Parse(time.RFC3339, text)
		if err == nil && at.After(since) {
			delete(got, "as_of")
			return got
		}
		require.True(t, time.Now().Before(deadline), "as_of %q of %s never passed %v", text, url, since)
		time.Sleep(pause)
	}
}

// refusedWithin records impressions of new users with try until one is
// refused, and checks that it was refused with code, within bound of the
// first try: the time a pause or an end may take to reach the store that
// records them. try returns the impression's code, empty if it counted.
func refusedWithin(t *testing.T, bound time.Duration, code string, try func(user string) string) {
	t.Helper()
	start := time.Now()
	for i, pause := 0, time.Millisecond; ; i, pause = i+1, min(2*pause, 50*time.Millisecond) {
		if got := try(fmt.Sprintf("%s-%d", code, i)); got != "" {
			assert.Equal(t, code, got)
			return
		}
		require.LessOrEqual(t, time.Since(start), bound, "still counting %v after the change", time.Since(start))
		time.Sleep(pause)
	}
}

// checkReportsOverHTTP drives the reporting and lifecycle routes of the
// server at base, whose campaign id has one impression of ad a1, counted
// at counted: the list, the series and the breakdown see it, and a pause
// and an end refuse impressions within bound.
func checkReportsOverHTTP(t *testing.T, base, id string, counted time.Time, bound time.Duration) {
	t.Helper()
	status, campaigns := send(t, "GET", base+"/api/v1/campaigns?status=active", "")
	require.Equal(t, http.StatusOK, status, campaigns)
	list := campaigns["campaigns"].([]any)
	require.Len(t, list, 1)
	camp := list[0].(map[string]any)
	createdAt, err := time.Parse(time.RFC3339, camp["created_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), createdAt, time.Minute)
	assert.Equal(t, map[string]any{"id": id, "name": "Launch", "start_time": "2020-01-01T00:00:00Z", "paused": false, "status": "active", "created_at": camp["created_at"]}, camp)
	assert.Nil(t, campaigns["next_cursor"])
	_, none := send(t, "GET", base+"/api/v1/campaigns?status=ended", "")
	assert.Equal(t, []any{}, none["campaigns"])

	// The minute the impression counted in holds it, for the campaign
	// and for its ad; the default series, by the hour, too.
	from := url.QueryEscape(counted.Add(-5 * time.Minute).UTC().Format(time.RFC3339))
	for _, query := range []string{"interval=minute&from=" + from, "interval=minute&ad_id=a1&from=" + from, ""} {
		series := settled(t, base+"/api/v1/campaigns/"+id+"/timeseries?"+query, counted)
		var sum float64
		for _, p := range series["points"].([]any) {
			sum += p.(map[string]any)["count"].(float64)
		}
		assert.Equal(t, 1.0, sum, "the points of %q", query)
	}
	ads := settled(t, base+"/api/v1/campaigns/"+id+"/ads?limit=10", counted)
	assert.Equal(t, map[string]any{"campaign_id": id, "next_cursor": nil,
		"ads": []any{map[string]any{"ad_id": "a1", "last_hour": 1.0, "last_day": 1.0, "total": 1.0, "filtered": 0.0}}}, ads)
	status, bad := send(t, "GET", base+"/api/v1/campaigns/"+id+"/timeseries?interval=minute&from=2020-01-01T00:00:00Z", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, bad["error"], "a series holds at most 1500 points")

	// A pause refuses impressions on every route, within the bound.
	status, paused := send(t, "PATCH", base+"/api/v1/campaigns/"+id, `{"paused":true}`)
	require.Equal(t, http.StatusOK, status, paused)
	assert.Equal(t, "paused", paused["status"])
	refusedWithin(t, bound, "paused", func(user string) string {
		status, got := send(t, "POST", base+"/api/v1/impressions", fmt.Sprintf(`{"campaign_id":%q,"user_id":%q,"ad_id":"a1"}`, id, user))
		if status == http.StatusOK {
			return ""
		}
		assert.Equal(t, http.StatusConflict, status, got)
		return fmt.Sprint(got["code"])
	})
	status, pixel := send(t, "GET", base+"/api/v1/pixel.gif?campaign_id="+id+"&user_id=px&ad_id=a1", "")
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, map[string]any{"outcome": "rejected", "code": "paused"}, pixel)

	// An end that has passed refuses them too, and wins over a resume.
	status, ended := send(t, "PATCH", base+"/api/v1/campaigns/"+id, `{"paused":false,"end_time":"2021-01-01T00:00:00Z"}`)
	require.Equal(t, http.StatusOK, status, ended)
	assert.Equal(t, "ended", ended["status"])
	refusedWithin(t, bound, "ended", func(user string) string {
		status, got := send(t, "POST", base+"/api/v1/impressions/batch", fmt.Sprintf(`{"impressions":[{"campaign_id":%q,"user_id":%q,"ad_id":"a1"}]}`, id, user))
		require.Equal(t, http.StatusOK, status, got)
		res := got["results"].([]any)[0].(map[string]any)
		if res["outcome"] != "rejected" {
			return ""
		}
		return fmt.Sprint(res["code"])
	})
	_, got := send(t, "GET", base+"/api/v1/campaigns/"+id, "")
	assert.Equal(t, map[string]any{"id": id, "name": "Launch", "start_time": "2020-01-01T00:00:00Z", "end_time": "2021-01-01T00:00:00Z",
		"paused": false, "status": "ended", "created_at": camp["created_at"]}, got)
}
