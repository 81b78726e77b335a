package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The dashboard's tests: a person's journeys through the page at
// /dashboard, in Debian's Chromium against the real local server, through
// the page's DOM contract (README, "Dashboard"). Each test has a browser
// and a server of its own; the page refreshes every second (?refresh=1).

// cell is one table cell the page shows: its data-value, its text, and
// the link it holds.
type cell struct {
	Value *string `json:"value"`
	Text  string  `json:"text"`
	Href  *string `json:"href"`
}

// row is one table row: its key (campaign ID, ad ID or point start) and
// its cells by data-field.
type row struct {
	Key   string          `json:"key"`
	Cells map[string]cell `json:"cells"`
}

// rowsJS reads the rows of a table, keyed by the row attribute key.
func rowsJS(table, key string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => ({
		key: tr.getAttribute(%q),
		cells: Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map(td => [td.dataset.field, {
			value: td.hasAttribute('data-value') ? td.dataset.value : null,
			text: td.textContent.trim(),
			href: td.querySelector('a') ? td.querySelector('a').getAttribute('href') : null,
		}])),
	}))`, table+" tbody tr["+key+"]", key)
}

var (
	listRowsJS   = rowsJS("table#campaign-table", "data-campaign-id")
	adRowsJS     = rowsJS("table#ads-table", "data-ad-id")
	seriesRowsJS = rowsJS("table#series-table", "data-start")
)

// listRows reads the campaign list.
func (tb *tab) listRows() []row {
	tb.t.Helper()
	return eval[[]row](tb, listRowsJS)
}

// listIDs is the campaign IDs the list shows, in its order.
func (tb *tab) listIDs() []string {
	tb.t.Helper()
	var ids []string
	for _, r := range tb.listRows() {
		ids = append(ids, r.Key)
	}
	return ids
}

// waitListIs waits until the list shows exactly these campaigns, in any
// order.
func (tb *tab) waitListIs(what string, ids ...string) {
	tb.t.Helper()
	want, err := json.Marshal(ids)
	require.NoError(tb.t, err)
	tb.wait(what, fmt.Sprintf(`((want) => {
		const got = [...document.querySelectorAll('table#campaign-table tbody tr[data-campaign-id]')].map(tr => tr.dataset.campaignId);
		return got.length === want.length && want.every(id => got.includes(id));
	})(%s)`, want))
}

// openCampaign goes to a campaign's page the way its link does, and waits
// for the page to show it and complete a refresh.
func (tb *tab) openCampaign(id string) {
	tb.t.Helper()
	eval[chromedp.Void](tb, fmt.Sprintf(`location.hash = '#/campaigns/' + %q`, id))
	tb.wait("the campaign page shows "+id, fmt.Sprintf(`(() => {
		const s = document.querySelector('section#campaign-view');
		return s && s.dataset.campaignId === %q && s.offsetParent !== null;
	})()`, id))
	tb.settle()
}

// statValue is a [data-stat] element's data-value.
func (tb *tab) statValue(name string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`document.querySelector('[data-stat=%q]')?.dataset.value ?? ''`, name))
}

// number reads a data-value as the API's number, failing on anything
// else.
func number(t *testing.T, what string, v *string) float64 {
	t.Helper()
	require.NotNil(t, v, "%s has no data-value", what)
	f, err := strconv.ParseFloat(*v, 64)
	require.NoError(t, err, "%s: data-value %q is no number", what, *v)
	return f
}

// assertShownAs checks that a count's text is its data-value, with at
// most thousands separators added.
func assertShownAs(t *testing.T, what string, c cell) {
	t.Helper()
	if c.Value == nil {
		return
	}
	digits := strings.NewReplacer(",", "", ".", "", " ", "", "\u00a0", "", "\u202f", "", "'", "").Replace(c.Text)
	assert.Equal(t, *c.Value, digits, "%s shows %q for %s", what, c.Text, *c.Value)
}

// TestDashboardSignInShowsTheCampaigns: the page asks for the admin key,
// keeps it in sessionStorage only, sends it as a Bearer token, and then
// lists the campaigns created through the API, each with its status, its
// counts and a link to its page; the search box and the status filter
// narrow the list as the API's name and status parameters do, and a sort
// button orders it.
func TestDashboardSignInShowsTheCampaigns(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	names := []string{"Alpha launch", "Beta retarget", "Gamma brand"}
	var ids []string
	for _, name := range names {
		ids = append(ids, createCampaign(t, base, map[string]any{"name": name, "start_time": "2020-01-01T00:00:00Z"}))
	}
	apiOK(t, base, http.MethodPatch, "/api/v1/campaigns/"+ids[1], map[string]any{"paused": true})

	tb := newTab(t, nil, false)
	tb.open(base)
	assert.Equal(t, "password", eval[string](tb, `document.querySelector('input#admin-key').type`), "the key is typed unseen")
	assert.Empty(t, tb.listRows(), "no campaign is shown before the key")
	tb.signIn(dashKey)
	tb.waitListIs("the list shows the three campaigns", ids...)
	tb.do(chromedp.WaitNotVisible(chromedp.CSS("form#key-form")))

	status := map[string]string{ids[0]: "active", ids[1]: "paused", ids[2]: "active"}
	for _, r := range tb.listRows() {
		i := slices.Index(ids, r.Key)
		require.GreaterOrEqual(t, i, 0, "an unknown campaign %s", r.Key)
		name := r.Cells["name"]
		require.NotNil(t, name.Value, "the name cell of %s", r.Key)
		assert.Equal(t, names[i], *name.Value)
		assert.Equal(t, names[i], name.Text)
		require.NotNil(t, name.Href, "the name links to the campaign's page")
		assert.True(t, strings.HasSuffix(*name.Href, "#/campaigns/"+r.Key), "the link %q", *name.Href)
		require.NotNil(t, r.Cells["status"].Value)
		assert.Equal(t, status[r.Key], *r.Cells["status"].Value)
		for _, f := range []string{"last_hour", "last_day", "total", "unique_users"} {
			assert.Equal(t, 0.0, number(t, f, r.Cells[f].Value), "%s of %s", f, names[i])
		}
	}

	// The key lives in sessionStorage and in the Authorization header of
	// every API request, nowhere else.
	assert.Equal(t, dashKey, eval[string](tb, `sessionStorage.getItem('adcount.adminKey')`))
	assert.Empty(t, eval[string](tb, `document.cookie`))
	assert.False(t, eval[bool](tb, fmt.Sprintf(`Object.values(localStorage).some(v => v.includes(%q))`, dashKey)), "the key is in localStorage")
	assert.NotContains(t, eval[string](tb, `location.href`), dashKey)
	// Before a key is given the page may try the API without one, which
	// an open admin API (no ADMIN_API_KEYS) answers.
	reqs := tb.sent()
	keyed := slices.IndexFunc(reqs, func(r sentRequest) bool { return r.authorization != "" })
	require.GreaterOrEqual(t, keyed, 0, "the page sent the key")
	for i, r := range reqs {
		if i >= keyed {
			assert.Equal(t, "Bearer "+dashKey, r.authorization, "%s %s", r.method, r.url)
		}
		assert.NotContains(t, r.url, dashKey)
		assert.True(t, strings.HasPrefix(r.url, base+"/api/v1/"), "the page calls only its own API: %s", r.url)
	}

	t.Run("SearchByName", func(t *testing.T) {
		tb := tb.in(t)
		tb.do(chromedp.SendKeys(chromedp.CSS("input#search"), "ALP"))
		tb.waitListIs("the search finds Alpha only", ids[0])
		_, api := apiCall(t, base, http.MethodGet, "/api/v1/campaigns?name=ALP", nil)
		var apiIDs []string
		for _, c := range api["campaigns"].([]any) {
			apiIDs = append(apiIDs, c.(map[string]any)["id"].(string))
		}
		assert.Equal(t, apiIDs, tb.listIDs(), "the page finds what the API finds")
		tb.fill("input#search", "")
		tb.waitListIs("an empty search shows every campaign", ids...)
	})
	t.Run("FilterByStatus", func(t *testing.T) {
		tb := tb.in(t)
		tb.choose("select#status-filter", "paused")
		tb.waitListIs("the filter shows the paused campaign only", ids[1])
		tb.choose("select#status-filter", "all")
		tb.waitListIs("all shows every campaign", ids...)
	})
	t.Run("SortByName", func(t *testing.T) {
		tb := tb.in(t)
		tb.click(`th > button[data-sort="name"]`)
		order := waitFor[string](tb, "the name column says how it sorts",
			`['ascending', 'descending'].find(s => s === document.querySelector('button[data-sort="name"]').parentElement.getAttribute('aria-sort'))`)
		want := slices.Clone(ids)
		if order == "descending" {
			slices.Reverse(want)
		}
		assert.Equal(t, want, tb.listIDs(), "sorted %s by name", order)
		tb.click(`th > button[data-sort="name"]`)
		other := waitFor[string](tb, "a second click turns the order",
			fmt.Sprintf(`['ascending', 'descending'].find(s => s !== %q && s === document.querySelector('button[data-sort="name"]').parentElement.getAttribute('aria-sort'))`, order))
		slices.Reverse(want)
		assert.Equal(t, want, tb.listIDs(), "sorted %s by name", other)
	})
}

// choose picks an option of a select as a person does, by its value, or
// for "all" the option that means no filter ("all" or empty).
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	ok := eval[bool](tb, fmt.Sprintf(`(() => {
		const s = document.querySelector(%q);
		const want = %q;
		const o = [...s.options].find(o => o.value === want || (want === 'all' && o.value === ''));
		if (!o) return false;
		s.value = o.value;
		s.dispatchEvent(new Event('input', {bubbles: true}));
		s.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})()`, sel, value))
	require.True(tb.t, ok, "%s has no option %q", sel, value)
}

// TestDashboardCreatesACampaign: a campaign created through the form
// appears in the list and the API lists it; an empty start means now, and
// a start and an end picked in the fields are read in UTC, as their labels
// say, whatever the browser's time zone.
func TestDashboardCreatesACampaign(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	tb := newTab(t, nil, false)
	// A zone away from UTC, with summer time, so that a page that read
	// the fields in the browser's zone would be caught.
	_, err := chromedp.Call(tb.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Paris"})
	require.NoError(t, err)
	tb.open(base)
	tb.signIn(dashKey)
	tb.do(chromedp.WaitVisible(chromedp.CSS("section#list-view")))
	for _, field := range []string{"create-start", "create-end"} {
		assert.Contains(t, tb.text(fmt.Sprintf(`label[for=%q]`, field)), "UTC", "the label of #%s says the zone", field)
	}

	before := time.Now().Add(-time.Second)
	tb.fill("input#create-name", "Autumn launch")
	tb.click(submitOf("form#create-form"))
	now := waitCampaignNamed(t, tb, base, "Autumn launch")
	after := time.Now().Add(time.Second)
	start, err := time.Parse(time.RFC3339Nano, now["start_time"].(string))
	require.NoError(t, err)
	assert.True(t, !start.Before(before.Truncate(time.Second)) && !start.After(after), "an empty start is now: %v, not in [%v, %v]", start, before, after)
	assert.Equal(t, "active", now["status"])
	assert.Nil(t, now["end_time"])
	assert.Empty(t, tb.text("#create-error"))

	tb.fill("input#create-name", "Summer teaser")
	tb.fill("input#create-start", "2031-07-01T09:30")
	tb.fill("input#create-end", "2031-08-01T00:00")
	tb.click(submitOf("form#create-form"))
	later := waitCampaignNamed(t, tb, base, "Summer teaser")
	assert.Equal(t, "2031-07-01T09:30:00Z", later["start_time"])
	assert.Equal(t, "2031-08-01T00:00:00Z", later["end_time"])
	assert.Equal(t, "scheduled", later["status"])
	tb.wait("the list shows the new campaign as scheduled", fmt.Sprintf(
		`document.querySelector('tr[data-campaign-id=%q] td[data-field="status"]')?.dataset.value === 'scheduled'`, later["id"]))
	assert.Empty(t, tb.text("#create-error"))
}

// waitCampaignNamed waits until the list shows a campaign of this name,
// then returns the API's campaign of that name, which must be the only one.
func waitCampaignNamed(t *testing.T, tb *tab, base, name string) map[string]any {
	t.Helper()
	id := waitFor[string](tb, "the list shows "+name, fmt.Sprintf(`[...document.querySelectorAll('table#campaign-table tbody tr[data-campaign-id]')]
		.find(tr => tr.querySelector('td[data-field="name"]')?.dataset.value === %q)?.dataset.campaignId`, name))
	var found []map[string]any
	for _, c := range apiOK(t, base, http.MethodGet, "/api/v1/campaigns?limit=500", nil)["campaigns"].([]any) {
		if c := c.(map[string]any); c["name"] == name {
			found = append(found, c)
		}
	}
	require.Len(t, found, 1, "the API lists one campaign named %q", name)
	require.Equal(t, found[0]["id"], id, "the list's row is the API's campaign")
	return found[0]
}

// TestDashboardUpdatesLiveWithoutReload: impressions sent through the API
// show on the open campaign page, in its numbers and in the chart's data
// table, within a refresh or two, and the page is never reloaded.
func TestDashboardUpdatesLiveWithoutReload(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	id := createCampaign(t, base, map[string]any{"name": "Live", "start_time": "2020-01-01T00:00:00Z"})
	tb := newTab(t, nil, false)
	tb.open(base)
	tb.signIn(dashKey)
	tb.waitListIs("the list shows the campaign", id)
	tb.click(fmt.Sprintf(`tr[data-campaign-id=%q] td[data-field="name"] a`, id))
	tb.wait("the campaign page", fmt.Sprintf(`document.querySelector('section#campaign-view')?.dataset.campaignId === %q`, id))
	assert.Equal(t, "#/campaigns/"+id, eval[string](tb, `location.hash`))
	assert.Equal(t, "Live", tb.text("#campaign-name"))
	assert.Equal(t, "active", tb.text("#campaign-status"))
	tb.settle()
	assert.Equal(t, "0", tb.statValue("total"))

	eval[chromedp.Void](tb, `window.__noReload = true`)
	refreshes := tb.refreshes()
	summary := sendImpressions(t, base, []impression{
		{CampaignID: id, UserID: "u1", AdID: "banner"},
		{CampaignID: id, UserID: "u2", AdID: "banner"},
		{CampaignID: id, UserID: "u3", AdID: "video"},
		{CampaignID: id, UserID: "u1", AdID: "banner"},                                                              // a duplicate
		{CampaignID: id, UserID: "u4", AdID: "video", UserAgent: "Googlebot/2.1 (+http://www.google.com/bot.html)"}, // filtered
	})
	require.Equal(t, map[string]float64{"counted": 3, "duplicates": 1, "filtered": 1, "rejected": 0}, summary)

	tb.wait("the stats show the impressions", `['total', 'last_hour', 'last_day'].every(s => document.querySelector('[data-stat="' + s + '"]')?.dataset.value === '3')
		&& document.querySelector('[data-stat="filtered"]')?.dataset.value === '1'`)
	tb.wait("the chart's table counts them", `[...document.querySelectorAll('table#series-table tr[data-start] td[data-field="count"]')]
		.reduce((sum, td) => sum + Number(td.dataset.value), 0) === 3`)
	tb.wait("the ads table counts them", `(() => {
		const v = (ad, f) => document.querySelector('table#ads-table tr[data-ad-id="' + ad + '"] td[data-field="' + f + '"]')?.dataset.value;
		return v('banner', 'total') === '2' && v('video', 'total') === '1' && v('video', 'filtered') === '1' && v('banner', 'filtered') === '0';
	})()`)
	assert.True(t, eval[bool](tb, `window.__noReload === true`), "the page was reloaded")
	assert.Greater(t, tb.refreshes(), refreshes, "body[data-refreshes] counts the refreshes")
	assert.Equal(t, "3", tb.statValue("unique_users.total"))
	assert.Contains(t, eval[string](tb, `document.querySelector('#status-line').textContent`), "Updated")
	assert.Equal(t, "polite", eval[string](tb, `document.querySelector('#status-line').getAttribute('aria-live')`))
}

// TestDashboardPausesACampaign: the pause button pauses the campaign, the
// page says so, and the API then refuses its impressions with 409 paused;
// resume undoes it.
func TestDashboardPausesACampaign(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	id := createCampaign(t, base, map[string]any{"name": "Pausable", "start_time": "2020-01-01T00:00:00Z"})
	tb := newTab(t, nil, false)
	tb.open(base)
	tb.signIn(dashKey)
	tb.waitListIs("the list", id)
	tb.openCampaign(id)
	assert.Equal(t, "active", tb.text("#campaign-status"))
	enabled := func(sel string) bool {
		return eval[bool](tb, fmt.Sprintf(`!document.querySelector(%q).disabled`, sel))
	}
	assert.True(t, enabled("button#pause-button"))
	assert.False(t, enabled("button#resume-button"), "only the relevant button is enabled")

	tb.click("button#pause-button")
	tb.wait("the status says paused", `document.querySelector('#campaign-status').textContent.trim() === 'paused'`)
	tb.wait("resume is the one enabled", `document.querySelector('button#pause-button').disabled && !document.querySelector('button#resume-button').disabled`)
	assert.Equal(t, true, apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id, nil)["paused"])
	refused := post(t, base+"/api/v1/impressions", fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a1"}`, id))
	assert.Equal(t, 409.0, refused["status"])
	assert.Equal(t, "paused", refused["code"])
	assert.Empty(t, tb.text("#action-error"))

	tb.click("button#resume-button")
	tb.wait("the status says active", `document.querySelector('#campaign-status').textContent.trim() === 'active'`)
	tb.wait("pause is the one enabled", `!document.querySelector('button#pause-button').disabled && document.querySelector('button#resume-button').disabled`)
	assert.Equal(t, true, post(t, base+"/api/v1/impressions", fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a1"}`, id))["counted"])
	tb.wait("the page counts it", `document.querySelector('[data-stat="total"]')?.dataset.value === '1'`)
}

// TestDashboardAsksAgainForARefusedKey: a wrong key brings the prompt back
// with a message that gives the API's status (403 for a wrong key, 401
// for none), and so does a key that stops working in the middle of a
// session; a refused key is not kept.
func TestDashboardAsksAgainForARefusedKey(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	id := createCampaign(t, base, map[string]any{"name": "Guarded", "start_time": "2020-01-01T00:00:00Z"})
	tb := newTab(t, nil, false)
	tb.open(base)
	assert.Empty(t, tb.text("#key-message"), "no message before a key was refused")

	// refused waits for the prompt to come back saying the status the API
	// answers to this key.
	refused := func(what, key string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/campaigns", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", strings.TrimSpace("Bearer "+strings.TrimSpace(key)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, resp.StatusCode)
		tb.wait(what, fmt.Sprintf(`(() => {
			const m = document.querySelector('#key-message');
			const f = document.querySelector('form#key-form');
			return m && m.textContent.includes(%q) && m.offsetParent !== null && f.offsetParent !== null;
		})()`, strconv.Itoa(resp.StatusCode)))
		assert.Equal(t, "alert", eval[string](tb, `document.querySelector('#key-message').getAttribute('role')`))
		assert.Nil(t, eval[*string](tb, `sessionStorage.getItem('adcount.adminKey')`), "a refused key is not kept")
		assert.Zero(t, eval[int](tb, `[...document.querySelectorAll('table#campaign-table tr[data-campaign-id]')].filter(tr => tr.offsetParent !== null).length`),
			"no campaign is shown without a key")
	}
	signedIn := func() {
		t.Helper()
		tb.signIn(dashKey)
		tb.waitListIs("the right key shows the list", id)
		tb.do(chromedp.WaitNotVisible(chromedp.CSS("form#key-form")))
	}

	const wrong = "wrong-key-0123456789abcdef"
	tb.signIn(wrong)
	refused("a wrong key brings the prompt back with a message", wrong)

	// The key is rotated away while the page is open: the next refresh is
	// refused.
	signedIn()
	eval[chromedp.Void](tb, fmt.Sprintf(`sessionStorage.setItem('adcount.adminKey', %q)`, wrong))
	refused("a refused refresh brings the prompt back", wrong)

	// A key that is no key: the API answers 401.
	signedIn()
	eval[chromedp.Void](tb, `sessionStorage.setItem('adcount.adminKey', ' ')`)
	refused("a 401 brings the prompt back", " ")

	signedIn()
}

// TestDashboardShowsTheAPIsErrorInPlace: a request the API refuses shows
// the API's own message, verbatim, next to the form that sent it; the
// message is compared with the API's answer to the very request the page
// sent.
func TestDashboardShowsTheAPIsErrorInPlace(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	id := createCampaign(t, base, map[string]any{"name": "Target", "start_time": "2024-03-01T00:00:00Z"})
	tb := newTab(t, nil, false)
	tb.open(base)
	tb.signIn(dashKey)
	tb.waitListIs("the list", id)

	long := strings.Repeat("n", 201)
	cases := []struct {
		name   string
		view   string            // "" the list, else the campaign page
		fields map[string]string // selector: value
		submit string            // the form
		method string            // the request the page sends
		path   string
		errEl  string // where the message shows
	}{
		// The end is checked against the start by the API, not the page.
		{"CreateEndBeforeStart", "", map[string]string{"input#create-name": "Backwards", "input#create-start": "2030-01-02T00:00", "input#create-end": "2030-01-01T00:00"},
			"form#create-form", http.MethodPost, "/api/v1/campaigns", "#create-error"},
		// 201 characters: one past the API's limit.
		{"CreateNameTooLong", "", map[string]string{"input#create-name": long, "input#create-start": "", "input#create-end": ""},
			"form#create-form", http.MethodPost, "/api/v1/campaigns", "#create-error"},
		// Blank is not empty: a required field lets it through, the API does not.
		{"RenameBlank", id, map[string]string{"input#rename-name": "   "},
			"form#rename-form", http.MethodPatch, "/api/v1/campaigns/" + id, "#action-error"},
		{"RenameTooLong", id, map[string]string{"input#rename-name": long},
			"form#rename-form", http.MethodPatch, "/api/v1/campaigns/" + id, "#action-error"},
		// The campaign started in March 2024.
		{"EndBeforeStart", id, map[string]string{"input#end-time": "2023-01-01T00:00"},
			"form#end-form", http.MethodPatch, "/api/v1/campaigns/" + id, "#action-error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := tb.in(t)
			if tc.view != "" {
				tb.openCampaign(tc.view)
			} else {
				eval[chromedp.Void](tb, `location.hash = '#/'`)
				tb.do(chromedp.WaitVisible(chromedp.CSS("section#list-view")))
			}
			for sel, v := range tc.fields {
				tb.fill(sel, v)
			}
			sent, before := len(tb.sent()), tb.text(tc.errEl)
			tb.click(submitOf(tc.submit))
			// Each case's message differs from the one before it.
			shown := waitFor[string](tb, "the error shows in "+tc.errEl, fmt.Sprintf(`(() => {
				const e = document.querySelector(%q);
				const text = e && e.offsetParent !== null && e.textContent.trim();
				return text !== %q && text;
			})()`, tc.errEl, before))
			assert.Equal(t, "alert", eval[string](tb, fmt.Sprintf(`document.querySelector(%q).getAttribute('role')`, tc.errEl)))
			require.Greater(t, len(tb.sent()), sent, "the page sent the request")
			body := tb.lastSent(tc.method, tc.path)
			status, answer := apiCall(t, base, tc.method, tc.path, body)
			require.Equal(t, http.StatusBadRequest, status, "the API refuses %s", body)
			assert.Equal(t, answer["error"], shown, "the page shows the API's message for %s", body)
		})
	}
	// Nothing was changed or created by the refused requests.
	c := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id, nil)
	assert.Equal(t, "Target", c["name"])
	assert.Nil(t, c["end_time"])
	assert.Len(t, apiOK(t, base, http.MethodGet, "/api/v1/campaigns", nil)["campaigns"], 1)
}

// TestDashboardNumbersAgreeWithTheAPI: after traffic to several campaigns,
// with duplicates, filtered impressions, a pause, a scheduled and an ended
// campaign, every number the page shows (the list, the stats, the ads
// table and the chart's table at each interval) is the API's, read right
// after a refresh that began once the traffic had ended.
func TestDashboardNumbersAgreeWithTheAPI(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	start := time.Now().Add(-50 * time.Hour).UTC().Format(time.RFC3339)
	big := createCampaign(t, base, map[string]any{"name": "Winter sale", "start_time": start})
	small := createCampaign(t, base, map[string]any{"name": "Spring teaser", "start_time": start})
	paused := createCampaign(t, base, map[string]any{"name": "Paused promo", "start_time": start})
	scheduled := createCampaign(t, base, map[string]any{"name": "Next year", "start_time": "2031-01-01T00:00:00Z"})
	ended := createCampaign(t, base, map[string]any{"name": "Last summer", "start_time": "2020-06-01T00:00:00Z", "end_time": "2020-09-01T00:00:00Z"})
	all := []string{big, small, paused, scheduled, ended}

	const bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	var imps []impression
	// 23 ads: more than one page of the ads table.
	for i := range 1500 {
		imps = append(imps, impression{CampaignID: big, UserID: fmt.Sprintf("user-%d", i%900), AdID: fmt.Sprintf("ad-%02d", i%23)})
	}
	imps = append(imps, imps[:120]...) // duplicates
	for i := range 25 {
		imps = append(imps, impression{CampaignID: big, UserID: fmt.Sprintf("bot-%d", i), AdID: "ad-03", UserAgent: bot})
	}
	for i := range 37 {
		imps = append(imps, impression{CampaignID: small, UserID: fmt.Sprintf("user-%d", i), AdID: "only-ad"})
	}
	imps = append(imps, impression{CampaignID: small, UserID: "user-0", AdID: "only-ad"})
	for i := range 10 {
		imps = append(imps, impression{CampaignID: paused, UserID: fmt.Sprintf("user-%d", i), AdID: "promo"})
	}
	summary := sendImpressions(t, base, imps)
	assert.Equal(t, map[string]float64{"counted": 1500 + 37 + 10, "duplicates": 121, "filtered": 25, "rejected": 0}, summary)
	apiOK(t, base, http.MethodPatch, "/api/v1/campaigns/"+paused, map[string]any{"paused": true})
	refusedAfter := sendImpressions(t, base, []impression{
		{CampaignID: paused, UserID: "late", AdID: "promo"},
		{CampaignID: scheduled, UserID: "early", AdID: "x"},
		{CampaignID: ended, UserID: "late", AdID: "x"},
	})
	assert.Equal(t, 3.0, refusedAfter["rejected"])

	tb := newTab(t, nil, false)
	tb.open(base)
	tb.signIn(dashKey)
	tb.waitListIs("the list shows every campaign", all...)
	tb.settle()

	t.Run("List", func(t *testing.T) {
		tb := tb.in(t)
		rows := tb.listRows()
		require.Len(t, rows, len(all))
		campaigns := map[string]map[string]any{}
		for _, c := range apiOK(t, base, http.MethodGet, "/api/v1/campaigns?limit=500", nil)["campaigns"].([]any) {
			campaigns[c.(map[string]any)["id"].(string)] = c.(map[string]any)
		}
		for _, r := range rows {
			c, ok := campaigns[r.Key]
			require.True(t, ok, "the API lists %s", r.Key)
			stats := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+r.Key+"/stats", nil)
			name := c["name"].(string)
			assert.Equal(t, c["name"], deref(r.Cells["name"].Value), "name")
			assert.Equal(t, c["status"], deref(r.Cells["status"].Value), "status of %s", name)
			want := map[string]any{"last_hour": stats["last_hour"], "last_day": stats["last_day"], "total": stats["total"],
				"unique_users": stats["unique_users"].(map[string]any)["total"]}
			for f, v := range want {
				assert.Equal(t, v, number(t, f, r.Cells[f].Value), "%s of %s", f, name)
				assertShownAs(t, f+" of "+name, r.Cells[f])
			}
		}
	})

	for _, id := range []string{big, small, paused} {
		t.Run("Campaign"+id[:8], func(t *testing.T) {
			tb := tb.in(t)
			tb.openCampaign(id)
			checkCampaignPage(t, tb, base, id)
		})
	}
}

// TestDashboardPagesThroughTheList: the list shows the API's pages, newest
// first, and its buttons move between them, each enabled only when there
// is a page to go to.
func TestDashboardPagesThroughTheList(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	for i := range 45 {
		createCampaign(t, base, map[string]any{"name": fmt.Sprintf("Campaign %02d", i), "start_time": "2020-01-01T00:00:00Z"})
	}
	tb := newTab(t, nil, false)
	tb.open(base)
	tb.signIn(dashKey)
	tb.wait("the first page", `document.querySelectorAll('table#campaign-table tbody tr[data-campaign-id]').length > 0`)

	// The page's own page size, from the request it sent.
	var limit string
	for _, r := range tb.sent() {
		if u, err := url.Parse(r.url); err == nil && u.Path == "/api/v1/campaigns" && r.method == http.MethodGet {
			limit = u.Query().Get("limit")
		}
	}
	require.NotEmpty(t, limit, "the list asks for a page size")
	var pages [][]string
	for cursor := ""; ; {
		page := apiOK(t, base, http.MethodGet, "/api/v1/campaigns?limit="+limit+cursor, nil)
		var ids []string
		for _, c := range page["campaigns"].([]any) {
			ids = append(ids, c.(map[string]any)["id"].(string))
		}
		pages = append(pages, ids)
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(next)
	}
	require.Greater(t, len(pages), 2, "45 campaigns fill more than two pages of %s", limit)

	showsPage := func(i int) {
		t.Helper()
		want, err := json.Marshal(pages[i])
		require.NoError(t, err)
		tb.wait(fmt.Sprintf("page %d of the API", i+1), fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('table#campaign-table tbody tr[data-campaign-id]')].map(tr => tr.dataset.campaignId)) === %q`, want))
		tb.wait("only the buttons with a page to go to are enabled", fmt.Sprintf(`document.querySelector('button#prev-page').disabled === %t && document.querySelector('button#next-page').disabled === %t`, i == 0, i == len(pages)-1))
	}
	showsPage(0)
	for i := 1; i < len(pages); i++ {
		tb.click("button#next-page")
		showsPage(i)
	}
	tb.settle()
	showsPage(len(pages) - 1)
	for i := len(pages) - 2; i >= 0; i-- {
		tb.click("button#prev-page")
		showsPage(i)
	}
}

// deref is the string a pointer holds, or "<none>".
func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// statNames are the [data-stat] elements of the campaign page.
var statNames = []string{"last_hour", "last_day", "total", "filtered",
	"unique_users.last_hour", "unique_users.last_day", "unique_users.total",
	"frequency.last_hour", "frequency.last_day", "frequency.total"}

// checkCampaignPage compares every number the open campaign page shows
// with the API's: the stats, the ads table (and its next page), and the
// chart's table at each interval.
func checkCampaignPage(t *testing.T, tb *tab, base, id string) {
	t.Helper()
	type stat struct {
		Value *string `json:"value"`
		Text  string  `json:"text"`
	}
	shown := eval[map[string]stat](tb, `Object.fromEntries([...document.querySelectorAll('[data-stat]')].map(e => [e.dataset.stat, {
		value: e.hasAttribute('data-value') ? e.dataset.value : null, text: e.textContent.trim()}]))`)
	asOf := eval[string](tb, `document.querySelector('#as-of')?.dataset.value ?? ''`)
	stats := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id+"/stats", nil)
	campaign := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id, nil)
	assert.Equal(t, campaign["name"], tb.text("#campaign-name"))
	assert.Equal(t, campaign["status"], tb.text("#campaign-status"))
	for _, name := range statNames {
		want := stats
		key := name
		if group, field, ok := strings.Cut(name, "."); ok {
			want, key = stats[group].(map[string]any), field
		}
		s, ok := shown[name]
		require.True(t, ok, "the page shows %s", name)
		assert.Equal(t, want[key], number(t, name, s.Value), name)
		if !strings.HasPrefix(name, "frequency.") {
			assertShownAs(t, name, cell{Value: s.Value, Text: s.Text})
		}
	}
	shownAt, err := time.Parse(time.RFC3339Nano, asOf)
	require.NoError(t, err, "#as-of data-value %q", asOf)
	apiAt, err := time.Parse(time.RFC3339Nano, stats["as_of"].(string))
	require.NoError(t, err)
	assert.False(t, shownAt.After(apiAt), "as_of %v is after the API's later %v", shownAt, apiAt)
	assert.Less(t, apiAt.Sub(shownAt), uiWait, "as_of is of a recent refresh")

	checkAdsTable(t, tb, base, id)
	for _, interval := range []string{"minute", "hour", "day"} {
		checkSeriesTable(t, tb, base, id, interval)
	}
}

// checkAdsTable compares the ads table with the API's per-ad breakdown:
// the page shows the API's first ads in its order, and its next page the
// ones that follow.
func checkAdsTable(t *testing.T, tb *tab, base, id string) {
	t.Helper()
	var apiAds []map[string]any
	for cursor := ""; ; {
		page := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id+"/ads?limit=500"+cursor, nil)
		for _, a := range page["ads"].([]any) {
			apiAds = append(apiAds, a.(map[string]any))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(next)
	}
	rows := eval[[]row](tb, adRowsJS)
	require.NotEmpty(t, rows, "the ads table")
	seen := 0
	for {
		require.LessOrEqual(t, seen+len(rows), len(apiAds), "the page shows more ads than the API has")
		for i, r := range rows {
			want := apiAds[seen+i]
			assert.Equal(t, want["ad_id"], r.Key, "ad %d in the API's order", seen+i)
			for _, f := range []string{"last_hour", "last_day", "total", "filtered"} {
				assert.Equal(t, want[f], number(t, f, r.Cells[f].Value), "%s of %s", f, r.Key)
				assertShownAs(t, f+" of "+r.Key, r.Cells[f])
			}
		}
		seen += len(rows)
		more := eval[bool](tb, `!!document.querySelector('button#ads-next') && !document.querySelector('button#ads-next').disabled`)
		if seen == len(apiAds) {
			assert.False(t, more, "#ads-next is enabled after the last ad")
			return
		}
		require.True(t, more, "the page shows %d of %d ads and offers no next page", seen, len(apiAds))
		first := rows[0].Key
		tb.click("button#ads-next")
		tb.wait("the next page of ads", fmt.Sprintf(`(() => {
			const r = document.querySelector('table#ads-table tbody tr[data-ad-id]');
			return r && r.dataset.adId !== %q;
		})()`, first))
		rows = eval[[]row](tb, adRowsJS)
	}
}

// seriesSteps are the widths of the chart's intervals.
var seriesSteps = map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}

// checkSeriesTable switches the chart to the interval and compares its
// data table, point by point, with the API's series of that interval.
func checkSeriesTable(t *testing.T, tb *tab, base, id, interval string) {
	t.Helper()
	button := fmt.Sprintf(`button[data-interval=%q]`, interval)
	if eval[string](tb, fmt.Sprintf(`document.querySelector(%q).getAttribute('aria-pressed')`, button)) != "true" {
		tb.click(button)
		tb.wait(interval+" is pressed", fmt.Sprintf(`document.querySelector(%q).getAttribute('aria-pressed') === 'true'`, button))
	}
	assert.Equal(t, 1, eval[int](tb, `document.querySelectorAll('button[data-interval][aria-pressed="true"]').length`), "one interval is pressed")
	tb.settle()
	assert.Equal(t, "DETAILS", eval[string](tb, `document.querySelector('table#series-table').closest('details')?.tagName ?? ''`), "the chart's numbers are in a details element")
	assert.True(t, eval[bool](tb, `!!document.querySelector('#series-chart canvas')`), "uPlot drew the chart")

	step := seriesSteps[interval]
	rows := eval[[]row](tb, seriesRowsJS)
	require.NotEmpty(t, rows, interval)
	shown := map[time.Time]row{}
	var first, last time.Time
	for _, r := range rows {
		at, err := time.Parse(time.RFC3339Nano, r.Key)
		require.NoError(t, err, "data-start %q", r.Key)
		shown[at] = r
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	span := last.Sub(first)/step + 1
	switch interval {
	case "minute":
		assert.InDelta(t, 1440, int(span), 1, "a day of minutes")
	case "hour":
		assert.InDelta(t, 90*24, int(span), 1, "90 days of hours")
	}
	assert.Equal(t, int(span), len(rows), "one row per %s, zeros included", interval)

	// The API's points from just after the page's oldest, which may have
	// left what the store keeps since, to now, at most 1,500 a request.
	from := first.Add(step)
	if interval == "day" {
		from = first
	}
	api := map[time.Time]map[string]any{}
	now := time.Now().UTC()
	for from.Before(now) {
		to := from.Add(1500 * step)
		if to.After(now) {
			to = now
		}
		q := url.Values{"interval": {interval}, "from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
		for _, p := range apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id+"/timeseries?"+q.Encode(), nil)["points"].([]any) {
			p := p.(map[string]any)
			at, err := time.Parse(time.RFC3339Nano, p["start"].(string))
			require.NoError(t, err)
			api[at] = p
		}
		from = to
	}
	var total float64
	for at, r := range shown {
		count := number(t, interval+" count "+r.Key, r.Cells["count"].Value)
		total += count
		p, ok := api[at]
		if !ok {
			assert.Zero(t, count, "the %s at %s is no longer the API's and was not empty", interval, r.Key)
			continue
		}
		assert.Equal(t, p["count"], count, "count of the %s at %s", interval, r.Key)
		if users, ok := p["unique_users"]; ok {
			assert.Equal(t, users, number(t, interval+" users "+r.Key, r.Cells["unique_users"].Value), "unique users of the %s at %s", interval, r.Key)
		} else if c, ok := r.Cells["unique_users"]; ok {
			assert.True(t, c.Value == nil || *c.Value == "", "the %s at %s shows unique users %q the API does not know", interval, r.Key, deref(c.Value))
		}
	}
	for at, p := range api {
		if _, ok := shown[at]; !ok {
			assert.Zero(t, p["count"], "the page's %s table lacks the point at %v", interval, at)
		}
	}
	stats := apiOK(t, base, http.MethodGet, "/api/v1/campaigns/"+id+"/stats", nil)
	want := stats["last_day"].(float64)
	if interval != "minute" {
		want = stats["total"].(float64)
	}
	assert.Equal(t, want, total, "the %s points sum", interval)
}

// TestDashboardHiddenTabStopsRefreshing: a dashboard in a tab that another
// tab hides sends no request and refreshes nothing, while one in a window
// of its own goes on, and it refreshes as soon as it is shown again.
//
// The tab is hidden the real way, by a person's tab switch: a second tab
// opens in its window and is activated (Target.activateTarget), which
// makes Chromium set document.hidden and fire visibilitychange, and
// throttle its timers, as it does for any background tab. Freezing the
// page (Page.setWebLifecycleState) would stop every script whatever the
// page does, and prove nothing about it.
func TestDashboardHiddenTabStopsRefreshing(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	id := createCampaign(t, base, map[string]any{"name": "Watched", "start_time": "2020-01-01T00:00:00Z"})
	watched := newTab(t, nil, false)
	// The other tab opens in the window of the watched one, which is the
	// browser's window until another window opens.
	other := newTab(t, watched, true)
	other.do(chromedp.Navigate("about:blank"))
	watched.show()
	// The control, in a window of its own, stays visible: its refreshes
	// are the clock that says how long the hidden tab had to refresh.
	control := newTab(t, watched, false)
	for _, tb := range []*tab{watched, control} {
		tb.open(base)
		tb.signIn(dashKey)
		tb.waitListIs("the list", id)
		tb.settle()
	}

	other.show()
	watched.wait("the tab is hidden", `document.visibilityState === 'hidden'`)
	// A refresh under way when the tab was hidden may still end.
	control.settle()
	refreshes, sent := watched.refreshes(), len(watched.sent())
	control.waitRefreshes(control.refreshes() + 4)
	assert.Equal(t, refreshes, watched.refreshes(), "the hidden tab refreshed")
	assert.Len(t, watched.sent(), sent, "the hidden tab called the API")

	watched.show()
	watched.wait("the tab is shown", `document.visibilityState === 'visible'`)
	watched.waitRefreshes(refreshes)

	// With a refresh every 300 s, a refresh within uiWait of being shown
	// is the one that showing the tab starts.
	watched.do(chromedp.Navigate(base + "/dashboard?refresh=300"))
	watched.waitListIs("the list, with the key kept for the tab", id)
	watched.wait("the first load is complete", `document.querySelector('#status-line').textContent.includes('Updated')`)
	other.show()
	watched.wait("the tab is hidden", `document.visibilityState === 'hidden'`)
	refreshes = watched.refreshes()
	watched.show()
	watched.waitRefreshes(refreshes)
}

// TestDashboardAtPhoneWidth: at a phone's 390×844 the page fits the
// screen's width, the list can be searched and read, a campaign opened
// from it, and its actions reached.
func TestDashboardAtPhoneWidth(t *testing.T) {
	t.Parallel()
	base := startDashboardServer(t)
	var ids []string
	for _, name := range []string{"A campaign with a rather long name for a phone", "Short", "Weekend"} {
		ids = append(ids, createCampaign(t, base, map[string]any{"name": name, "start_time": "2020-01-01T00:00:00Z"}))
	}
	var imps []impression
	for i := range 1234 {
		imps = append(imps, impression{CampaignID: ids[0], UserID: fmt.Sprintf("u%d", i), AdID: fmt.Sprintf("creative-%d", i%4)})
	}
	sendImpressions(t, base, imps)

	tb := newTab(t, nil, false)
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	tb.open(base)
	fits := func(what string) {
		t.Helper()
		assert.Equal(t, 390, eval[int](tb, `window.innerWidth`), "the page sets its viewport to the device's width")
		sizes := eval[map[string]int](tb, `({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, width: window.innerWidth})`)
		assert.LessOrEqual(t, sizes["doc"], sizes["width"], "%s: the page is wider than the screen", what)
		assert.LessOrEqual(t, sizes["body"], sizes["width"], "%s: the body is wider than the screen", what)
	}
	inView := func(sel string) {
		t.Helper()
		box := eval[map[string]float64](tb, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; })()`, sel))
		assert.GreaterOrEqual(t, box["left"], 0.0, "%s starts off the screen", sel)
		assert.LessOrEqual(t, box["right"], 390.0, "%s ends off the screen", sel)
		assert.Positive(t, box["width"], "%s has no width", sel)
	}
	fits("the key prompt")
	inView("input#admin-key")
	tb.signIn(dashKey)
	tb.waitListIs("the list", ids...)
	tb.settle()
	fits("the list")
	inView("input#search")
	inView("select#status-filter")
	inView("input#create-name")
	link := fmt.Sprintf(`tr[data-campaign-id=%q] td[data-field="name"] a`, ids[0])
	inView(link)

	tb.do(chromedp.SendKeys(chromedp.CSS("input#search"), "weekend"))
	tb.waitListIs("the search on a phone", ids[2])
	tb.fill("input#search", "")
	tb.waitListIs("the whole list", ids...)

	tb.click(link)
	tb.wait("the campaign page", fmt.Sprintf(`document.querySelector('section#campaign-view')?.dataset.campaignId === %q`, ids[0]))
	tb.settle()
	tb.wait("the page counts the impressions", `document.querySelector('[data-stat="total"]')?.dataset.value === '1234'`)
	fits("the campaign page")
	inView("#campaign-status")
	inView("button#pause-button")
	inView("#series-chart")
	inView("input#rename-name")
	tb.click("button#pause-button")
	tb.wait("paused from the phone", `document.querySelector('#campaign-status').textContent.trim() === 'paused'`)
	tb.click("a#home")
	tb.do(chromedp.WaitVisible(chromedp.CSS("section#list-view")))
	tb.wait("the list shows the pause", fmt.Sprintf(`document.querySelector('tr[data-campaign-id=%q] td[data-field="status"]')?.dataset.value === 'paused'`, ids[0]))
	fits("the list again")
}
