package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// The helpers here drive Debian's Chromium through chromedp against the real
// local server, for the dashboard's tests in dashboard_test.go. Every wait
// polls the page's DOM, or the API, until a deadline: none sleeps.

// chromiumPath is where Debian's chromium package installs the browser;
// `make chromium` installs it.
const chromiumPath = "/usr/bin/chromium"

// dashKey is the admin key the dashboard's servers accept.
const dashKey = "dashboard-test-key-0123456789"

// uiWait bounds every wait for the page: long enough for a refresh of a
// page under the race detector on two busy cores, short enough that a page
// that never shows what is awaited fails the test rather than hangs it.
const uiWait = 30 * time.Second

// startDashboardServer runs the real server, memory store, with dashKey as
// its only admin key, and returns its base URL.
func startDashboardServer(t *testing.T) string {
	t.Helper()
	return startServer(t, map[string]string{"ADMIN_API_KEYS": dashKey}, nil)
}

// newBrowser starts a headless Chromium for one test, in a fresh profile
// that the test's temporary directory holds, and returns the context of
// its first tab. A missing Chromium fails the test: a browser test that
// skips would read as a pass.
//
// The flags are chromedp's defaults (headless, no first run, no background
// networking, no sync, ...) and the ones this machine needs: no sandbox,
// as tests run as root; no GPU; no QUIC and no component updates, whose
// connections the closed network refuses.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		require.FailNow(t, "Chromium is missing", "the dashboard tests drive Debian's Chromium at %s (%v): `make chromium` installs it", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must have no deadline, since
	// the browser lives as long as the context of that call.
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	return ctx
}

// tab is one browser tab on the dashboard, seen by one test or subtest.
type tab struct {
	t   *testing.T
	ctx context.Context
	log *pageLog
}

// in is the same tab, for a subtest.
func (tb *tab) in(t *testing.T) *tab {
	return &tab{t: t, ctx: tb.ctx, log: tb.log}
}

// pageLog is what a tab sent to the API and wrote to its console.
type pageLog struct {
	mu       sync.Mutex
	requests []sentRequest
	console  []chromedp.ConsoleMessage
}

// sentRequest is one request the page sent to the API.
type sentRequest struct {
	at            time.Time
	method, url   string
	authorization string
	body          string
}

// newTab opens the first tab of a new browser, or, when parent is a tab,
// another tab of its browser: in a window of its own, or with sameWindow in
// the parent's window, where opening it hides the tab that was shown, as a
// person switching tabs does.
func newTab(t *testing.T, parent *tab, sameWindow bool) *tab {
	t.Helper()
	var ctx context.Context
	if parent == nil {
		ctx = newBrowser(t)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(parent.ctx, chromedp.WithNewWindow(!sameWindow))
		t.Cleanup(cancel)
		require.NoError(t, chromedp.Do(ctx), "open a tab")
	}
	tb := &tab{t: t, ctx: ctx, log: &pageLog{}}
	tb.record()
	return tb
}

// record keeps the page's API requests and console messages, and fails
// the test on an uncaught exception or a Content-Security-Policy
// violation; the rest of the console is logged if the test fails.
func (tb *tab) record() {
	requests := chromedp.Events(tb.ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			if ev.Request == nil || !strings.Contains(ev.Request.URL, "/api/") {
				continue
			}
			r := sentRequest{at: time.Now(), method: ev.Request.Method, url: ev.Request.URL}
			// fetch sends header names in lower case.
			for name, v := range ev.Request.Headers {
				if auth, ok := v.(string); ok && strings.EqualFold(name, "Authorization") {
					r.authorization = auth
				}
			}
			for _, e := range ev.Request.PostDataEntries {
				r.body += string(e.Bytes)
			}
			tb.log.mu.Lock()
			tb.log.requests = append(tb.log.requests, r)
			tb.log.mu.Unlock()
		}
	}()
	console := chromedp.Console(tb.ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			tb.log.mu.Lock()
			tb.log.console = append(tb.log.console, m)
			tb.log.mu.Unlock()
		}
	}()
	t := tb.t
	t.Cleanup(func() {
		tb.log.mu.Lock()
		defer tb.log.mu.Unlock()
		for _, m := range tb.log.console {
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				t.Errorf("the page's console: %s", m)
			} else if t.Failed() {
				t.Logf("the page's console: %s", m)
			}
		}
	})
}

// sent returns the API requests the page has sent so far.
func (tb *tab) sent() []sentRequest {
	tb.log.mu.Lock()
	defer tb.log.mu.Unlock()
	return append([]sentRequest(nil), tb.log.requests...)
}

// lastSent returns the body of the last request the page sent with this
// method to a URL whose path ends with path, failing if there is none.
func (tb *tab) lastSent(method, path string) string {
	tb.t.Helper()
	reqs := tb.sent()
	for i := len(reqs) - 1; i >= 0; i-- {
		u := reqs[i].url
		if q := strings.IndexByte(u, '?'); q >= 0 {
			u = u[:q]
		}
		if reqs[i].method == method && strings.HasSuffix(u, path) {
			return reqs[i].body
		}
	}
	require.FailNow(tb.t, "the page sent no such request", "%s %s", method, path)
	return ""
}

// do runs the actions, within uiWait.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiWait)
	defer cancel()
	require.NoError(tb.t, chromedp.Do(ctx, actions...), tb.describe())
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(tb.t, err, "%s\n%s", expr, tb.describe())
	return v
}

// waitFor polls the page until the expression is truthy, within uiWait,
// and returns its value; what says what was awaited. It polls on a timer
// rather than on animation frames, which a hidden tab does not get.
func waitFor[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiWait+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(uiWait)))
	require.NoError(tb.t, err, "waiting until %s: %s\n%s", what, expr, tb.describe())
	return v
}

// wait is waitFor for a condition whose value does not matter.
func (tb *tab) wait(what, expr string) {
	tb.t.Helper()
	waitFor[chromedp.Void](tb, what, expr)
}

// describe says what the page shows, for a failure message.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		url: location.href,
		refreshes: document.body && document.body.dataset.refreshes,
		status: document.querySelector('#status-line')?.textContent,
		keyMessage: document.querySelector('#key-message')?.textContent,
		createError: document.querySelector('#create-error')?.textContent,
		actionError: document.querySelector('#action-error')?.textContent,
		visibility: document.visibilityState,
	})`))
	if err != nil {
		return "the page could not be read: " + err.Error()
	}
	return "the page: " + s
}

// refreshes is body[data-refreshes], the number of refreshes the page has
// completed.
func (tb *tab) refreshes() int {
	tb.t.Helper()
	return eval[int](tb, refreshesJS)
}

const refreshesJS = `Number(document.body.dataset.refreshes || 0)`

// waitRefreshes waits until the page has completed more than n refreshes.
func (tb *tab) waitRefreshes(n int) {
	tb.t.Helper()
	tb.wait(fmt.Sprintf("more than %d refreshes", n), fmt.Sprintf(`%s > %d`, refreshesJS, n))
}

// settle waits until a refresh that started after this call has
// completed: the second to complete from now, since the first may have
// been under way already.
func (tb *tab) settle() {
	tb.t.Helper()
	tb.waitRefreshes(tb.refreshes() + 1)
}

// open loads the dashboard and waits for its key prompt.
func (tb *tab) open(base string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base+"/dashboard?refresh=1"),
		chromedp.WaitVisible(chromedp.CSS("form#key-form")))
}

// signIn types the key into the prompt and submits it, as a person does.
func (tb *tab) signIn(key string) {
	tb.t.Helper()
	tb.fill("input#admin-key", "")
	tb.do(chromedp.SendKeys(chromedp.CSS("input#admin-key"), key),
		chromedp.Click(chromedp.CSS(submitOf("form#key-form"))))
}

// submitOf is the selector of a form's submit button.
func submitOf(form string) string {
	return form + " button[type=submit], " + form + " input[type=submit], " + form + " button:not([type])"
}

// fill sets a form field's value as typing it would end, with the input
// and change events a page listens for; it also reaches past a maxlength,
// which only stops typing, so that the API's own limits can be shown.
func (tb *tab) fill(sel, value string) {
	tb.t.Helper()
	v, err := json.Marshal(value)
	require.NoError(tb.t, err)
	tb.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	eval[chromedp.Void](tb, fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		el.value = %s;
		el.dispatchEvent(new Event('input', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, sel, v))
}

// click clicks the element with the mouse once it is visible.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// text is an element's text, trimmed.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').trim()`, sel))
}

// show makes this tab the one its window shows.
func (tb *tab) show() {
	tb.t.Helper()
	_, err := chromedp.CallBrowser(tb.ctx, target.ActivateTarget, target.ActivateTargetParams{TargetID: chromedp.FromContext(tb.ctx).Target.TargetID})
	require.NoError(tb.t, err)
}

// apiCall sends a request to the API with the admin key and decodes the
// JSON answer; body is sent as is when it is a string, else as JSON.
func apiCall(t *testing.T, base, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+dashKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out), "%s %s", method, path)
	return resp.StatusCode, out
}

// apiOK is apiCall for a request that must succeed.
func apiOK(t *testing.T, base, method, path string, body any) map[string]any {
	t.Helper()
	status, out := apiCall(t, base, method, path, body)
	require.Less(t, status, 300, "%s %s: %v", method, path, out)
	return out
}

// createCampaign creates a campaign through the API and returns its ID.
func createCampaign(t *testing.T, base string, fields map[string]any) string {
	t.Helper()
	return apiOK(t, base, http.MethodPost, "/api/v1/campaigns", fields)["id"].(string)
}

// impression is one impression to send through the batch route.
type impression struct {
	CampaignID string `json:"campaign_id"`
	UserID     string `json:"user_id"`
	AdID       string `json:"ad_id"`
	UserAgent  string `json:"user_agent,omitempty"`
}

// sendImpressions records the impressions through the batch route, 1,000
// a request, and returns how many were counted, duplicates, filtered and
// rejected.
func sendImpressions(t *testing.T, base string, imps []impression) map[string]float64 {
	t.Helper()
	total := map[string]float64{}
	for len(imps) > 0 {
		n := min(len(imps), 1000)
		out := apiOK(t, base, http.MethodPost, "/api/v1/impressions/batch", map[string]any{"impressions": imps[:n]})
		for k, v := range out["summary"].(map[string]any) {
			total[k] += v.(float64)
		}
		imps = imps[n:]
	}
	return total
}
