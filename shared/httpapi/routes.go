package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Route patterns, in net/http ServeMux syntax. Everything that lists the API's
// routes, such as the SAM template test, reads them from here.
const (
	RouteCreateCampaign      = "POST /api/v1/campaigns"
	RouteGetCampaign         = "GET /api/v1/campaigns/{id}"
	RouteRecordImpression    = "POST /api/v1/impressions"
	RoutePreflightImpression = "OPTIONS /api/v1/impressions"
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

// Routes returns every API route pattern the handler serves.
func Routes() []string {
	return []string{RouteCreateCampaign, RouteGetCampaign, RouteRecordImpression, RoutePreflightImpression, RouteGetStats}
}

// routes is the whole API surface. Campaigns and stats are admin routes;
// impression ingest is open to browsers on any site.
func (a *api) routes() {
	a.mux.Handle(RouteCreateCampaign, a.admin(a.handleCreateCampaign()))
	a.mux.Handle(RouteGetCampaign, a.admin(a.handleGetCampaign()))
	a.mux.Handle(RouteRecordImpression, crossOrigin(a.handleRecordImpression()))
	a.mux.Handle(RoutePreflightImpression, crossOrigin(handlePreflight()))
	a.mux.Handle(RouteGetStats, a.admin(a.handleGetStats()))
	a.mux.Handle(routeUnmatched, http.HandlerFunc(a.unrouted))
	if a.ops != nil {
		a.mux.Handle(RouteHealth, handleHealth())
		a.mux.Handle(RouteReady, a.handleReady())
		a.mux.Handle(RouteMetrics, a.ops.metrics)
		a.mux.Handle(RouteOpenAPI, handleOpenAPI(a.ops.openapi))
	}
}

// OperationsRoutes returns the route patterns that WithOperations adds.
func OperationsRoutes() []string {
	return []string{RouteHealth, RouteReady, RouteMetrics, RouteOpenAPI}
}

func newUUID() string { return uuid.NewString() }

type campaignRequest struct {
	Name      string `json:"name"`
	StartTime string `json:"start_time"`
}

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
func (a *api) handleCreateCampaign() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req campaignRequest
		if err := decode(w, r, &req); err != nil {
			a.fail(w, r, err)
			return
		}
		var start time.Time
		if req.StartTime != "" {
			var err error
			if start, err = time.Parse(time.RFC3339Nano, req.StartTime); err != nil {
				a.fail(w, r, &adcount.FieldError{Field: "start_time", Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"})
				return
			}
		}
		c, err := adcount.NewCampaign(a.newID(), req.Name, start)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if err := a.store.CreateCampaign(r.Context(), c); err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set("Location", "/api/v1/campaigns/"+c.ID)
		writeJSON(w, http.StatusCreated, newCampaignResponse(c))
	})
}

// handleGetCampaign serves GET /api/v1/campaigns/{id}.
func (a *api) handleGetCampaign() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.store.Campaign(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newCampaignResponse(c))
	})
}

type impressionRequest struct {
	CampaignID string `json:"campaign_id"`
	UserID     string `json:"user_id"`
	AdID       string `json:"ad_id"`
}

type impressionResponse struct {
	Message string `json:"message"`
	Counted bool   `json:"counted"`
}

// Replies to a recorded impression. Both are 200: a duplicate is a normal,
// successful outcome that a client must not retry.
var (
	countedResponse   = impressionResponse{Message: "Impression saved successfully", Counted: true}
	duplicateResponse = impressionResponse{Message: "Duplicate impression ignored: this campaign, user and ad were already counted within the dedup window", Counted: false}
)

// handleRecordImpression serves POST /api/v1/impressions. It answers 200
// only once the store has recorded the outcome; the body says whether the
// impression counted or was a duplicate.
func (a *api) handleRecordImpression() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req impressionRequest
		if err := decode(w, r, &req); err != nil {
			a.fail(w, r, err)
			return
		}
		imp := adcount.Impression{CampaignID: req.CampaignID, UserID: req.UserID, AdID: req.AdID}
		if err := imp.Validate(); err != nil {
			a.fail(w, r, err)
			return
		}
		counted, err := a.store.RecordImpression(r.Context(), imp)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		outcome, reply := "duplicate", duplicateResponse
		if counted {
			outcome, reply = "counted", countedResponse
		}
		if info := infoFrom(r.Context()); info != nil {
			info.outcome = outcome
		}
		a.metrics.ObserveImpression(outcome, "")
		writeJSON(w, http.StatusOK, reply)
	})
}

type statsResponse struct {
	CampaignID string `json:"campaign_id"`
	LastHour   int64  `json:"last_hour"`
	LastDay    int64  `json:"last_day"`
	Total      int64  `json:"total"`
}

// handleGetStats serves GET /api/v1/campaigns/{id}/stats.
func (a *api) handleGetStats() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := a.store.Stats(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, statsResponse{CampaignID: s.CampaignID, LastHour: s.LastHour, LastDay: s.LastDay, Total: s.Total})
	})
}

// handleHealth serves GET /healthz: the process is up and serving.
func handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// ReadyTimeout bounds the store check behind GET /readyz, so that a hung
// store makes the check fail fast instead of piling up probes.
const ReadyTimeout = 2 * time.Second

// handleReady serves GET /readyz: 200 when the store can be reached, 503
// when it cannot. Stores that cannot become unreachable are always ready.
func (a *api) handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := a.store.(adcount.Pinger); ok {
			ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
			defer cancel()
			if err := p.Ping(ctx); err != nil {
				a.fail(w, r, fmt.Errorf("readyz: ping store: %w: %w", adcount.ErrUnavailable, err))
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// handleOpenAPI serves GET /api/v1/openapi.yaml, the API's contract.
func handleOpenAPI(spec []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(spec)
	})
}
