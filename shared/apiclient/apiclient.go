// Package apiclient is a Go client for the impression counter's HTTP API,
// for Go ad servers, for our own tests and for load harnesses.
//
// A *Client implements adcount.Store, as the HTTP client of
// benbjohnson/wtf implements its domain's services, so code written against
// the store contract can run against a remote deployment unchanged, and the
// storetest conformance suite checks the whole stack over HTTP. The API's
// error statuses come back as the domain's errors: a 404 for a campaign
// matches adcount.ErrNotFound, a 400 is an *adcount.FieldError matching
// adcount.ErrInvalid, and so on; see Client for the full mapping.
//
// The API chooses campaign IDs, so campaigns are created with
// Client.Create. CreateCampaign, which the store contract has take a
// caller-chosen ID, returns an error matching errors.ErrUnsupported.
//
// The API judges invalid traffic by User-Agent (FILTER_BOTS). The client
// asks for an impression marked Filtered to be filtered by sending it with
// FilteredUserAgent as its user_agent, and sends every other impression
// without one, under its own User-Agent, which is no crawler's.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// DefaultUserAgent is the User-Agent the client sends unless WithUserAgent
// sets another. It lets a server's logs tell this client's traffic apart.
const DefaultUserAgent = "adcount-apiclient/1"

// FilteredUserAgent is the user_agent the client sends with an impression
// marked Filtered: a well-known crawler's, Googlebot's, which the API's
// crawler list judges a bot, so that the API records the impression as
// filtered. An API with FILTER_BOTS=false counts it like any other.
const FilteredUserAgent = "Googlebot/2.1 (+http://www.google.com/bot.html)"

// maxBatchBodyBytes is the API's limit on a batch body. A batch of long
// IDs that must be escaped can encode larger; the client then sends it in
// several requests, one after the other.
const maxBatchBodyBytes = 1 << 20

// DefaultTimeout bounds each request of a client made without
// WithHTTPClient, so that a caller who passes context.Background() to a
// server that stopped answering is not stuck for ever.
const DefaultTimeout = 10 * time.Second

// maxResponseBytes caps how much of a response body the client reads. Every
// reply of the API is far smaller; the cap keeps a misdirected base URL from
// making the client buffer a large page.
const maxResponseBytes = 1 << 20

// ErrUnauthorized means the API refused an admin route: with no admin key
// (401) or with one that is not active (403). StatusError.Status says which.
// Retrying will not help until the key is fixed.
var ErrUnauthorized = errors.New("apiclient: the admin key is missing or not valid")

// errIDChosenByServer explains why CreateCampaign cannot keep its promise.
var errIDChosenByServer = fmt.Errorf("the API chooses campaign IDs; create campaigns with Client.Create: %w", errors.ErrUnsupported)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client that sends requests, for its
// transport, timeouts and connection pool. The default is a client with
// http.DefaultTransport and DefaultTimeout, which a nil hc keeps.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithAdminKey sets the admin key sent as "Authorization: Bearer <key>" on
// the admin routes: creating, listing, reading and changing campaigns, and
// reading their stats, series and per-ad breakdown.
// Recording impressions needs no key, so it is never sent there, which keeps
// it out of the ingest path's proxies and logs.
func WithAdminKey(key string) Option {
	return func(c *Client) { c.adminKey = key }
}

// WithUserAgent sets the User-Agent header of every request. The default is
// DefaultUserAgent. The API judges a single impression by this header, so
// a User-Agent on its crawler list has every impression filtered.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// Client talks to one deployment of the API. It is safe for concurrent use
// and holds no state besides its settings; share one per base URL so that
// connections are reused.
//
// Every method honours ctx. A ctx that is already done fails the call
// before anything is sent, with an error matching ctx.Err(); one that ends
// in flight does too, and the outcome is then unknown.
//
// Errors map the API's answers back to the domain:
//
//	400 naming a field           *adcount.FieldError, matches adcount.ErrInvalid
//	400 or 413 otherwise         matches adcount.ErrInvalid
//	401, 403                     matches ErrUnauthorized
//	404 "campaign not found"     matches adcount.ErrNotFound
//	409 "already exists"         matches adcount.ErrConflict
//	409 "has not started"        matches adcount.ErrNotStarted
//	409 "is paused"              matches adcount.ErrPaused
//	409 "has ended"              matches adcount.ErrEnded
//	429, 502, 503, 504           matches adcount.ErrUnavailable
//	no answer (network, timeout) matches adcount.ErrUnavailable and the cause
//
// Every error from a status is also a *StatusError. Any other status, such
// as a 500 or a 404 for a path the API does not serve (a wrong base URL),
// is a *StatusError that matches none of the domain's errors.
type Client struct {
	base      string // scheme, host and any path prefix, without a trailing slash
	http      *http.Client
	adminKey  string
	userAgent string
}

var _ adcount.Store = (*Client)(nil)

// New returns a client for the API at baseURL, such as
// "http://localhost:8080" or an API Gateway stage URL with its path. It fails
// unless baseURL is an absolute http or https URL.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("apiclient: base URL %q must be an absolute http or https URL without a query", baseURL)
	}
	c := &Client{
		base:      strings.TrimSuffix(u.String(), "/"),
		http:      &http.Client{Timeout: DefaultTimeout},
		userAgent: DefaultUserAgent,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// StatusError is an error answer of the API. It unwraps to the domain error
// the status means, if any, so callers usually test it with errors.Is and
// need this type only for the status or RetryAfter.
type StatusError struct {
	// Op is the client operation, such as "record impression".
	Op string
	// Status is the HTTP status code.
	Status int
	// Message is the API's "error" text, or the status text if the body
	// held none.
	Message string
	// RetryAfter is how long a 429 or 503 asked the client to wait; zero
	// if it did not say.
	RetryAfter time.Duration

	err error // the domain error the status maps to; nil if none
}

// Error returns the operation, the status and the API's message.
func (e *StatusError) Error() string {
	return fmt.Sprintf("apiclient: %s: %d %s", e.Op, e.Status, e.Message)
}

// Unwrap returns the domain error the status maps to, or nil.
func (e *StatusError) Unwrap() error { return e.err }

// Create creates a campaign named name that counts impressions from start
// on, under an ID the API chooses, and returns it as the API stored it: the
// name trimmed, the start time in UTC. The name and start time are checked
// before sending, with the errors of adcount.NewCampaign, because JSON
// cannot carry invalid UTF-8 unchanged.
func (c *Client) Create(ctx context.Context, name string, start time.Time) (adcount.Campaign, error) {
	return c.create(ctx, name, start, time.Time{})
}

// create creates a campaign with an end, or none for the zero end.
func (c *Client) create(ctx context.Context, name string, start, end time.Time) (adcount.Campaign, error) {
	const op = "create campaign"
	if _, err := adcount.NewCampaign("", name, start); err != nil {
		return adcount.Campaign{}, fmt.Errorf("apiclient: %s: %w", op, err)
	}
	in := campaignRequest{Name: name, StartTime: start.Format(time.RFC3339Nano)}
	if !end.IsZero() {
		in.EndTime = end.Format(time.RFC3339Nano)
	}
	var out campaignResponse
	if err := c.do(ctx, op, http.MethodPost, "/api/v1/campaigns", true, in, &out, adcount.ErrConflict); err != nil {
		return adcount.Campaign{}, err
	}
	return out.campaign(op)
}

// CreateCampaign implements adcount.Store, whose contract has the caller
// choose the ID. The API chooses IDs itself, so CreateCampaign sends nothing
// and returns an error matching errors.ErrUnsupported; use Create.
func (c *Client) CreateCampaign(_ context.Context, camp adcount.Campaign) error {
	return fmt.Errorf("apiclient: create campaign %s: %w", camp.ID, errIDChosenByServer)
}

// Campaign returns the campaign with the given ID, or an error matching
// adcount.ErrNotFound.
func (c *Client) Campaign(ctx context.Context, id string) (adcount.Campaign, error) {
	op := "get campaign " + id
	if err := checkID(op, id); err != nil {
		return adcount.Campaign{}, err
	}
	var out campaignResponse
	if err := c.do(ctx, op, http.MethodGet, "/api/v1/campaigns/"+url.PathEscape(id), true, nil, &out, nil); err != nil {
		return adcount.Campaign{}, err
	}
	return out.campaign(op)
}

// RecordImpression sends imp and reports what the API did with it:
// Counted, Duplicate (counted within the dedup window), or Filtered (imp
// was marked Filtered; see FilteredUserAgent). imp is validated before
// sending, with the errors of Impression.Validate, because JSON cannot
// carry invalid UTF-8 unchanged. An error matching adcount.ErrUnavailable
// leaves the outcome unknown; sending the same impression again is safe,
// as it counts at most once.
func (c *Client) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	op := "record impression for " + imp.CampaignID
	if err := imp.Validate(); err != nil {
		return 0, fmt.Errorf("apiclient: %s: %w", op, err)
	}
	var out impressionResponse
	if err := c.do(ctx, op, http.MethodPost, "/api/v1/impressions", false, newImpressionRequest(imp), &out, adcount.ErrNotStarted); err != nil {
		return 0, err
	}
	if out.Outcome == "" {
		// An API from before outcomes says only whether it counted.
		out.Outcome = adcount.Duplicate.String()
		if out.Counted {
			out.Outcome = adcount.Counted.String()
		}
	}
	outcome, ok := outcomes[out.Outcome]
	if !ok {
		return 0, fmt.Errorf("apiclient: %s: the API answered the unknown outcome %q", op, out.Outcome)
	}
	return outcome, nil
}

// outcomes are the API's outcomes by name.
var outcomes = map[string]adcount.Outcome{
	adcount.Counted.String():   adcount.Counted,
	adcount.Duplicate.String(): adcount.Duplicate,
	adcount.Filtered.String():  adcount.Filtered,
}

func newImpressionRequest(imp adcount.Impression) impressionRequest {
	in := impressionRequest{CampaignID: imp.CampaignID, UserID: imp.UserID, AdID: imp.AdID}
	if imp.Filtered {
		in.UserAgent = FilteredUserAgent
	}
	return in
}

// RecordImpressions records a batch of at most adcount.MaxBatch
// impressions through POST /api/v1/impressions/batch and returns one
// result per impression, in order, as the store contract says. An invalid
// impression is answered here, with the errors of Impression.Validate, and
// not sent; every other result is the API's, its error a *StatusError that
// matches adcount.ErrInvalid, adcount.ErrNotFound, or what a campaign that
// is not live answers: adcount.ErrNotStarted, ErrPaused or ErrEnded.
//
// A batch whose encoding is larger than the API's body limit (only IDs
// near their 256-byte limit that JSON must escape make one) is sent as
// several requests, in order. An error fails the whole call: more than
// MaxBatch impressions (adcount.ErrInvalid, nothing sent), or no answer or
// an error status for a request (the client's usual errors; the outcome of
// the batch is then unknown, and sending it again is safe).
func (c *Client) RecordImpressions(ctx context.Context, imps []adcount.Impression) ([]adcount.Result, error) {
	const op = "record batch"
	if len(imps) > adcount.MaxBatch {
		return nil, fmt.Errorf("apiclient: %s: %d impressions, more than %d: %w", op, len(imps), adcount.MaxBatch, adcount.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apiclient: %s: %w", op, err)
	}
	results := make([]adcount.Result, len(imps))
	body := append(make(rawJSON, 0, 64*len(imps)+32), batchPrefix...)
	var sent []int // the indexes of the impressions in body
	for i, imp := range imps {
		if err := imp.Validate(); err != nil {
			results[i].Err = fmt.Errorf("apiclient: record impression for %s: %w", imp.CampaignID, err)
			continue
		}
		item, err := json.Marshal(newImpressionRequest(imp))
		if err != nil {
			return nil, fmt.Errorf("apiclient: %s: encode impression %d: %w", op, i, err)
		}
		if len(sent) > 0 && len(body)+1+len(item)+len(batchSuffix) > maxBatchBodyBytes {
			if err := c.sendBatch(ctx, append(body, batchSuffix...), sent, imps, results); err != nil {
				return nil, err
			}
			// A new body: the transport may still hold the one sent.
			body, sent = append(make(rawJSON, 0, len(body)), batchPrefix...), sent[:0]
		}
		if len(sent) > 0 {
			body = append(body, ',')
		}
		body = append(body, item...)
		sent = append(sent, i)
	}
	if len(sent) > 0 {
		if err := c.sendBatch(ctx, append(body, batchSuffix...), sent, imps, results); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// The batch body around its items.
const (
	batchPrefix = `{"impressions":[`
	batchSuffix = `]}`
)

// sendBatch sends one batch request, whose items are imps[sent[k]], and
// puts their results into results.
func (c *Client) sendBatch(ctx context.Context, body rawJSON, sent []int, imps []adcount.Impression, results []adcount.Result) error {
	const op = "record batch"
	var out batchResponse
	if err := c.do(ctx, op, http.MethodPost, "/api/v1/impressions/batch", false, body, &out, adcount.ErrNotStarted); err != nil {
		return err
	}
	if len(out.Results) != len(sent) {
		return fmt.Errorf("apiclient: %s: the API answered %d results for %d impressions", op, len(out.Results), len(sent))
	}
	for k, res := range out.Results {
		i := sent[k]
		if outcome, ok := outcomes[res.Outcome]; ok {
			results[i].Outcome = outcome
			continue
		}
		itemOp := "record impression for " + imps[i].CampaignID
		se := answerError(itemOp, res.Status, res.Code, res.Error, adcount.ErrNotStarted)
		if res.Outcome != "rejected" || !isItemError(se) {
			return fmt.Errorf("apiclient: %s: item %d: the API answered %q, status %d, code %q", op, k, res.Outcome, res.Status, res.Code)
		}
		results[i].Err = se
	}
	return nil
}

// isItemError reports whether err is one the store contract allows for one
// impression of a batch.
func isItemError(err error) bool {
	return errors.Is(err, adcount.ErrInvalid) || errors.Is(err, adcount.ErrNotFound) ||
		errors.Is(err, adcount.ErrNotStarted) || errors.Is(err, adcount.ErrPaused) || errors.Is(err, adcount.ErrEnded)
}

// Stats returns the campaign's counts and unique users as the API read
// them, or an error matching adcount.ErrNotFound. The answer's frequency
// is not kept: adcount.Stats.Frequency derives it from the same figures,
// as the API does.
func (c *Client) Stats(ctx context.Context, campaignID string) (adcount.Stats, error) {
	op := "stats " + campaignID
	if err := checkID(op, campaignID); err != nil {
		return adcount.Stats{}, err
	}
	var out statsResponse
	if err := c.do(ctx, op, http.MethodGet, "/api/v1/campaigns/"+url.PathEscape(campaignID)+"/stats", true, nil, &out, nil); err != nil {
		return adcount.Stats{}, err
	}
	st := adcount.Stats{CampaignID: out.CampaignID, LastHour: out.LastHour, LastDay: out.LastDay, Total: out.Total, Filtered: out.Filtered,
		UniqueUsers: adcount.UniqueUsers{LastHour: out.UniqueUsers.LastHour, LastDay: out.UniqueUsers.LastDay, Total: out.UniqueUsers.Total}}
	if out.AsOf != "" {
		var err error
		if st.AsOf, err = time.Parse(time.RFC3339Nano, out.AsOf); err != nil {
			return adcount.Stats{}, fmt.Errorf("apiclient: stats %s: as_of %q: %w", campaignID, out.AsOf, err)
		}
	}
	return st, nil
}

// checkID answers locally for IDs no campaign can have and no path can
// carry as one segment: the empty ID, "." and "..", which the API would
// treat as a different path.
func checkID(op, id string) error {
	switch id {
	case "", ".", "..":
		return fmt.Errorf("apiclient: %s: %w", op, adcount.ErrNotFound)
	}
	return nil
}

// do sends one request with in, if not nil, as its JSON body, and decodes a
// 2xx answer into out. admin routes carry the admin key. conflict is what a
// 409 means on this route when the message does not say.
func (c *Client) do(ctx context.Context, op, method, path string, admin bool, in, out any, conflict error) error {
	// A done context sends nothing, so the call certainly changed nothing.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apiclient: %s: %w", op, err)
	}
	var body io.Reader
	switch in := in.(type) {
	case nil:
	case rawJSON:
		body = bytes.NewReader(in)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("apiclient: %s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("apiclient: %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin && c.adminKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.adminKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller gave up; that says nothing about the API.
			return fmt.Errorf("apiclient: %s: %w", op, ctxErr)
		}
		return fmt.Errorf("apiclient: %s: %w: %w", op, adcount.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("apiclient: %s: read response: %w", op, ctxErr)
		}
		return fmt.Errorf("apiclient: %s: read response: %w: %w", op, adcount.ErrUnavailable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(op, resp, raw, conflict)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("apiclient: %s: decode %d response: %w", op, resp.StatusCode, err)
	}
	return nil
}

// statusError turns an error answer into a *StatusError that unwraps to
// the domain error the status means, by answerError.
func statusError(op string, resp *http.Response, raw []byte, conflict error) *StatusError {
	var body errorResponse
	_ = json.Unmarshal(raw, &body) // a body that is not the API's leaves it empty
	e := answerError(op, resp.StatusCode, body.Code, body.Error, conflict)
	if e.err == adcount.ErrUnavailable {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

// answerError is the one mapping from an error the API answered, a
// request's or one batch item's, to the domain error it means.
func answerError(op string, status int, code, message string, conflict error) *StatusError {
	msg := http.StatusText(status)
	if message != "" {
		msg = message
	}
	e := &StatusError{Op: op, Status: status, Message: msg}
	switch status {
	case http.StatusBadRequest:
		if fe := parseFieldError(msg); fe != nil {
			e.err = fe
		} else {
			e.err = adcount.ErrInvalid
		}
	case http.StatusRequestEntityTooLarge:
		e.err = adcount.ErrInvalid
	case http.StatusUnauthorized, http.StatusForbidden:
		e.err = ErrUnauthorized
	case http.StatusNotFound:
		// Only the API's own not_found means the campaign is missing; a
		// 404 for the path (no_route, or a gateway's own) means the base
		// URL is wrong.
		if code == "not_found" {
			e.err = adcount.ErrNotFound
		}
	case http.StatusConflict:
		switch code {
		case "not_started":
			e.err = adcount.ErrNotStarted
		case "paused":
			e.err = adcount.ErrPaused
		case "ended":
			e.err = adcount.ErrEnded
		case "conflict":
			e.err = adcount.ErrConflict
		case "limit":
			e.err = adcount.ErrLimit
		default:
			e.err = conflict
		}
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.err = adcount.ErrUnavailable
	}
	return e
}

// parseFieldError reads the API's "field: message" form of a validation
// error, such as "user_id: must be at most 256 bytes". It returns nil for
// a message that names no field, such as one about malformed JSON.
func parseFieldError(msg string) *adcount.FieldError {
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok || field == "" || rest == "" {
		return nil
	}
	for _, r := range field {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return nil
		}
	}
	return &adcount.FieldError{Field: field, Message: rest}
}

// The API's JSON shapes, as shared/httpapi writes and reads them. The client
// keeps its own copies so that it depends on the wire format, not on the
// server's code.
type (
	campaignRequest struct {
		Name      string `json:"name"`
		StartTime string `json:"start_time"`
		EndTime   string `json:"end_time,omitempty"`
	}
	campaignResponse struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		StartTime string `json:"start_time"`
		EndTime   string `json:"end_time"`
		Paused    bool   `json:"paused"`
		// Status is not kept: adcount.Campaign.Status computes it at
		// any moment from the rest.
		CreatedAt string `json:"created_at"`
	}
	impressionRequest struct {
		CampaignID string `json:"campaign_id"`
		UserID     string `json:"user_id"`
		AdID       string `json:"ad_id"`
		UserAgent  string `json:"user_agent,omitempty"`
	}
	impressionResponse struct {
		Counted bool   `json:"counted"`
		Outcome string `json:"outcome"`
	}
	batchResponse struct {
		Results []struct {
			Outcome string `json:"outcome"`
			Status  int    `json:"status"`
			Code    string `json:"code"`
			Error   string `json:"error"`
		} `json:"results"`
	}
	statsResponse struct {
		CampaignID string `json:"campaign_id"`
		LastHour   int64  `json:"last_hour"`
		LastDay    int64  `json:"last_day"`
		Total      int64  `json:"total"`
		Filtered   int64  `json:"filtered"`
		// UniqueUsers is absent from an API older than reach, which
		// leaves it zero.
		UniqueUsers struct {
			LastHour int64 `json:"last_hour"`
			LastDay  int64 `json:"last_day"`
			Total    int64 `json:"total"`
		} `json:"unique_users"`
		AsOf string `json:"as_of"`
	}
	errorResponse struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
)

// rawJSON is a request body encoded already.
type rawJSON []byte

// campaign reads a campaign answer. end_time and created_at are optional:
// a campaign without an end, or created before created_at was kept, and
// an API from before either, leave them out.
func (r campaignResponse) campaign(op string) (adcount.Campaign, error) {
	c := adcount.Campaign{ID: r.ID, Name: r.Name, Paused: r.Paused}
	for _, f := range []struct {
		name, value string
		dst         *time.Time
		optional    bool
	}{
		{"start_time", r.StartTime, &c.StartTime, false},
		{"end_time", r.EndTime, &c.EndTime, true},
		{"created_at", r.CreatedAt, &c.CreatedAt, true},
	} {
		if f.value == "" && f.optional {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.value)
		if err != nil {
			return adcount.Campaign{}, fmt.Errorf("apiclient: %s: decode %s: %w", op, f.name, err)
		}
		*f.dst = t.UTC()
	}
	return c, nil
}
