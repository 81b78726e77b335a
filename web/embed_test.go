package web_test

import (
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/web"
)

// pageURL is where the page is served under an API Gateway stage prefix,
// the harder case for relative URLs: an asset must resolve under it.
const pageURL = "https://dashboard.test/Prod/dashboard"

// The patterns that find what a file makes the browser load. They are
// deliberately simple: the files are ours or uPlot's, and a reference they
// miss would show as a file no reference reaches (TestEveryFileIsUsed).
var (
	htmlRefs = regexp.MustCompile(`\s(?:src|href|action)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	cssRefs  = regexp.MustCompile(`url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]+))\s*\)|@import\s+(?:"([^"]*)"|'([^']*)')`)
	jsRefs   = regexp.MustCompile(`(?:\bimport|\bexport)\s*(?:[\w*{}\s,$]+?\s*from\s*)?(?:"([^"]*)"|'([^']*)')|\bimport\(\s*(?:"([^"]*)"|'([^']*)')\s*\)`)
)

// refs returns the references file name makes, by its kind.
func refs(t *testing.T, dashboard fs.FS, name string) []string {
	t.Helper()
	body, err := fs.ReadFile(dashboard, name)
	require.NoError(t, err)
	var re *regexp.Regexp
	switch path.Ext(name) {
	case ".html":
		re = htmlRefs
	case ".css":
		re = cssRefs
	case ".js":
		re = jsRefs
	default:
		return nil
	}
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		for _, g := range m[1:] {
			if g != "" {
				out = append(out, g)
			}
		}
	}
	return out
}

// baseOf returns the URL file name is served at, against which its
// relative references resolve.
func baseOf(name string) *url.URL {
	u, _ := url.Parse(pageURL)
	if name != "index.html" {
		u = u.JoinPath(name)
	}
	return u
}

// walk follows every reference from index.html through the style sheets
// and modules it loads, and returns the files reached. It fails the test
// for a reference to another origin, one outside the dashboard folder, or
// one to a file the FS lacks.
func walk(t *testing.T, dashboard fs.FS) map[string]bool {
	t.Helper()
	base, err := url.Parse(pageURL)
	require.NoError(t, err)
	prefix := base.Path + "/"
	reached := map[string]bool{"index.html": true}
	queue := []string{"index.html"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		for _, ref := range refs(t, dashboard, name) {
			if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "data:") {
				continue // a route of the page itself, or inline data
			}
			u, err := url.Parse(ref)
			if !assert.NoError(t, err, "%s refers to %q", name, ref) {
				continue
			}
			if !assert.False(t, u.IsAbs() || u.Host != "", "%s refers to another origin: %q; no CDN, every asset is embedded", name, ref) {
				continue
			}
			abs := baseOf(name).ResolveReference(u)
			if !assert.True(t, strings.HasPrefix(abs.Path, prefix), "%s refers to %q, outside the dashboard folder (%s)", name, ref, abs.Path) {
				continue
			}
			file := strings.TrimPrefix(abs.Path, prefix)
			_, err = fs.Stat(dashboard, file)
			if !assert.NoError(t, err, "%s refers to %q, which is not in the dashboard", name, ref) {
				continue
			}
			if !reached[file] {
				reached[file] = true
				queue = append(queue, file)
			}
		}
	}
	return reached
}

func TestEveryReferenceIsAnEmbeddedFile(t *testing.T) {
	t.Parallel()
	dashboard := web.Dashboard()
	reached := walk(t, dashboard)
	// The page's own style and script must be among what it loads, or
	// the walk proves nothing.
	for _, want := range []string{"index.html", "style.css", "app.js", "vendor/uPlot.min.css", "vendor/uPlot.esm.js"} {
		assert.True(t, reached[want], "index.html does not lead to %s", want)
	}
}

// TestEveryFileIsUsed catches a reference the patterns above miss (the
// file would seem unused) and a file left behind by a rename.
func TestEveryFileIsUsed(t *testing.T) {
	t.Parallel()
	dashboard := web.Dashboard()
	reached := walk(t, dashboard)
	// The vendored package's licence and provenance are served but not
	// loaded by the page.
	notLoaded := map[string]bool{"vendor/LICENSE": true, "vendor/VERSION": true}
	err := fs.WalkDir(dashboard, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		assert.True(t, reached[name] || notLoaded[name], "%s is embedded but nothing loads it", name)
		return nil
	})
	require.NoError(t, err)
}

// TestNoExternalURLInOurFiles holds our own files to more than their
// references: no http(s) URL anywhere, so that not even a fetch of a
// computed string or a link leaves the service. The vendored library
// keeps its comments' links; its references are checked by the walk.
func TestNoExternalURLInOurFiles(t *testing.T) {
	t.Parallel()
	dashboard := web.Dashboard()
	external := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(dashboard, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(name, "vendor/") {
			return err
		}
		body, err := fs.ReadFile(dashboard, name)
		require.NoError(t, err)
		assert.Empty(t, external.FindAllString(string(body), -1), "%s names an external URL", name)
		return nil
	})
	require.NoError(t, err)
}

func TestDashboardIsRootedAtTheFolder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
		why  string
	}{
		{"index.html", true, "the page is at the root, so GET /dashboard serves index.html"},
		{"vendor/uPlot.esm.js", true, "the chart library is embedded, not fetched"},
		{"dashboard/index.html", false, "the folder's own name is not a prefix to strip"},
		{"embed.go", false, "nothing outside the folder is reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fs.Stat(web.Dashboard(), tt.name)
			assert.Equal(t, tt.want, err == nil, tt.why)
		})
	}
}

// TestPageHoldsTheDOMContract checks, without a browser, that index.html
// has the elements the browser tests and the brief's DOM contract name, so
// that a rename fails here first. The rows, cells and values the scripts
// write are the browser tests' to check.
func TestPageHoldsTheDOMContract(t *testing.T) {
	t.Parallel()
	page, err := fs.ReadFile(web.Dashboard(), "index.html")
	require.NoError(t, err)
	tests := []struct {
		markup string
		why    string
	}{
		{`<body data-refreshes="0">`, "tests count completed refreshes"},
		{`id="status-line" role="status" aria-live="polite"`, "the status line is announced"},
		{`<form id="key-form"`, "the key prompt"},
		{`<input id="admin-key" name="admin-key" type="password"`, "the key is typed unseen"},
		{`<p id="key-message" role="alert">`, "why the prompt is back"},
		{`<a id="home" href="#/">`, "the way home"},
		{`<section id="list-view"`, "the list view"},
		{`<label for="search">Search by name</label>`, "the search is labelled"},
		{`<input id="search" type="search"`, "the search"},
		{`<select id="status-filter">`, "the status filter"},
		{`<table id="campaign-table">`, "the campaign table"},
		{`<button type="button" data-sort="unique_users">`, "sorting by reach"},
		{`<button id="prev-page" type="button"`, "paging back"},
		{`<button id="next-page" type="button"`, "paging on"},
		{`<form id="create-form"`, "creating"},
		{`<input id="create-start" name="start" type="datetime-local"`, "the start"},
		{`<input id="create-end" name="end" type="datetime-local"`, "the end"},
		{`<p id="create-error" class="error" role="alert">`, "create errors in place"},
		{`<section id="campaign-view"`, "the campaign view"},
		{`<h1 id="campaign-name">`, "the campaign's name"},
		{`<span id="campaign-status"`, "the campaign's status"},
		{`data-stat="frequency.total"`, "the stats"},
		{`<time id="as-of">`, "freshness"},
		{`data-interval="minute" aria-pressed="false"`, "the interval switches"},
		{`<div id="series-chart" class="chart" role="img">`, "the series chart"},
		{`<table id="series-table">`, "the series' numbers"},
		{`<div id="ads-chart" class="chart" role="img">`, "the ads chart"},
		{`<table id="ads-table">`, "the ads' numbers"},
		{`<button id="ads-next" type="button"`, "paging ads"},
		{`<button id="pause-button" type="button"`, "pausing"},
		{`<button id="resume-button" type="button"`, "resuming"},
		{`<form id="rename-form"`, "renaming"},
		{`<form id="end-form"`, "ending"},
		{`<input id="end-time" name="end" type="datetime-local"`, "the end time"},
		{`<button id="end-now" type="button">`, "ending now"},
		{`<p id="action-error" class="error" role="alert">`, "action errors in place"},
	}
	for _, tt := range tests {
		assert.Contains(t, string(page), tt.markup, tt.why)
	}
	// The series' numbers are in a details element, after the chart.
	chart := strings.Index(string(page), `id="series-chart"`)
	details := strings.Index(string(page), "<details>")
	table := strings.Index(string(page), `id="series-table"`)
	assert.True(t, chart < details && details < table, "the series table follows the chart inside details")
}
