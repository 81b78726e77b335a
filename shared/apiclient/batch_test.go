package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/storetest"
)

// sent records the requests a server received: their path, User-Agent
// header and body.
type sent struct {
	mu   sync.Mutex
	reqs []sentRequest
}

type sentRequest struct {
	path, userAgent string
	body            []byte
}

func (s *sent) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.reqs = append(s.reqs, sentRequest{r.URL.Path, r.Header.Get("User-Agent"), body})
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// to returns the requests sent to path.
func (s *sent) to(path string) []sentRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sentRequest
	for _, r := range s.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestRecordImpressionsAgainstTheAPI: a batch is one request to the batch
// route, and its results are what the same impressions one by one would
// get: a repeat inside the batch is a duplicate, and each refused
// impression carries the domain error of its own refusal.
func TestRecordImpressionsAgainstTheAPI(t *testing.T) {
	t.Parallel()
	var log sent
	s := newServer(t, log.wrap)
	c := s.client(t)
	ctx := context.Background()
	live, err := c.Create(ctx, "Live", storetest.Epoch)
	require.NoError(t, err)
	later, err := c.Create(ctx, "Later", storetest.Epoch.Add(time.Hour))
	require.NoError(t, err)

	imps := []adcount.Impression{
		{CampaignID: live.ID, UserID: "u1", AdID: "a"},
		{CampaignID: live.ID, UserID: "u2", AdID: "a"},
		{CampaignID: live.ID, UserID: "u1", AdID: "a"},
		{CampaignID: "no-such-campaign", UserID: "u1", AdID: "a"},
		{CampaignID: later.ID, UserID: "u1", AdID: "a"},
		// Refused by the client before sending: JSON cannot carry it.
		{CampaignID: live.ID, UserID: "bad\xff", AdID: "a"},
		{CampaignID: live.ID, UserID: "", AdID: "a"},
	}
	results, err := c.RecordImpressions(ctx, imps)
	require.NoError(t, err)
	require.Len(t, results, len(imps))
	assert.Equal(t, []adcount.Result{{Outcome: adcount.Counted}, {Outcome: adcount.Counted}, {Outcome: adcount.Duplicate}}, results[:3])
	assert.ErrorIs(t, results[3].Err, adcount.ErrNotFound)
	var se *apiclient.StatusError
	require.ErrorAs(t, results[3].Err, &se)
	assert.Equal(t, http.StatusNotFound, se.Status)
	assert.Equal(t, "campaign not found", se.Message)
	assert.ErrorIs(t, results[4].Err, adcount.ErrNotStarted)
	for _, r := range results[5:] {
		var fe *adcount.FieldError
		require.ErrorAs(t, r.Err, &fe)
		assert.Equal(t, "user_id", fe.Field)
		assert.NotErrorAs(t, r.Err, &se, "answered by the client")
	}
	batches := log.to("/api/v1/impressions/batch")
	require.Len(t, batches, 1, "one request")
	assert.Equal(t, 5, strings.Count(string(batches[0].body), `"campaign_id"`), "the invalid ones were not sent")
	assert.Empty(t, log.to("/api/v1/impressions"), "no single requests")

	stats, err := c.Stats(ctx, live.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(2), stats.Total)

	// Nothing to send sends nothing.
	results, err = c.RecordImpressions(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, results)
	results, err = c.RecordImpressions(ctx, imps[5:])
	require.NoError(t, err)
	assert.Len(t, results, 2)
	assert.Len(t, log.to("/api/v1/impressions/batch"), 1)

	// More than a batch holds is refused whole, before sending.
	_, err = c.RecordImpressions(ctx, make([]adcount.Impression, adcount.MaxBatch+1))
	require.ErrorIs(t, err, adcount.ErrInvalid)
	assert.Len(t, log.to("/api/v1/impressions/batch"), 1)

	// A done context sends nothing.
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.RecordImpressions(done, imps[:1])
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, log.to("/api/v1/impressions/batch"), 1)
}

// TestRecordImpressionsSplitsWhatTheBodyLimitCannotHold: a full batch of
// the longest IDs, which JSON escapes to six bytes a character, is larger
// than the API's 1 MiB body limit; the client sends it in several
// requests, in order, and every impression counts once.
func TestRecordImpressionsSplitsWhatTheBodyLimitCannotHold(t *testing.T) {
	t.Parallel()
	var log sent
	s := newServer(t, log.wrap)
	c := s.client(t)
	ctx := context.Background()
	camp, err := c.Create(ctx, "Long", storetest.Epoch)
	require.NoError(t, err)
	long := strings.Repeat("\x01", adcount.MaxIDBytes-4)
	imps := make([]adcount.Impression, adcount.MaxBatch)
	for i := range imps {
		imps[i] = adcount.Impression{CampaignID: camp.ID, UserID: fmt.Sprintf("%04d%s", i, long), AdID: long}
	}
	imps[999] = imps[0] // a repeat across requests is still a duplicate
	results, err := c.RecordImpressions(ctx, imps)
	require.NoError(t, err)
	for i, r := range results[:999] {
		require.Equal(t, adcount.Result{Outcome: adcount.Counted}, r, "impression %d", i)
	}
	assert.Equal(t, adcount.Result{Outcome: adcount.Duplicate}, results[999])
	batches := log.to("/api/v1/impressions/batch")
	assert.Greater(t, len(batches), 1)
	for _, b := range batches {
		assert.LessOrEqual(t, len(b.body), 1<<20)
	}
	stats, err := c.Stats(ctx, camp.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(999), stats.Total)
}

// TestFilteredImpressionsCarryACrawlersUserAgent: an impression marked
// Filtered is sent with FilteredUserAgent as its user_agent, so that the
// API judges it a bot; any other is sent without one, under the client's
// own User-Agent, which is no crawler's.
func TestFilteredImpressionsCarryACrawlersUserAgent(t *testing.T) {
	t.Parallel()
	var log sent
	s := newServer(t, log.wrap)
	c := s.client(t)
	ctx := context.Background()
	camp, err := c.Create(ctx, "Bots", storetest.Epoch)
	require.NoError(t, err)
	bot := adcount.Impression{CampaignID: camp.ID, UserID: "u", AdID: "a", Filtered: true}
	person := adcount.Impression{CampaignID: camp.ID, UserID: "v", AdID: "a"}
	_, err = c.RecordImpression(ctx, bot)
	require.NoError(t, err)
	_, err = c.RecordImpression(ctx, person)
	require.NoError(t, err)
	_, err = c.RecordImpressions(ctx, []adcount.Impression{bot, person})
	require.NoError(t, err)

	userAgents := func(body []byte) []any {
		var v struct {
			Impressions []map[string]any `json:"impressions"`
		}
		require.NoError(t, json.Unmarshal(body, &v))
		var uas []any
		for _, imp := range v.Impressions {
			uas = append(uas, imp["user_agent"])
		}
		return uas
	}
	singles := log.to("/api/v1/impressions")
	require.Len(t, singles, 2)
	assert.Equal(t, []any{apiclient.FilteredUserAgent}, userAgents([]byte(`{"impressions":[`+string(singles[0].body)+`]}`)))
	assert.Equal(t, []any{nil}, userAgents([]byte(`{"impressions":[`+string(singles[1].body)+`]}`)))
	batches := log.to("/api/v1/impressions/batch")
	require.Len(t, batches, 1)
	assert.Equal(t, []any{apiclient.FilteredUserAgent, nil}, userAgents(batches[0].body))
	for _, r := range append(singles, batches...) {
		assert.Equal(t, apiclient.DefaultUserAgent, r.userAgent)
	}
}

// TestOutcomesFromTheAPI: the client reads every outcome the API answers,
// and refuses answers that break the API's contract rather than guess.
func TestOutcomesFromTheAPI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		single  string // the single route's answer
		batch   string // the batch route's answer to two impressions
		want    []adcount.Result
		wantErr string
	}{
		{"Filtered", `{"message":"m","counted":false,"outcome":"filtered"}`,
			`{"summary":{},"results":[{"outcome":"filtered"},{"outcome":"counted"}]}`,
			[]adcount.Result{{Outcome: adcount.Filtered}, {Outcome: adcount.Counted}}, ""},
		// An API from before outcomes says only whether it counted.
		{"NoOutcomeField", `{"message":"m","counted":false}`,
			`{"summary":{},"results":[{"outcome":"duplicate"},{"outcome":"rejected","status":400,"code":"invalid","error":"ad_id: must be at most 256 bytes, got 300"}]}`,
			[]adcount.Result{{Outcome: adcount.Duplicate}, {Err: &adcount.FieldError{Field: "ad_id", Message: "must be at most 256 bytes, got 300"}}}, ""},
		{"UnknownOutcome", `{"message":"m","counted":false,"outcome":"lost"}`,
			`{"summary":{},"results":[{"outcome":"lost"},{"outcome":"counted"}]}`, nil, "lost"},
		// An item may fail only for its own fault.
		{"StoreFailureOnAnItem", `{"message":"m","counted":true,"outcome":"counted"}`,
			`{"summary":{},"results":[{"outcome":"rejected","status":503,"code":"unavailable","error":"x"},{"outcome":"counted"}]}`, nil, "status 503"},
		{"TooFewResults", `{"message":"m","counted":true,"outcome":"counted"}`,
			`{"summary":{},"results":[{"outcome":"counted"}]}`, nil, "1 results for 2 impressions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v1/impressions/batch" {
					_, _ = io.WriteString(w, tc.batch)
					return
				}
				_, _ = io.WriteString(w, tc.single)
			}))
			t.Cleanup(srv.Close)
			c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
			require.NoError(t, err)
			imp := adcount.Impression{CampaignID: "c", UserID: "u", AdID: "a"}
			results, err := c.RecordImpressions(context.Background(), []adcount.Impression{imp, imp})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
				require.Len(t, results, 2)
				assert.Equal(t, tc.want[0], results[0])
				if tc.want[1].Err != nil {
					var fe *adcount.FieldError
					require.ErrorAs(t, results[1].Err, &fe)
					assert.Equal(t, tc.want[1].Err, fe)
				} else {
					assert.Equal(t, tc.want[1], results[1])
				}
			}
			outcome, err := c.RecordImpression(context.Background(), imp)
			if tc.name == "UnknownOutcome" {
				require.ErrorContains(t, err, "unknown outcome")
				return
			}
			require.NoError(t, err)
			if tc.want != nil {
				assert.Equal(t, tc.want[0].Outcome, outcome)
			}
		})
	}
}

// TestBatchUnavailable: a whole batch refused with 503 fails the call with
// adcount.ErrUnavailable and the server's Retry-After.
func TestBatchUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"the store is unavailable; retry the same request: it is never counted twice","code":"unavailable"}`)
	}))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	results, err := c.RecordImpressions(context.Background(), []adcount.Impression{{CampaignID: "c", UserID: "u", AdID: "a"}})
	require.ErrorIs(t, err, adcount.ErrUnavailable)
	assert.Nil(t, results)
	var se *apiclient.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, time.Second, se.RetryAfter)
}
