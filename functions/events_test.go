package functions_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/memstore"
)

// TestSampleEvents checks the events/ files that `sam local invoke -e`
// takes, apart from the stream's (TestStreamSampleEvents): every route has
// a payload 2.0 and a 1.0 sample, each sample
// reaches the route it names, and its file is named
// <function>-<route>-v2.json or -v1.json after the function the template
// routes it to, so `sam local invoke AdminFunction -e events/admin-…` reads
// right. The samples' campaign does not exist in a fresh store, so reading
// it is a JSON 404 "campaign not found", never "no route".
func TestSampleEvents(t *testing.T) {
	t.Parallel()
	store, err := memstore.New()
	require.NoError(t, err)
	handler := httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler)))
	v2, v1 := lambdaproxy.NewV2(handler), lambdaproxy.NewV1(handler)

	routedTo := map[string]serve.Function{}
	routes := eventRoutes(t, openTemplate(t))
	for _, fn := range serve.Functions() {
		for _, route := range routes[logicalID(fn)] {
			routedTo[route] = fn
		}
	}

	files, err := filepath.Glob("../events/*.json")
	require.NoError(t, err)
	sampled := map[string]int{}
	for _, file := range files {
		if isStreamSample(file) {
			// Stream events: TestStreamSampleEvents.
			continue
		}
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		var (
			route string
			resp  apigwtest.Response
		)
		switch {
		case strings.HasSuffix(file, "-v2.json"):
			ev, r := replay(t, file, raw, v2, apigwtest.FromV2)
			route, resp = ev.RouteKey, r
		case strings.HasSuffix(file, "-v1.json"):
			ev, r := replay(t, file, raw, v1, apigwtest.FromV1)
			route, resp = ev.HTTPMethod+" "+ev.Resource, r
		default:
			t.Errorf("%s: name a sample event *-v2.json or *-v1.json", file)
			continue
		}
		assert.Contains(t, httpapi.Routes(), route, file)
		if fn, ok := routedTo[route]; assert.True(t, ok, "%s: no function routes %s", file, route) {
			assert.True(t, strings.HasPrefix(filepath.Base(file), string(fn)+"-"),
				"%s: the template routes %s to %s, so name the sample %s-…", file, route, logicalID(fn), fn)
		}
		sampled[route]++
		if resp.Status == http.StatusNotFound {
			// The pixel answers an image whatever happens and says why in
			// its headers; every other route says it in its JSON body.
			if route == httpapi.RoutePixel {
				assert.Equal(t, "not_found", resp.Header.Get("X-Impression-Error"), file)
			} else {
				assert.Contains(t, resp.Body, "campaign not found", file)
			}
			continue
		}
		assert.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusNoContent}, resp.Status, "%s: %s", file, resp.Body)
	}
	for _, route := range httpapi.Routes() {
		assert.Equal(t, 2, sampled[route], "%s needs one payload 2.0 and one 1.0 sample", route)
	}
}

// replay decodes the sample event in raw, sends it through handle, the
// Lambda adapter of its payload version, and returns the event and the
// response the client would get.
func replay[Event, Reply any](t *testing.T, file string, raw []byte, handle func(context.Context, Event) (Reply, error), toResponse func(Reply) (apigwtest.Response, error)) (Event, apigwtest.Response) {
	t.Helper()
	var ev Event
	require.NoError(t, json.Unmarshal(raw, &ev), file)
	out, err := handle(context.Background(), ev)
	require.NoError(t, err, file)
	resp, err := toResponse(out)
	require.NoError(t, err, file)
	return ev, resp
}
