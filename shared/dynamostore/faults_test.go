package dynamostore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/storetest"
)

// fault is what the injector does to a request instead of, or after,
// sending it to DynamoDB.
type fault int

const (
	// faultThrottle answers 400 ProvisionedThroughputExceededException
	// without sending the request.
	faultThrottle fault = iota
	// faultThrottling answers 400 ThrottlingException.
	faultThrottling
	// faultRequestLimit answers 400 RequestLimitExceeded.
	faultRequestLimit
	// faultInternal answers 500 InternalServerError.
	faultInternal
	// faultAccessDenied answers 400 AccessDeniedException, as DynamoDB
	// does when the caller's role lacks the action: minidyn checks no
	// signatures, so it cannot show it.
	faultAccessDenied
	// faultHang never answers: the request waits until its context ends.
	faultHang
	// faultLostResponse sends the request, lets DynamoDB apply it, and then
	// drops the answer as a reset connection would. The SDK cannot tell
	// this from a request that never arrived.
	faultLostResponse
	// faultConflict answers that the transaction was cancelled because of a
	// concurrent transaction on the same item, as DynamoDB does under
	// contention and minidyn, which serialises everything, cannot show.
	faultConflict
)

// faults wraps a client's transport and injects faults into the requests
// of one DynamoDB operation. It is safe for concurrent use.
type faults struct {
	next http.RoundTripper
	mu   sync.Mutex
	op   string // the X-Amz-Target operation it applies to
	kind fault
	skip int // requests of op to let through before faulting
	left int // requests still to fault; negative for all
	seen int // requests of op that went through RoundTrip
}

func newFaults() (*faults, func(http.RoundTripper) http.RoundTripper) {
	f := &faults{}
	return f, func(next http.RoundTripper) http.RoundTripper { f.next = next; return f }
}

// set faults the next n requests of op; n < 0 faults all until clear.
func (f *faults) set(op string, kind fault, n int) { f.setAfter(op, kind, 0, n) }

// setAfter lets skip requests of op through, then faults the next n; n < 0
// faults all until clear.
func (f *faults) setAfter(op string, kind fault, skip, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.op, f.kind, f.skip, f.left, f.seen = op, kind, skip, n, 0
}

func (f *faults) clear() { f.set("", 0, 0) }

// requests reports how many requests of the faulted operation were sent,
// first attempts and SDK retries alike.
func (f *faults) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen
}

func (f *faults) take(r *http.Request) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.op == "" || !strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+f.op) {
		return 0, false
	}
	f.seen++
	if f.seen <= f.skip || f.left == 0 {
		return 0, false
	}
	if f.left > 0 {
		f.left--
	}
	return f.kind, true
}

func (f *faults) RoundTrip(r *http.Request) (*http.Response, error) {
	kind, ok := f.take(r)
	if !ok {
		return f.next.RoundTrip(r)
	}
	switch kind {
	case faultThrottle:
		return awsError(r, http.StatusBadRequest, "ProvisionedThroughputExceededException", nil), nil
	case faultThrottling:
		return awsError(r, http.StatusBadRequest, "ThrottlingException", nil), nil
	case faultRequestLimit:
		return awsError(r, http.StatusBadRequest, "RequestLimitExceeded", nil), nil
	case faultInternal:
		return awsError(r, http.StatusInternalServerError, "InternalServerError", nil), nil
	case faultAccessDenied:
		return awsError(r, http.StatusBadRequest, "AccessDeniedException", nil), nil
	case faultHang:
		<-r.Context().Done()
		return nil, r.Context().Err()
	case faultLostResponse:
		resp, err := f.next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("read response: %w", syscall.ECONNRESET)
	case faultConflict:
		reasons := []map[string]string{{"Code": "None"}, {"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}, {"Code": "None"}}
		return awsError(r, http.StatusBadRequest, "TransactionCanceledException", reasons), nil
	}
	return nil, fmt.Errorf("unknown fault %d", kind)
}

// awsError is a DynamoDB JSON protocol error response.
func awsError(r *http.Request, status int, code string, reasons any) *http.Response {
	body := map[string]any{"__type": "com.amazonaws.dynamodb.v20120810#" + code, "message": "injected " + code}
	if reasons != nil {
		body["CancellationReasons"] = reasons
	}
	b, _ := json.Marshal(body)
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:       io.NopCloser(strings.NewReader(string(b))),
		Request:    r,
	}
}

// TestStoreFailures injects each kind of DynamoDB failure into every attempt
// of the marker write, the SDK's retries included. Each must give
// ErrUnavailable, leave the marker written or not, and let a retry
// afterwards count the impression exactly once in total.
func TestStoreFailures(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	cases := []struct {
		name string
		kind fault
		// applied says the failed call's write did reach DynamoDB.
		applied bool
	}{
		// On-demand tables throttle a hot partition or a sudden spike.
		{"ProvisionedThroughputExceeded", faultThrottle, false},
		{"ThrottlingException", faultThrottling, false},
		// The account's request rate limit.
		{"RequestLimitExceeded", faultRequestLimit, false},
		{"InternalServerError", faultInternal, false},
		// DynamoDB, or the network, does not answer before the deadline.
		{"Timeout", faultHang, false},
		// Every attempt is applied and every answer lost: the impression is
		// counted, the caller is told it is unavailable, and its retry must
		// not count it again.
		{"LostResponses", faultLostResponse, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(storetest.Epoch)
			f, wrap := newFaults()
			s := tg.store(t, wrap, dynamostore.WithClock(clock.Now), dynamostore.WithTimeout(2*time.Second))
			c := createCampaign(t, s, storetest.Epoch)
			imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}

			f.set("UpdateItem", tc.kind, -1)
			_, err := s.RecordImpression(context.Background(), imp)
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			assert.Contains(t, err.Error(), c.ID, "the error names the campaign")
			if tc.kind != faultHang { // a hung attempt uses up the whole deadline
				assert.Greater(t, f.requests(), 1, "the failure was retried before giving up")
			}

			f.clear()
			items := sortKeys(tg.items(t, c.ID, imp))
			if tc.applied {
				assert.Contains(t, items, "MARKER", "the impression's marker")
			} else {
				assert.Equal(t, []string{"META"}, items, "nothing of the impression")
			}

			counted, err := s.RecordImpression(context.Background(), imp)
			require.NoError(t, err)
			assert.Equal(t, !tc.applied, counted == adcount.Counted, "the retry counts only if the failed call did not")
			assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 1, LastDay: 1, Total: 1}, stats(t, s, c.ID))
		})
	}
}

// TestRetriesNeverDoubleCount loses the answer to an applied marker write
// once, so that the SDK retries it, and throttles it once. Either way the
// caller is told it counted, and it counted once.
func TestRetriesNeverDoubleCount(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	cases := []struct {
		name string
		kind fault
	}{
		// The SDK resends the same request, whose condition then fails on
		// the marker the first attempt wrote, with this call's owner
		// token: counted, once.
		{"LostResponseRetriedBySDK", faultLostResponse},
		// The SDK retries throttling by itself.
		{"ThrottledOnce", faultThrottle},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(storetest.Epoch)
			f, wrap := newFaults()
			s := tg.store(t, wrap, dynamostore.WithClock(clock.Now))
			c := createCampaign(t, s, storetest.Epoch)
			imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}

			f.set("UpdateItem", tc.kind, 1)
			assert.True(t, record(t, s, imp), "the first call's outcome is reported truthfully")
			assert.Equal(t, 2, f.requests(), "one failed attempt, one retry")
			assert.False(t, record(t, s, imp), "a later repeat is a duplicate")
			assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 1, LastDay: 1, Total: 1}, stats(t, s, c.ID))
		})
	}
}

// TestCreateCampaignRetryAfterLostResponse checks that the SDK's retry of a
// create whose answer was lost reports success, not a conflict with the
// campaign its own first attempt wrote, while a real second create of the
// same ID still conflicts.
func TestCreateCampaignRetryAfterLostResponse(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	f, wrap := newFaults()
	s := tg.store(t, wrap)
	f.set("TransactWriteItems", faultLostResponse, 1)
	c := createCampaign(t, s, storetest.Epoch)
	assert.Equal(t, 2, f.requests())
	err := s.CreateCampaign(context.Background(), c)
	require.ErrorIs(t, err, adcount.ErrConflict)
}

// TestUnavailableOverHTTP serves the API over real HTTP on a store whose
// DynamoDB throttles, and checks that the client gets a JSON 503 with
// Retry-After, and that its retry counts the impression exactly once.
func TestUnavailableOverHTTP(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	cases := []struct {
		name         string
		kind         fault
		retryCounted bool
	}{
		// Nothing reached DynamoDB: the retry counts.
		{"Throttled", faultThrottle, true},
		// Everything reached DynamoDB but no answer came back: the retry is
		// told it is a duplicate, and the count is still one.
		{"LostResponses", faultLostResponse, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, wrap := newFaults()
			s := tg.store(t, wrap, dynamostore.WithTimeout(2*time.Second))
			api := httptest.NewServer(httpapi.NewHandler(s))
			t.Cleanup(api.Close)
			c := createCampaign(t, s, time.Now().Add(-time.Minute))
			body := fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a1"}`, c.ID)

			f.set("UpdateItem", tc.kind, -1)
			resp, err := http.Post(api.URL+"/api/v1/impressions", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			var failed map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&failed))
			resp.Body.Close()
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			assert.Equal(t, "application/json", strings.Split(resp.Header.Get("Content-Type"), ";")[0])
			assert.NotEmpty(t, failed["error"])

			f.clear()
			resp, err = http.Post(api.URL+"/api/v1/impressions", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			var ok struct{ Counted bool }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&ok))
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tc.retryCounted, ok.Counted)

			require.NoError(t, s.Settle(context.Background()))
			resp, err = http.Get(api.URL + "/api/v1/campaigns/" + c.ID + "/stats")
			require.NoError(t, err)
			var st struct{ Total int64 }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
			resp.Body.Close()
			assert.Equal(t, int64(1), st.Total, "counted exactly once")
		})
	}
}

// TestAccessDeniedIsAnInternalError denies the marker write, as a role
// without dynamodb:UpdateItem would be denied. No retry can help, so the
// store must not call it unavailable (a 503 invites retries): the API
// answers 500 with a plain "internal error", and nothing is counted.
func TestAccessDeniedIsAnInternalError(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	f, wrap := newFaults()
	s := tg.store(t, wrap)
	api := httptest.NewServer(httpapi.NewHandler(s))
	t.Cleanup(api.Close)
	c := createCampaign(t, s, time.Now().Add(-time.Minute))
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}

	f.set("UpdateItem", faultAccessDenied, -1)
	_, err := s.RecordImpression(context.Background(), imp)
	require.Error(t, err)
	assert.NotErrorIs(t, err, adcount.ErrUnavailable, "no retry can help")
	assert.Contains(t, err.Error(), "AccessDeniedException", "the log names DynamoDB's error")
	assert.Equal(t, 1, f.requests(), "the SDK does not retry a denial")

	body := fmt.Sprintf(`{"campaign_id":%q,"user_id":"u","ad_id":"a"}`, c.ID)
	req, err := http.NewRequest(http.MethodPost, api.URL+"/api/v1/impressions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, "internal error", got["error"])

	f.clear()
	assert.Equal(t, []string{"META"}, sortKeys(tg.items(t, c.ID, imp)), "nothing counted")

	// A readiness check that is denied fails: an instance whose role lost
	// its rights must leave the load balancer.
	f.set("DescribeTable", faultAccessDenied, -1)
	assert.ErrorIs(t, s.Ping(context.Background()), adcount.ErrUnavailable)
}
