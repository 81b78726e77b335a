package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// server is the API over a memory store and a hand-moved clock, served over
// real HTTP.
type server struct {
	*httptest.Server
	clock *storetest.Clock
	store adcount.Store // set by the helpers that a test may need it from
}

func newServer(t *testing.T) *server {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithClock(clock.Now), httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	return &server{Server: srv, clock: clock}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (s *server) do(t *testing.T, method, path, body string) reply {
	t.Helper()
	return s.doHeader(t, method, path, nil, body)
}

// doHeader sends a request with these headers and decodes its JSON reply.
func (s *server) doHeader(t *testing.T, method, path string, header http.Header, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var decoded map[string]any
	if method != http.MethodHead {
		require.NoError(t, json.Unmarshal(raw, &decoded), "every reply is JSON: %q", raw)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: decoded}
}

func (s *server) createCampaign(t *testing.T, name string, start time.Time) string {
	t.Helper()
	r := s.do(t, "POST", "/api/v1/campaigns", fmt.Sprintf(`{"name":%q,"start_time":%q}`, name, start.Format(time.RFC3339Nano)))
	require.Equal(t, http.StatusCreated, r.status, r.body)
	return r.body["id"].(string)
}

func (s *server) stats(t *testing.T, id string) map[string]any {
	t.Helper()
	r := s.do(t, "GET", "/api/v1/campaigns/"+id+"/stats", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r.body
}

func impression(campaign, user, ad string) string {
	return fmt.Sprintf(`{"campaign_id":%q,"user_id":%q,"ad_id":%q}`, campaign, user, ad)
}

func TestCampaignLifecycle(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	r := s.do(t, "POST", "/api/v1/campaigns", `{"name":"  Winter sale ","start_time":"2026-01-05T11:00:00+01:00"}`)
	require.Equal(t, http.StatusCreated, r.status)
	id := r.body["id"].(string)
	assert.Len(t, id, 36, "a UUID")
	assert.Equal(t, "Winter sale", r.body["name"], "trimmed")
	assert.Equal(t, "2026-01-05T10:00:00Z", r.body["start_time"], "normalised to UTC")
	assert.Equal(t, "/api/v1/campaigns/"+id, r.header.Get("Location"))

	got := s.do(t, "GET", "/api/v1/campaigns/"+id, "")
	assert.Equal(t, http.StatusOK, got.status)
	assert.Equal(t, r.body, got.body)

	other := s.createCampaign(t, "Other", storetest.Epoch)
	assert.NotEqual(t, id, other, "IDs are random")
}

func TestImpressionsAndStats(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.createCampaign(t, "Spring", storetest.Epoch)

	first := s.do(t, "POST", "/api/v1/impressions", impression(id, "u1", "a1"))
	assert.Equal(t, http.StatusOK, first.status)
	assert.Equal(t, map[string]any{"message": "Impression saved successfully", "counted": true, "outcome": "counted"}, first.body)

	dup := s.do(t, "POST", "/api/v1/impressions", impression(id, "u1", "a1"))
	assert.Equal(t, http.StatusOK, dup.status)
	assert.Equal(t, false, dup.body["counted"])
	assert.Equal(t, "duplicate", dup.body["outcome"])
	assert.Contains(t, dup.body["message"], "Duplicate")

	// Extra fields from an ad tag are ignored, and a text/plain beacon body
	// is read as JSON.
	req, err := http.NewRequest("POST", s.URL+"/api/v1/impressions", strings.NewReader(`{"campaign_id":"`+id+`","user_id":"u2","ad_id":"a1","ts":1}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	asOf := func() string { return s.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z") }
	windows := func(hour, day, total float64) map[string]any {
		return map[string]any{"last_hour": hour, "last_day": day, "total": total}
	}
	assert.Equal(t, map[string]any{"campaign_id": id, "last_hour": 2.0, "last_day": 2.0, "total": 2.0, "filtered": 0.0,
		"unique_users": windows(2, 2, 2), "frequency": windows(1, 1, 1), "as_of": asOf()}, s.stats(t, id),
		"the memory store counts synchronously: its stats are as of the read")

	s.clock.Advance(time.Hour)
	assert.Equal(t, map[string]any{"campaign_id": id, "last_hour": 0.0, "last_day": 2.0, "total": 2.0, "filtered": 0.0,
		"unique_users": windows(0, 2, 2), "frequency": windows(0, 1, 1), "as_of": asOf()}, s.stats(t, id))
	again := s.do(t, "POST", "/api/v1/impressions", impression(id, "u1", "a1"))
	assert.Equal(t, true, again.body["counted"], "after the dedup window the same key counts again")
}

// TestErrors sends every kind of bad request to every endpoint and checks
// the status, the message, and that no count moved.
func TestErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.createCampaign(t, "Live", storetest.Epoch)
	future := s.createCampaign(t, "Future", storetest.Epoch.Add(time.Hour))
	require.Equal(t, true, s.do(t, "POST", "/api/v1/impressions", impression(id, "seed", "a")).body["counted"])

	huge := `{"campaign_id":"` + id + `","user_id":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `","ad_id":"a"}`
	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		status     int
		errContain string
	}{
		{"EmptyBody", "POST", "/api/v1/impressions", "", 400, "empty"},
		{"Malformed", "POST", "/api/v1/impressions", `{"campaign_id":`, 400, "malformed JSON"},
		{"NotJSON", "POST", "/api/v1/impressions", `campaign_id=x`, 400, "malformed JSON"},
		{"NotAnObject", "POST", "/api/v1/impressions", `["x"]`, 400, "JSON object"},
		{"TrailingData", "POST", "/api/v1/impressions", impression(id, "u", "a") + `{}`, 400, "exactly one JSON object"},
		{"TrailingGarbage", "POST", "/api/v1/impressions", impression(id, "u", "a") + `x`, 400, "malformed JSON"},
		{"WrongType", "POST", "/api/v1/impressions", `{"campaign_id":"` + id + `","user_id":7,"ad_id":"a"}`, 400, "user_id: must be a string"},
		{"MissingField", "POST", "/api/v1/impressions", `{"campaign_id":"` + id + `","user_id":"u"}`, 400, "ad_id"},
		{"NullField", "POST", "/api/v1/impressions", `{"campaign_id":"` + id + `","user_id":null,"ad_id":"a"}`, 400, "user_id"},
		{"FieldTooLong", "POST", "/api/v1/impressions", impression(id, strings.Repeat("u", 257), "a"), 400, "user_id: must be at most 256 bytes"},
		{"BodyTooLarge", "POST", "/api/v1/impressions", huge, 413, "larger than"},
		{"UnknownCampaign", "POST", "/api/v1/impressions", impression("no-such-campaign", "u", "a"), 404, "campaign not found"},
		{"NotStarted", "POST", "/api/v1/impressions", impression(future, "u", "a"), 409, "has not started"},
		{"CampaignNoName", "POST", "/api/v1/campaigns", `{"start_time":"2026-01-01T00:00:00Z"}`, 400, "name"},
		{"CampaignBlankName", "POST", "/api/v1/campaigns", `{"name":"   ","start_time":"2026-01-01T00:00:00Z"}`, 400, "name"},
		{"CampaignLongName", "POST", "/api/v1/campaigns", `{"name":"` + strings.Repeat("n", 201) + `","start_time":"2026-01-01T00:00:00Z"}`, 400, "name: must be at most 200"},
		{"CampaignNoStart", "POST", "/api/v1/campaigns", `{"name":"x"}`, 400, "start_time: is required"},
		{"CampaignBadStart", "POST", "/api/v1/campaigns", `{"name":"x","start_time":"yesterday"}`, 400, "start_time: must be an RFC 3339"},
		{"CampaignStartWrongType", "POST", "/api/v1/campaigns", `{"name":"x","start_time":12}`, 400, "start_time: must be a string"},
		// RFC 3339 offsets stop at 23:59; Go's parser takes +24:00.
		{"CampaignOffset24", "POST", "/api/v1/campaigns", `{"name":"x","start_time":"2026-01-01T00:00:00+24:00"}`, 400, "start_time: must be an RFC 3339"},
		// Years outside 1970 to 9999: no campaign starts before 1970, and a
		// later year has no RFC 3339 form to answer with.
		{"CampaignYearZero", "POST", "/api/v1/campaigns", `{"name":"x","start_time":"0000-01-01T00:00:00Z"}`, 400, "start_time: must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"},
		{"CampaignBefore1970", "POST", "/api/v1/campaigns", `{"name":"x","start_time":"1969-12-31T23:59:59Z"}`, 400, "start_time: must be between"},
		{"CampaignYear10000InUTC", "POST", "/api/v1/campaigns", `{"name":"x","start_time":"9999-12-31T23:59:59-23:59"}`, 400, "start_time: must be between"},
		{"CampaignTooLarge", "POST", "/api/v1/campaigns", `{"name":"` + strings.Repeat("n", httpapi.MaxBodyBytes) + `"}`, 413, "larger than"},
		{"UnknownCampaignGet", "GET", "/api/v1/campaigns/nope", "", 404, "campaign not found"},
		{"UnknownCampaignStats", "GET", "/api/v1/campaigns/nope/stats", "", 404, "campaign not found"},
		{"UnknownRoute", "GET", "/api/v2/everything", "", 404, "no route"},
		{"UnknownRouteUnderAPI", "POST", "/api/v1/campaigns/" + id + "/impressions", "", 404, "no route"},
		// The router would redirect these with an HTML body.
		{"UncleanPath", "GET", "/api/v1/../v1/campaigns/" + id, "", 404, "canonical form"},
		{"DoubleSlash", "POST", "/api//v1/impressions", impression(id, "u", "a"), 404, "canonical form"},
		{"TrailingSlash", "POST", "/api/v1/impressions/", impression(id, "u", "a"), 404, "no route"},
		{"WrongMethodImpressions", "GET", "/api/v1/impressions", "", 405, "not allowed"},
		{"WrongMethodStats", "DELETE", "/api/v1/campaigns/" + id + "/stats", "", 405, "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.status, r.status)
			assert.Contains(t, r.body["error"], tc.errContain)
			assert.Len(t, r.body, 2, "an error body holds the error and its code")
			assert.Regexp(t, `^[a-z_]+$`, r.body["code"], "a stable code for programs")
		})
	}
	t.Cleanup(func() {
		// Every rejected request left the counts where they were.
		assert.Equal(t, 1.0, s.stats(t, id)["total"])
		assert.Equal(t, 0.0, s.stats(t, future)["total"])
	})
}

func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	cases := []struct {
		method, path, allow string
	}{
		// Impressions also answer CORS preflights.
		{"GET", "/api/v1/impressions", "OPTIONS, POST"},
		// GET routes also serve HEAD.
		{"PUT", "/api/v1/campaigns", "GET, HEAD, POST"},
		{"POST", "/api/v1/campaigns/x/stats", "GET, HEAD"},
		{"DELETE", "/api/v1/campaigns/x", "GET, HEAD, PATCH"},
		{"POST", "/api/v1/campaigns/x/timeseries", "GET, HEAD"},
		{"PUT", "/api/v1/campaigns/x/ads", "GET, HEAD"},
	}
	for _, tc := range cases {
		r := s.do(t, tc.method, tc.path, "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status, tc.path)
		assert.Equal(t, tc.allow, r.header.Get("Allow"), tc.path)
	}
}

func TestEscapedPathParameter(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	// An ID with a slash, escaped, reaches the store whole and is not found
	// rather than routed elsewhere.
	r := s.do(t, "GET", "/api/v1/campaigns/a%2Fb/stats", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "campaign not found", r.body["error"])
}

// failingStore fails every call with err. A real store cannot be made to
// fail on demand, so this fake stands in for the store's outages.
type failingStore struct{ err error }

var _ adcount.Store = (*failingStore)(nil)

func (f *failingStore) CreateCampaign(context.Context, adcount.Campaign) error { return f.err }
func (f *failingStore) Campaign(context.Context, string) (adcount.Campaign, error) {
	return adcount.Campaign{}, f.err
}
func (f *failingStore) RecordImpression(context.Context, adcount.Impression) (adcount.Outcome, error) {
	return 0, f.err
}
func (f *failingStore) RecordImpressions(context.Context, []adcount.Impression) ([]adcount.Result, error) {
	return nil, f.err
}
func (f *failingStore) Stats(context.Context, string) (adcount.Stats, error) {
	return adcount.Stats{}, f.err
}

func TestStoreFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		status     int
		retryAfter string
	}{
		// An outage the client can retry through.
		{"Unavailable", fmt.Errorf("dynamo: throttled: %w", adcount.ErrUnavailable), 503, "1"},
		{"Timeout", fmt.Errorf("store: %w", context.DeadlineExceeded), 503, "1"},
		// A bug: the cause is logged, not shown.
		{"Unknown", errors.New("secret connection string leaked"), 500, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			h := httpapi.NewHandler(&failingStore{err: tc.err}, httpapi.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			srv := httptest.NewServer(h)
			defer srv.Close()
			s := &server{Server: srv}
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/api/v1/impressions", impression("c", "u", "a")},
				{"POST", "/api/v1/campaigns", `{"name":"x","start_time":"2026-01-01T00:00:00Z"}`},
				{"GET", "/api/v1/campaigns/c", ""},
				{"GET", "/api/v1/campaigns/c/stats", ""},
			} {
				r := s.do(t, req.method, req.path, req.body)
				assert.Equal(t, tc.status, r.status, req.path)
				assert.Equal(t, tc.retryAfter, r.header.Get("Retry-After"), req.path)
				assert.NotContains(t, r.body["error"], "secret", "causes stay in the log")
			}
			assert.Contains(t, logs.String(), tc.err.Error(), "the cause is logged in full")
		})
	}
}

// TestTextThatJSONWouldRepair: encoding/json replaces invalid UTF-8 and
// lone UTF-16 surrogate escapes with U+FFFD, so "inv\xff" and "inv\xfe"
// would be one user. Both are refused with a 400 naming the field, before
// decoding can repair them, and count nothing.
func TestTextThatJSONWouldRepair(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.createCampaign(t, "Text", storetest.Epoch)
	cases := []struct {
		name, body, field string
	}{
		// Raw bytes that are not UTF-8.
		{"InvalidByteFF", `{"campaign_id":"` + id + `","user_id":"inv` + "\xff" + `","ad_id":"a"}`, "user_id"},
		{"InvalidByteFE", `{"campaign_id":"` + id + `","user_id":"inv` + "\xfe" + `","ad_id":"a"}`, "user_id"},
		// A multi-byte sequence cut short by the closing quote.
		{"TruncatedSequence", `{"campaign_id":"` + id + `","user_id":"u","ad_id":"a` + "\xe2\x82" + `"}`, "ad_id"},
		// A surrogate encoded as raw UTF-8 bytes (CESU-8).
		{"RawSurrogate", `{"campaign_id":"` + id + `","user_id":"` + "\xed\xa0\x80" + `","ad_id":"a"}`, "user_id"},
		// Lone surrogates written as escapes.
		{"LoneHigh", `{"campaign_id":"` + id + `","user_id":"\ud800","ad_id":"a"}`, "user_id"},
		{"LoneLow", `{"campaign_id":"` + id + `","user_id":"\udc00","ad_id":"a"}`, "user_id"},
		{"HighThenText", `{"campaign_id":"` + id + `","user_id":"\ud800x","ad_id":"a"}`, "user_id"},
		{"HighThenOtherEscape", `{"campaign_id":"` + id + `","user_id":"\ud800\n","ad_id":"a"}`, "user_id"},
		{"HighThenHigh", `{"campaign_id":"` + id + `","user_id":"\ud800\ud800","ad_id":"a"}`, "user_id"},
		{"LowThenHigh", `{"campaign_id":"` + id + `","user_id":"\udc00\ud800","ad_id":"a"}`, "user_id"},
		// A campaign name too.
		{"CampaignName", `{"name":"bad` + "\xff" + `","start_time":"2026-01-01T00:00:00Z"}`, "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := "/api/v1/impressions"
			if tc.field == "name" {
				path = "/api/v1/campaigns"
			}
			r := s.do(t, "POST", path, tc.body)
			assert.Equal(t, http.StatusBadRequest, r.status, r.body)
			assert.Equal(t, tc.field+": must be valid UTF-8", r.body["error"])
		})
	}
	// Valid text, escaped or not, still counts, and is told apart.
	for _, user := range []string{`\ud83d\ude00`, "\U0001F600x", `\u00e9`, "\u00e9\u00e9", "\uFFFD"} {
		r := s.do(t, "POST", "/api/v1/impressions", `{"campaign_id":"`+id+`","user_id":"`+user+`","ad_id":"a"}`)
		assert.Equal(t, http.StatusOK, r.status, user)
		assert.Equal(t, true, r.body["counted"], user)
	}
	t.Cleanup(func() { assert.Equal(t, 5.0, s.stats(t, id)["total"], "only the valid ones counted") })
}

// TestJSONQuirksRefused: encoding/json lets the last of two equal keys win
// and matches field names in any case. Both would let a body mean
// something other than it reads, so both are refused; see
// docs/security.md.
func TestJSONQuirksRefused(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.createCampaign(t, "Quirks", storetest.Epoch)
	cases := []struct {
		name, path, body, err string
	}{
		// The last user_id would win.
		{"DuplicateField", "/api/v1/impressions", `{"campaign_id":"` + id + `","user_id":"a","ad_id":"a","user_id":"b"}`, "user_id: is sent more than once; send each field once"},
		// The same key, spelt with an escape.
		{"DuplicateFieldEscaped", "/api/v1/impressions", `{"campaign_id":"` + id + `","user_id":"a","ad_id":"a","user\u005fid":"b"}`, "user_id: is sent more than once; send each field once"},
		{"DuplicateName", "/api/v1/campaigns", `{"name":"a","name":"b","start_time":"2026-01-01T00:00:00Z"}`, "name: is sent more than once; send each field once"},
		// encoding/json would read these as user_id and start_time.
		{"WrongCase", "/api/v1/impressions", `{"campaign_id":"` + id + `","User_ID":"a","ad_id":"a"}`, "User_ID: field names are case-sensitive; did you mean user_id?"},
		{"UnicodeFold", "/api/v1/impressions", `{"campaign_id":"` + id + `","uſer_id":"a","ad_id":"a"}`, "uſer_id: field names are case-sensitive; did you mean user_id?"},
		{"WrongCaseStart", "/api/v1/campaigns", `{"name":"a","Start_Time":"2026-01-01T00:00:00Z"}`, "Start_Time: field names are case-sensitive; did you mean start_time?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "POST", tc.path, tc.body)
			assert.Equal(t, http.StatusBadRequest, r.status)
			assert.Equal(t, tc.err, r.body["error"])
		})
	}
	// What stays accepted: unknown fields, even nested ones that reuse a
	// field's name, in any case, and escapes in values and keys.
	for i, body := range []string{
		`{"campaign_id":"` + id + `","user_id":"k0","ad_id":"a","extra":{"user_id":"x","USER_ID":"y","user_id":"z"}}`,
		`{"campaign_id":"` + id + `","user_id":"k1","ad_id":"a","tags":["user_id","\ud83d\ude00"],"n":1.5e3,"ok":true,"none":null}`,
		`{"campaign\u005fid":"` + id + `","user_id":"k2\"\\\/\b\f\n\r\t","ad_id":"\u00e9"}`,
		`{"campaign_id":"` + id + `","user_id":"k3","ad_id":"a","\ud83d\ude00":"\u0000"}`,
	} {
		r := s.do(t, "POST", "/api/v1/impressions", body)
		assert.Equal(t, http.StatusOK, r.status, "%d: %s", i, r.body)
	}
	t.Cleanup(func() { assert.Equal(t, 4.0, s.stats(t, id)["total"]) })
}

// TestBearerSchemeAnyCase: RFC 9110 makes the auth scheme
// case-insensitive, and extra spaces around the key are forgiven.
func TestBearerSchemeAnyCase(t *testing.T) {
	t.Parallel()
	mem, err := memstore.New()
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewHandler(mem, httpapi.WithAdminKeys([]string{"the-key"}), httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	for _, auth := range []string{"bearer the-key", "BEARER the-key", "Bearer   the-key", "bEaReR the-key  "} {
		req, err := http.NewRequest("GET", srv.URL+"/api/v1/campaigns/none", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%q reaches the store", auth)
	}
}

func (f *failingStore) ListCampaigns(context.Context, adcount.CampaignQuery) (adcount.CampaignPage, error) {
	return adcount.CampaignPage{}, f.err
}

func (f *failingStore) UpdateCampaign(context.Context, string, adcount.CampaignPatch) (adcount.Campaign, error) {
	return adcount.Campaign{}, f.err
}

func (f *failingStore) Series(context.Context, string, adcount.SeriesQuery) (adcount.Series, error) {
	return adcount.Series{}, f.err
}

func (f *failingStore) AdStats(context.Context, string, adcount.AdQuery) (adcount.AdPage, error) {
	return adcount.AdPage{}, f.err
}
