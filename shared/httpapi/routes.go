package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Route patterns, in net/http ServeMux syntax. routeTable below says who may
// call each and which handler serves it.
const (
	RouteCreateCampaign      = "POST /api/v1/campaigns"
	RouteListCampaigns       = "GET /api/v1/campaigns"
	RouteGetCampaign         = "GET /api/v1/campaigns/{id}"
	RouteUpdateCampaign      = "PATCH /api/v1/campaigns/{id}"
	RouteRecordImpression    = "POST /api/v1/impressions"
	RoutePreflightImpression = "OPTIONS /api/v1/impressions"
	RouteRecordBatch         = "POST /api/v1/impressions/batch"
	RoutePreflightBatch      = "OPTIONS /api/v1/impressions/batch"
	RoutePixel               = "GET /api/v1/pixel.gif"
	RouteGetStats            = "GET /api/v1/campaigns/{id}/stats"
	RouteGetSeries           = "GET /api/v1/campaigns/{id}/timeseries"
	RouteGetAdStats          = "GET /api/v1/campaigns/{id}/ads"
)

// Operations routes, served only with WithOperations: for the people and
// systems that run a long-lived server, not for API clients.
const (
	RouteHealth  = "GET /healthz"
	RouteReady   = "GET /readyz"
	RouteMetrics = "GET /metrics"
	RouteOpenAPI = "GET /api/v1/openapi.yaml"
)

// Dashboard routes, served only with WithDashboard: the page and the
// files it loads.
const (
	RouteDashboard     = "GET /dashboard"
	RouteDashboardFile = "GET /dashboard/{file...}"
)

// routeUnmatched is the router's catch-all: every request that no route
// takes, answered with a JSON 404 or 405.
const routeUnmatched = "/"

// Access says who may call a route.
type Access int

const (
	// Admin routes need an admin key (see WithAdminKeys) and send no CORS
	// headers, so browsers on other sites cannot read them. The zero
	// Access is no class at all, so that the router's catch-all, which
	// belongs to none, never asks for a key.
	Admin Access = iota + 1
	// Ingest routes are open to anyone, from any origin: ad tags run in
	// browsers, where no secret can be kept. Every response on their path
	// carries Access-Control-Allow-Origin: *.
	Ingest
	// Operations routes serve the people and systems that run a long-lived
	// server; only WithOperations adds them.
	Operations
	// Dashboard routes serve the dashboard's page and files to anyone,
	// with no admin key and no CORS headers: the files are the same for
	// everyone and hold no data. The page asks for the admin key and
	// sends it with each API call it makes, which the admin routes check
	// as any client's. Only WithDashboard adds them.
	Dashboard
)

// String names the access class.
func (c Access) String() string {
	switch c {
	case Admin:
		return "admin"
	case Ingest:
		return "ingest"
	case Operations:
		return "operations"
	case Dashboard:
		return "dashboard"
	}
	return "Access(" + strconv.Itoa(int(c)) + ")"
}

// Route is one entry of the route table as callers outside the package
// see it: a pattern and who may call it.
type Route struct {
	// Pattern is in net/http ServeMux syntax, such as
	// "GET /api/v1/campaigns/{id}".
	Pattern string
	Access  Access
	// Query names the query parameters the route reads; it ignores any
	// other.
	Query []string
}

// route is one entry of the route table: the pattern, the access class,
// and the handler's constructor.
type route struct {
	Route
	// impressions marks a route whose requests carry impressions: a
	// request that fails is a rejected impression.
	impressions bool
	handler     func(*api) endpoint
	// fail answers the route's errors; nil is the API's JSON error (see
	// fail in errors.go). The pixel answers its errors with the image.
	fail func(w http.ResponseWriter, err error, p problem)
}

// routeTable is the API's whole surface, and the only list of routes: the
// router's registrations, Routes, OperationsRoutes and the tests that
// compare the OpenAPI contract and the SAM template with the handler are
// all derived from it. A new route is one entry here plus its handler.
var routeTable = []route{
	{Route: Route{Pattern: RouteCreateCampaign, Access: Admin}, handler: (*api).handleCreateCampaign},
	{Route: Route{Pattern: RouteListCampaigns, Access: Admin, Query: listCampaignsQuery}, handler: (*api).handleListCampaigns},
	{Route: Route{Pattern: RouteGetCampaign, Access: Admin}, handler: (*api).handleGetCampaign},
	{Route: Route{Pattern: RouteUpdateCampaign, Access: Admin}, handler: (*api).handleUpdateCampaign},
	{Route: Route{Pattern: RouteRecordImpression, Access: Ingest}, impressions: true, handler: (*api).handleRecordImpression},
	{Route: Route{Pattern: RoutePreflightImpression, Access: Ingest}, handler: handlePreflight},
	{Route: Route{Pattern: RouteRecordBatch, Access: Ingest}, impressions: true, handler: (*api).handleRecordBatch},
	{Route: Route{Pattern: RoutePreflightBatch, Access: Ingest}, handler: handlePreflight},
	{Route: Route{Pattern: RoutePixel, Access: Ingest, Query: pixelQuery}, impressions: true, handler: (*api).handlePixel, fail: failPixel},
	{Route: Route{Pattern: RouteGetStats, Access: Admin}, handler: (*api).handleGetStats},
	{Route: Route{Pattern: RouteGetSeries, Access: Admin, Query: seriesQuery}, handler: (*api).handleGetSeries},
	{Route: Route{Pattern: RouteGetAdStats, Access: Admin, Query: adStatsQuery}, handler: (*api).handleGetAdStats},
	{Route: Route{Pattern: RouteHealth, Access: Operations}, handler: handleHealth},
	{Route: Route{Pattern: RouteReady, Access: Operations}, handler: (*api).handleReady},
	{Route: Route{Pattern: RouteMetrics, Access: Operations}, handler: (*api).handleMetrics},
	{Route: Route{Pattern: RouteOpenAPI, Access: Operations}, handler: (*api).handleOpenAPI},
	{Route: Route{Pattern: RouteDashboard, Access: Dashboard}, handler: (*api).handleDashboard},
	{Route: Route{Pattern: RouteDashboardFile, Access: Dashboard}, handler: (*api).handleDashboardFile},
}

// Table returns every route of the table, operations routes included, in
// the table's order.
func Table() []Route {
	routes := make([]Route, len(routeTable))
	for i, rt := range routeTable {
		routes[i] = rt.Route
		routes[i].Query = slices.Clone(rt.Query)
	}
	return routes
}

// patterns returns the patterns of the routes whose access class keep
// accepts.
func patterns(keep func(Access) bool) []string {
	var ps []string
	for _, rt := range routeTable {
		if keep(rt.Access) {
			ps = append(ps, rt.Pattern)
		}
	}
	return ps
}

// Routes returns every route pattern that a Lambda function serves behind
// API Gateway: all but the operations routes, so the dashboard's too.
func Routes() []string {
	return patterns(func(c Access) bool { return c != Operations })
}

// OperationsRoutes returns the route patterns that WithOperations adds.
func OperationsRoutes() []string {
	return patterns(func(c Access) bool { return c == Operations })
}

func newUUID() string { return uuid.NewString() }

type campaignRequest struct {
	Name      string `json:"name"`
	StartTime string `json:"start_time"`
	// EndTime is optional; absent or null, the campaign has no end.
	EndTime json.RawMessage `json:"end_time"`
}

var campaignFields = jsonFields[campaignRequest]()

// campaignResponse is a campaign as every answer shows it. The start and
// end are exact, in UTC, as they were set, so that they round-trip;
// created_at, which the server stamps, is to the millisecond like every
// other time the server reads off its clock, and is kept so.
type campaignResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	StartTime string `json:"start_time"`
	// EndTime is absent for a campaign without an end.
	EndTime string         `json:"end_time,omitempty"`
	Paused  bool           `json:"paused"`
	Status  adcount.Status `json:"status"`
	// CreatedAt is absent for a campaign created before it was kept.
	CreatedAt string `json:"created_at,omitempty"`
}

// newCampaignResponse shows c with its status at now.
func newCampaignResponse(c adcount.Campaign, now time.Time) campaignResponse {
	out := campaignResponse{
		ID:        c.ID,
		Name:      c.Name,
		StartTime: c.StartTime.UTC().Format(time.RFC3339Nano),
		Paused:    c.Paused,
		Status:    c.Status(now),
		CreatedAt: millis(c.CreatedAt),
	}
	if !c.EndTime.IsZero() {
		out.EndTime = c.EndTime.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// handleCreateCampaign serves POST /api/v1/campaigns: it registers a
// campaign under a new random ID, created now by the handler's clock, and
// answers 201 with it. An end_time is checked as a PATCH checks it
// (adcount.Campaign.Apply), so that both refuse the same ends.
func (a *api) handleCreateCampaign() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		var req campaignRequest
		if err := decodeStrict(w, r, &req, campaignFields); err != nil {
			return response{}, err
		}
		var start time.Time
		if req.StartTime != "" {
			var err error
			if start, err = parseTime("start_time", req.StartTime); err != nil {
				return response{}, err
			}
		}
		c, err := adcount.NewCampaign(a.newID(), req.Name, start)
		if err != nil {
			return response{}, err
		}
		end, err := parseEndTime(req.EndTime)
		if err != nil {
			return response{}, err
		}
		if end != nil && !end.IsZero() {
			if c, err = c.Apply(adcount.CampaignPatch{EndTime: end}); err != nil {
				return response{}, err
			}
		}
		// Kept to the millisecond, as the API shows it, so that what a
		// client reads is exactly what the list orders by.
		now := a.now()
		c.CreatedAt = now.UTC().Truncate(time.Millisecond)
		if err := a.store.CreateCampaign(r.Context(), c); err != nil {
			return response{}, err
		}
		w.Header().Set("Location", "/api/v1/campaigns/"+c.ID)
		return response{status: http.StatusCreated, body: newCampaignResponse(c, now)}, nil
	}
}

// parseEndTime reads an end_time field: nil when absent, a pointer to the
// zero time for null (no end), else the time. The zero time itself,
// 0001-01-01T00:00:00Z, is refused, since it would read as null; it is
// outside the range Apply allows anyway.
func parseEndTime(raw json.RawMessage) (*time.Time, error) {
	if raw == nil {
		return nil, nil
	}
	if string(raw) == "null" {
		return &time.Time{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, badRequest("end_time: must be a string or null, got " + jsonKind(raw))
	}
	end, err := parseTime("end_time", s)
	if err != nil {
		return nil, err
	}
	if end.IsZero() {
		return nil, &adcount.FieldError{Field: "end_time", Message: "must be between " + adcount.MinStartTime.Format(time.RFC3339) + " and " + adcount.MaxStartTime.Format(time.RFC3339)}
	}
	return &end, nil
}

// handleListCampaigns serves GET
// /api/v1/campaigns?limit=&cursor=&status=&name=: one page of the
// campaigns, newest first, each with its status now, and the cursor of
// the next page. The status filter is evaluated at the same now; name
// keeps the campaigns whose name holds it, whatever the case
// (adcount.NameMatches). A filtered page may be short, or empty, with a
// next_cursor, when the store bounds what one call reads.
func (a *api) handleListCampaigns() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		q, err := readQuery(r.URL.RawQuery, listCampaignsQuery)
		if err != nil {
			return response{}, err
		}
		cq := adcount.CampaignQuery{Now: a.now()}
		if cq.Limit, err = q.pageLimit(); err != nil {
			return response{}, err
		}
		if cq.After, err = cursor[adcount.CampaignCursor](q); err != nil {
			return response{}, err
		}
		if v := q.get("status"); v != "" {
			if cq.Status, err = adcount.ParseStatus(v); err != nil {
				return response{}, err
			}
		}
		if v := q.get("name"); v != "" {
			if err := adcount.CheckNameSearch(v); err != nil {
				return response{}, err
			}
			cq.Name = v
		}
		page, err := a.store.ListCampaigns(r.Context(), cq)
		if err != nil {
			return response{}, err
		}
		out := campaignListResponse{Campaigns: make([]campaignResponse, 0, len(page.Campaigns)), NextCursor: encodeCursor(page.Next)}
		for _, c := range page.Campaigns {
			out.Campaigns = append(out.Campaigns, newCampaignResponse(c, cq.Now))
		}
		return response{status: http.StatusOK, body: out}, nil
	}
}

type campaignListResponse struct {
	Campaigns  []campaignResponse `json:"campaigns"`
	NextCursor *string            `json:"next_cursor"`
}

// handleGetCampaign serves GET /api/v1/campaigns/{id}.
func (a *api) handleGetCampaign() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		c, err := a.store.Campaign(r.Context(), r.PathValue("id"))
		if err != nil {
			return response{}, err
		}
		return response{status: http.StatusOK, body: newCampaignResponse(c, a.now())}, nil
	}
}

// patchRequest is a PATCH body. Each field is kept raw, so that a field
// sent as null is told from one not sent: null removes an end, and is no
// name and no pause.
type patchRequest struct {
	Name    json.RawMessage `json:"name"`
	EndTime json.RawMessage `json:"end_time"`
	Paused  json.RawMessage `json:"paused"`
}

var patchFields = jsonFields[patchRequest]()

// handleUpdateCampaign serves PATCH /api/v1/campaigns/{id}: it renames
// the campaign, sets or removes (null) its end, pauses or resumes it, and
// answers 200 with the campaign as changed. The store applies the patch
// with adcount.Campaign.Apply, which validates as create does; a bad
// patch changes nothing. A patch that changes nothing is refused, since it
// is most likely a mistake, such as a misspelt field.
func (a *api) handleUpdateCampaign() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		var req patchRequest
		if err := decodeStrict(w, r, &req, patchFields); err != nil {
			return response{}, err
		}
		var p adcount.CampaignPatch
		if req.Name != nil {
			var name string
			if err := json.Unmarshal(req.Name, &name); err != nil || string(req.Name) == "null" {
				return response{}, badRequest("name: must be a string, got " + jsonKind(req.Name))
			}
			p.Name = &name
		}
		var err error
		if p.EndTime, err = parseEndTime(req.EndTime); err != nil {
			return response{}, err
		}
		if req.Paused != nil {
			var paused bool
			if err := json.Unmarshal(req.Paused, &paused); err != nil || string(req.Paused) == "null" {
				return response{}, badRequest("paused: must be true or false, got " + jsonKind(req.Paused))
			}
			p.Paused = &paused
		}
		if p.Empty() {
			return response{}, badRequest("the patch changes nothing: send at least one of " + fieldList(patchFields))
		}
		c, err := a.store.UpdateCampaign(r.Context(), r.PathValue("id"), p)
		if err != nil {
			return response{}, err
		}
		return response{status: http.StatusOK, body: newCampaignResponse(c, a.now())}, nil
	}
}

// jsonKind names the kind of a JSON value a client sent, for a message
// that says what was expected instead.
func jsonKind(raw json.RawMessage) string {
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == '"':
		return "string"
	case raw[0] == '{':
		return "object"
	case raw[0] == '[':
		return "array"
	case raw[0] == 't' || raw[0] == 'f':
		return "boolean"
	case raw[0] == 'n':
		return "null"
	}
	return "number"
}

type impressionRequest struct {
	CampaignID string `json:"campaign_id"`
	UserID     string `json:"user_id"`
	AdID       string `json:"ad_id"`
	// UserAgent, when sent, is judged instead of the request's
	// User-Agent header; null is the same as not sent.
	UserAgent *string `json:"user_agent"`
}

var impressionFields = jsonFields[impressionRequest]()

type impressionResponse struct {
	Message string `json:"message"`
	Counted bool   `json:"counted"`
	Outcome string `json:"outcome"`
}

// Replies to a recorded impression, encoded by hand once, as json.Marshal
// of an impressionResponse would (a test checks): they are the hot path's
// every answer. All are 200: a duplicate or a filtered impression is a
// normal, successful outcome that a client must not retry.
var (
	countedReply   = []byte(`{"message":"Impression saved successfully","counted":true,"outcome":"counted"}` + "\n")
	duplicateReply = []byte(`{"message":"Duplicate impression ignored: this campaign, user and ad were already counted within the dedup window","counted":false,"outcome":"duplicate"}` + "\n")
	filteredReply  = []byte(`{"message":"Impression filtered as invalid traffic: the User-Agent is a known bot or crawler, so it is not counted","counted":false,"outcome":"filtered"}` + "\n")
)

// judge reports whether an impression seen with this User-Agent is
// invalid traffic, by the filter WithBotFilter set.
func (a *api) judge(userAgent string) bool {
	return a.isBot != nil && a.isBot(userAgent)
}

// recorded is what a request that carried one impression, recorded with
// outcome o, counts; an outcome no store answers is an error.
func recorded(o adcount.Outcome) (Impressions, error) {
	switch o {
	case adcount.Counted:
		return Impressions{Counted: 1}, nil
	case adcount.Duplicate:
		return Impressions{Duplicate: 1}, nil
	case adcount.Filtered:
		return Impressions{Filtered: 1}, nil
	}
	return Impressions{}, fmt.Errorf("record impression: the store answered %v, which is no outcome", o)
}

// handleRecordImpression serves POST /api/v1/impressions. It answers 200
// only once the store has recorded the outcome; the body says whether the
// impression counted, was a duplicate or was filtered as invalid traffic.
// The User-Agent judged is the body's user_agent if sent, else the
// request's header. The store validates the impression (every store
// returns ErrInvalid, with a FieldError, for an invalid one), so the
// handler does not check it twice.
func (a *api) handleRecordImpression() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		it, err := a.readImpression(w, r)
		if err != nil {
			return response{}, err
		}
		imp := it.imp
		if a.isBot != nil {
			ua := it.userAgent
			if !it.hasUserAgent {
				ua = r.Header.Get("User-Agent")
			}
			imp.Filtered = a.isBot(ua)
		}
		outcome, err := a.store.RecordImpression(r.Context(), imp)
		if err != nil {
			return response{}, err
		}
		n, err := recorded(outcome)
		if err != nil {
			return response{}, err
		}
		reply := countedReply
		switch outcome {
		case adcount.Duplicate:
			reply = duplicateReply
		case adcount.Filtered:
			reply = filteredReply
		}
		return response{status: http.StatusOK, encoded: reply, impressions: n}, nil
	}
}

// MaxBatchBodyBytes is the largest body of a batch: a full batch of
// MaxBatch ordinary impressions takes a small fraction of it. Only the
// batch route takes more than MaxBodyBytes.
const MaxBatchBodyBytes = 1 << 20

// handleRecordBatch serves POST /api/v1/impressions/batch: up to
// adcount.MaxBatch impressions in one request, recorded in one store call,
// each answered in order exactly as the single route would answer it
// alone (a bad item fails only its own result). A body that is not JSON,
// or not a batch, is refused whole with 400; too many items or too large a
// body with 413. A store failure fails the whole batch with 503, and the
// same batch may be sent again: nothing counts twice.
//
// Each item is judged by its own user_agent field only, never by the
// request's header, which is the ad server's; an item without one is not
// judged.
func (a *api) handleRecordBatch() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		sc := batchScratches.Get().(*batchScratch)
		defer sc.release()
		if _, err := sc.body.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBatchBodyBytes)); err != nil {
			return response{}, decodeError(err)
		}
		items, err := parseBatch(sc.body.Bytes(), adcount.MaxBatch, sc.items)
		if err != nil {
			return response{}, err
		}
		sc.items = items
		imps := make([]adcount.Impression, 0, len(items))
		for i := range items {
			it := &items[i]
			if it.err != nil {
				continue
			}
			it.imp.Filtered = it.hasUserAgent && a.judge(it.userAgent)
			imps = append(imps, it.imp)
		}
		if len(imps) > 0 {
			results, err := a.store.RecordImpressions(r.Context(), imps)
			if err == nil && len(results) != len(imps) {
				err = fmt.Errorf("record batch: the store answered %d results for %d impressions", len(results), len(imps))
			}
			if err != nil {
				return response{items: len(items)}, err
			}
			if err := mergeResults(items, results); err != nil {
				return response{items: len(items)}, err
			}
		}
		reply, n := encodeBatchReply(items)
		return response{status: http.StatusOK, encoded: reply, impressions: n}, nil
	}
}

// handlePixel serves GET /api/v1/pixel.gif?campaign_id=&user_id=&ad_id=,
// the tracking pixel an ad creative loads as an image. It always answers
// the 1x1 transparent GIF, so that a page never shows a broken image,
// with Cache-Control: no-store, so that no cache swallows an impression,
// and X-Impression-Outcome saying what became of it. The status is the
// single route's: 200 when recorded, 400, 404 or 409 when refused (with
// X-Impression-Error naming the code), 503 with Retry-After when the store
// failed; see failPixel. The User-Agent judged is the request's header.
// A HEAD request gets the headers of the image and records nothing.
func (a *api) handlePixel() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		if r.Method == http.MethodHead {
			setPixelHeaders(w.Header())
			return response{status: http.StatusOK, encoded: pixelGIF, contentType: pixelType}, nil
		}
		imp, err := pixelImpression(r.URL.RawQuery)
		if err != nil {
			return response{}, err
		}
		if a.isBot != nil {
			imp.Filtered = a.isBot(r.Header.Get("User-Agent"))
		}
		outcome, err := a.store.RecordImpression(r.Context(), imp)
		if err != nil {
			return response{}, err
		}
		n, err := recorded(outcome)
		if err != nil {
			return response{}, err
		}
		h := w.Header()
		setPixelHeaders(h)
		h.Set(OutcomeHeader, outcome.String())
		return response{status: http.StatusOK, encoded: pixelGIF, contentType: pixelType, impressions: n}, nil
	}
}

// handlePreflight answers a browser's CORS preflight for a cross-origin
// POST with a JSON body. Browsers may cache the answer for a day.
func handlePreflight(*api) endpoint {
	return func(w http.ResponseWriter, _ *http.Request) (response, error) {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		return response{status: http.StatusNoContent}, nil
	}
}

type statsResponse struct {
	CampaignID string `json:"campaign_id"`
	LastHour   int64  `json:"last_hour"`
	LastDay    int64  `json:"last_day"`
	Total      int64  `json:"total"`
	Filtered   int64  `json:"filtered"`
	// UniqueUsers and Frequency are the campaign's reach per window
	// (adcount.Reach), always present: 0 users, and a frequency of 0,
	// for a window nobody was counted in.
	UniqueUsers uniqueUsersResponse `json:"unique_users"`
	Frequency   frequencyResponse   `json:"frequency"`
	// AsOf is absent when the store cannot tell, such as a DynamoDB
	// table whose aggregator has not run yet.
	AsOf string `json:"as_of,omitempty"`
}

type uniqueUsersResponse struct {
	LastHour int64 `json:"last_hour"`
	LastDay  int64 `json:"last_day"`
	Total    int64 `json:"total"`
}

type frequencyResponse struct {
	LastHour float64 `json:"last_hour"`
	LastDay  float64 `json:"last_day"`
	Total    float64 `json:"total"`
}

// millis formats a time the server reads off a clock (as_of, created_at,
// a series' points) for an answer: UTC, to the millisecond, or empty for
// the zero time.
func millis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// exactMillis formats a time as millis does when it is a whole number of
// milliseconds, and with every digit it has otherwise: a series' bounds
// are echoed exactly, since which points the series holds depends on them.
func exactMillis(t time.Time) string {
	if t.Equal(t.Truncate(time.Millisecond)) {
		return millis(t)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// handleGetStats serves GET /api/v1/campaigns/{id}/stats: the counts per
// window, then the unique users per window and the frequency the API
// derives from the two (adcount.Stats.Frequency), so that every client
// rounds it alike.
func (a *api) handleGetStats() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		s, err := a.store.Stats(r.Context(), r.PathValue("id"))
		if err != nil {
			return response{}, err
		}
		f := s.Frequency()
		return response{status: http.StatusOK, body: statsResponse{CampaignID: s.CampaignID, LastHour: s.LastHour, LastDay: s.LastDay, Total: s.Total, Filtered: s.Filtered,
			UniqueUsers: uniqueUsersResponse{LastHour: s.UniqueUsers.LastHour, LastDay: s.UniqueUsers.LastDay, Total: s.UniqueUsers.Total},
			Frequency:   frequencyResponse{LastHour: f.LastHour, LastDay: f.LastDay, Total: f.Total},
			AsOf:        millis(s.AsOf)}}, nil
	}
}

type seriesResponse struct {
	CampaignID string           `json:"campaign_id"`
	Interval   adcount.Interval `json:"interval"`
	From       string           `json:"from"`
	To         string           `json:"to"`
	AdID       string           `json:"ad_id,omitempty"`
	Points     []pointResponse  `json:"points"`
	AsOf       string           `json:"as_of,omitempty"`
}

type pointResponse struct {
	Start string `json:"start"`
	Count int64  `json:"count"`
	// UniqueUsers is present only on the points whose reach the store
	// keeps (adcount.ReachKept), where 0 means nobody: a point without it
	// is one whose reach is not known, not one without users. It points
	// into the store's answer, so that a series costs no allocation per
	// point.
	UniqueUsers *int64 `json:"unique_users,omitempty"`
}

// handleGetSeries serves GET
// /api/v1/campaigns/{id}/timeseries?from=&to=&interval=&ad_id=: the
// campaign's counted impressions, or one ad's, per minute, hour (the
// default) or day, one point for each interval that holds a moment of
// [from, to), zeros included. to defaults to now and from to 24 hours
// before to, or the oldest point kept if that is later
// (adcount.DefaultFrom). adcount.SeriesQuery.Check refuses, with a message naming the
// limit, a series of more than adcount.MaxSeriesPoints points or one that
// reaches back past what the store keeps of that interval. A campaign's
// hour and day points carry unique_users where the store keeps their reach
// (adcount.ReachKept): minute points and one ad's points never do.
func (a *api) handleGetSeries() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		q, err := readQuery(r.URL.RawQuery, seriesQuery)
		if err != nil {
			return response{}, err
		}
		// The default end is now to the millisecond, so that the bounds
		// the answer echoes are exactly the ones the points are of.
		now := a.now()
		sq := adcount.SeriesQuery{Interval: adcount.Hour, AdID: q.get("ad_id")}
		if sq.To, err = q.timeOr("to", now.Truncate(time.Millisecond)); err != nil {
			return response{}, err
		}
		if v := q.get("interval"); v != "" {
			if sq.Interval, err = adcount.ParseInterval(v); err != nil {
				return response{}, err
			}
		}
		if sq.From, err = q.timeOr("from", adcount.DefaultFrom(sq.To, now, sq.Interval, sq.AdID != "")); err != nil {
			return response{}, err
		}
		if sq.AdID != "" {
			// The same rule as an impression's ad_id, which names it.
			if err := (adcount.Impression{CampaignID: "c", UserID: "u", AdID: sq.AdID}).Validate(); err != nil {
				return response{}, err
			}
		}
		if err := sq.Check(now); err != nil {
			return response{}, err
		}
		id := r.PathValue("id")
		series, err := a.store.Series(r.Context(), id, sq)
		if err != nil {
			return response{}, err
		}
		out := seriesResponse{CampaignID: id, Interval: sq.Interval, From: exactMillis(sq.From), To: exactMillis(sq.To), AdID: sq.AdID,
			Points: make([]pointResponse, len(series.Points)), AsOf: millis(series.AsOf)}
		for i := range series.Points {
			p := &series.Points[i]
			out.Points[i] = pointResponse{Start: millis(p.Start), Count: p.Count}
			if p.HasUniqueUsers {
				out.Points[i].UniqueUsers = &p.UniqueUsers
			}
		}
		return response{status: http.StatusOK, body: out}, nil
	}
}

type adStatsResponse struct {
	CampaignID string       `json:"campaign_id"`
	Ads        []adResponse `json:"ads"`
	NextCursor *string      `json:"next_cursor"`
	AsOf       string       `json:"as_of,omitempty"`
}

type adResponse struct {
	AdID     string `json:"ad_id"`
	LastHour int64  `json:"last_hour"`
	LastDay  int64  `json:"last_day"`
	Total    int64  `json:"total"`
	Filtered int64  `json:"filtered"`
}

// handleGetAdStats serves GET /api/v1/campaigns/{id}/ads?limit=&cursor=:
// one page of the campaign's per-ad breakdown, the ads with the most
// impressions first, and the cursor of the next page.
func (a *api) handleGetAdStats() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		q, err := readQuery(r.URL.RawQuery, adStatsQuery)
		if err != nil {
			return response{}, err
		}
		var aq adcount.AdQuery
		if aq.Limit, err = q.pageLimit(); err != nil {
			return response{}, err
		}
		if aq.After, err = cursor[adcount.AdCursor](q); err != nil {
			return response{}, err
		}
		id := r.PathValue("id")
		page, err := a.store.AdStats(r.Context(), id, aq)
		if err != nil {
			return response{}, err
		}
		out := adStatsResponse{CampaignID: id, Ads: make([]adResponse, len(page.Ads)), NextCursor: encodeCursor(page.Next), AsOf: millis(page.AsOf)}
		for i, ad := range page.Ads {
			out.Ads[i] = adResponse{AdID: ad.AdID, LastHour: ad.LastHour, LastDay: ad.LastDay, Total: ad.Total, Filtered: ad.Filtered}
		}
		return response{status: http.StatusOK, body: out}, nil
	}
}

// handleHealth serves GET /healthz: the process is up and serving.
func handleHealth(*api) endpoint {
	return func(http.ResponseWriter, *http.Request) (response, error) {
		return response{status: http.StatusOK, body: map[string]string{"status": "ok"}}, nil
	}
}

// ReadyTimeout bounds the store check behind GET /readyz, so that a hung
// store makes the check fail fast instead of piling up probes.
const ReadyTimeout = 2 * time.Second

// handleReady serves GET /readyz: 200 when the store can be reached, 503
// when it cannot. Stores that cannot become unreachable are always ready.
func (a *api) handleReady() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		if p, ok := a.store.(adcount.Pinger); ok {
			ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
			defer cancel()
			if err := p.Ping(ctx); err != nil {
				return response{}, fmt.Errorf("readyz: ping store: %w: %w", adcount.ErrUnavailable, err)
			}
		}
		return response{status: http.StatusOK, body: map[string]string{"status": "ready"}}, nil
	}
}

// handleMetrics serves GET /metrics with the handler WithOperations was
// given, which writes its own response.
func (a *api) handleMetrics() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		sw := &statusWriter{ResponseWriter: w}
		a.ops.metrics.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		return response{status: sw.status, written: true}, nil
	}
}

// handleOpenAPI serves GET /api/v1/openapi.yaml, the API's contract.
func (a *api) handleOpenAPI() endpoint {
	return func(w http.ResponseWriter, _ *http.Request) (response, error) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(a.ops.openapi)
		return response{status: http.StatusOK, written: true}, nil
	}
}
