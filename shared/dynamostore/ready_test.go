package dynamostore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/storetest"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

// opsServer serves the API with its operations routes, /readyz among them,
// over store, logging to the returned buffer.
func opsServer(t *testing.T, store adcount.Store) (string, *syncbuf.Buffer) {
	t.Helper()
	var logs syncbuf.Buffer
	srv := httptest.NewServer(httpapi.NewHandler(store,
		httpapi.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		httpapi.WithOperations(http.NotFoundHandler(), nil)))
	t.Cleanup(srv.Close)
	return srv.URL, &logs
}

// call sends a request and returns its status, its Retry-After header and
// its JSON body.
func call(t *testing.T, method, url, body string) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

// TestReadiness serves GET /readyz over real HTTP from DynamoDB stores that
// can and cannot serve requests: ready only when the table is there.
func TestReadiness(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	cases := []struct {
		name  string
		store func(t *testing.T) *dynamostore.Store
		ready bool
		// cause is in the error of a store that is not ready, and in the
		// log line of its probe.
		cause string
	}{
		// The table exists and is ACTIVE.
		{"ReadyWithTheTable", func(t *testing.T) *dynamostore.Store { return tg.store(t, nil) }, true, ""},
		// A table that was never created, or a wrong DYNAMODB_TABLE:
		// every request would fail.
		{"NotReadyWithoutTheTable", func(t *testing.T) *dynamostore.Store {
			s, err := dynamostore.New(tg.client(t, nil), "absent-"+uuid.NewString()[:8])
			require.NoError(t, err)
			return s
		}, false, "ResourceNotFoundException"},
		// Nothing listens at the endpoint any more: the error names it.
		{"NotReadyWhenUnreachable", func(t *testing.T) *dynamostore.Store {
			s, err := dynamostore.New(dynamotest.Client(t, gone.URL, nil), "impressions", dynamostore.WithTimeout(time.Minute))
			require.NoError(t, err)
			return s
		}, false, strings.TrimPrefix(gone.URL, "http://")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.store(t)
			err := s.Ping(context.Background())
			base, logs := opsServer(t, s)
			status, retryAfter, body := call(t, "GET", base+"/readyz", "")
			if tc.ready {
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
				assert.Equal(t, map[string]any{"status": "ready"}, body)
				return
			}
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			assert.ErrorContains(t, err, tc.cause)
			assert.Equal(t, http.StatusServiceUnavailable, status)
			assert.Equal(t, "1", retryAfter)
			assert.Contains(t, logs.String(), tc.cause, "the log says why")
		})
	}
}

// TestPingIsCachedBriefly checks that probes cost one DescribeTable call per
// DefaultPingCache on the store's clock, that concurrent probes share one
// call, and that a table deleted while the answer is cached shows as soon
// as it expires.
func TestPingIsCachedBriefly(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	ctx := context.Background()
	name := "ping-" + uuid.NewString()[:8]
	_, err := dynamostore.CreateTable(ctx, tg.client(t, nil), name)
	require.NoError(t, err)
	clock := storetest.NewClock(storetest.Epoch)
	f, wrap := newFaults()
	f.set("DescribeTable", faultThrottle, 0) // counts, never faults
	s, err := dynamostore.New(tg.client(t, wrap), name, dynamostore.WithClock(clock.Now), dynamostore.WithTimeout(time.Minute))
	require.NoError(t, err)

	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Ping(ctx))
	assert.Equal(t, 1, f.requests(), "the second probe reuses the first answer")

	_, err = tg.client(t, nil).DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	require.NoError(t, err)
	clock.Advance(dynamostore.DefaultPingCache - time.Millisecond)
	require.NoError(t, s.Ping(ctx), "still the cached answer")
	assert.Equal(t, 1, f.requests())

	clock.Advance(time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Ping(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, adcount.ErrUnavailable, "probe %d sees the deleted table", i)
	}
	assert.Equal(t, 2, f.requests(), "concurrent probes made one call between them")
	assert.ErrorIs(t, s.Ping(ctx), adcount.ErrUnavailable, "a failure is cached too")
	assert.Equal(t, 2, f.requests())
}

// TestMissingTableIsUnavailable serves the API over real HTTP on a store
// whose table does not exist, as after a deployment that lost it or a wrong
// DYNAMODB_TABLE: every store route answers 503 with Retry-After, the log
// names the table and DynamoDB's error, and readiness fails.
func TestMissingTableIsUnavailable(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	table := "absent-" + uuid.NewString()[:8]
	s, err := dynamostore.New(tg.client(t, nil), table, dynamostore.WithTimeout(time.Minute))
	require.NoError(t, err)
	base, logs := opsServer(t, s)
	id := uuid.NewString()
	cases := []struct {
		name, method, path, body string
	}{
		{"CreateCampaign", "POST", "/api/v1/campaigns", `{"name":"Launch","start_time":"2020-01-01T00:00:00Z"}`},
		{"GetCampaign", "GET", "/api/v1/campaigns/" + id, ""},
		{"RecordImpression", "POST", "/api/v1/impressions", fmt.Sprintf(`{"campaign_id":%q,"user_id":"u","ad_id":"a"}`, id)},
		{"GetStats", "GET", "/api/v1/campaigns/" + id + "/stats", ""},
		{"Ready", "GET", "/readyz", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			status, retryAfter, body := call(t, tc.method, base+tc.path, tc.body)
			assert.Equal(t, http.StatusServiceUnavailable, status, "%v", body)
			assert.Equal(t, "1", retryAfter)
			assert.NotContains(t, fmt.Sprint(body), table, "the client is not told the table's name")
			assert.Contains(t, logs.String(), "table "+table+" not found", "the log names the table")
			assert.Contains(t, logs.String(), "ResourceNotFoundException", "and DynamoDB's error")
		})
	}
}
