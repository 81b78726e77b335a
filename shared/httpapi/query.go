package httpapi

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// The query parameters of the routes that read any, as the route table
// lists them (Route.Query): the contract test compares them with
// docs/openapi.yaml, and each handler reads its own through readQuery, so
// the three cannot drift apart.
var (
	pixelQuery         = []string{"campaign_id", "user_id", "ad_id"}
	listCampaignsQuery = []string{"limit", "cursor", "status", "name"}
	seriesQuery        = []string{"from", "to", "interval", "ad_id"}
	adStatsQuery       = []string{"limit", "cursor"}
)

// query is the parameters of one request that its route reads, by name.
// A parameter sent empty is the same as one not sent, so that a form or a
// URL template with a blank field asks for the default.
type query map[string]string

// get returns the parameter's value, "" when it was not sent.
func (q query) get(name string) string { return q[name] }

// readQuery reads from rawQuery the parameters named in names, which are
// a route's Query. Other parameters are ignored, as the pixel ignores a
// cache buster: a proxy, a dashboard or a cache buster may add its own,
// and every answer echoes what it was asked for (a series its interval,
// ad_id and bounds), so a misspelt parameter shows. One of names sent
// more than once is refused, as a JSON field sent twice is, and so is one
// that is not valid URL encoding.
func readQuery(rawQuery string, names []string) (query, error) {
	q := query{}
	// The pairs are split as url.ParseQuery splits them, but an error in
	// a pair that is not the route's is no error of the request.
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil || !slices.Contains(names, name) {
			continue
		}
		if strings.Contains(pair, ";") {
			return nil, badRequest("malformed query string: invalid semicolon separator in query")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, badRequest("malformed query string: " + err.Error())
		}
		if _, seen := q[name]; seen {
			return nil, &adcount.FieldError{Field: name, Message: "is sent more than once; send each parameter once"}
		}
		q[name] = value
	}
	for name, v := range q {
		if v == "" {
			delete(q, name)
		}
	}
	return q, nil
}

// pageLimit reads a page size: adcount.DefaultPageLimit when not sent,
// else a whole number that adcount.CheckPageLimit accepts.
func (q query) pageLimit() (int, error) {
	v := q.get("limit")
	if v == "" {
		return adcount.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &adcount.FieldError{Field: "limit", Message: "must be a whole number from 1 to " + strconv.Itoa(adcount.MaxPageLimit) + ", got " + quoteShort(v)}
	}
	if err := adcount.CheckPageLimit(n); err != nil {
		return 0, err
	}
	return n, nil
}

// cursor reads the cursor parameter, nil when not sent.
func cursor[C adcount.CampaignCursor | adcount.AdCursor](q query) (*C, error) {
	v := q.get("cursor")
	if v == "" {
		return nil, nil
	}
	c, err := adcount.DecodeCursor[C](v)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// encodeCursor is a page's next_cursor: null on the last page.
func encodeCursor[C adcount.CampaignCursor | adcount.AdCursor](c *C) *string {
	if c == nil {
		return nil
	}
	s := adcount.EncodeCursor(*c)
	return &s
}

// timeOr reads an RFC 3339 time parameter, or returns def when it was not
// sent.
func (q query) timeOr(name string, def time.Time) (time.Time, error) {
	v := q.get(name)
	if v == "" {
		return def, nil
	}
	return parseTime(name, v)
}

// parseTime reads an RFC 3339 time sent in field, refusing an offset
// beyond ±23:59, which RFC 3339 does not allow but Go's parser accepts.
// A time with a space where its offset's + belongs names the likely
// cause: a + left unescaped in a query string, which decodes as a space.
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if _, offset := t.Zone(); err != nil || offset <= -24*3600 || offset >= 24*3600 {
		msg := "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"
		if strings.Contains(s, " ") {
			msg += "; in a query string, write the + of an offset as %2B"
		}
		return time.Time{}, &adcount.FieldError{Field: field, Message: msg + ", got " + quoteShort(s)}
	}
	return t, nil
}

// quoteShort quotes what a client sent, for an error message that shows
// it, cut to its first 64 bytes: enough to see the mistake, too little to
// make the answer large.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}
