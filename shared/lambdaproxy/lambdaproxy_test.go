package lambdaproxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/lambdaproxy"
)

func TestParsePayload(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     lambdaproxy.Payload
		wantErr  bool
	}{
		// An HTTP API sends 2.0 unless told otherwise, so unset means 2.0.
		{"UnsetIsV2", "", lambdaproxy.PayloadV2, false},
		{"V2", "2.0", lambdaproxy.PayloadV2, false},
		{"V1", "1.0", lambdaproxy.PayloadV1, false},
		// A near miss must stop the function rather than pick a format.
		{"ShortFormIsRefused", "2", "", true},
		{"UnknownIsRefused", "3.0", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := lambdaproxy.ParsePayload(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), lambdaproxy.PayloadEnv)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestStartRefusesUnknownPayload(t *testing.T) {
	t.Parallel()
	err := lambdaproxy.Start(http.NotFoundHandler(), "3.0")
	require.Error(t, err)
}

// echo answers with the route pattern and the id path value it was served
// with, so a test sees what the handler saw.
func echo() http.Handler {
	mux := http.NewServeMux()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method, "pattern": r.Pattern, "id": r.PathValue("id"), "rest": r.PathValue("rest"), "query": r.URL.RawQuery,
		})
	})
	mux.Handle("/api/v1/campaigns/{id}/stats", h)
	mux.Handle("/files/{rest...}", h)
	mux.Handle("/", h)
	return mux
}

func TestPathsReachTheHandlerWhole(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		routeKey string
		rawPath  string
		params   map[string]string
		query    string
		want     map[string]string
	}{
		// An HTTP API hands over the raw path decoded: rebuilt from the route
		// and parameter, the ID keeps its slash, query mark, space and
		// percent instead of reaching another route or the query string.
		{"DecodedParameterIsEscaped", "GET /api/v1/campaigns/{id}/stats", "/api/v1/campaigns/a/b?c d%/stats",
			map[string]string{"id": "a/b?c d%"}, "x=1",
			map[string]string{"pattern": "/api/v1/campaigns/{id}/stats", "id": "a/b?c d%", "query": "x=1"}},
		// A greedy parameter keeps its slashes as path separators.
		{"GreedyParameterKeepsSlashes", "ANY /files/{proxy+}", "/files/x y/z",
			map[string]string{"proxy": "x y/z"}, "",
			map[string]string{"pattern": "/files/{rest...}", "rest": "x y/z"}},
		// Through $default there is no template, so the raw path stands.
		{"DefaultRouteKeepsRawPath", "$default", "/api/v1/campaigns/plain/stats", nil, "",
			map[string]string{"pattern": "/api/v1/campaigns/{id}/stats", "id": "plain"}},
		// A template naming a parameter the event lacks leaves the raw path.
		{"MissingParameterKeepsRawPath", "GET /api/v1/campaigns/{id}/stats", "/api/v1/campaigns/plain/stats", map[string]string{}, "",
			map[string]string{"pattern": "/api/v1/campaigns/{id}/stats", "id": "plain"}},
	}
	v2, v1 := lambdaproxy.NewV2(echo()), lambdaproxy.NewV1(echo())
	for _, tc := range cases {
		t.Run(tc.name+"/V2", func(t *testing.T) {
			t.Parallel()
			ev := events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: tc.routeKey, RawPath: tc.rawPath, RawQueryString: tc.query, PathParameters: tc.params,
				RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: tc.rawPath}},
			}
			resp, err := v2(context.Background(), ev)
			require.NoError(t, err)
			assertEcho(t, tc.want, resp.StatusCode, resp.Body)
		})
		t.Run(tc.name+"/V1", func(t *testing.T) {
			t.Parallel()
			_, resource, _ := strings.Cut(tc.routeKey, " ")
			var query map[string][]string
			if tc.query != "" {
				query = map[string][]string{"x": {"1"}}
			}
			ev := events.APIGatewayProxyRequest{
				HTTPMethod: "GET", Resource: resource, Path: tc.rawPath, PathParameters: tc.params, MultiValueQueryStringParameters: query,
			}
			resp, err := v1(context.Background(), ev)
			require.NoError(t, err)
			assertEcho(t, tc.want, resp.StatusCode, resp.Body)
		})
	}
}

func assertEcho(t *testing.T, want map[string]string, status int, body string) {
	t.Helper()
	require.Equal(t, http.StatusOK, status, body)
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
}

func TestEventOfTheOtherFormatIsRefused(t *testing.T) {
	t.Parallel()
	// A 1.0 event read as 2.0 has no method where 2.0 keeps it; served, a
	// POST would run as a GET.
	_, err := lambdaproxy.NewV2(echo())(context.Background(), events.APIGatewayV2HTTPRequest{RawPath: "/x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), lambdaproxy.PayloadEnv)

	// And the other way round.
	_, err = lambdaproxy.NewV1(echo())(context.Background(), events.APIGatewayProxyRequest{Path: "/x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), lambdaproxy.PayloadEnv)
}

// TestRequestIDFromAPIGateway: the handler sees API Gateway's request ID as
// X-Request-Id, unless the client sent its own, in either payload format.
func TestRequestIDFromAPIGateway(t *testing.T) {
	t.Parallel()
	seen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Header.Get("X-Request-Id")))
	})
	v2, v1 := lambdaproxy.NewV2(seen), lambdaproxy.NewV1(seen)
	cases := []struct {
		name    string
		headers map[string]string
		multi   bool // payload 1.0 with multi-value headers, as REST APIs send
		want    string
	}{
		{"FromGateway", nil, false, "gw-123"},
		{"FromGatewayMultiValue", map[string]string{"Accept": "*/*"}, true, "gw-123"},
		// The client's own ID wins, in any letter case.
		{"FromClient", map[string]string{"x-request-id": "client-9"}, false, "client-9"},
		{"FromClientMultiValue", map[string]string{"X-Request-ID": "client-9"}, true, "client-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev2 := events.APIGatewayV2HTTPRequest{RouteKey: "GET /x", RawPath: "/x", Headers: tc.headers}
			ev2.RequestContext.RequestID = "gw-123"
			ev2.RequestContext.HTTP.Method = "GET"
			out2, err := v2(context.Background(), ev2)
			require.NoError(t, err)
			assert.Equal(t, tc.want, out2.Body, "payload 2.0")

			ev1 := events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/x", Resource: "/x", Headers: tc.headers}
			if tc.multi {
				ev1.MultiValueHeaders = map[string][]string{}
				for k, v := range tc.headers {
					ev1.MultiValueHeaders[k] = []string{v}
				}
			}
			ev1.RequestContext.RequestID = "gw-123"
			out1, err := v1(context.Background(), ev1)
			require.NoError(t, err)
			assert.Equal(t, tc.want, out1.Body, "payload 1.0")
		})
	}
}
