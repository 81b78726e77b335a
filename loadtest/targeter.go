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
	pathBatch       = "/api/v1/impressions/batch"
	pathPixel       = "/api/v1/pixel.gif"
)

// maxBatch is the most impressions the batch route takes in one request.
const maxBatch = 1000

// indexParam is the query parameter that carries a request's plan index, so
// that a vegeta Result, which keeps the URL, leads back to the request that
// produced it. It is always the last parameter. The API ignores it.
const indexParam = "req"

// User-Agents. The service does not count impressions from known crawlers,
// and its list names Go's default "Go-http-client/1.1" and curl, so every
// impression the harness means to count carries a browser's User-Agent; a
// bot impression carries Googlebot's, which every crawler list names.
const (
	defaultBrowserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	botUA            = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// pixelAccept is what a browser sends when it loads an image.
const pixelAccept = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"

// mode is the route impressions travel by.
type mode uint8

const (
	// modeSingle: POST /api/v1/impressions, one impression per request,
	// the User-Agent in the request's header.
	modeSingle mode = iota
	// modeBatch: POST /api/v1/impressions/batch, Plan.PerRequest
	// impressions per request; an item's User-Agent is its user_agent
	// field, since the request's own header is the ad server's.
	modeBatch
	// modePixel: GET /api/v1/pixel.gif, as a browser loads it; the
	// outcome comes back in the X-Impression-Outcome header.
	modePixel
)

func (m mode) String() string {
	switch m {
	case modeBatch:
		return "batch"
	case modePixel:
		return "pixel"
	}
	return "single"
}

// targetConfig says how impressions travel.
type targetConfig struct {
	Mode mode
	// BrowserUA is the User-Agent of impressions that must count. Empty
	// sends no User-Agent header at all.
	BrowserUA string
	// ItemUA gives every batch item a user_agent (BrowserUA, or the bot's
	// for bot impressions); without it only bot items carry one, and the
	// others are not judged.
	ItemUA bool
	// AdminKey goes on stats reads, never on the open ingest routes.
	AdminKey string
}

// targets turns a Plan into HTTP requests against one deployment.
type targets struct {
	plan        *Plan
	mode        mode
	base        string   // target URL without a trailing slash
	campaignIDs []string // the service's ID for each plan campaign
	// quotedIDs and escapedIDs are the IDs as a JSON string and as a
	// query value, made once.
	quotedIDs, escapedIDs []string
	// itemUA and botItemUA are batch items' user_agent fields, as JSON
	// strings; itemUA is empty when items carry none.
	itemUA, botItemUA string
	// itemBase bounds the encoded size of one impression object and the
	// comma after it, without its user_agent field; the fields add
	// botUASize and itemUASize.
	itemBase, botUASize, itemUASize int
	// The headers are shared by every Target and only ever read: vegeta
	// copies them into each request.
	header, botHeader, readHeader http.Header
}

func newTargets(plan *Plan, base string, campaignIDs []string, cfg targetConfig) (*targets, error) {
	if len(campaignIDs) != plan.Campaigns() {
		return nil, fmt.Errorf("plan has %d campaigns, got %d IDs", plan.Campaigns(), len(campaignIDs))
	}
	if cfg.Mode != modeBatch && plan.PerRequest() != 1 {
		return nil, fmt.Errorf("the %s route takes one impression per request, the plan has %d", cfg.Mode, plan.PerRequest())
	}
	ts := &targets{
		plan:        plan,
		mode:        cfg.Mode,
		base:        base,
		campaignIDs: campaignIDs,
		readHeader:  adminHeader(cfg.AdminKey),
		botItemUA:   quote(botUA),
	}
	if cfg.ItemUA {
		ts.itemUA = quote(cfg.BrowserUA)
	}
	longestID := 0
	for _, id := range campaignIDs {
		ts.quotedIDs = append(ts.quotedIDs, quote(id))
		ts.escapedIDs = append(ts.escapedIDs, url.QueryEscape(id))
		longestID = max(longestID, len(ts.quotedIDs[len(ts.quotedIDs)-1]))
	}
	digits := func(n int) int { return len(strconv.Itoa(n)) }
	ts.itemBase = len(`{"campaign_id":,"user_id":"user-","ad_id":"ad-"},`) + longestID + digits(plan.users-1) + digits(plan.ads-1)
	ts.botUASize = len(`,"user_agent":`) + len(ts.botItemUA)
	if ts.itemUA != "" {
		ts.itemUASize = len(`,"user_agent":`) + len(ts.itemUA)
	}

	ua := func(agent string) http.Header {
		// net/http sends no User-Agent for an empty one, rather than
		// its own default.
		h := http.Header{"User-Agent": {agent}}
		switch cfg.Mode {
		case modePixel:
			h.Set("Accept", pixelAccept)
		default:
			h.Set("Content-Type", "application/json")
		}
		return h
	}
	ts.header, ts.botHeader = ua(cfg.BrowserUA), ua(botUA)
	if cfg.Mode == modeBatch {
		// The batch request comes from the ad server; the viewers'
		// User-Agents are in the items.
		ts.botHeader = ts.header
	}
	return ts, nil
}

// quote encodes s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// target fills t with the request at index i: a fresh body and URL every
// time, so concurrent callers never share a buffer. Bodies are appended by
// hand, not marshalled: a batch of a thousand is built hundreds of times a
// second on the cores the service runs on.
func (ts *targets) target(i uint64, t *vegeta.Target) error {
	r := ts.plan.Request(i)
	q := "?" + indexParam + "=" + strconv.FormatUint(i, 10)
	if r.Read {
		*t = vegeta.Target{Method: http.MethodGet, URL: ts.base + statsPath(ts.campaignIDs[r.Campaign]) + q, Header: ts.readHeader}
		return nil
	}
	switch ts.mode {
	case modeBatch:
		// Allocated once at its final size: the plan knows how many
		// items are bots', which carry a User-Agent.
		bots := int(ts.plan.bots(r.First, uint64(r.Count)))
		body := make([]byte, 0, len(`{"impressions":[]}`)+r.Count*ts.itemBase+bots*ts.botUASize+(r.Count-bots)*ts.itemUASize)
		body = append(body, `{"impressions":[`...)
		for k := range uint64(r.Count) {
			im, err := ts.plan.Impression(r.First + k)
			if err != nil {
				return err
			}
			if k > 0 {
				body = append(body, ',')
			}
			agent := ts.itemUA
			if im.Bot {
				agent = ts.botItemUA
			}
			body = ts.appendImpression(body, im, agent)
		}
		body = append(body, "]}"...)
		*t = vegeta.Target{Method: http.MethodPost, URL: ts.base + pathBatch + q, Body: body, Header: ts.header}
	case modePixel:
		im, err := ts.plan.Impression(r.First)
		if err != nil {
			return err
		}
		u := make([]byte, 0, len(ts.base)+len(pathPixel)+len(ts.escapedIDs[im.Campaign])+80)
		u = append(append(append(u, ts.base...), pathPixel...), "?campaign_id="...)
		u = append(u, ts.escapedIDs[im.Campaign]...)
		u = im.appendUserID(append(u, "&user_id="...))
		u = im.appendAdID(append(u, "&ad_id="...))
		u = strconv.AppendUint(append(u, "&"+indexParam+"="...), i, 10)
		*t = vegeta.Target{Method: http.MethodGet, URL: string(u), Header: ts.headerOf(im)}
	default:
		im, err := ts.plan.Impression(r.First)
		if err != nil {
			return err
		}
		body := ts.appendImpression(make([]byte, 0, ts.itemBase), im, "")
		*t = vegeta.Target{Method: http.MethodPost, URL: ts.base + pathImpressions + q, Body: body, Header: ts.headerOf(im)}
	}
	return nil
}

func (ts *targets) headerOf(im Impression) http.Header {
	if im.Bot {
		return ts.botHeader
	}
	return ts.header
}

// appendImpression appends im as the JSON object the API takes, with the
// user_agent field when agent (a JSON string) is not empty. The user and ad
// IDs are the plan's, which need no escaping.
func (ts *targets) appendImpression(b []byte, im Impression, agent string) []byte {
	b = append(b, `{"campaign_id":`...)
	b = append(b, ts.quotedIDs[im.Campaign]...)
	b = im.appendUserID(append(b, `,"user_id":"`...))
	b = im.appendAdID(append(b, `","ad_id":"`...))
	b = append(b, '"')
	if agent != "" {
		b = append(append(b, `,"user_agent":`...), agent...)
	}
	return append(b, '}')
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

// indexAt finds the index parameter in a text that quotes a request's URL:
// where its name starts, or -1.
func indexAt(s string) int {
	for end := len(s); ; {
		at := strings.LastIndex(s[:end], indexParam+"=")
		if at < 0 {
			return -1
		}
		if at > 0 && (s[at-1] == '?' || s[at-1] == '&') {
			return at
		}
		end = at
	}
}

// resultIndex recovers the plan index from a Result's URL, which ends in
// the index parameter. It runs once per result, so it avoids url.Parse.
func resultIndex(rawURL string) (uint64, error) {
	at := indexAt(rawURL)
	if at < 0 {
		return 0, fmt.Errorf("no %s parameter", indexParam)
	}
	return strconv.ParseUint(rawURL[at+len(indexParam)+1:], 10, 64)
}

// withoutIndex removes the query of a request's URL, which ends in the
// index parameter, from a text that quotes it, such as a transport error:
// errors then group by route instead of listing every request.
func withoutIndex(s string) string {
	at := indexAt(s)
	if at < 0 {
		return s
	}
	query := strings.LastIndexByte(s[:at], '?')
	if query < 0 {
		query = at - 1
	}
	return s[:query] + strings.TrimLeft(s[at+len(indexParam)+1:], "0123456789")
}

func statsPath(campaignID string) string {
	return campaignPath(campaignID) + "/stats"
}

func campaignPath(campaignID string) string {
	return pathCampaigns + "/" + url.PathEscape(campaignID)
}

// adminHeader carries the admin key on the routes that will require it:
// creating and reading campaigns and reading stats. No key, no header.
func adminHeader(key string) http.Header {
	if key == "" {
		return http.Header{}
	}
	return http.Header{"Authorization": {"Bearer " + key}}
}
