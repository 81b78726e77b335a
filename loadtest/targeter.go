package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Paths of the API the harness drives. The harness talks HTTP only, so it
// keeps its own copy rather than importing the service.
const (
	pathCampaigns   = "/api/v1/campaigns"
	pathImpressions = "/api/v1/impressions"
)

// indexParam is the query parameter that carries a request's plan index, so
// that a vegeta Result, which keeps the URL, leads back to the request that
// produced it. The API routes on the path alone and ignores it.
const indexParam = "req"

// impressionBody is the JSON body of POST /api/v1/impressions.
type impressionBody struct {
	CampaignID string `json:"campaign_id"`
	UserID     string `json:"user_id"`
	AdID       string `json:"ad_id"`
}

// targets turns a Plan into HTTP requests against one deployment.
type targets struct {
	plan        *Plan
	base        string   // target URL without a trailing slash
	campaignIDs []string // the service's ID for each plan campaign
	impHeader   http.Header
	readHeader  http.Header
}

func newTargets(plan *Plan, base string, campaignIDs []string, adminKey string) (*targets, error) {
	if len(campaignIDs) != plan.Campaigns() {
		return nil, fmt.Errorf("plan has %d campaigns, got %d IDs", plan.Campaigns(), len(campaignIDs))
	}
	// The headers are shared by every Target and only ever read: vegeta
	// copies them into each request.
	return &targets{
		plan:        plan,
		base:        base,
		campaignIDs: campaignIDs,
		impHeader:   http.Header{"Content-Type": {"application/json"}},
		readHeader:  adminHeader(adminKey),
	}, nil
}

// target fills t with the request at index i: a fresh body and URL every
// time, so concurrent callers never share a buffer.
func (ts *targets) target(i uint64, t *vegeta.Target) error {
	r, err := ts.plan.Request(i)
	if err != nil {
		return err
	}
	q := "?" + indexParam + "=" + strconv.FormatUint(i, 10)
	id := ts.campaignIDs[r.Campaign]
	if r.Read {
		*t = vegeta.Target{Method: http.MethodGet, URL: ts.base + statsPath(id) + q, Header: ts.readHeader}
		return nil
	}
	body, err := json.Marshal(impressionBody{CampaignID: id, UserID: r.User, AdID: r.Ad})
	if err != nil {
		return fmt.Errorf("encode impression %d: %w", i, err)
	}
	*t = vegeta.Target{Method: http.MethodPost, URL: ts.base + pathImpressions + q, Body: body, Header: ts.impHeader}
	return nil
}

// targeter returns a vegeta.Targeter that hands out the plan in index
// order, from 0. It is safe for concurrent use: each call claims the next
// index atomically, and the plan is a pure function of it.
func (ts *targets) targeter() vegeta.Targeter {
	var next atomic.Uint64
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		return ts.target(next.Add(1)-1, t)
	}
}

// resultIndex recovers the plan index from a Result's URL, which ends in
// the index parameter. It runs once per result, so it avoids url.Parse.
func resultIndex(rawURL string) (uint64, error) {
	at := strings.LastIndex(rawURL, "?"+indexParam+"=")
	if at < 0 {
		return 0, fmt.Errorf("no %s parameter", indexParam)
	}
	return strconv.ParseUint(rawURL[at+len(indexParam)+2:], 10, 64)
}

// withoutIndex removes the index parameter from a text that quotes a
// request's URL, such as a transport error.
func withoutIndex(s string) string {
	before, after, found := strings.Cut(s, "?"+indexParam+"=")
	if !found {
		return s
	}
	return before + strings.TrimLeft(after, "0123456789")
}

func statsPath(campaignID string) string {
	return pathCampaigns + "/" + url.PathEscape(campaignID) + "/stats"
}

// adminHeader carries the admin key on the routes that will require it:
// creating and reading campaigns and reading stats. No key, no header.
func adminHeader(key string) http.Header {
	if key == "" {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + key}}
}
