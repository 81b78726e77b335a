package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// batchOf wraps items, each an item's JSON, into a batch body.
func batchOf(items ...string) string {
	return `{"impressions":[` + strings.Join(items, ",") + `]}`
}

// newMemServer serves the API over a memory store on a still clock with
// the campaigns "live" (started), "future" (not yet), "paused" and "ended",
// with opts.
func newMemServer(t *testing.T, opts ...httpapi.Option) *server {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	for _, c := range []adcount.Campaign{
		{ID: "live", StartTime: storetest.Epoch},
		{ID: "future", StartTime: storetest.Epoch.Add(time.Hour)},
		{ID: "paused", StartTime: storetest.Epoch, Paused: true},
		{ID: "ended", StartTime: storetest.Epoch.Add(-time.Hour), EndTime: storetest.Epoch},
	} {
		c.Name = c.ID
		require.NoError(t, store.CreateCampaign(context.Background(), c))
	}
	srv := httptest.NewServer(httpapi.NewHandler(store, append([]httpapi.Option{httpapi.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...))
	t.Cleanup(srv.Close)
	return &server{Server: srv, clock: clock}
}

// TestBatchItemsAnswerAsTheSingleRoute sends the same impressions one by
// one to the single route and as one batch to another server over the
// same state, and checks that each item's result is exactly the single
// route's answer (the outcome, or the status, code and message of the
// error) and that the stats end the same: duplicates inside the batch
// included, and a bad item failing only itself.
func TestBatchItemsAnswerAsTheSingleRoute(t *testing.T) {
	t.Parallel()
	items := []string{
		impression("live", "u1", "a1"),
		impression("live", "u2", "a1"),
		// A repeat inside the batch is a duplicate, as it is one by one.
		impression("live", "u1", "a1"),
		// The store's errors.
		impression("nope", "u1", "a1"),
		impression("future", "u1", "a1"),
		impression("paused", "u1", "a1"),
		impression("ended", "u1", "a1"),
		impression("live", "", "a1"),
		impression("live", strings.Repeat("u", 257), "a1"),
		// The decoder's errors, in the single route's words.
		`{"campaign_id":"live","user_id":7,"ad_id":"a1"}`,
		`{"campaign_id":"live","user_id":null,"ad_id":"a1"}`,
		`{"campaign_id":"live","user_id":"a","ad_id":"a1","user_id":"b"}`,
		`{"campaign_id":"live","User_ID":"u9","ad_id":"a1"}`,
		`{"campaign_id":"live","user_id":"inv` + "\xff" + `","ad_id":"a1"}`,
		`{"campaign_id":"live","user_id":"\ud800","ad_id":"a1"}`,
		`"not an object"`, `null`, `[]`, `{}`,
		// Extra fields are ignored; escapes are decoded.
		`{"campaign_id":"live","user_id":"u3","ad_id":"a1","ts":1,"tags":["x"],"ctx":{"user_id":"y"}}`,
		`{"campaign\u005fid":"live","user_id":"u\u00e9\ud83d\ude00","ad_id":"a\/1"}`,
		// The viewer's User-Agent: a crawler's is filtered where a filter
		// is on, and a second crawler impression changes nothing.
		`{"campaign_id":"live","user_id":"u4","ad_id":"a1","user_agent":"` + googlebotUA + `"}`,
		`{"campaign_id":"live","user_id":"u4","ad_id":"a1","user_agent":"` + googlebotUA + `"}`,
		`{"campaign_id":"live","user_id":"u4","ad_id":"a1","user_agent":"` + chromeUA + `"}`,
		`{"campaign_id":"live","user_id":"u5","ad_id":"a1","user_agent":null}`,
		`{"campaign_id":"live","user_id":"u5","ad_id":"a1","user_agent":5}`,
		impression("live", "u2", "a1"),
	}
	stores := []struct {
		name string
		new  func(t *testing.T) *server
	}{
		{"MemoryStore", func(t *testing.T) *server { return newMemServer(t) }},
		{"Filtering", func(t *testing.T) *server {
			t.Helper()
			store := newFilterStore(t, "live")
			store.addNotLive(t)
			srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithBotFilter(isBot), httpapi.WithLogger(slog.New(slog.DiscardHandler))))
			t.Cleanup(srv.Close)
			return &server{Server: srv}
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			single, batch := st.new(t), st.new(t)
			var want []map[string]any
			summary := map[string]any{"counted": 0.0, "duplicates": 0.0, "filtered": 0.0, "rejected": 0.0}
			for _, item := range items {
				// No User-Agent header: the single route would judge it,
				// and a batch never does.
				r := single.doUA(t, "POST", "/api/v1/impressions", "", item)
				if r.status == http.StatusOK {
					want = append(want, map[string]any{"outcome": r.body["outcome"]})
					key := r.body["outcome"].(string)
					if key == "duplicate" {
						key = "duplicates"
					}
					summary[key] = summary[key].(float64) + 1
					continue
				}
				want = append(want, map[string]any{"outcome": "rejected", "status": float64(r.status), "code": r.body["code"], "error": r.body["error"]})
				summary["rejected"] = summary["rejected"].(float64) + 1
			}
			r := batch.doUA(t, "POST", "/api/v1/impressions/batch", "", batchOf(items...))
			require.Equal(t, http.StatusOK, r.status, r.body)
			var got []map[string]any
			for _, res := range r.body["results"].([]any) {
				got = append(got, res.(map[string]any))
			}
			require.Len(t, got, len(items))
			for i := range items {
				assert.Equal(t, want[i], got[i], "item %d: %s", i, items[i])
			}
			assert.Equal(t, summary, r.body["summary"])
			assert.Equal(t, single.stats(t, "live"), batch.stats(t, "live"))
		})
	}
}

// TestBatchRefusedWhole: a body that is not a batch of 1 to 1,000
// impressions in at most 1 MiB is refused whole, with a message naming
// what is wrong or the limit, and nothing counts.
func TestBatchRefusedWhole(t *testing.T) {
	t.Parallel()
	s := newMemServer(t)
	one := impression("live", "u", "a")
	many := make([]string, adcount.MaxBatch+1)
	for i := range many {
		many[i] = impression("live", fmt.Sprint("u", i), "a")
	}
	huge := batchOf(impression("live", "u", strings.Repeat("a", httpapi.MaxBatchBodyBytes)))
	cases := []struct {
		name   string
		body   string
		status int
		err    string
	}{
		{"Empty", "", 400, "request body is empty; send a JSON object"},
		{"Truncated", `{"impressions":[` + one, 400, "malformed JSON: the body ends in the middle of a value"},
		{"NotJSON", `impressions=1`, 400, "malformed JSON at byte 1: invalid character 'i' looking for beginning of value"},
		{"TrailingGarbage", batchOf(one) + `x`, 400, "malformed JSON at byte"},
		{"TrailingObject", batchOf(one) + `{}`, 400, "request body must hold exactly one JSON object"},
		{"BadItemSyntax", batchOf(`{"campaign_id":01}`), 400, "malformed JSON at byte"},
		{"NotAnObject", `[` + one + `]`, 400, "request body must be a JSON object, got array"},
		{"ImpressionsNotArray", `{"impressions":` + one + `}`, 400, "impressions: must be an array, got object"},
		{"NoImpressions", `{}`, 400, "impressions: must be an array of 1 to 1000 impressions"},
		{"NullImpressions", `{"impressions":null}`, 400, "impressions: must be an array of 1 to 1000 impressions"},
		{"EmptyList", `{"impressions":[]}`, 400, "impressions: must be an array of 1 to 1000 impressions"},
		{"SentTwice", `{"impressions":[` + one + `],"impressions":[` + one + `]}`, 400, "impressions: is sent more than once; send each field once"},
		{"WrongCase", `{"Impressions":[` + one + `]}`, 400, "Impressions: field names are case-sensitive; did you mean impressions?"},
		{"BadTextOutsideItems", `{"source":"` + "\xff" + `","impressions":[` + one + `]}`, 400, "source: must be valid UTF-8"},
		// The limits, named.
		{"TooManyItems", batchOf(many...), 413, "a batch holds at most 1000 impressions; send more in several batches"},
		{"BodyTooLarge", huge, 413, "request body is larger than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "POST", "/api/v1/impressions/batch", tc.body)
			assert.Equal(t, tc.status, r.status)
			assert.Contains(t, r.body["error"], tc.err)
			assert.Len(t, r.body, 2, "the API's one error shape")
		})
	}
	t.Cleanup(func() { assert.Equal(t, 0.0, s.stats(t, "live")["total"], "nothing counted") })
}

// TestBatchBodyLimitIsTheBatchRoutesOnly: a full batch is larger than the
// single route's body limit, which stays as it was for every other route.
func TestBatchBodyLimitIsTheBatchRoutesOnly(t *testing.T) {
	t.Parallel()
	s := newMemServer(t)
	items := make([]string, adcount.MaxBatch)
	for i := range items {
		items[i] = impression("live", fmt.Sprintf("user-%04d-%s", i, strings.Repeat("x", 40)), "ad-1")
	}
	body := batchOf(items...)
	require.Greater(t, len(body), httpapi.MaxBodyBytes)
	r := s.do(t, "POST", "/api/v1/impressions/batch", body)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, float64(adcount.MaxBatch), r.body["summary"].(map[string]any)["counted"])

	padded := `{"campaign_id":"live","user_id":"u","ad_id":"a","pad":"` + strings.Repeat("p", httpapi.MaxBodyBytes) + `"}`
	single := s.do(t, "POST", "/api/v1/impressions", padded)
	assert.Equal(t, http.StatusRequestEntityTooLarge, single.status)
	assert.Equal(t, "request body is larger than 65536 bytes", single.body["error"])
}

// TestBatchStoreFailure: when the store fails, the whole batch is refused
// with 503 and Retry-After, and its record counts every item rejected.
func TestBatchStoreFailure(t *testing.T) {
	t.Parallel()
	sink := &records{}
	srv := httptest.NewServer(httpapi.NewHandler(&failingStore{err: fmt.Errorf("down: %w", adcount.ErrUnavailable)},
		httpapi.WithMetrics(sink), httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	s := &server{Server: srv}
	r := s.do(t, "POST", "/api/v1/impressions/batch", batchOf(impression("c", "u1", "a"), impression("c", "u2", "a"), `"bad item"`))
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, "unavailable", r.body["code"])
	assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	rec := sink.last(t)
	assert.True(t, rec.StoreError)
	assert.Equal(t, httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "unavailable", Count: 3}}}, rec.Impressions)
}

// TestBatchRetryAfterFaultCountsOnce: a batch that failed with 503, sent
// again once the fault clears, counts each impression exactly once,
// whether the store failed before recording the batch or after.
func TestBatchRetryAfterFaultCountsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault int32
	}{
		{"FailBeforeRecording", failBefore},
		{"FailAfterRecording", failAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, store := newFaultyServer(t)
			id := s.createCampaign(t, "Faults", storetest.Epoch)
			items := make([]string, 50)
			for i := range items {
				items[i] = impression(id, fmt.Sprint("u", i%40), "a") // ten repeats inside
			}
			store.fault.Store(tc.fault)
			r := s.do(t, "POST", "/api/v1/impressions/batch", batchOf(items...))
			require.Equal(t, http.StatusServiceUnavailable, r.status)
			store.fault.Store(noFault)
			r = s.do(t, "POST", "/api/v1/impressions/batch", batchOf(items...))
			require.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, 40.0, s.stats(t, id)["total"], "each impression counted once")
			summary := r.body["summary"].(map[string]any)
			if tc.fault == failBefore {
				assert.Equal(t, 40.0, summary["counted"])
			} else {
				assert.Equal(t, 0.0, summary["counted"], "the retry finds them counted")
			}
		})
	}
}

// TestBatchRecord: a batch's one record counts its impressions by
// outcome, the rejected ones by reason.
func TestBatchRecord(t *testing.T) {
	t.Parallel()
	sink := &records{}
	s := newFilterServer(t, httpapi.WithMetrics(sink))
	r := s.do(t, "POST", "/api/v1/impressions/batch", batchOf(
		impression("live", "u1", "a"), impression("live", "u2", "a"), impression("live", "u1", "a"),
		`{"campaign_id":"live","user_id":"u3","ad_id":"a","user_agent":"`+googlebotUA+`"}`,
		impression("nope", "u1", "a"), impression("live", "", "a"), `7`,
		impression("future", "u1", "a"), impression("paused", "u1", "a"), impression("ended", "u1", "a"),
		impression("paused", "u2", "a")))
	require.Equal(t, http.StatusOK, r.status)
	rec := sink.last(t)
	assert.Equal(t, httpapi.RouteRecordBatch, rec.Route)
	assert.Equal(t, http.StatusOK, rec.Status)
	// Each way a campaign that is not live refuses impressions is a
	// reason of its own.
	assert.Equal(t, httpapi.Impressions{Counted: 2, Duplicate: 1, Filtered: 1,
		Rejected: []httpapi.Rejection{{Reason: "not_found", Count: 1}, {Reason: "invalid", Count: 1}, {Reason: "malformed", Count: 1},
			{Reason: "not_started", Count: 1}, {Reason: "paused", Count: 2}, {Reason: "ended", Count: 1}}}, rec.Impressions)
	assert.Empty(t, rec.Outcome(), "a batch has no one outcome")
	assert.Empty(t, rec.ErrorKind)
}

// TestBatchFilteringJudgesOnlyItems: a batch comes from an ad server, so
// only each item's user_agent is judged: the request's own User-Agent,
// even a crawler's, judges nothing.
func TestBatchFilteringJudgesOnlyItems(t *testing.T) {
	t.Parallel()
	s := newFilterServer(t)
	r := s.doUA(t, "POST", "/api/v1/impressions/batch", "ad-server-bot/1.0", batchOf(
		impression("live", "u1", "a"),
		`{"campaign_id":"live","user_id":"u2","ad_id":"a","user_agent":"`+chromeUA+`"}`,
		`{"campaign_id":"live","user_id":"u3","ad_id":"a","user_agent":"`+googlebotUA+`"}`))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, []any{
		map[string]any{"outcome": "counted"}, map[string]any{"outcome": "counted"}, map[string]any{"outcome": "filtered"},
	}, r.body["results"])
	stats := s.stats(t, "live")
	assert.Equal(t, 2.0, stats["total"])
	assert.Equal(t, 1.0, stats["filtered"])
}

// TestIngestCORS: the batch route is open to other origins like the
// single route, and answers the preflight a fetch with a JSON body makes.
func TestIngestCORS(t *testing.T) {
	t.Parallel()
	s := newMemServer(t)
	for _, path := range []string{"/api/v1/impressions", "/api/v1/impressions/batch"} {
		req, err := http.NewRequest("OPTIONS", s.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Origin", "https://publisher.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := s.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, path)
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), path)
		assert.Equal(t, "POST, OPTIONS", resp.Header.Get("Access-Control-Allow-Methods"), path)
		assert.Equal(t, "Content-Type", resp.Header.Get("Access-Control-Allow-Headers"), path)
	}
	r := s.do(t, "POST", "/api/v1/impressions/batch", batchOf(impression("live", "u", "a")))
	assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	wrong := s.do(t, "GET", "/api/v1/impressions/batch", "")
	assert.Equal(t, http.StatusMethodNotAllowed, wrong.status)
	assert.Equal(t, "OPTIONS, POST", wrong.header.Get("Allow"))
	assert.Equal(t, "*", wrong.header.Get("Access-Control-Allow-Origin"))
}

// TestBeaconBodiesAreRead: navigator.sendBeacon(url, string) sends a POST
// whose Content-Type is text/plain;charset=UTF-8, with no preflight; both
// impression routes read its body as JSON.
func TestBeaconBodiesAreRead(t *testing.T) {
	t.Parallel()
	s := newMemServer(t)
	for _, tc := range []struct{ path, body string }{
		{"/api/v1/impressions", impression("live", "beacon-1", "a")},
		{"/api/v1/impressions/batch", batchOf(impression("live", "beacon-2", "a"), impression("live", "beacon-3", "a"))},
	} {
		req, err := http.NewRequest("POST", s.URL+tc.path, strings.NewReader(tc.body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", "https://publisher.example")
		req.Header.Set("User-Agent", chromeUA)
		resp, err := s.Client().Do(req)
		require.NoError(t, err)
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", tc.path, raw)
		assert.True(t, json.Valid(raw), tc.path)
	}
	assert.Equal(t, 3.0, s.stats(t, "live")["total"])
}

// TestConcurrentIngestCountsEachOnce sends overlapping impressions at once
// through every ingest route, from many clients: batches that share
// impressions with each other, single posts and pixels. Each impression
// counts exactly once, whichever route and request got there first: the
// answers' counted outcomes add up to the distinct impressions, and so do
// the stats.
func TestConcurrentIngestCountsEachOnce(t *testing.T) {
	t.Parallel()
	s := newMemServer(t)
	const (
		users   = 300
		clients = 8
	)
	var counted atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each client covers every user, starting at its own offset,
			// in batches of 50 and one route at a time per impression.
			var batch []string
			flush := func() {
				if len(batch) == 0 {
					return
				}
				var r struct{ Summary struct{ Counted int64 } }
				if postFromGoroutine(t, s, "/api/v1/impressions/batch", batchOf(batch...), &r) {
					counted.Add(r.Summary.Counted)
				}
				batch = batch[:0]
			}
			for i := range users {
				u := fmt.Sprint("u", (i+c*37)%users)
				switch i % 3 {
				case 0:
					batch = append(batch, impression("live", u, "a"))
					if len(batch) == 50 {
						flush()
					}
				case 1:
					var r struct{ Counted bool }
					if postFromGoroutine(t, s, "/api/v1/impressions", impression("live", u, "a"), &r) && r.Counted {
						counted.Add(1)
					}
				default:
					resp, err := s.Client().Get(s.URL + "/api/v1/pixel.gif?campaign_id=live&ad_id=a&user_id=" + u)
					if !assert.NoError(t, err) {
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					if resp.Header.Get(httpapi.OutcomeHeader) == "counted" {
						counted.Add(1)
					}
				}
			}
			flush()
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(users), counted.Load(), "each impression answered counted once")
	assert.Equal(t, float64(users), s.stats(t, "live")["total"])
}

// postFromGoroutine posts body and decodes a 200's JSON into out, from a
// goroutine other than the test's, where only assertions that do not stop
// the test may fail; it reports whether all went well.
func postFromGoroutine(t *testing.T, s *server, path, body string, out any) bool {
	resp, err := s.Client().Post(s.URL+path, "application/json", strings.NewReader(body))
	if !assert.NoError(t, err) {
		return false
	}
	defer resp.Body.Close()
	return assert.Equal(t, http.StatusOK, resp.StatusCode, path) && assert.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}
