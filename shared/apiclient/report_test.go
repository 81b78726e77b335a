package apiclient_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/storetest"
)

func ptr[T any](v T) *T { return &v }

// TestClientLifecycle: a campaign's end, pause and creation time travel
// both ways, and an impression refused for a paused or ended campaign
// comes back as the domain's error, alone or in a batch.
func TestClientLifecycle(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.client(t)
	ctx := context.Background()

	end := storetest.Epoch.Add(2*time.Hour + 123456789)
	camp, err := c.CreateUntil(ctx, "Ends", storetest.Epoch, end.In(time.FixedZone("CET", 3600)))
	require.NoError(t, err)
	assert.Equal(t, adcount.Campaign{ID: camp.ID, Name: "Ends", StartTime: storetest.Epoch, EndTime: end, CreatedAt: storetest.Epoch}, camp)

	_, err = c.CreateUntil(ctx, "Backwards", storetest.Epoch, storetest.Epoch.Add(-time.Hour))
	var fe *adcount.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "end_time", fe.Field)

	paused, err := c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{Name: ptr("Paused"), Paused: ptr(true)})
	require.NoError(t, err)
	assert.Equal(t, adcount.Campaign{ID: camp.ID, Name: "Paused", StartTime: storetest.Epoch, EndTime: end, Paused: true, CreatedAt: storetest.Epoch}, paused)
	imp := adcount.Impression{CampaignID: camp.ID, UserID: "u", AdID: "a"}
	_, err = c.RecordImpression(ctx, imp)
	require.ErrorIs(t, err, adcount.ErrPaused)
	res, err := c.RecordImpressions(ctx, []adcount.Impression{imp})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, adcount.ErrPaused)

	// The zero end removes it; an empty patch reads the campaign, as the
	// store contract allows, though the API refuses one.
	resumed, err := c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{Paused: ptr(false), EndTime: ptr(time.Time{})})
	require.NoError(t, err)
	assert.Equal(t, adcount.Campaign{ID: camp.ID, Name: "Paused", StartTime: storetest.Epoch, CreatedAt: storetest.Epoch}, resumed)
	same, err := c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{})
	require.NoError(t, err)
	assert.Equal(t, resumed, same)

	ended, err := c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{EndTime: ptr(storetest.Epoch.Add(time.Minute))})
	require.NoError(t, err)
	s.clock.Advance(time.Minute)
	assert.Equal(t, adcount.StatusEnded, ended.Status(s.clock.Now()))
	_, err = c.RecordImpression(ctx, imp)
	require.ErrorIs(t, err, adcount.ErrEnded)
	res, err = c.RecordImpressions(ctx, []adcount.Impression{imp})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, adcount.ErrEnded)

	// Bad patches are the API's field errors, or the client's for a name
	// JSON cannot carry; an unknown campaign is not found.
	_, err = c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{EndTime: ptr(storetest.Epoch.Add(-time.Hour))})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "end_time", fe.Field)
	_, err = c.UpdateCampaign(ctx, camp.ID, adcount.CampaignPatch{Name: ptr("bad\xff")})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "name", fe.Field)
	_, err = c.UpdateCampaign(ctx, "no-such-campaign", adcount.CampaignPatch{Paused: ptr(true)})
	require.ErrorIs(t, err, adcount.ErrNotFound)
}

// TestClientReports: the list, a series and the per-ad breakdown read
// back through the client as the store answers them, cursors included.
func TestClientReports(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.client(t)
	ctx := context.Background()

	var made []adcount.Campaign
	for _, name := range []string{"First", "Second", "Third"} {
		camp, err := c.Create(ctx, name, storetest.Epoch)
		require.NoError(t, err)
		made = append(made, camp)
		s.clock.Advance(time.Millisecond)
	}
	page, err := c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []adcount.Campaign{made[2], made[1]}, page.Campaigns)
	require.NotNil(t, page.Next)
	assert.Equal(t, adcount.CursorAfter(made[1]), *page.Next)
	page, err = c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 2, After: page.Next})
	require.NoError(t, err)
	assert.Equal(t, []adcount.Campaign{made[0]}, page.Campaigns)
	assert.Nil(t, page.Next)
	_, err = c.UpdateCampaign(ctx, made[1].ID, adcount.CampaignPatch{Paused: ptr(true)})
	require.NoError(t, err)
	page, err = c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 10, Status: adcount.StatusPaused})
	require.NoError(t, err)
	require.Len(t, page.Campaigns, 1)
	assert.Equal(t, made[1].ID, page.Campaigns[0].ID)
	page, err = c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 10, Name: "THIRD"})
	require.NoError(t, err)
	assert.Equal(t, []adcount.Campaign{made[2]}, page.Campaigns, "the name search, whatever the case")
	_, err = c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 0})
	var fe *adcount.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "limit", fe.Field)
	_, err = c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 1, Name: strings.Repeat("n", adcount.MaxNameRunes+1)})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "name", fe.Field)

	id := made[0].ID
	for _, ad := range []string{"a", "a", "b"} {
		_, err := c.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u-" + ad + time.Now().String(), AdID: ad})
		require.NoError(t, err)
	}
	now := s.clock.Now()
	q := adcount.SeriesQuery{From: now.Add(-2 * time.Minute), To: now.Add(time.Nanosecond), Interval: adcount.Minute}
	series, err := c.Series(ctx, id, q)
	require.NoError(t, err)
	assert.False(t, series.AsOf.IsZero())
	assert.Equal(t, []adcount.Point{{Start: adcount.Minute.Start(adcount.Minute.Index(now) - 2)}, {Start: adcount.Minute.Start(adcount.Minute.Index(now) - 1)}, {Start: adcount.Minute.Start(adcount.Minute.Index(now)), Count: 3}}, series.Points)
	q.AdID = "b"
	series, err = c.Series(ctx, id, q)
	require.NoError(t, err)
	assert.Equal(t, int64(1), series.Points[2].Count)
	q.From, q.Interval = now.Add(-48*time.Hour), adcount.Hour
	_, err = c.Series(ctx, id, q)
	require.ErrorAs(t, err, &fe, "finer points than are kept")
	assert.Equal(t, "from", fe.Field)

	ads, err := c.AdStats(ctx, id, adcount.AdQuery{Limit: 1})
	require.NoError(t, err)
	assert.False(t, ads.AsOf.IsZero())
	assert.Equal(t, []adcount.AdStats{{AdID: "a", LastHour: 2, LastDay: 2, Total: 2}}, ads.Ads)
	require.NotNil(t, ads.Next)
	assert.Equal(t, adcount.AdCursor{Total: 2, AdID: "a"}, *ads.Next)
	ads, err = c.AdStats(ctx, id, adcount.AdQuery{Limit: 1, After: ads.Next})
	require.NoError(t, err)
	assert.Equal(t, []adcount.AdStats{{AdID: "b", LastHour: 1, LastDay: 1, Total: 1}}, ads.Ads)
	assert.Nil(t, ads.Next)

	_, err = c.Series(ctx, "no-such-campaign", adcount.SeriesQuery{From: now.Add(-time.Hour), To: now, Interval: adcount.Hour})
	require.ErrorIs(t, err, adcount.ErrNotFound)
	_, err = c.AdStats(ctx, "no-such-campaign", adcount.AdQuery{Limit: 1})
	require.ErrorIs(t, err, adcount.ErrNotFound)
}

// TestClientSendsWhatTheAPIReads: the requests the reporting methods send,
// as a server sees them: every parameter, exactly, and a patch whose
// fields are only those set, a removed end as null.
func TestClientSendsWhatTheAPIReads(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, query, body string
	}
	got := make(chan seen, 1)
	reply := map[string]string{
		"/api/v1/campaigns":              `{"campaigns":[],"next_cursor":null}`,
		"/api/v1/campaigns/c":            `{"id":"c","name":"n","start_time":"2026-01-01T00:00:00Z","paused":false,"status":"active"}`,
		"/api/v1/campaigns/c/timeseries": `{"campaign_id":"c","interval":"minute","from":"x","to":"y","points":[]}`,
		"/api/v1/campaigns/c/ads":        `{"campaign_id":"c","ads":[],"next_cursor":null}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, string(body)}
		_, _ = io.WriteString(w, reply[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	ctx := context.Background()
	after := adcount.CampaignCursor{CreatedAt: storetest.Epoch, ID: "x"}
	adAfter := adcount.AdCursor{Total: 7, AdID: "ad"}
	from := time.Date(2026, 1, 5, 9, 0, 0, 1, time.FixedZone("CET", 3600))
	cases := []struct {
		name string
		call func() error
		want seen
	}{
		{"List", func() error {
			_, err := c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 7, After: &after, Status: adcount.StatusEnded, Now: storetest.Epoch})
			return err
		}, seen{"GET", "/api/v1/campaigns", "cursor=" + adcount.EncodeCursor(after) + "&limit=7&status=ended", ""}},
		{"ListByName", func() error {
			_, err := c.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 7, Name: "Crème & co", Now: storetest.Epoch})
			return err
		}, seen{"GET", "/api/v1/campaigns", "limit=7&name=Cr%C3%A8me+%26+co", ""}},
		{"Patch", func() error {
			_, err := c.UpdateCampaign(ctx, "c", adcount.CampaignPatch{EndTime: ptr(time.Time{}), Paused: ptr(false)})
			return err
		}, seen{"PATCH", "/api/v1/campaigns/c", "", `{"end_time":null,"paused":false}`}},
		{"PatchName", func() error {
			_, err := c.UpdateCampaign(ctx, "c", adcount.CampaignPatch{Name: ptr("N"), EndTime: ptr(from)})
			return err
		}, seen{"PATCH", "/api/v1/campaigns/c", "", `{"name":"N","end_time":"2026-01-05T09:00:00.000000001+01:00"}`}},
		{"Series", func() error {
			_, err := c.Series(ctx, "c", adcount.SeriesQuery{From: from, To: from.Add(time.Hour), Interval: adcount.Minute, AdID: "a b"})
			return err
		}, seen{"GET", "/api/v1/campaigns/c/timeseries", "ad_id=a+b&from=2026-01-05T09%3A00%3A00.000000001%2B01%3A00&interval=minute&to=2026-01-05T10%3A00%3A00.000000001%2B01%3A00", ""}},
		{"Ads", func() error {
			_, err := c.AdStats(ctx, "c", adcount.AdQuery{Limit: 3, After: &adAfter})
			return err
		}, seen{"GET", "/api/v1/campaigns/c/ads", "cursor=" + adcount.EncodeCursor(adAfter) + "&limit=3", ""}},
	}
	for _, tc := range cases {
		require.NoError(t, tc.call(), tc.name)
		s := <-got
		if tc.want.body != "" {
			assert.JSONEq(t, tc.want.body, s.body, tc.name)
			require.True(t, json.Valid([]byte(s.body)))
			s.body = tc.want.body
		}
		assert.Equal(t, tc.want, s, tc.name)
	}
}

// TestClientReadsReach: the stats' unique users, and the unique users of
// the points that carry them, read back into the domain's types; a point
// without the field is one whose reach is not kept, and one with 0 is kept
// and nobody; an answer from an API older than reach reads as no users.
func TestClientReadsReach(t *testing.T) {
	t.Parallel()
	reply := map[string]string{
		"/api/v1/campaigns/c/stats": `{"campaign_id":"c","last_hour":10,"last_day":20,"total":21,"filtered":5,` +
			`"unique_users":{"last_hour":3,"last_day":3,"total":7},"frequency":{"last_hour":3.33,"last_day":6.67,"total":3},"as_of":"2026-01-05T10:00:00.000Z"}`,
		"/api/v1/campaigns/c/timeseries": `{"campaign_id":"c","interval":"hour","from":"2026-01-05T08:00:00.000Z","to":"2026-01-05T10:00:00.000Z","points":[` +
			`{"start":"2026-01-05T08:00:00.000Z","count":5},{"start":"2026-01-05T09:00:00.000Z","count":0,"unique_users":0},` +
			`{"start":"2026-01-05T10:00:00.000Z","count":7,"unique_users":3}],"as_of":"2026-01-05T10:00:00.000Z"}`,
		"/api/v1/campaigns/old/stats": `{"campaign_id":"old","last_hour":1,"last_day":1,"total":1,"filtered":0}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, reply[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	ctx := context.Background()

	stats, err := c.Stats(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, adcount.Stats{CampaignID: "c", LastHour: 10, LastDay: 20, Total: 21, Filtered: 5,
		UniqueUsers: adcount.UniqueUsers{LastHour: 3, LastDay: 3, Total: 7}, AsOf: storetest.Epoch}, stats)
	assert.Equal(t, adcount.Frequency{LastHour: 3.33, LastDay: 6.67, Total: 3}, stats.Frequency(), "the frequency the API answered, derived alike")

	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	series, err := c.Series(ctx, "c", adcount.SeriesQuery{From: start, To: start.Add(2 * time.Hour), Interval: adcount.Hour})
	require.NoError(t, err)
	assert.Equal(t, []adcount.Point{
		{Start: start, Count: 5},
		{Start: start.Add(time.Hour), HasUniqueUsers: true},
		{Start: start.Add(2 * time.Hour), Count: 7, UniqueUsers: 3, HasUniqueUsers: true},
	}, series.Points)

	old, err := c.Stats(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, adcount.Stats{CampaignID: "old", LastHour: 1, LastDay: 1, Total: 1}, old)
}
