package httpapi_test

import (
	"context"
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
	"github.com/adcount/impression-counter/shared/storetest"
)

// fixedStore answers every campaign's stats and series with the ones it
// holds, and fails every other call as failingStore does. A real store's
// reach follows from the users it has seen; this one answers chosen
// figures, so that a test can pin how the API writes any of them: a
// frequency that rounds, a window without users, a point whose reach is
// not kept.
type fixedStore struct {
	failingStore
	stats  adcount.Stats
	series adcount.Series
}

var _ adcount.Store = (*fixedStore)(nil)

func (f *fixedStore) Stats(context.Context, string) (adcount.Stats, error) { return f.stats, nil }

func (f *fixedStore) Series(context.Context, string, adcount.SeriesQuery) (adcount.Series, error) {
	return f.series, nil
}

// getRaw serves one GET to a handler over f and returns the body as sent.
func getRaw(t *testing.T, f *fixedStore, path string) string {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	srv := httptest.NewServer(httpapi.NewHandler(f, httpapi.WithClock(clock.Now), httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	return strings.TrimSuffix(string(body), "\n")
}

// TestStatsReach: the stats answer the store's unique users per window
// after filtered and before as_of, and the frequency of each window, the
// count over its users rounded to two decimals, or 0 without users.
func TestStatsReach(t *testing.T) {
	t.Parallel()
	asOf := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		stats adcount.Stats
		want  string
	}{
		// A campaign nobody saw: every frequency is 0, not a division by
		// zero.
		{"NoUsers", adcount.Stats{CampaignID: "c", AsOf: asOf},
			`{"campaign_id":"c","last_hour":0,"last_day":0,"total":0,"filtered":0,"unique_users":{"last_hour":0,"last_day":0,"total":0},"frequency":{"last_hour":0,"last_day":0,"total":0},"as_of":"2026-01-05T10:00:00.000Z"}`},
		// Impressions whose users the store has not got (a window its
		// reach covers less of): the frequency of a window without users
		// is 0.
		{"CountsWithoutUsers", adcount.Stats{CampaignID: "c", LastHour: 4, LastDay: 4, Total: 4, UniqueUsers: adcount.UniqueUsers{LastDay: 2, Total: 2}, AsOf: asOf},
			`{"campaign_id":"c","last_hour":4,"last_day":4,"total":4,"filtered":0,"unique_users":{"last_hour":0,"last_day":2,"total":2},"frequency":{"last_hour":0,"last_day":2,"total":2},"as_of":"2026-01-05T10:00:00.000Z"}`},
		// Thirds round to two decimals, down and up, and a whole number
		// is written without decimals.
		{"Rounds", adcount.Stats{CampaignID: "c", LastHour: 10, LastDay: 20, Total: 21, Filtered: 5, UniqueUsers: adcount.UniqueUsers{LastHour: 3, LastDay: 3, Total: 7}, AsOf: asOf},
			`{"campaign_id":"c","last_hour":10,"last_day":20,"total":21,"filtered":5,"unique_users":{"last_hour":3,"last_day":3,"total":7},"frequency":{"last_hour":3.33,"last_day":6.67,"total":3},"as_of":"2026-01-05T10:00:00.000Z"}`},
		// A half rounds away from zero: 9/8 = 1.125 is 1.13; one
		// impression per user is 1.
		{"HalfRoundsUp", adcount.Stats{CampaignID: "c", LastHour: 8, LastDay: 9, Total: 9, UniqueUsers: adcount.UniqueUsers{LastHour: 8, LastDay: 8, Total: 8}, AsOf: asOf},
			`{"campaign_id":"c","last_hour":8,"last_day":9,"total":9,"filtered":0,"unique_users":{"last_hour":8,"last_day":8,"total":8},"frequency":{"last_hour":1,"last_day":1.13,"total":1.13},"as_of":"2026-01-05T10:00:00.000Z"}`},
		// Estimates of millions of users are written as integers, and
		// their frequency as a short decimal, never in exponent form.
		{"Millions", adcount.Stats{CampaignID: "c", LastHour: 1_000_000, LastDay: 30_000_000, Total: 123_456_789, UniqueUsers: adcount.UniqueUsers{LastHour: 999_999, LastDay: 9_876_543, Total: 10_000_000}, AsOf: asOf},
			`{"campaign_id":"c","last_hour":1000000,"last_day":30000000,"total":123456789,"filtered":0,"unique_users":{"last_hour":999999,"last_day":9876543,"total":10000000},"frequency":{"last_hour":1,"last_day":3.04,"total":12.35},"as_of":"2026-01-05T10:00:00.000Z"}`},
		// A store that cannot tell how fresh its counts are leaves as_of
		// out; the reach is there all the same.
		{"NoAsOf", adcount.Stats{CampaignID: "c", LastHour: 1, LastDay: 1, Total: 1, UniqueUsers: adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}},
			`{"campaign_id":"c","last_hour":1,"last_day":1,"total":1,"filtered":0,"unique_users":{"last_hour":1,"last_day":1,"total":1},"frequency":{"last_hour":1,"last_day":1,"total":1}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, getRaw(t, &fixedStore{stats: tc.stats}, "/api/v1/campaigns/c/stats"))
		})
	}
}

// TestSeriesReach: a point carries unique_users exactly when the store
// keeps its reach, 0 included, since a point without the field is one whose
// reach is unknown, not one nobody saw; the answer is otherwise unchanged.
func TestSeriesReach(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	series := adcount.Series{Points: []adcount.Point{
		{Start: start, Count: 5},
		{Start: start.Add(time.Hour), Count: 0, HasUniqueUsers: true},
		{Start: start.Add(2 * time.Hour), Count: 7, UniqueUsers: 3, HasUniqueUsers: true},
	}, AsOf: storetest.Epoch}
	got := getRaw(t, &fixedStore{series: series}, "/api/v1/campaigns/c/timeseries?from=2026-01-05T08:00:00Z&to=2026-01-05T10:00:00Z")
	assert.Equal(t, `{"campaign_id":"c","interval":"hour","from":"2026-01-05T08:00:00.000Z","to":"2026-01-05T10:00:00.000Z","points":[`+
		`{"start":"2026-01-05T08:00:00.000Z","count":5},`+
		`{"start":"2026-01-05T09:00:00.000Z","count":0,"unique_users":0},`+
		`{"start":"2026-01-05T10:00:00.000Z","count":7,"unique_users":3}],"as_of":"2026-01-05T10:00:00.000Z"}`, got)
}
