package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/web"
)

// TestSampleEvents checks the events/ files that `sam local invoke -e`
// takes, apart from the stream's (TestStreamSampleEvents) and the
// schedule's (TestScheduleSampleEvent): every route, the dashboard's too,
// has a payload 2.0 and a 1.0 sample, each sample
// reaches the route it names, and its file is named
// <function>-<route>-v2.json or -v1.json after the function the template
// routes it to, so `sam local invoke AdminFunction -e events/admin-…` reads
// right. The samples' campaign does not exist in a fresh store, so reading
// it is a JSON 404 "campaign not found", never "no route".
func TestSampleEvents(t *testing.T) {
	t.Parallel()
	store, err := memstore.New()
	require.NoError(t, err)
	handler := httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler)), httpapi.WithDashboard(web.Dashboard()))
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
		if isStreamSample(file) || isScheduleSample(file) {
			// Stream events: TestStreamSampleEvents; the schedule's:
			// TestScheduleSampleEvent.
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
			route, resp = apigwtest.Pattern(ev.RouteKey), r
		case strings.HasSuffix(file, "-v1.json"):
			ev, r := replay(t, file, raw, v1, apigwtest.FromV1)
			route, resp = apigwtest.Pattern(ev.HTTPMethod+" "+ev.Resource), r
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
		if route == httpapi.RouteDashboard || route == httpapi.RouteDashboardFile {
			// The page or a file of it, whole, in the type the browser
			// needs.
			assert.Regexp(t, `^text/(html|javascript); charset=utf-8$`, resp.Header.Get("Content-Type"), file)
			assert.NotEmpty(t, resp.Body, file)
		}
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

// isScheduleSample reports whether an events/ file is the scheduled event
// of a stream function, named <function>-schedule.json, so that
// `sam local invoke AggregateFunction -e events/aggregate-schedule.json`
// reads right.
func isScheduleSample(file string) bool {
	for _, fn := range serve.StreamFunctions() {
		if filepath.Base(file) == string(fn)+"-schedule.json" {
			return true
		}
	}
	return false
}

// TestScheduleSampleEvent checks the sample of the event that the
// template's schedule sends the aggregate function: it is in the shape
// `sam local generate-event cloudwatch scheduled-event` writes, with no
// member an EventBridge event lacks, and the function's handler takes it
// for the schedule's, not for a stream batch. TestScheduledReaderUnderEmulator
// invokes it as written.
func TestScheduleSampleEvent(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../events/*.json")
	require.NoError(t, err)
	var samples []string
	for _, file := range files {
		if isScheduleSample(file) {
			samples = append(samples, file)
		}
	}
	require.Equal(t, []string{"../events/" + string(serve.Aggregate) + "-schedule.json"}, samples, "one schedule sample, the aggregate function's")

	raw, err := os.ReadFile(samples[0])
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ev events.EventBridgeEvent
	require.NoError(t, dec.Decode(&ev))
	assert.Equal(t, "aws.events", ev.Source)
	assert.Equal(t, "Scheduled Event", ev.DetailType)
	assert.NotEmpty(t, ev.ID)
	assert.False(t, ev.Time.IsZero())
	if assert.Len(t, ev.Resources, 1) {
		assert.Contains(t, ev.Resources[0], ":rule/", "the rule that fired")
		assert.Contains(t, ev.Resources[0], logicalID(serve.Aggregate)+"ReadStream", "named as SAM names the template's schedule's rule")
	}
	assert.JSONEq(t, "{}", string(ev.Detail))

	// The handler runs its reader for it, and applies nothing as a batch.
	applier := &recordingApplier{}
	ran := false
	h, err := aggregate.NewHandler(applier, aggregate.WithScheduledReader(func(aggregate.ReaderSpec) (aggregate.Reader, error) {
		ran = true
		return idleReader{}, nil
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), aggregate.ScheduleMargin+10*time.Millisecond)
	defer cancel()
	out, err := h.Invoke(ctx, raw)
	require.NoError(t, err)
	assert.True(t, ran, "the scheduled reader ran")
	assert.Zero(t, applier.records, "no record was applied as a batch")
	assert.IsType(t, aggregate.ScheduleResult{}, out)
}

// idleReader reads nothing until its context ends.
type idleReader struct{}

func (idleReader) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
