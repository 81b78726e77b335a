//go:build linux

package functions_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

// releaseFlags are the flags of the Makefile's release build; the template
// test checks that the Makefile still uses them.
var releaseFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w"}

// rieEnv names the variable that `make test` sets to the emulator it
// installed.
const rieEnv = "AWS_LAMBDA_RIE"

// adminKey is the admin API key every function under test starts with,
// unless a test sets ADMIN_API_KEYS itself: a function refuses to start
// without one.
const adminKey = "emulator-admin-key-0123456789"

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "functions-bootstrap-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bootstrap returns the path of fn's bootstrap, built once per test binary
// for this machine's architecture with the release flags.
func bootstrap(tb testing.TB, fn serve.Function) string {
	tb.Helper()
	buildOnce.Do(func() {
		args := append([]string{"build"}, releaseFlags...)
		args = append(args, "-o", binDir+string(filepath.Separator))
		for _, f := range serve.All() {
			args = append(args, "./"+string(f))
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	require.NoError(tb, buildErr)
	return filepath.Join(binDir, string(fn))
}

// rie returns the emulator binary. A missing emulator fails the test: the
// Lambda path must never pass untested.
func rie(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv(rieEnv)
	if path == "" {
		path = filepath.Join("..", "build", "bin", "aws-lambda-rie")
	}
	_, err := os.Stat(path)
	require.NoError(tb, err, "the Lambda runtime interface emulator is missing: run `make test`, which installs the pinned version, or set %s to its path", rieEnv)
	abs, err := filepath.Abs(path)
	require.NoError(tb, err)
	return abs
}

// function is one bootstrap running under its own emulator.
type function struct {
	invocations string
	output      *syncbuf.Buffer
	// stop kills the emulator and the bootstrap it started, and waits for
	// both to exit; it runs once, at the test's end or when a test asks.
	stop func()
}

// startFunction runs the function fn under the emulator with env on
// free loopback ports, waits until the emulator accepts connections, and
// stops both when the test ends. The emulator starts the bootstrap, and so
// reads env, at the first invocation.
func startFunction(tb testing.TB, fn serve.Function, env ...string) *function {
	tb.Helper()
	bin, emulator := bootstrap(tb, fn), rie(tb)
	var lastOutput string
	// A port picked free can be taken before the emulator binds it; the
	// emulator then exits, and a fresh pair of ports is tried.
	for range 3 {
		addr, apiAddr := freeAddr(tb), freeAddr(tb)
		out := &syncbuf.Buffer{}
		cmd := exec.Command(emulator,
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", apiAddr,
			bin)
		// Later entries win, so env overrides these.
		cmd.Env = append(os.Environ(), "STORE=memory", "ADMIN_API_KEYS="+adminKey, "AWS_LAMBDA_FUNCTION_TIMEOUT=30", "LOG_LEVEL=info")
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdout, cmd.Stderr = out, out
		// Its own process group, so that stopping it also stops the
		// bootstrap it started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		require.NoError(tb, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Both the invoke endpoint and the Runtime API must listen; the
		// emulator exits if either port is taken.
		if waitListening([]string{addr, apiAddr}, exited, 10*time.Second) {
			stopOnce := sync.OnceFunc(stop)
			tb.Cleanup(func() {
				stopOnce()
				if tb.Failed() {
					tb.Logf("%s under the emulator wrote:\n%s", fn, out.String())
				}
			})
			return &function{invocations: "http://" + addr + "/2015-03-31/functions/function/invocations", output: out, stop: stopOnce}
		}
		stop()
		lastOutput = out.String()
	}
	tb.Fatalf("the emulator for %s never listened; its output:\n%s", fn, lastOutput)
	return nil
}

// nextPort walks the ports below Linux's ephemeral range (32768 and up), so
// that an outgoing connection, which takes an ephemeral port, never lands on
// a port just picked for an emulator.
var nextPort atomic.Int32

func init() { nextPort.Store(20000 + int32(os.Getpid()%6000)) }

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	for range 1000 {
		port := 20000 + (nextPort.Add(1)-20000)%12000
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		require.NoError(tb, ln.Close())
		return addr
	}
	tb.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// waitListening polls each of addrs until it accepts a connection, the
// process exits, or the deadline passes.
func waitListening(addrs []string, exited <-chan struct{}, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for len(addrs) > 0 {
			conn, err := net.DialTimeout("tcp", addrs[0], 100*time.Millisecond)
			if err != nil {
				break
			}
			conn.Close()
			addrs = addrs[1:]
		}
		if len(addrs) == 0 {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// invoke sends one event and returns the emulator's HTTP status and body.
func (f *function) invoke(tb testing.TB, event any) (int, []byte) {
	tb.Helper()
	payload, err := json.Marshal(event)
	require.NoError(tb, err)
	code, body, err := f.post(payload)
	require.NoError(tb, err)
	return code, body
}

// post sends one event's payload and returns the emulator's HTTP status
// and body, for callers that are not the test's goroutine.
func (f *function) post(payload []byte) (int, []byte, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(f.invocations, "application/json", bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// withKey returns r sent with key as its Bearer token.
func withKey(r apigwtest.Request, key string) apigwtest.Request {
	r.Header = r.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Authorization", "Bearer "+key)
	return r
}

// asAdmin returns r sent with the admin key the functions start with.
func asAdmin(r apigwtest.Request) apigwtest.Request { return withKey(r, adminKey) }

// reply is what the client would receive.
type reply struct{ apigwtest.Response }

// call sends r to f as an event of payload format p, as API Gateway would,
// and returns the response the client would get.
func (f *function) call(tb testing.TB, gw *apigwtest.Gateway, p lambdaproxy.Payload, r apigwtest.Request) reply {
	tb.Helper()
	var (
		resp apigwtest.Response
		err  error
	)
	if p == lambdaproxy.PayloadV1 {
		code, body := f.invoke(tb, gw.V1(r))
		require.Equal(tb, http.StatusOK, code, "invocation failed: %s", body)
		var ev events.APIGatewayProxyResponse
		require.NoError(tb, json.Unmarshal(body, &ev), "%s", body)
		resp, err = apigwtest.FromV1(ev)
	} else {
		code, body := f.invoke(tb, gw.V2(r))
		require.Equal(tb, http.StatusOK, code, "invocation failed: %s", body)
		var ev events.APIGatewayV2HTTPResponse
		require.NoError(tb, json.Unmarshal(body, &ev), "%s", body)
		resp, err = apigwtest.FromV2(ev)
	}
	require.NoError(tb, err)
	return reply{resp}
}

// jsonBody decodes a reply's body, which the API always sends as JSON.
func (r reply) jsonBody(tb testing.TB) map[string]any {
	tb.Helper()
	require.Equal(tb, "application/json", r.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(tb, json.Unmarshal([]byte(r.Body), &m), "every reply is JSON: %q", r.Body)
	return m
}

// emulatorCase is one request to a function and what the client must see.
type emulatorCase struct {
	name    string
	request apigwtest.Request
	status  int
	// errContains is part of the JSON error; empty for a success.
	errContains string
	// allow is the Allow header a 405 must carry.
	allow string
}

// awkwardID needs escaping in a path: a slash, a query mark, a space and a
// percent sign. It must reach the store whole.
const awkwardID = "a/b?c d%"

func TestFunctionsUnderEmulator(t *testing.T) {
	t.Parallel()
	tooLarge := `{"name":"` + strings.Repeat("n", httpapi.MaxBodyBytes) + `","start_time":"2026-01-01T00:00:00Z"}`
	unknownImpression := `{"campaign_id":"no-such-campaign","user_id":"u1","ad_id":"a1"}`
	tables := map[serve.Function][]emulatorCase{
		serve.Admin: {
			// A body the gateway base64-encodes must be decoded before the
			// handler reads it.
			{"Base64BodyCreates", apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: `{"name":"Encoded","start_time":"2026-01-01T00:00:00Z"}`, Base64: true}, 201, "", ""},
			// Validation answers in the API's own words.
			{"BlankNameIs400", apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: `{"name":" ","start_time":"2026-01-01T00:00:00Z"}`}, 400, "name", ""},
			// The body limit holds behind the adapter too.
			{"OversizedBodyIs413", apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: tooLarge}, 413, "larger than", ""},
			// A method the route does not take is the handler's JSON 405;
			// the campaigns route lists (GET) and creates (POST).
			{"WrongMethodIs405", apigwtest.Request{Method: "PUT", Target: "/api/v1/campaigns"}, 405, "not allowed", "GET, HEAD, POST"},
			// An ID needing escaping is looked up whole, not rerouted.
			{"EscapedIDIsNotFound", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + url.PathEscape(awkwardID)}, 404, "campaign not found", ""},
			// Stats of a campaign this instance never saw.
			{"UnknownCampaignStatsIs404", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/stats"}, 404, "campaign not found", ""},
			// An escaped ID stays one path parameter: not found, rather than
			// a different route or a query string.
			{"EscapedIDStatsIsNotFound", apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + url.PathEscape(awkwardID) + "/stats"}, 404, "campaign not found", ""},
			// GET routes also list HEAD.
			{"WrongMethodOnStatsIs405", apigwtest.Request{Method: "DELETE", Target: "/api/v1/campaigns/x/stats"}, 405, "not allowed", "GET, HEAD"},
		},
		serve.Ingest: {
			// Each process has its own memory store, so no campaign exists
			// here: a 404 in JSON, nothing counted.
			{"UnknownCampaignIs404", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: unknownImpression, Header: http.Header{"Content-Type": {"application/json"}}}, 404, "campaign not found", ""},
			// Decoded base64 reaches validation and the store; undecoded it
			// would be malformed JSON (400).
			{"Base64BodyIsDecoded", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: unknownImpression, Base64: true}, 404, "campaign not found", ""},
			// A missing field is named.
			{"MissingFieldIs400", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"c","user_id":"u"}`}, 400, "ad_id", ""},
			// Malformed JSON is a 400, never a crash of the function.
			{"MalformedJSONIs400", apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":`}, 400, "malformed JSON", ""},
			// The impressions route takes POST, and OPTIONS for CORS
			// preflights.
			{"WrongMethodIs405", apigwtest.Request{Method: "GET", Target: "/api/v1/impressions"}, 405, "not allowed", "OPTIONS, POST"},
			// A path no route serves is the API's JSON 404.
			{"UnknownRouteIs404", apigwtest.Request{Method: "GET", Target: "/api/v2/nothing"}, 404, "no route", ""},
		},
	}
	// The campaign list, PATCH, the time series and the per-ad breakdown.
	tables[serve.Admin] = append(tables[serve.Admin], reportErrorCases(time.Now())...)
	gw := apigwtest.NewGateway(httpapi.Routes())
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		for _, fn := range serve.Functions() {
			t.Run(string(fn)+"/Payload"+string(p), func(t *testing.T) {
				t.Parallel()
				f := startFunction(t, fn, lambdaproxy.PayloadEnv+"="+string(p))
				// The emulator serves one invocation at a time, so the
				// cases of one process run in order. They are sent as an
				// admin; TestAdminKeysUnderEmulator covers the rest.
				require.NotEmpty(t, tables[fn], "no cases for %s", fn)
				for _, tc := range tables[fn] {
					t.Run(tc.name, func(t *testing.T) {
						r := f.call(t, gw, p, asAdmin(tc.request))
						require.Equal(t, tc.status, r.Status, r.Body)
						body := r.jsonBody(t)
						if tc.errContains != "" {
							require.Contains(t, body["error"], tc.errContains)
						}
						if tc.allow != "" {
							require.Equal(t, tc.allow, r.Header.Get("Allow"))
						}
					})
				}
				switch fn {
				case serve.Admin:
					createThenGet(t, f, gw, p)
					campaignLifecycle(t, f, gw, p)
				case serve.Ingest:
					preflight(t, f, gw, p, "/api/v1/impressions")
					preflight(t, f, gw, p, "/api/v1/impressions/batch")
					batchAndPixel(t, f, gw, p)
					emitsMetrics(t, f)
				}
			})
		}
	}
}

// preflight checks that a browser's CORS preflight for a cross-origin
// POST to target is answered through the adapter.
func preflight(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, target string) {
	t.Helper()
	r := f.call(t, gw, p, apigwtest.Request{Method: "OPTIONS", Target: target,
		Header: http.Header{"Origin": {"https://publisher.example"}, "Access-Control-Request-Method": {"POST"}}})
	require.Equal(t, http.StatusNoContent, r.Status, r.Body)
	assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, r.Header.Get("Access-Control-Allow-Methods"), "POST")
}

// batchAndPixel checks the batch route and the pixel behind the adapter.
// The instance's memory store holds no campaign, so every impression is
// refused, each in its own way, and the answers say so item by item.
func batchAndPixel(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload) {
	t.Run("BatchAnswersEachItem", func(t *testing.T) {
		r := f.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch",
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   `{"impressions":[{"campaign_id":"no-such-campaign","user_id":"u","ad_id":"a"},{"campaign_id":"c","user_id":"u"}]}`})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		body := r.jsonBody(t)
		assert.Equal(t, map[string]any{"counted": 0.0, "duplicates": 0.0, "filtered": 0.0, "rejected": 2.0}, body["summary"])
		results := body["results"].([]any)
		require.Len(t, results, 2)
		assert.Equal(t, map[string]any{"outcome": "rejected", "status": 404.0, "code": "not_found", "error": "campaign not found"}, results[0])
		assert.Equal(t, 400.0, results[1].(map[string]any)["status"])
		assert.Contains(t, results[1].(map[string]any)["error"], "ad_id")
	})
	t.Run("BatchOverTheLimitIs413", func(t *testing.T) {
		items := strings.Repeat(`{"campaign_id":"c","user_id":"u","ad_id":"a"},`, adcount.MaxBatch+1)
		r := f.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch",
			Body: `{"impressions":[` + strings.TrimSuffix(items, ",") + `]}`})
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, r.Body)
		assert.Contains(t, r.jsonBody(t)["error"], "1000")
	})
	t.Run("MalformedBatchIs400", func(t *testing.T) {
		r := f.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch", Body: `{"impressions":[`})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Contains(t, r.jsonBody(t)["error"], "malformed JSON")
	})
	t.Run("PixelIsAnImageWhateverHappens", func(t *testing.T) {
		r := f.call(t, gw, p, apigwtest.Request{Method: "GET", Target: "/api/v1/pixel.gif?campaign_id=no-such-campaign&user_id=u&ad_id=a",
			Header: http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}}})
		require.Equal(t, http.StatusNotFound, r.Status, r.Body)
		assert.Equal(t, "image/gif", r.Header.Get("Content-Type"))
		assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
		assert.Equal(t, "rejected", r.Header.Get("X-Impression-Outcome"))
		assert.Equal(t, "not_found", r.Header.Get("X-Impression-Error"))
		img, err := gif.Decode(strings.NewReader(r.Body))
		require.NoError(t, err, "the gateway hands the browser the GIF's bytes")
		assert.Equal(t, image.Rect(0, 0, 1, 1), img.Bounds())
	})
}

// emitsMetrics checks that the function's log holds its request lines as
// CloudWatch Embedded Metric Format documents: the impressions it refused
// above are counted under the AdCount namespace with their reason.
func emitsMetrics(t *testing.T, f *function) {
	t.Helper()
	found := false
	for _, raw := range strings.Split(f.output.String(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(raw), &line) != nil || line["msg"] != "request" || line["impression_reason"] != "not_found" {
			continue
		}
		found = true
		aws, ok := line["_aws"].(map[string]any)
		require.True(t, ok, "an EMF _aws block: %s", raw)
		assert.IsType(t, float64(0), aws["Timestamp"])
		directives := aws["CloudWatchMetrics"].([]any)
		var names []string
		for _, d := range directives {
			d := d.(map[string]any)
			assert.Equal(t, "AdCount", d["Namespace"])
			for _, m := range d["Metrics"].([]any) {
				names = append(names, m.(map[string]any)["Name"].(string))
			}
		}
		assert.Subset(t, names, []string{"requests", "duration_ms", "impressions"})
		assert.Equal(t, "rejected", line["impression_outcome"])
		assert.Equal(t, 1.0, line["impressions"])
	}
	assert.True(t, found, "a request line for the refused impression: %s", f.output.String())
}

// createThenGet creates a campaign and reads it back through the same
// instance, whose memory store holds it.
func createThenGet(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload) {
	t.Run("CreatedCampaignReadsBack", func(t *testing.T) {
		created := f.call(t, gw, p, asAdmin(apigwtest.Request{
			Method: "POST", Target: "/api/v1/campaigns",
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   `{"name":" Launch ","start_time":"2026-01-05T11:00:00+01:00"}`,
		}))
		require.Equal(t, http.StatusCreated, created.Status, created.Body)
		c := created.jsonBody(t)
		id, _ := c["id"].(string)
		require.Len(t, id, 36, "a UUID")
		require.Equal(t, "Launch", c["name"])
		require.Equal(t, "2026-01-05T10:00:00Z", c["start_time"])
		require.Equal(t, "/api/v1/campaigns/"+id, created.Header.Get("Location"))

		got := f.call(t, gw, p, asAdmin(apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + id}))
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		require.Equal(t, c, got.jsonBody(t))
	})
}

// TestAdminKeysUnderEmulator checks that every function, as Lambda runs
// it, guards the admin routes with the keys of ADMIN_API_KEYS and leaves
// impression ingest open. Two keys are active, as during a rotation.
func TestAdminKeysUnderEmulator(t *testing.T) {
	t.Parallel()
	const previousKey, currentKey = "previous-admin-key-0123456789", "current-admin-key-0123456789"
	var (
		create      = apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: `{"name":"Keyed","start_time":"2026-01-01T00:00:00Z"}`}
		getCampaign = apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign"}
		stats       = apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/stats"}
		impression  = apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"no-such-campaign","user_id":"u1","ad_id":"a1"}`}
		list        = apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns"}
		patch       = apigwtest.Request{Method: "PATCH", Target: "/api/v1/campaigns/no-such-campaign", Body: `{"paused":true}`}
		series      = apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/timeseries"}
		ads         = apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/ads"}
	)
	type keyCase struct {
		name    string
		request apigwtest.Request
		// key is the Bearer token sent; empty sends none.
		key    string
		status int
	}
	tables := map[serve.Function][]keyCase{
		serve.Admin: {
			// No credentials: 401, and the client is told the scheme.
			{"CreateWithoutKeyIs401", create, "", http.StatusUnauthorized},
			// Credentials that are not an active key: 403.
			{"CreateWithWrongKeyIs403", create, "not-a-key", http.StatusForbidden},
			// Both keys of a rotation are accepted.
			{"CreateWithCurrentKeyIs201", create, currentKey, http.StatusCreated},
			{"CreateWithPreviousKeyIs201", create, previousKey, http.StatusCreated},
			// Reading a campaign is an admin route too.
			{"ReadWithoutKeyIs401", getCampaign, "", http.StatusUnauthorized},
			{"ReadWithWrongKeyIs403", getCampaign, "not-a-key", http.StatusForbidden},
			// With the key the request reaches the store.
			{"ReadWithKeyReachesTheStore", getCampaign, currentKey, http.StatusNotFound},
			// So are stats.
			{"StatsWithoutKeyIs401", stats, "", http.StatusUnauthorized},
			{"StatsWithWrongKeyIs403", stats, "not-a-key", http.StatusForbidden},
			{"StatsWithKeyReachesTheStore", stats, currentKey, http.StatusNotFound},
			// And the list, a change, the series and the breakdown.
			{"ListWithoutKeyIs401", list, "", http.StatusUnauthorized},
			{"ListWithWrongKeyIs403", list, "not-a-key", http.StatusForbidden},
			{"ListWithKeyReachesTheStore", list, previousKey, http.StatusOK},
			{"PatchWithoutKeyIs401", patch, "", http.StatusUnauthorized},
			{"PatchWithWrongKeyIs403", patch, "not-a-key", http.StatusForbidden},
			{"PatchWithKeyReachesTheStore", patch, currentKey, http.StatusNotFound},
			{"SeriesWithoutKeyIs401", series, "", http.StatusUnauthorized},
			{"SeriesWithKeyReachesTheStore", series, currentKey, http.StatusNotFound},
			{"AdsWithoutKeyIs401", ads, "", http.StatusUnauthorized},
			{"AdsWithKeyReachesTheStore", ads, currentKey, http.StatusNotFound},
			// The admin function serves only admin routes: an impression
			// routed to it by mistake is a route it does not have, never
			// counted by a role that may not count.
			{"MisroutedImpressionIsNoRoute", impression, "", http.StatusNotFound},
		},
		serve.Ingest: {
			// Ad tags in browsers hold no key: ingest reaches the store
			// without one.
			{"ImpressionWithoutKeyReachesTheStore", impression, "", http.StatusNotFound},
			// The ingest function has no admin route: one routed to it by
			// mistake is a route it does not have, with or without a key.
			{"MisroutedStatsIsNoRoute", stats, "", http.StatusNotFound},
			{"MisroutedCreateWithKeyIsNoRoute", create, currentKey, http.StatusNotFound},
			{"MisroutedListIsNoRoute", list, "", http.StatusNotFound},
			{"MisroutedPatchWithKeyIsNoRoute", patch, currentKey, http.StatusNotFound},
		},
	}
	gw := apigwtest.NewGateway(httpapi.Routes())
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		for _, fn := range serve.Functions() {
			t.Run(string(fn)+"/Payload"+string(p), func(t *testing.T) {
				t.Parallel()
				f := startFunction(t, fn, lambdaproxy.PayloadEnv+"="+string(p), "ADMIN_API_KEYS="+previousKey+", "+currentKey)
				require.NotEmpty(t, tables[fn], "no cases for %s", fn)
				for _, tc := range tables[fn] {
					t.Run(tc.name, func(t *testing.T) {
						req := tc.request
						if tc.key != "" {
							req = withKey(req, tc.key)
						}
						r := f.call(t, gw, p, req)
						require.Equal(t, tc.status, r.Status, r.Body)
						body := r.jsonBody(t)
						switch {
						case strings.HasPrefix(tc.name, "Misrouted"):
							assert.Contains(t, body["error"], "no route for")
						case tc.status == http.StatusUnauthorized:
							assert.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
							assert.Contains(t, body["error"], "admin key")
						case tc.status == http.StatusForbidden:
							assert.Contains(t, body["error"], "admin key")
						}
					})
				}
			})
		}
	}
}

func TestBadConfigExitsNonZero(t *testing.T) {
	t.Parallel()
	for _, fn := range serve.All() {
		t.Run(string(fn), func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				name, env, mention string
			}{
				// A typo in the dedup window must stop the function, not
				// count with a default.
				{"BadDedupTTL", "DEDUP_TTL=soon", "DEDUP_TTL"},
				// A payload format the function cannot read.
				{"BadPayloadVersion", lambdaproxy.PayloadEnv + "=3.0", lambdaproxy.PayloadEnv},
				// A key list that is set but holds no key is a mistake
				// for every function. The admin function is public: with
				// no key at all it would serve campaigns and stats to
				// anyone (checked below).
				{"AdminKeysOnlyBlanks", "ADMIN_API_KEYS= , ", "ADMIN_API_KEYS"},
				// DynamoDB without a table cannot count anything.
				{"DynamoDBWithoutTable", "STORE=dynamodb", "DYNAMODB_TABLE"},
			}
			switch fn {
			case serve.Admin:
				cases = append(cases, struct{ name, env, mention string }{"NoAdminKey", "ADMIN_API_KEYS=", "ADMIN_API_KEYS"})
			case serve.Aggregate:
				// The aggregator reads no payload format; it needs the
				// table whatever the store, since it folds its stream.
				cases = slices.DeleteFunc(cases, func(c struct{ name, env, mention string }) bool { return c.name == "BadPayloadVersion" })
				cases = append(cases, struct{ name, env, mention string }{"NoTable", "DYNAMODB_TABLE=", "DYNAMODB_TABLE"})
			}
			for _, tc := range cases {
				cmd := exec.Command(bootstrap(t, fn))
				// Later entries win, so tc.env overrides the defaults.
				cmd.Env = []string{"STORE=memory", "ADMIN_API_KEYS=" + adminKey, tc.env}
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				require.True(t, errors.As(err, &exit), "%s: want a non-zero exit, got %v: %s", tc.name, err, out)
				require.NotZero(t, exit.ExitCode())
				require.Contains(t, string(out), tc.mention, "%s: the log names the setting", tc.name)
				var line struct{ Level, Msg, Err, Function string }
				require.NoError(t, json.Unmarshal(bytes.TrimSpace(out), &line), "one JSON log line: %s", out)
				require.Equal(t, "ERROR", line.Level)
				// The line says which function failed, as its log group
				// would not when logs are gathered elsewhere.
				require.Equal(t, string(fn)+" cannot start", line.Msg)
				require.Equal(t, string(fn), line.Function)
			}
		})
	}
}

// reportLine is the emulator's REPORT line for one invocation; only the
// first invocation of an instance has an Init Duration.
var reportLine = regexp.MustCompile(`REPORT RequestId: \S+\s+(?:Init Duration: ([0-9.]+) ms\s+)?Duration: ([0-9.]+) ms`)

// reports waits, within a bounded time, until f's output holds n REPORT
// lines, and returns them.
func (f *function) reports(tb testing.TB, n int) [][]string {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := reportLine.FindAllStringSubmatch(f.output.String(), -1)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("want %d REPORT lines from the emulator, got:\n%s", n, f.output.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ms(tb testing.TB, s string) float64 {
	tb.Helper()
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(tb, err)
	return v
}

// BenchmarkColdStart starts each function fresh under the emulator for
// every iteration, invokes it twice, and reports from the emulator's REPORT
// lines: init-ms, the Init Duration of the first invocation; cold-ms, the
// Duration of the first invocation; warm-ms, the Duration of the second.
// The pinned emulator starts the bootstrap during the first invocation, so
// the process start and the function's init show in cold-ms, and
// cold-ms minus warm-ms is the cold start. The bootstrap is built for this
// machine with the release flags.
func BenchmarkColdStart(b *testing.B) {
	gw := apigwtest.NewGateway(httpapi.Routes())
	requests := map[serve.Function]apigwtest.Request{
		serve.Admin:  asAdmin(apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns", Body: `{"name":"Cold","start_time":"2026-01-01T00:00:00Z"}`}),
		serve.Ingest: {Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"c","user_id":"u","ad_id":"a"}`},
	}
	for _, fn := range serve.Functions() {
		b.Run(string(fn), func(b *testing.B) {
			var initMS, coldMS, warmMS float64
			for range b.N {
				f := startFunction(b, fn)
				for range 2 {
					code, body := f.invoke(b, gw.V2(requests[fn]))
					require.Equal(b, http.StatusOK, code, "%s", body)
				}
				got := f.reports(b, 2)
				require.NotEmpty(b, got[0][1], "no Init Duration on the first REPORT line:\n%s", f.output.String())
				initMS += ms(b, got[0][1])
				coldMS += ms(b, got[0][2])
				warmMS += ms(b, got[1][2])
			}
			n := float64(b.N)
			b.ReportMetric(initMS/n, "init-ms")
			b.ReportMetric(coldMS/n, "cold-ms")
			b.ReportMetric(warmMS/n, "warm-ms")
		})
	}
}
