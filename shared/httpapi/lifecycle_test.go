package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestCreateCampaignWithLifecycle: a create answers the campaign with its
// end (exact, in UTC), its pause flag, its status at the handler's clock
// and its created_at from that clock, to the millisecond; an end_time is
// refused exactly as a PATCH refuses it, and a field the request does not
// have is refused rather than ignored.
func TestCreateCampaignWithLifecycle(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.clock.Set(storetest.Epoch.Add(1500 * time.Microsecond))
	const created = "2026-01-05T10:00:00.001Z"
	cases := []struct {
		name   string
		body   string
		status int
		want   map[string]any // the answer without its id; the error's message for a 400
	}{
		// An end in another zone is answered in UTC, exactly.
		{"WithEnd", `{"name":"Ends","start_time":"2026-01-01T00:00:00Z","end_time":"2026-02-01T01:00:00.123456789+01:00"}`, 201,
			map[string]any{"name": "Ends", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-02-01T00:00:00.123456789Z", "paused": false, "status": "active", "created_at": created}},
		// Without an end, or with null, end_time is absent.
		{"NoEnd", `{"name":"Runs","start_time":"2026-01-01T00:00:00Z"}`, 201,
			map[string]any{"name": "Runs", "start_time": "2026-01-01T00:00:00Z", "paused": false, "status": "active", "created_at": created}},
		{"NullEnd", `{"name":"Runs","start_time":"2026-01-01T00:00:00Z","end_time":null}`, 201,
			map[string]any{"name": "Runs", "start_time": "2026-01-01T00:00:00Z", "paused": false, "status": "active", "created_at": created}},
		// Status is computed at the handler's clock.
		{"Scheduled", `{"name":"Later","start_time":"2026-01-06T00:00:00Z","end_time":"2026-01-07T00:00:00Z"}`, 201,
			map[string]any{"name": "Later", "start_time": "2026-01-06T00:00:00Z", "end_time": "2026-01-07T00:00:00Z", "paused": false, "status": "scheduled", "created_at": created}},
		{"EndedAlready", `{"name":"Past","start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z"}`, 201,
			map[string]any{"name": "Past", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00Z", "paused": false, "status": "ended", "created_at": created}},
		// The end must come after the start, as Campaign.Apply says.
		{"EndBeforeStart", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":"2026-01-01T00:00:00Z"}`, 400,
			map[string]any{"error": "end_time: must be after start_time (2026-01-02T00:00:00Z)", "code": "invalid"}},
		{"EndAtStart", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":"2026-01-02T00:00:00Z"}`, 400,
			map[string]any{"error": "end_time: must be after start_time (2026-01-02T00:00:00Z)", "code": "invalid"}},
		// The zero time would read as no end; it is out of range.
		{"EndZeroTime", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":"0001-01-01T00:00:00Z"}`, 400,
			map[string]any{"error": "end_time: must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z", "code": "invalid"}},
		{"EndNotATime", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":"tomorrow"}`, 400,
			map[string]any{"error": `end_time: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "tomorrow"`, "code": "invalid"}},
		{"EndNotAString", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":20260103}`, 400,
			map[string]any{"error": "end_time: must be a string or null, got number", "code": "malformed"}},
		// A field the request does not have: a misspelt end is no end.
		{"UnknownField", `{"name":"x","start_time":"2026-01-02T00:00:00Z","endtime":"2026-01-03T00:00:00Z"}`, 400,
			map[string]any{"error": "endtime: is not a field of this request; its fields are name, start_time and end_time", "code": "invalid"}},
		{"LongUnknownField", `{"name":"x","start_time":"2026-01-02T00:00:00Z","` + strings.Repeat("k", 100) + `":1}`, 400,
			map[string]any{"error": "request body has a field this request does not take; its fields are name, start_time and end_time", "code": "malformed"}},
		// Nested objects are a value's business; only the top level is
		// the request's.
		{"UnknownNested", `{"name":"x","start_time":"2026-01-02T00:00:00Z","end_time":{"at":"2026-01-03T00:00:00Z"}}`, 400,
			map[string]any{"error": "end_time: must be a string or null, got object", "code": "malformed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "POST", "/api/v1/campaigns", tc.body)
			require.Equal(t, tc.status, r.status, r.body)
			if tc.status != http.StatusCreated {
				assert.Equal(t, tc.want, r.body)
				return
			}
			id, ok := r.body["id"].(string)
			require.True(t, ok, r.body)
			got := r.body
			delete(got, "id")
			assert.Equal(t, tc.want, got)
			// A read answers the same campaign.
			read := s.do(t, "GET", "/api/v1/campaigns/"+id, "")
			require.Equal(t, http.StatusOK, read.status)
			delete(read.body, "id")
			assert.Equal(t, tc.want, read.body)
		})
	}
}

// TestCampaignStatusFollowsTheClock: the status is computed whenever a
// campaign is read, at the handler's clock, so it moves from scheduled to
// active to ended with no write.
func TestCampaignStatusFollowsTheClock(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	r := s.do(t, "POST", "/api/v1/campaigns", `{"name":"Day","start_time":"2026-01-05T11:00:00Z","end_time":"2026-01-05T12:00:00Z"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	id := r.body["id"].(string)
	for _, step := range []struct {
		at     time.Time
		status string
	}{
		{storetest.Epoch, "scheduled"},
		// Exactly at the start, it is live...
		{time.Date(2026, 1, 5, 11, 0, 0, 0, time.UTC), "active"},
		{time.Date(2026, 1, 5, 11, 59, 59, 999999999, time.UTC), "active"},
		// ...and exactly at the end, it is over.
		{time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC), "ended"},
	} {
		s.clock.Set(step.at)
		got := s.do(t, "GET", "/api/v1/campaigns/"+id, "")
		assert.Equal(t, step.status, got.body["status"], "at %v", step.at)
		assert.Equal(t, "2026-01-05T10:00:00.000Z", got.body["created_at"], "created_at never moves")
	}
}

// TestPatchRefusedBeforeTheStore: a PATCH body that is not a patch is
// refused with a message naming the field, before the store is asked,
// whatever the campaign.
func TestPatchRefusedBeforeTheStore(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	cases := []struct {
		name, body, err, code string
	}{
		// A patch that changes nothing is most likely a mistake.
		{"Empty", `{}`, "the patch changes nothing: send at least one of name, end_time and paused", "malformed"},
		// Misspelt or unknown fields are refused, never ignored.
		{"UnknownField", `{"pause":true}`, "pause: is not a field of this request; its fields are name, end_time and paused", "invalid"},
		{"WrongCase", `{"Paused":true}`, "Paused: field names are case-sensitive; did you mean paused?", "invalid"},
		{"SentTwice", `{"paused":true,"paused":false}`, "paused: is sent more than once; send each field once", "invalid"},
		// null removes only an end; a name or a pause cannot be removed.
		{"NullName", `{"name":null}`, "name: must be a string, got null", "malformed"},
		{"NullPaused", `{"paused":null}`, "paused: must be true or false, got null", "malformed"},
		{"PausedString", `{"paused":"yes"}`, "paused: must be true or false, got string", "malformed"},
		{"NameNumber", `{"name":7}`, "name: must be a string, got number", "malformed"},
		{"EndNumber", `{"end_time":7}`, "end_time: must be a string or null, got number", "malformed"},
		{"EndNotATime", `{"end_time":"soon"}`, `end_time: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "soon"`, "invalid"},
		{"NameNotUTF8", `{"name":"bad` + "\xff" + `"}`, "name: must be valid UTF-8", "invalid"},
		// The body is one JSON object, as every body.
		{"NoBody", ``, "request body is empty; send a JSON object", "malformed"},
		{"Array", `[]`, "request body must be a JSON object, got array", "malformed"},
		{"Trailing", `{"paused":true}{}`, "request body must hold exactly one JSON object", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "PATCH", "/api/v1/campaigns/any", tc.body)
			assert.Equal(t, http.StatusBadRequest, r.status)
			assert.Equal(t, map[string]any{"error": tc.err, "code": tc.code}, r.body)
		})
	}
}

// TestQueryParametersRefused: each query parameter a route reads is
// checked before the store is asked, with a 400 that names it; the
// campaign need not exist.
func TestQueryParametersRefused(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.clock.Set(time.Date(2026, 1, 5, 10, 30, 0, 0, time.UTC))
	const list, series, ads = "/api/v1/campaigns", "/api/v1/campaigns/none/timeseries", "/api/v1/campaigns/none/ads"
	cases := []struct {
		name, path, err, code string
	}{
		// Page sizes are whole numbers from 1 to 500.
		{"LimitZero", list + "?limit=0", "limit: must be from 1 to 500, got 0", "invalid"},
		{"LimitTooLarge", ads + "?limit=501", "limit: must be from 1 to 500, got 501", "invalid"},
		{"LimitNotANumber", list + "?limit=ten", `limit: must be a whole number from 1 to 500, got "ten"`, "invalid"},
		{"LimitFraction", ads + "?limit=1.5", `limit: must be a whole number from 1 to 500, got "1.5"`, "invalid"},
		// A cursor is one the API handed out, for that list.
		{"CursorGarbage", list + "?cursor=not-a-cursor!", "cursor: is not a cursor this API handed out; start again without it", "invalid"},
		{"AdCursorGarbage", ads + "?cursor=@@", "cursor: is not a cursor this API handed out; start again without it", "invalid"},
		{"Status", list + "?status=running", `status: must be one of scheduled, active, paused or ended, got "running"`, "invalid"},
		// A name search is no longer than a name, and valid UTF-8.
		{"NameTooLong", list + "?name=" + strings.Repeat("a", 201), "name: must be from 1 to 200 characters, got 201", "invalid"},
		{"NameNotUTF8", list + "?name=sale%FF", "name: must be valid UTF-8", "invalid"},
		// A parameter sent twice, as a JSON field sent twice.
		{"SentTwice", list + "?limit=1&limit=2", "limit: is sent more than once; send each parameter once", "invalid"},
		{"SentTwiceOnceEmpty", series + "?interval=&interval=day", "interval: is sent more than once; send each parameter once", "invalid"},
		// A query string that is not URL encoding.
		{"BadEscape", list + "?status=%zz", `malformed query string: invalid URL escape "%zz"`, "malformed"},
		{"Semicolon", ads + "?limit=1;cursor=x", "malformed query string: invalid semicolon separator in query", "malformed"},
		// A series' parameters.
		{"Interval", series + "?interval=week", `interval: must be minute, hour or day, got "week"`, "invalid"},
		{"FromNotATime", series + "?from=yesterday", `from: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "yesterday"`, "invalid"},
		{"ToNotATime", series + "?to=2026-01-05", `to: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "2026-01-05"`, "invalid"},
		// A + left unescaped decodes as a space: the message says so.
		{"UnescapedPlus", series + "?to=2026-01-05T10:00:00+01:00", `to: must be an RFC 3339 time such as 2026-01-02T15:04:05Z; in a query string, write the + of an offset as %2B, got "2026-01-05T10:00:00 01:00"`, "invalid"},
		{"FromNotBeforeTo", series + "?from=2026-01-05T10:00:00Z&to=2026-01-05T10:00:00Z", "from: must be before to", "invalid"},
		// At most 1,500 points: 1,501 minutes is one too many.
		{"TooManyPoints", series + "?interval=minute&from=2026-01-04T10:00:00Z&to=2026-01-05T11:01:00Z",
			"to: a series holds at most 1500 points; this one would hold 1501: narrow from and to, or use a wider interval", "invalid"},
		// Finer points than are kept, for the campaign and for one ad.
		{"MinutesPastADay", series + "?interval=minute&from=2026-01-04T10:29:00Z&to=2026-01-04T11:00:00Z",
			"from: minute points of a campaign are kept for 24 hours: from must be at or after 2026-01-04T10:31:00Z; use a wider interval for older points", "invalid"},
		{"AdMinutesPastAnHour", series + "?interval=minute&ad_id=a&from=2026-01-05T09:00:00Z",
			"from: minute points of one ad are kept for 1 hour: from must be at or after 2026-01-05T09:31:00Z; use a wider interval for older points", "invalid"},
		{"AdHoursPastADay", series + "?ad_id=a&from=2026-01-04T09:00:00Z",
			"from: hour points of one ad are kept for 24 hours: from must be at or after 2026-01-04T11:00:00Z; use a wider interval for older points", "invalid"},
		// ad_id follows an impression's rules.
		{"AdIDTooLong", series + "?ad_id=" + strings.Repeat("a", 257), "ad_id: must be at most 256 bytes, got 257", "invalid"},
		{"AdIDNotUTF8", series + "?ad_id=%FF", "ad_id: must be valid UTF-8", "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "GET", tc.path, "")
			assert.Equal(t, http.StatusBadRequest, r.status, r.body)
			assert.Equal(t, map[string]any{"error": tc.err, "code": tc.code}, r.body)
		})
	}
}

// TestQueryParametersAccepted: parameters a route does not read are
// ignored, even malformed ones, as the pixel ignores a cache buster; one
// sent empty is the default. These reach the store, which answers every
// call with ErrNotFound.
func TestQueryParametersAccepted(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(time.Date(2026, 1, 5, 10, 30, 0, 0, time.UTC))
	srv := httptest.NewServer(httpapi.NewHandler(&failingStore{err: adcount.ErrNotFound}, httpapi.WithClock(clock.Now),
		httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	s := &server{Server: srv, clock: clock}
	for _, path := range []string{
		// Another route's parameter, and a cache buster.
		"/api/v1/campaigns/none/ads?interval=week&_=1712345",
		// A malformed pair that is not the route's.
		"/api/v1/campaigns/none/timeseries?x=%zz&y=1;2",
		// Empty is the default: the last 24 hours, by the hour.
		"/api/v1/campaigns/none/timeseries?from=&to=&interval=&ad_id=",
		"/api/v1/campaigns/none/ads?limit=&cursor=",
		// An escaped + in an offset.
		"/api/v1/campaigns/none/timeseries?to=2026-01-05T11:00:00%2B01:00",
		// Day points are kept for ever, and 1,500 points is allowed.
		"/api/v1/campaigns/none/timeseries?interval=day&from=2022-01-01T00:00:00Z&to=2026-02-08T00:00:00Z",
		"/api/v1/campaigns/none/timeseries?from=2025-11-03T23:00:00Z&to=2026-01-05T11:00:00Z",
	} {
		r := s.do(t, "GET", path, "")
		assert.Equal(t, http.StatusNotFound, r.status, "%s: %v", path, r.body)
	}
}

// TestSeriesEchoesItsBounds: a series answers the bounds it applied,
// exactly, so that a client can tell which intervals its points are: the
// default end is now to the millisecond, and a bound sent with more digits
// comes back with them.
func TestSeriesEchoesItsBounds(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.clock.Set(time.Date(2026, 1, 5, 10, 30, 0, 123456789, time.UTC))
	r := s.do(t, "POST", "/api/v1/campaigns", `{"name":"Series","start_time":"2026-01-01T00:00:00Z"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	id := r.body["id"].(string)
	cases := []struct {
		name, query, from, to string
	}{
		// The default: the 24 hours up to now, to the millisecond.
		{"Default", "", "2026-01-04T10:30:00.123Z", "2026-01-05T10:30:00.123Z"},
		// Sent bounds in another zone come back in UTC.
		{"Sent", "?from=2026-01-05T09:00:00%2B01:00&to=2026-01-05T10:00:00Z", "2026-01-05T08:00:00.000Z", "2026-01-05T10:00:00.000Z"},
		// A nanosecond past an interval's start keeps that interval.
		{"Nanoseconds", "?interval=minute&from=2026-01-05T10:00:00Z&to=2026-01-05T10:01:00.000000001Z", "2026-01-05T10:00:00.000Z", "2026-01-05T10:01:00.000000001Z"},
		// Without from, a series starts no earlier than the oldest point
		// kept, so that asking for the defaults never earns a 400 off
		// the hour: a day of minutes starts at the oldest minute kept,
		// an ad's hours at its oldest hour, its minutes an hour back.
		{"DefaultMinutes", "?interval=minute", "2026-01-04T10:31:00.000Z", "2026-01-05T10:30:00.123Z"},
		{"DefaultAdHours", "?ad_id=a", "2026-01-04T11:00:00.000Z", "2026-01-05T10:30:00.123Z"},
		{"DefaultAdMinutes", "?ad_id=a&interval=minute", "2026-01-05T09:31:00.000Z", "2026-01-05T10:30:00.123Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/api/v1/campaigns/"+id+"/timeseries"+tc.query, "")
			require.Equal(t, http.StatusOK, r.status, r.body)
			assert.Equal(t, tc.from, r.body["from"])
			assert.Equal(t, tc.to, r.body["to"])
		})
	}
}

// TestListSearchesByName: name keeps the campaigns whose name holds it,
// whatever the case, together with status; the text is URL-decoded, so a
// space or a non-ASCII letter arrives as sent, and a search as long as a
// name may be is taken.
func TestListSearchesByName(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ids := map[string]string{}
	for _, name := range []string{"Summer sale", "WINTER SALE", "Crème brûlée", "Launch"} {
		r := s.do(t, "POST", "/api/v1/campaigns", `{"name":"`+name+`","start_time":"2026-01-01T00:00:00Z"}`)
		require.Equal(t, http.StatusCreated, r.status, r.body)
		ids[name] = r.body["id"].(string)
		s.clock.Advance(time.Millisecond)
	}
	r := s.do(t, "PATCH", "/api/v1/campaigns/"+ids["Summer sale"], `{"paused":true}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	cases := []struct {
		name, query string
		want        []string
	}{
		{"AnyCase", "?name=Sale", []string{"WINTER SALE", "Summer sale"}},
		{"EscapedSpace", "?name=r%20s", []string{"WINTER SALE", "Summer sale"}},
		{"PlusIsASpace", "?name=r+SALE", []string{"WINTER SALE", "Summer sale"}},
		{"NonASCII", "?name=" + url.QueryEscape("CRÈME"), []string{"Crème brûlée"}},
		{"WithStatus", "?name=sale&status=active", []string{"WINTER SALE"}},
		{"NoMatch", "?name=autumn", []string{}},
		// Empty is no search, as every parameter sent empty.
		{"Empty", "?name=", []string{"Launch", "Crème brûlée", "WINTER SALE", "Summer sale"}},
		{"AsLongAsAName", "?name=" + strings.Repeat("%C3%A9", adcount.MaxNameRunes), []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.do(t, "GET", "/api/v1/campaigns"+tc.query, "")
			require.Equal(t, http.StatusOK, r.status, r.body)
			got := []string{}
			for _, c := range r.body["campaigns"].([]any) {
				got = append(got, c.(map[string]any)["name"].(string))
			}
			assert.Equal(t, tc.want, got)
			assert.Nil(t, r.body["next_cursor"])
		})
	}
}
