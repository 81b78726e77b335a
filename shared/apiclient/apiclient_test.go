package apiclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

const adminKey = "client-test-admin-key-0123456789"

// server is the real API over a memory store that reads a test clock.
type server struct {
	*httptest.Server
	clock *storetest.Clock
}

func newServer(t *testing.T, wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	var h http.Handler = httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{adminKey}), httpapi.WithClock(clock.Now),
		httpapi.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &server{Server: srv, clock: clock}
}

func (s *server) client(t *testing.T, opts ...apiclient.Option) *apiclient.Client {
	t.Helper()
	opts = append([]apiclient.Option{apiclient.WithHTTPClient(s.Client()), apiclient.WithAdminKey(adminKey)}, opts...)
	c, err := apiclient.New(s.URL, opts...)
	require.NoError(t, err)
	return c
}

func TestClientAgainstTheAPI(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.client(t)
	ctx := context.Background()

	t.Run("CreateReturnsTheStoredCampaign", func(t *testing.T) {
		start := time.Date(2026, 1, 5, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
		camp, err := c.Create(ctx, "  Launch ", start)
		require.NoError(t, err)
		assert.Len(t, camp.ID, 36, "a UUID the API chose")
		assert.Equal(t, "Launch", camp.Name, "trimmed by the API")
		assert.Equal(t, time.UTC, camp.StartTime.Location())
		assert.True(t, start.Equal(camp.StartTime))
		got, err := c.Campaign(ctx, camp.ID)
		require.NoError(t, err)
		assert.Equal(t, camp, got)
	})
	t.Run("ImpressionCountsThenIsADuplicate", func(t *testing.T) {
		camp, err := c.Create(ctx, "Counting", storetest.Epoch)
		require.NoError(t, err)
		imp := adcount.Impression{CampaignID: camp.ID, UserID: "u", AdID: "a"}
		counted, err := c.RecordImpression(ctx, imp)
		require.NoError(t, err)
		assert.Equal(t, adcount.Counted, counted)
		counted, err = c.RecordImpression(ctx, imp)
		require.NoError(t, err)
		assert.Equal(t, adcount.Duplicate, counted)
		stats, err := c.Stats(ctx, camp.ID)
		require.NoError(t, err)
		assert.False(t, stats.AsOf.IsZero(), "as_of reads back")
		stats.AsOf = time.Time{}
		assert.Equal(t, adcount.Stats{CampaignID: camp.ID, LastHour: 1, LastDay: 1, Total: 1,
			UniqueUsers: adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}}, stats)
	})
	t.Run("UnknownCampaignIsNotFound", func(t *testing.T) {
		// An ID that needs escaping stays one path segment: the API's
		// "campaign not found", not a 404 for another path.
		for _, id := range []string{"no-such-campaign", "a/b?c d%", "", ".."} {
			_, err := c.Campaign(ctx, id)
			require.ErrorIs(t, err, adcount.ErrNotFound, "campaign %q", id)
			_, err = c.Stats(ctx, id)
			require.ErrorIs(t, err, adcount.ErrNotFound, "stats %q", id)
		}
		_, err := c.RecordImpression(ctx, adcount.Impression{CampaignID: "no-such-campaign", UserID: "u", AdID: "a"})
		var se *apiclient.StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusNotFound, se.Status)
		assert.ErrorIs(t, err, adcount.ErrNotFound)
	})
	t.Run("NotStartedIs409NotStarted", func(t *testing.T) {
		camp, err := c.Create(ctx, "Tomorrow", storetest.Epoch.Add(24*time.Hour))
		require.NoError(t, err)
		_, err = c.RecordImpression(ctx, adcount.Impression{CampaignID: camp.ID, UserID: "u", AdID: "a"})
		require.ErrorIs(t, err, adcount.ErrNotStarted)
		assert.NotErrorIs(t, err, adcount.ErrConflict)
	})
	t.Run("CallerChosenIDIsUnsupported", func(t *testing.T) {
		err := c.CreateCampaign(ctx, adcount.Campaign{ID: "mine", Name: "Mine", StartTime: storetest.Epoch})
		require.ErrorIs(t, err, errors.ErrUnsupported)
		_, err = c.Campaign(ctx, "mine")
		require.ErrorIs(t, err, adcount.ErrNotFound, "nothing was sent")
	})
	t.Run("InvalidInputIsAFieldErrorBeforeSending", func(t *testing.T) {
		cases := []struct {
			name  string
			call  func() error
			field string
		}{
			// JSON would turn invalid UTF-8 into U+FFFD and so count a
			// different ad; the client refuses it instead.
			{"InvalidUTF8", func() error {
				_, err := c.RecordImpression(ctx, adcount.Impression{CampaignID: "c", UserID: "u", AdID: "\xff"})
				return err
			}, "ad_id"},
			{"MissingUser", func() error {
				_, err := c.RecordImpression(ctx, adcount.Impression{CampaignID: "c", AdID: "a"})
				return err
			}, "user_id"},
			{"BlankName", func() error {
				_, err := c.Create(ctx, " ", storetest.Epoch)
				return err
			}, "name"},
			{"NoStart", func() error {
				_, err := c.Create(ctx, "No start", time.Time{})
				return err
			}, "start_time"},
		}
		for _, tc := range cases {
			err := tc.call()
			var fe *adcount.FieldError
			require.ErrorAs(t, err, &fe, tc.name)
			assert.Equal(t, tc.field, fe.Field, tc.name)
			assert.ErrorIs(t, err, adcount.ErrInvalid, tc.name)
		}
	})
}

func TestAdminKey(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		headers = map[string]http.Header{}
	)
	s := newServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			headers[r.Method+" "+r.URL.Path] = r.Header.Clone()
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	cases := []struct {
		name   string
		key    string
		status int
	}{
		// No key at all: 401.
		{"NoKeyIs401", "", http.StatusUnauthorized},
		// A key that is not active: 403.
		{"WrongKeyIs403", "not-the-key", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := apiclient.New(s.URL, apiclient.WithHTTPClient(s.Client()), apiclient.WithAdminKey(tc.key))
			require.NoError(t, err)
			_, err = c.Create(ctx, "Refused", storetest.Epoch)
			require.ErrorIs(t, err, apiclient.ErrUnauthorized)
			var se *apiclient.StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.status, se.Status)
			assert.Contains(t, se.Message, "admin key")
		})
	}
	t.Run("SentAsBearerOnAdminRoutesOnly", func(t *testing.T) {
		c := s.client(t, apiclient.WithUserAgent("ad-server/2"))
		camp, err := c.Create(ctx, "Keyed", storetest.Epoch)
		require.NoError(t, err)
		_, err = c.RecordImpression(ctx, adcount.Impression{CampaignID: camp.ID, UserID: "u", AdID: "a"})
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		create, ingest := headers["POST /api/v1/campaigns"], headers["POST /api/v1/impressions"]
		assert.Equal(t, "Bearer "+adminKey, create.Get("Authorization"))
		assert.Empty(t, ingest.Get("Authorization"), "ingest needs no key, so none is sent")
		assert.Equal(t, "ad-server/2", create.Get("User-Agent"))
		assert.Equal(t, "ad-server/2", ingest.Get("User-Agent"))
	})
	t.Run("DefaultUserAgent", func(t *testing.T) {
		c := s.client(t)
		_, err := c.Stats(ctx, "ua-check")
		require.ErrorIs(t, err, adcount.ErrNotFound)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, apiclient.DefaultUserAgent, headers["GET /api/v1/campaigns/ua-check/stats"].Get("User-Agent"))
	})
}

// TestBaseURLWithAPath runs the client against the API behind a path
// prefix, as an API Gateway stage URL has one.
func TestBaseURLWithAPath(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(h http.Handler) http.Handler { return http.StripPrefix("/prod", h) })
	ctx := context.Background()
	c, err := apiclient.New(s.URL+"/prod/", apiclient.WithHTTPClient(s.Client()), apiclient.WithAdminKey(adminKey))
	require.NoError(t, err)
	camp, err := c.Create(ctx, "Staged", storetest.Epoch)
	require.NoError(t, err)
	_, err = c.Stats(ctx, camp.ID)
	require.NoError(t, err)

	// Without the prefix every path is unknown to the API: a 404 that must
	// not pass for a missing campaign.
	wrong := s.client(t)
	_, err = wrong.Campaign(ctx, camp.ID)
	var se *apiclient.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusNotFound, se.Status)
	assert.NotErrorIs(t, err, adcount.ErrNotFound)
}

func TestNewRejectsBadBaseURLs(t *testing.T) {
	t.Parallel()
	for _, base := range []string{
		"",                        // nothing
		"localhost:8080",          // no scheme
		"ftp://example.com",       // not HTTP
		"http://",                 // no host
		"http://example.com/?x=1", // a query would end up in every path
		"http://exa mple.com",     // not a URL
	} {
		_, err := apiclient.New(base)
		assert.Error(t, err, "%q", base)
	}
}

// TestStatusMapping checks how the client reads each error answer. The
// statuses the API sends under load or behind a gateway, and bodies that
// are not the API's, come from a stub: the real handler cannot be made to
// send them on demand. The messages are the API's own.
func TestStatusMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		body   string
		header http.Header
		// wantIs is the error the answer must match; nil for none of the
		// domain's.
		wantIs     error
		wantField  string
		retryAfter time.Duration
	}{
		// A validation error names its field in "field: message" form.
		{"FieldError", 400, `{"error":"user_id: must be at most 256 bytes, got 300","code":"invalid"}`, nil, adcount.ErrInvalid, "user_id", 0},
		// A type error from decoding names its field the same way.
		{"TypeError", 400, `{"error":"campaign_id: must be a string, got number","code":"malformed"}`, nil, adcount.ErrInvalid, "campaign_id", 0},
		// Malformed JSON names no field, and is still invalid input.
		{"MalformedJSON", 400, `{"error":"malformed JSON at byte 3: invalid character","code":"malformed"}`, nil, adcount.ErrInvalid, "", 0},
		// A body over the limit is invalid input too.
		{"TooLarge", 413, `{"error":"request body is larger than 65536 bytes","code":"too_large"}`, nil, adcount.ErrInvalid, "", 0},
		// The two 409s are told apart by their message.
		{"Conflict", 409, `{"error":"a campaign with this id already exists","code":"conflict"}`, nil, adcount.ErrConflict, "", 0},
		{"NotStarted", 409, `{"error":"campaign has not started yet; impressions count from its start_time","code":"not_started"}`, nil, adcount.ErrNotStarted, "", 0},
		// A campaign that is not live says why in its own code.
		{"Paused", 409, `{"error":"campaign is paused; impressions count again once it is resumed","code":"paused"}`, nil, adcount.ErrPaused, "", 0},
		{"Ended", 409, `{"error":"campaign has ended; impressions after its end_time are not counted","code":"ended"}`, nil, adcount.ErrEnded, "", 0},
		// A full store refuses a create with a 409 of its own.
		{"CampaignLimit", 409, `{"error":"the store already holds its maximum number of campaigns (MAX_CAMPAIGNS); no campaign was created","code":"limit"}`, nil, adcount.ErrLimit, "", 0},
		// A 503 is unavailable, and says when to retry.
		{"Unavailable", 503, `{"error":"the store is unavailable; retry the same request: it is never counted twice","code":"unavailable"}`, http.Header{"Retry-After": {"1"}}, adcount.ErrUnavailable, "", time.Second},
		// API Gateway throttles with a 429 in its own body shape.
		{"Throttled", 429, `{"message":"Too Many Requests"}`, http.Header{"Retry-After": {"3"}}, adcount.ErrUnavailable, "", 3 * time.Second},
		// A gateway that lost its backend.
		{"BadGateway", 502, `<html>bad gateway</html>`, nil, adcount.ErrUnavailable, "", 0},
		{"GatewayTimeout", 504, ``, nil, adcount.ErrUnavailable, "", 0},
		// An internal error is none of the domain's errors: retrying may
		// not help, and the client must not guess.
		{"Internal", 500, `{"error":"internal error","code":"internal"}`, nil, nil, "", 0},
		// A 404 that is not the API's campaign not found, such as a
		// gateway's for an unknown stage.
		{"GatewayNotFound", 404, `{"message":"Not Found"}`, nil, nil, "", 0},
		// The API's own 404 for a path it lacks: the base URL is wrong,
		// no campaign is missing.
		{"NoRoute", 404, `{"error":"no route for GET /v2/campaigns","code":"no_route"}`, nil, nil, "", 0},
		// The code decides, not the message: a reworded message still maps.
		{"RewordedNotStarted", 409, `{"error":"too early","code":"not_started"}`, nil, adcount.ErrNotStarted, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
			require.NoError(t, err)
			_, err = c.RecordImpression(context.Background(), adcount.Impression{CampaignID: "c", UserID: "u", AdID: "a"})
			var se *apiclient.StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.status, se.Status)
			assert.Equal(t, tc.retryAfter, se.RetryAfter)
			if tc.wantIs == nil {
				for _, domain := range []error{adcount.ErrInvalid, adcount.ErrNotFound, adcount.ErrConflict, adcount.ErrNotStarted, adcount.ErrPaused, adcount.ErrEnded, adcount.ErrUnavailable, apiclient.ErrUnauthorized} {
					assert.NotErrorIs(t, err, domain)
				}
				return
			}
			assert.ErrorIs(t, err, tc.wantIs)
			var fe *adcount.FieldError
			if tc.wantField == "" {
				assert.False(t, errors.As(err, &fe), "no field named: %v", err)
				return
			}
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.wantField, fe.Field)
		})
	}
}

// TestNoAnswer checks the calls that get no answer: a caller's context
// that ends first matches the context's error, and a server that is gone
// or too slow for the client's own timeout is unavailable.
func TestNoAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	imp := adcount.Impression{CampaignID: "c", UserID: "u", AdID: "a"}

	t.Run("CallerDeadlineIsDeadlineExceeded", func(t *testing.T) {
		t.Parallel()
		c, err := apiclient.New(hang.URL, apiclient.WithHTTPClient(hang.Client()))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = c.RecordImpression(ctx, imp)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, adcount.ErrUnavailable, "the caller gave up; the API was not shown unavailable")
	})
	t.Run("ClientTimeoutIsUnavailable", func(t *testing.T) {
		t.Parallel()
		// A copy: the server's client is shared with the other subtests.
		hc := *hang.Client()
		hc.Timeout = 50 * time.Millisecond
		c, err := apiclient.New(hang.URL, apiclient.WithHTTPClient(&hc))
		require.NoError(t, err)
		_, err = c.RecordImpression(context.Background(), imp)
		require.ErrorIs(t, err, adcount.ErrUnavailable)
	})
	t.Run("RefusedConnectionIsUnavailable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c, err := apiclient.New("http://" + addr)
		require.NoError(t, err)
		_, err = c.Stats(context.Background(), "c")
		require.ErrorIs(t, err, adcount.ErrUnavailable)
	})
}

// TestFullStoreIsErrLimit: the real handler over a memory store that holds
// one campaign answers the second create with the 409 the client reads as
// adcount.ErrLimit, not as a conflict.
func TestFullStoreIsErrLimit(t *testing.T) {
	t.Parallel()
	store, err := memstore.New(memstore.WithMaxCampaigns(1))
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	_, err = c.Create(context.Background(), "First", storetest.Epoch)
	require.NoError(t, err)
	_, err = c.Create(context.Background(), "Second", storetest.Epoch)
	require.ErrorIs(t, err, adcount.ErrLimit)
	assert.NotErrorIs(t, err, adcount.ErrConflict)
}
