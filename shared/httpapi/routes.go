package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Route patterns, in net/http ServeMux syntax. routeTable below says who may
// call each and which handler serves it.
const (
	RouteCreateCampaign      = "POST /api/v1/campaigns"
	RouteGetCampaign         = "GET /api/v1/campaigns/{id}"
	RouteRecordImpression    = "POST /api/v1/impressions"
	RoutePreflightImpression = "OPTIONS /api/v1/impressions"
	RouteRecordBatch         = "POST /api/v1/impressions/batch"
	RoutePreflightBatch      = "OPTIONS /api/v1/impressions/batch"
	RoutePixel               = "GET /api/v1/pixel.gif"
	RouteGetStats            = "GET /api/v1/campaigns/{id}/stats"
)

// Operations routes, served only with WithOperations: for the people and
// systems that run a long-lived server, not for API clients.
const (
	RouteHealth  = "GET /healthz"
	RouteReady   = "GET /readyz"
	RouteMetrics = "GET /metrics"
	RouteOpenAPI = "GET /api/v1/openapi.yaml"
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
	{Route: Route{RouteCreateCampaign, Admin}, handler: (*api).handleCreateCampaign},
	{Route: Route{RouteGetCampaign, Admin}, handler: (*api).handleGetCampaign},
	{Route: Route{RouteRecordImpression, Ingest}, impressions: true, handler: (*api).handleRecordImpression},
	{Route: Route{RoutePreflightImpression, Ingest}, handler: handlePreflight},
	{Route: Route{RouteRecordBatch, Ingest}, impressions: true, handler: (*api).handleRecordBatch},
	{Route: Route{RoutePreflightBatch, Ingest}, handler: handlePreflight},
	{Route: Route{RoutePixel, Ingest}, impressions: true, handler: (*api).handlePixel, fail: failPixel},
	{Route: Route{RouteGetStats, Admin}, handler: (*api).handleGetStats},
	{Route: Route{RouteHealth, Operations}, handler: handleHealth},
	{Route: Route{RouteReady, Operations}, handler: (*api).handleReady},
	{Route: Route{RouteMetrics, Operations}, handler: (*api).handleMetrics},
	{Route: Route{RouteOpenAPI, Operations}, handler: (*api).handleOpenAPI},
}

// Table returns every route of the table, operations routes included, in
// the table's order.
func Table() []Route {
	routes := make([]Route, len(routeTable))
	for i, rt := range routeTable {
		routes[i] = rt.Route
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

// Routes returns every API route pattern the handler serves: all but the
// operations routes.
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
}

var campaignFields = jsonFields[campaignRequest]()

type campaignResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	StartTime string `json:"start_time"`
}

func newCampaignResponse(c adcount.Campaign) campaignResponse {
	return campaignResponse{ID: c.ID, Name: c.Name, StartTime: c.StartTime.Format(time.RFC3339Nano)}
}

// handleCreateCampaign serves POST /api/v1/campaigns: it registers a campaign
// under a new random ID and answers 201 with it.
func (a *api) handleCreateCampaign() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		var req campaignRequest
		if err := decode(w, r, &req, campaignFields); err != nil {
			return response{}, err
		}
		var start time.Time
		if req.StartTime != "" {
			var err error
			start, err = time.Parse(time.RFC3339Nano, req.StartTime)
			// RFC 3339 offsets stop at 23:59; Go's parser accepts more.
			if _, offset := start.Zone(); err != nil || offset <= -24*3600 || offset >= 24*3600 {
				return response{}, &adcount.FieldError{Field: "start_time", Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"}
			}
		}
		c, err := adcount.NewCampaign(a.newID(), req.Name, start)
		if err != nil {
			return response{}, err
		}
		if err := a.store.CreateCampaign(r.Context(), c); err != nil {
			return response{}, err
		}
		w.Header().Set("Location", "/api/v1/campaigns/"+c.ID)
		return response{status: http.StatusCreated, body: newCampaignResponse(c)}, nil
	}
}

// handleGetCampaign serves GET /api/v1/campaigns/{id}.
func (a *api) handleGetCampaign() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		c, err := a.store.Campaign(r.Context(), r.PathValue("id"))
		if err != nil {
			return response{}, err
		}
		return response{status: http.StatusOK, body: newCampaignResponse(c)}, nil
	}
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
	// AsOf is absent when the store cannot tell, such as a DynamoDB
	// table whose aggregator has not run yet.
	AsOf string `json:"as_of,omitempty"`
}

// asOf formats a freshness time for an answer: UTC, to the millisecond,
// or empty for the zero time.
func asOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// handleGetStats serves GET /api/v1/campaigns/{id}/stats.
func (a *api) handleGetStats() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		s, err := a.store.Stats(r.Context(), r.PathValue("id"))
		if err != nil {
			return response{}, err
		}
		return response{status: http.StatusOK, body: statsResponse{CampaignID: s.CampaignID, LastHour: s.LastHour, LastDay: s.LastDay, Total: s.Total, Filtered: s.Filtered, AsOf: asOf(s.AsOf)}}, nil
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
