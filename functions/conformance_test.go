//go:build linux

package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestConformanceUnderEmulator runs the store conformance suite through
// apiclient against built bootstraps under the Lambda runtime interface
// emulator, in both payload formats, with a gateway in front that turns the
// client's HTTP requests into API Gateway events as apigwtest does. The
// deployment is the template's: each route goes to the function the
// template routes it to, and the functions share one table on the
// in-process DynamoDB server. (Each function serves only its own routes, so
// no one process could hold a memory store for the whole suite; the memory
// store runs the suite through the same client in local's tests.)
//
// The bootstraps are other processes reading the real clock, so only the
// cases that need no clock move run; those that do run against the local
// server (local's TestConformanceThroughTheClient), over the same handler.
func TestConformanceUnderEmulator(t *testing.T) {
	t.Parallel()
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		t.Run("DynamoDB/Payload"+string(p), func(t *testing.T) {
			t.Parallel()
			routes, settler := deployAsTemplated(t, []string{lambdaproxy.PayloadEnv + "=" + string(p), "DEDUP_TTL=" + storetest.TTL.String()})
			gw := newGatewayServer(t, p, routes)
			c, err := apiclient.New(gw.URL, apiclient.WithHTTPClient(gw.Client()), apiclient.WithAdminKey(adminKey))
			require.NoError(t, err)
			// The deployment serves every case: campaigns have their own
			// IDs. The suite reads stats once the mapping has applied its
			// writes.
			store := settledClient{c, settler}
			// Until the scheduled reader has read the whole stream, no
			// watermark says how fresh the counts are, and stats carry no
			// as_of; the suite wants one on every read. So the deployment
			// counts one impression first, and waits for an as_of, as any
			// live one has.
			prime(t, store)
			ran := storetest.Run(t, func(t *testing.T, _ func() time.Time, ttl time.Duration) adcount.Store {
				require.Equal(t, storetest.TTL, ttl, "the functions run with DEDUP_TTL=%v", storetest.TTL)
				return store
			}, storetest.RealClock(), storetest.StoreChoosesIDs())
			assert.GreaterOrEqual(t, len(ran), 7, "cases run: %v", ran)
			assert.Contains(t, ran, "ConcurrentImpressionsCountExactly")
			// The lifecycle through PATCH, as the admin function serves it,
			// racing patches included.
			assert.Contains(t, ran, "LifecycleRoundTrips")
			assert.Contains(t, ran, "ConcurrentPatchesLoseNothing")
		})
	}
}

// prime counts one impression of a campaign of its own through store and
// waits until it is applied.
func prime(t *testing.T, store settledClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storetest.SettleBound)
	defer cancel()
	primed := time.Now()
	c, err := store.Create(ctx, "primer", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	got, err := store.RecordImpression(ctx, adcount.Impression{CampaignID: c.ID, UserID: "primer", AdID: "primer"})
	require.NoError(t, err)
	require.Equal(t, adcount.Counted, got)
	require.NoError(t, store.Settle(ctx))
	s, err := store.Stats(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), s.Total)
	// The schedule's first invocation starts cold beside the mapping.
	require.Eventually(t, func() bool {
		s, err := store.Stats(ctx, c.ID)
		return err == nil && s.AsOf.After(primed)
	}, storetest.SettleBound, 50*time.Millisecond, "once the scheduled reader has read the stream, stats say how fresh they are")
}

// settledClient is the API's client, whose stats the stream mapping says
// when to read: an adcount.Settler.
type settledClient struct {
	*apiclient.Client
	adcount.Settler
}

// deployAsTemplated starts every function of the template with STORE=dynamodb
// on one table of a new in-process DynamoDB server, the aggregate function
// fed the table's stream as its event source mapping feeds it and invoked
// as its schedule invokes it, and returns which function serves each
// route, as the template's events say, and the mapping, which knows when
// the stream is applied.
func deployAsTemplated(t *testing.T, env []string) (map[string]*function, adcount.Settler) {
	t.Helper()
	endpoint := dynamotest.Start(t)
	const table = "impressions"
	db := dynamotest.Client(t, endpoint, nil)
	_, err := dynamostore.CreateTable(context.Background(), db, table)
	require.NoError(t, err)
	env = append(env, "STORE=dynamodb", "DYNAMODB_TABLE="+table)
	for k, v := range dynamotest.Env(endpoint) {
		env = append(env, k+"="+v)
	}
	routes := map[string]*function{}
	templated := eventRoutes(t, openTemplate(t))
	for _, fn := range serve.Functions() {
		f := startFunction(t, fn, env...)
		for _, route := range templated[logicalID(fn)] {
			routes[route] = f
		}
	}
	startSchedule(t, env)
	return routes, startStreamMapping(t, endpoint, table, startFunction(t, serve.Aggregate, env...))
}

// newGatewayServer serves HTTP as API Gateway would in front of the
// functions: a request for one of routes, in ServeMux pattern syntax, becomes
// an event of payload format p for that route's function, and the
// function's response becomes the HTTP response. Any other request gets the
// gateway's own 404.
func newGatewayServer(t *testing.T, p lambdaproxy.Payload, routes map[string]*function) *httptest.Server {
	t.Helper()
	gw := apigwtest.NewGateway(slices.Collect(maps.Keys(routes)))
	mux := http.NewServeMux()
	invokers := map[*function]*invoker{}
	for route, f := range routes {
		if invokers[f] == nil {
			invokers[f] = &invoker{f: f, p: p, gw: gw, http: &http.Client{Timeout: 30 * time.Second}}
		}
		mux.Handle(route, invokers[f])
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// invoker hands requests to one function under the emulator. The emulator
// serves one invocation at a time, so requests are sent one at a time.
type invoker struct {
	f    *function
	p    lambdaproxy.Payload
	gw   *apigwtest.Gateway
	http *http.Client
	mu   sync.Mutex
}

func (i *invoker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := apigwtest.Request{Method: r.Method, Target: r.URL.RequestURI(), Header: r.Header, Body: string(body)}
	var event any = i.gw.V2(req)
	if i.p == lambdaproxy.PayloadV1 {
		event = i.gw.V1(req)
	}
	resp, err := i.invoke(event)
	if err != nil {
		// The gateway's answer to a function that failed.
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for name, values := range resp.Header {
		w.Header()[name] = values
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

func (i *invoker) invoke(event any) (apigwtest.Response, error) {
	payload, err := json.Marshal(event)
	if err != nil {
		return apigwtest.Response{}, err
	}
	i.mu.Lock()
	resp, err := i.http.Post(i.f.invocations, "application/json", bytes.NewReader(payload))
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	i.mu.Unlock()
	if err != nil {
		return apigwtest.Response{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return apigwtest.Response{}, fmt.Errorf("invocation failed: %d %s", resp.StatusCode, body)
	}
	if i.p == lambdaproxy.PayloadV1 {
		var ev events.APIGatewayProxyResponse
		if err := json.Unmarshal(body, &ev); err != nil {
			return apigwtest.Response{}, fmt.Errorf("decode %s: %w", body, err)
		}
		return apigwtest.FromV1(ev)
	}
	var ev events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(body, &ev); err != nil {
		return apigwtest.Response{}, fmt.Errorf("decode %s: %w", body, err)
	}
	return apigwtest.FromV2(ev)
}
