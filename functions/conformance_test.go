//go:build linux

package functions_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/storetest"
)

// conformanceFunction is the function the conformance suite runs against.
// Every function serves the whole handler, so any one of them serves every
// route the suite calls.
const conformanceFunction = "track-impression"

// TestConformanceUnderEmulator runs the store conformance suite through
// apiclient against a built bootstrap under the Lambda runtime interface
// emulator, in both payload formats, with a gateway in front that turns
// the client's HTTP requests into API Gateway events as apigwtest does.
//
// The bootstrap is another process reading the real clock, so only the
// cases that need no clock move run; those that do run against the local
// server (local's TestConformanceThroughTheClient), over the same handler.
func TestConformanceUnderEmulator(t *testing.T) {
	t.Parallel()
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		t.Run("Payload"+string(p), func(t *testing.T) {
			t.Parallel()
			// One instance serves every case: its memory store holds them
			// all apart, since every campaign has its own ID.
			f := startFunction(t, conformanceFunction, lambdaproxy.PayloadEnv+"="+string(p),
				"DEDUP_TTL="+storetest.TTL.String())
			gw := newGatewayServer(t, f, p)
			c, err := apiclient.New(gw.URL, apiclient.WithHTTPClient(gw.Client()), apiclient.WithAdminKey(adminKey))
			require.NoError(t, err)
			ran := storetest.Run(t, func(t *testing.T, _ func() time.Time, ttl time.Duration) adcount.Store {
				require.Equal(t, storetest.TTL, ttl, "the function runs with DEDUP_TTL=%v", storetest.TTL)
				return c
			}, storetest.RealClock(), storetest.StoreChoosesIDs())
			assert.GreaterOrEqual(t, len(ran), 7, "cases run: %v", ran)
			assert.Contains(t, ran, "ConcurrentImpressionsCountExactly")
		})
	}
}

// newGatewayServer serves HTTP as API Gateway would in front of f: each
// request becomes an event of payload format p, and the function's response
// becomes the HTTP response. The emulator serves one invocation at a time,
// so requests are sent to it one at a time.
func newGatewayServer(t *testing.T, f *function, p lambdaproxy.Payload) *httptest.Server {
	t.Helper()
	gw := apigwtest.NewGateway(httpapi.Routes())
	invoker := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	invoke := func(event any) (apigwtest.Response, error) {
		payload, err := json.Marshal(event)
		if err != nil {
			return apigwtest.Response{}, err
		}
		mu.Lock()
		resp, err := invoker.Post(f.invocations, "application/json", bytes.NewReader(payload))
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		mu.Unlock()
		if err != nil {
			return apigwtest.Response{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return apigwtest.Response{}, fmt.Errorf("invocation failed: %d %s", resp.StatusCode, body)
		}
		if p == lambdaproxy.PayloadV1 {
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := apigwtest.Request{Method: r.Method, Target: r.URL.RequestURI(), Header: r.Header, Body: string(body)}
		var event any = gw.V2(req)
		if p == lambdaproxy.PayloadV1 {
			event = gw.V1(req)
		}
		resp, err := invoke(event)
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
	}))
	t.Cleanup(srv.Close)
	return srv
}
