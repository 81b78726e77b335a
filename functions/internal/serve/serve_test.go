package serve_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
)

func TestRunRefusesToStart(t *testing.T) {
	t.Parallel()
	env := map[string]string{"STORE": "memory", "ADMIN_API_KEYS": "serve-admin-key-0123456789"}
	dashboard := serve.WithDashboard(fstest.MapFS{"index.html": {Data: []byte("<p>")}})
	cases := []struct {
		name    string
		fn      serve.Function
		env     map[string]string
		opts    []serve.Option
		mention string
	}{
		// A main naming a function the template does not deploy, such as
		// one planned but not built yet, is a mistake to report at start.
		{"UnknownFunction", serve.Function("dashboard"), env, nil, `unknown function "dashboard"`},
		// The function name is checked before the settings, so the error
		// is about the function, not whatever setting is also wrong.
		{"UnknownFunctionBeforeSettings", serve.Function(""), map[string]string{"DEDUP_TTL": "soon"}, nil, `unknown function ""`},
		// The admin function serves campaigns and stats, so it never
		// starts open. (Ingest serves no admin route and needs no key.)
		{"AdminWithoutAdminKey", serve.Admin, map[string]string{"STORE": "memory"}, []serve.Option{dashboard}, "ADMIN_API_KEYS"},
		// The template routes the dashboard to the admin function, so a
		// main that does not pass it would answer 404 to every user.
		{"AdminWithoutDashboard", serve.Admin, env, nil, "serve.WithDashboard(web.Dashboard())"},
		// Nor may another function serve it: only the admin function's
		// routes are the dashboard's.
		{"IngestWithDashboard", serve.Ingest, env, []serve.Option{dashboard}, "ingest does not serve the dashboard"},
		// The aggregator folds the table's stream, so it needs the table
		// even where the deployment counts in memory.
		{"AggregateWithoutTable", serve.Aggregate, env, nil, "DYNAMODB_TABLE"},
		// A bad setting every function shares stops it too.
		{"AggregateWithBadSetting", serve.Aggregate, map[string]string{"DYNAMODB_TABLE": "impressions", "LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := serve.Run(context.Background(), tc.fn, func(k string) string { return tc.env[k] }, io.Discard, tc.opts...)
			require.ErrorContains(t, err, tc.mention)
		})
	}
}

// TestFunctionsServeOneAccessClassEach: each function serves exactly one
// access class of the API, and together they serve both; the admin
// function serves the dashboard beside its routes.
func TestFunctionsServeOneAccessClassEach(t *testing.T) {
	t.Parallel()
	assert.Equal(t, httpapi.Ingest, serve.Ingest.Access())
	assert.Equal(t, httpapi.Admin, serve.Admin.Access())
	assert.Equal(t, []httpapi.Access{httpapi.Ingest}, serve.Ingest.Classes())
	assert.Equal(t, []httpapi.Access{httpapi.Admin, httpapi.Dashboard}, serve.Admin.Classes())
	assert.Empty(t, serve.Aggregate.Classes())
	// A function not yet given a class serves nothing, never admin routes;
	// nor does a function the stream triggers.
	assert.Equal(t, httpapi.Access(0), serve.Function("dashboard").Access())
	assert.Equal(t, httpapi.Access(0), serve.Aggregate.Access())
}

// TestStreamFunctionsServeNoRoute: the aggregate function is deployed and
// built with the others, but no HTTP handler is ever built for it, so no
// route can be served by a role that reads the stream; and the stream
// handler is built only for it.
func TestStreamFunctionsServeNoRoute(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []serve.Function{serve.Ingest, serve.Admin, serve.Aggregate}, serve.All())
	assert.NotContains(t, serve.Functions(), serve.Aggregate, "Functions lists the HTTP functions")
	env := func(k string) string {
		return map[string]string{"STORE": "memory", "DYNAMODB_TABLE": "impressions", "ADMIN_API_KEYS": "serve-admin-key-0123456789"}[k]
	}
	_, _, err := serve.NewHandler(context.Background(), serve.Aggregate, env, io.Discard)
	require.ErrorContains(t, err, "serves no HTTP route")

	h, err := serve.NewStreamHandler(context.Background(), serve.Aggregate, env, io.Discard)
	require.NoError(t, err)
	require.NotNil(t, h)
	for _, fn := range serve.Functions() {
		_, err := serve.NewStreamHandler(context.Background(), fn, env, io.Discard)
		require.ErrorContains(t, err, "not a stream function", fn)
	}
}

// writes records each write call to stdout apart.
type writes struct {
	mu    sync.Mutex
	calls []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// TestRequestLineIsOnStdoutWhenTheInvocationReturns: CloudWatch reads a
// function's stdout, and Lambda may freeze the instance as soon as an
// invocation returns, so the request's line (its EMF document) must have
// been written, whole, by then: a line still in a buffer would wait,
// frozen, for the next invocation, or be lost with the instance. Nothing
// here waits after the call.
func TestRequestLineIsOnStdoutWhenTheInvocationReturns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		level string
		msg   string // of the one line
	}{
		// The request line, with the metrics.
		{"Info", "info", "request"},
		// LOG_LEVEL=warn hides the request line, not the metrics.
		{"Warn", "warn", "metrics"},
	}
	gw := apigwtest.NewGateway(httpapi.Routes())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"STORE": "memory", "LOG_LEVEL": tc.level}
			stdout := &writes{}
			h, payload, err := serve.NewHandler(context.Background(), serve.Ingest, func(k string) string { return env[k] }, stdout)
			require.NoError(t, err)
			require.Equal(t, lambdaproxy.PayloadV2, payload)
			before := len(stdout.all())
			resp, err := lambdaproxy.NewV2(h)(context.Background(), gw.V2(apigwtest.Request{Method: "POST", Target: "/api/v1/impressions",
				Body: `{"campaign_id":"no-such-campaign","user_id":"u","ad_id":"a"}`}))
			require.NoError(t, err)
			require.Equal(t, 404, resp.StatusCode)

			lines := stdout.all()[before:]
			require.Len(t, lines, 1, "one write, of one line: %q", lines)
			require.True(t, strings.HasSuffix(lines[0], "}\n"), "a whole line: %q", lines[0])
			var line map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
			assert.Equal(t, tc.msg, line["msg"])
			assert.Equal(t, "POST /api/v1/impressions", line["route"])
			assert.Contains(t, line, "_aws", "the EMF block")
		})
	}
}
