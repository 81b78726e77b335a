package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/memstore"
)

// transport sends one request to the API one way and returns what the
// client receives.
type transport func(t *testing.T, r apigwtest.Request) apigwtest.Response

// overHTTP sends requests to the local server over real HTTP.
func overHTTP(base string) transport {
	return func(t *testing.T, r apigwtest.Request) apigwtest.Response {
		t.Helper()
		req, err := http.NewRequest(r.Method, base+r.Target, strings.NewReader(r.Body))
		require.NoError(t, err)
		for name, values := range r.Header {
			req.Header[name] = values
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return apigwtest.Response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	}
}

// newLambdaHandler is the API over its own memory store, as one Lambda
// instance serves it.
func newLambdaHandler(t *testing.T) http.Handler {
	t.Helper()
	store, err := memstore.New()
	require.NoError(t, err)
	isBot, err := botfilter.Judge(true) // FILTER_BOTS's default, as the functions read it
	require.NoError(t, err)
	return httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler)), httpapi.WithBotFilter(isBot))
}

// throughV2 sends requests in-process through the Lambda adapter as HTTP API
// payload 2.0 events.
func throughV2(t *testing.T) transport {
	gw, serve := apigwtest.NewGateway(httpapi.Routes()), lambdaproxy.NewV2(newLambdaHandler(t))
	return func(t *testing.T, r apigwtest.Request) apigwtest.Response {
		t.Helper()
		resp, err := serve(context.Background(), gw.V2(r))
		require.NoError(t, err)
		out, err := apigwtest.FromV2(resp)
		require.NoError(t, err)
		return out
	}
}

// throughV1 sends requests in-process through the Lambda adapter as REST API
// payload 1.0 events.
func throughV1(t *testing.T) transport {
	gw, serve := apigwtest.NewGateway(httpapi.Routes()), lambdaproxy.NewV1(newLambdaHandler(t))
	return func(t *testing.T, r apigwtest.Request) apigwtest.Response {
		t.Helper()
		resp, err := serve(context.Background(), gw.V1(r))
		require.NoError(t, err)
		out, err := apigwtest.FromV1(resp)
		require.NoError(t, err)
		return out
	}
}

// googlebot is Google's crawler's User-Agent, on the crawler list.
const googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

type parityCase struct {
	name   string
	req    apigwtest.Request
	status int
}

// TestLambdaParity sends one table of requests to the local server over
// real HTTP and through the Lambda adapter with both payload formats: the
// client must see the same status, Content-Type, Allow and Location headers
// and body, starting with the creation of a campaign.
// Each way has its own store, so every way first creates a live and a
// future campaign; their random IDs stand as {live} and {future}.
func TestLambdaParity(t *testing.T) {
	t.Parallel()
	ways := map[string]transport{
		"HTTP":     overHTTP(startServer(t, map[string]string{}, nil)),
		"LambdaV2": throughV2(t),
		"LambdaV1": throughV1(t),
	}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	huge := `{"campaign_id":"{live}","user_id":"` + strings.Repeat("u", httpapi.MaxBodyBytes) + `","ad_id":"a"}`
	cases := []parityCase{
		// The happy path of every route.
		{"ReadCampaign", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}"}, 200},
		{"CountImpression", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Header: jsonHeader, Body: `{"campaign_id":"{live}","user_id":"u1","ad_id":"a1"}`}, 200},
		{"IgnoreDuplicate", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Header: jsonHeader, Body: `{"campaign_id":"{live}","user_id":"u1","ad_id":"a1"}`}, 200},
		// The gateway base64-encodes a binary media type; decoded, it is the
		// same request.
		{"Base64Body", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"{live}","user_id":"u2","ad_id":"a1"}`, Base64: true}, 200},
		// A sendBeacon body arrives as text/plain.
		{"TextPlainBeacon", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Header: http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}, Body: `{"campaign_id":"{live}","user_id":"u3","ad_id":"a1"}`}, 200},
		// A crawler's impression is filtered the same way everywhere.
		{"FilteredCrawler", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Header: http.Header{"User-Agent": {googlebot}}, Body: `{"campaign_id":"{live}","user_id":"u4","ad_id":"a1"}`}, 200},
		// A batch: counted, a repeat, a crawler's, an unknown campaign.
		{"Batch", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch", Header: jsonHeader, Body: `{"impressions":[` +
			`{"campaign_id":"{live}","user_id":"b1","ad_id":"a1"},{"campaign_id":"{live}","user_id":"b1","ad_id":"a1"},` +
			`{"campaign_id":"{live}","user_id":"b2","ad_id":"a1","user_agent":"` + googlebot + `"},{"campaign_id":"nope","user_id":"u","ad_id":"a"}]}`}, 200},
		{"BatchMalformed", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch", Body: `{"impressions":[`}, 400},
		// The pixel: counted, a crawler's, an unknown campaign, a bad query.
		{"Pixel", apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id={live}&user_id=p1&ad_id=a1"}, 200},
		{"PixelCrawler", apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id={live}&user_id=p2&ad_id=a1", Header: http.Header{"User-Agent": {googlebot}}}, 200},
		{"PixelUnknownCampaign", apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id=nope&user_id=p&ad_id=a"}, 404},
		{"PixelMissingField", apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id={live}&user_id=p"}, 400},
		{"Stats", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/stats"}, 200},
		// A query string changes nothing.
		{"StatsWithQuery", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/stats?x=1&x=2"}, 200},
		// Every error status, in the API's words.
		{"MalformedJSON", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":`}, 400},
		{"EmptyBody", apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns"}, 400},
		{"MissingField", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"{live}","user_id":"u"}`}, 400},
		{"BodyTooLarge", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: huge}, 413},
		{"UnknownCampaign", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"nope","user_id":"u","ad_id":"a"}`}, 404},
		{"NotStarted", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"{future}","user_id":"u","ad_id":"a"}`}, 409},
		{"UnknownCampaignStats", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/nope/stats"}, 404},
		// An ID that needs escaping is one path parameter on every way.
		{"EscapedID", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + url.PathEscape("a/b?c d%") + "/stats"}, 404},
		{"UnknownRoute", apigwtest.Request{Method: "GET", Target: "/api/v2/nothing"}, 404},
		{"WrongMethod", apigwtest.Request{Method: "DELETE", Target: "/api/v1/campaigns/{live}"}, 405},
		{"WrongMethodImpressions", apigwtest.Request{Method: "GET", Target: "/api/v1/impressions"}, 405},
		// The counts after all of the above agree.
		{"StatsAfterErrors", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/stats"}, 200},
		// The reports. The list is filtered to one campaign, whose place
		// among others created in the same millisecond would depend on
		// its random ID; the series is of days long past.
		{"ListScheduled", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?status=scheduled"}, 200},
		{"ListActive", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?status=active&limit=1&cache=1"}, 200},
		{"ListBadLimit", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns?limit=0"}, 400},
		{"Series", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/timeseries?interval=day&from=2020-01-01T00:00:00Z&to=2020-01-03T00:00:00Z"}, 200},
		{"SeriesTooManyPoints", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/timeseries?interval=day&from=2000-01-01T00:00:00Z&to=2020-01-01T00:00:00Z"}, 400},
		{"Ads", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/{live}/ads?limit=1"}, 200},
		{"AdsUnknownCampaign", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/nope/ads"}, 404},
		{"Rename", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/{live}", Header: jsonHeader, Body: `{"name":"Still live"}`}, 200},
		{"PatchUnknownField", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/{live}", Body: `{"pause":true}`}, 400},
		// A pause and an end refuse impressions with their own 409s.
		{"Pause", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/{future}", Body: `{"paused":true}`}, 200},
		{"Paused", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"{future}","user_id":"u","ad_id":"a"}`}, 409},
		{"End", apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/{live}", Body: `{"end_time":"2020-01-02T00:00:00Z"}`}, 200},
		{"Ended", apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id={live}&user_id=p9&ad_id=a1"}, 409},
	}

	type seen struct {
		status                             int
		contentType, allow, location, body string
		outcome, reason, cache             string
	}
	// observe keeps what parity compares, with each way's IDs set aside.
	observe := func(resp apigwtest.Response, ids map[string]string) seen {
		got := seen{resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"), resp.Header.Get("Location"), resp.Body,
			resp.Header.Get("X-Impression-Outcome"), resp.Header.Get("X-Impression-Error"), resp.Header.Get("Cache-Control")}
		for placeholder, id := range ids {
			got.location = strings.ReplaceAll(got.location, id, placeholder)
			got.body = strings.ReplaceAll(got.body, id, placeholder)
		}
		// Each way reads the stats, and created each campaign, at its own
		// moment; the shape must agree.
		got.body = asOfRE.ReplaceAllString(got.body, `"as_of":"{as_of}"`)
		got.body = createdAtRE.ReplaceAllString(got.body, `"created_at":"{created_at}"`)
		return got
	}
	results := map[string][]seen{}
	for name, send := range ways {
		live, created := create(t, send, `{"name":"Live","start_time":"2020-01-01T00:00:00Z"}`)
		future, _ := create(t, send, `{"name":"Future","start_time":"2999-01-01T00:00:00Z"}`)
		ids := map[string]string{"{live}": live, "{future}": future}
		// Creating answers alike too, once the new ID is set aside.
		results[name] = append(results[name], observe(created, ids))
		for _, tc := range cases {
			req := tc.req
			// Every way sees a browser unless the case says otherwise:
			// Go's own User-Agent is on the crawler list.
			if req.Header.Get("User-Agent") == "" {
				req.Header = req.Header.Clone()
				if req.Header == nil {
					req.Header = http.Header{}
				}
				req.Header.Set("User-Agent", browserUA)
			}
			for placeholder, id := range ids {
				req.Target = strings.ReplaceAll(req.Target, placeholder, id)
				req.Body = strings.ReplaceAll(req.Body, placeholder, id)
			}
			results[name] = append(results[name], observe(send(t, req), ids))
		}
	}
	cases = append([]parityCase{{"CreateCampaign", apigwtest.Request{}, http.StatusCreated}}, cases...)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := results["HTTP"][i]
			assert.Equal(t, tc.status, want.status, want.body)
			if strings.HasPrefix(tc.req.Target, "/api/v1/pixel.gif") {
				assert.Equal(t, "image/gif", want.contentType)
				assert.NotEmpty(t, want.outcome)
			} else {
				assert.Equal(t, "application/json", want.contentType)
			}
			assert.Equal(t, want, results["LambdaV2"][i], "payload 2.0 differs from the local server")
			assert.Equal(t, want, results["LambdaV1"][i], "payload 1.0 differs from the local server")
		})
	}
}

// create registers a campaign through send and returns its ID and the
// response.
func create(t *testing.T, send transport, body string) (string, apigwtest.Response) {
	t.Helper()
	resp := send(t, apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: body})
	require.Equal(t, http.StatusCreated, resp.Status, resp.Body)
	var c struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &c))
	require.NotEmpty(t, c.ID)
	return c.ID, resp
}

// asOfRE matches the freshness of a stats answer, which is the moment of
// the read for the memory store.
var asOfRE = regexp.MustCompile(`"as_of":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

// createdAtRE matches a campaign's creation time, the moment of its
// create.
var createdAtRE = regexp.MustCompile(`"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)
