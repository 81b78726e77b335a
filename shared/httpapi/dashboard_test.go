package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

// testDashboard stands in for web.Dashboard(): the dashboard's files at
// the root of a file system that has a secret outside it, and a hidden
// file, which go:embed would leave out but os.DirFS would not.
var testDashboard = func() fs.FS {
	sub, err := fs.Sub(fstest.MapFS{
		"dashboard/index.html":          {Data: []byte(`<!doctype html><script type="module" src="dashboard/app.js"></script>`)},
		"dashboard/app.js":              {Data: []byte("import './api.js';\n")},
		"dashboard/style.css":           {Data: []byte("body { margin: 0 }\n")},
		"dashboard/vendor/uPlot.esm.js": {Data: []byte("export default function uPlot() {}\n")},
		"dashboard/vendor/LICENSE":      {Data: []byte("The MIT License (MIT)\n")},
		"dashboard/x":                   {Data: []byte("x\n")},
		"dashboard/.hidden":             {Data: []byte("hidden\n")},
		"secret.txt":                    {Data: []byte("TOP SECRET\n")},
	}, "dashboard")
	if err != nil {
		panic(err) // a constant name: it cannot fail
	}
	return sub
}()

// csp is the policy the brief asks for, written out, so that a typo in
// httpapi.DashboardCSP fails here.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

func newDashboardServer(t *testing.T, fsys fs.FS, opts ...httpapi.Option) *httptest.Server {
	t.Helper()
	store, err := memstore.New()
	require.NoError(t, err)
	opts = append([]httpapi.Option{httpapi.WithDashboard(fsys), httpapi.WithAdminKeys([]string{"admin-key-0123456789"}),
		httpapi.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	srv := httptest.NewServer(httpapi.NewHandler(store, opts...))
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request without following redirects, and returns the
// response with its body read.
func get(t *testing.T, srv *httptest.Server, method, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+target, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	client := *srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// TestDashboardServesItsFiles: the page and each file come with their
// own Content-Type and the dashboard's headers, exactly as in the file
// system, to anyone: no admin key, and no CORS header.
func TestDashboardServesItsFiles(t *testing.T) {
	t.Parallel()
	srv := newDashboardServer(t, testDashboard)
	cases := []struct {
		name, target, file, contentType string
	}{
		{"Page", "/dashboard", "index.html", "text/html; charset=utf-8"},
		{"Script", "/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"StyleSheet", "/dashboard/style.css", "style.css", "text/css; charset=utf-8"},
		// A file in a folder: the name holds a slash.
		{"Vendored", "/dashboard/vendor/uPlot.esm.js", "vendor/uPlot.esm.js", "text/javascript; charset=utf-8"},
		// No extension is text, so a browser shows it.
		{"License", "/dashboard/vendor/LICENSE", "vendor/LICENSE", "text/plain; charset=utf-8"},
		// A query string, such as the page's ?refresh=1, changes nothing.
		{"PageWithQuery", "/dashboard?refresh=1", "index.html", "text/html; charset=utf-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, err := fs.ReadFile(testDashboard, tc.file)
			require.NoError(t, err)
			resp, body := get(t, srv, "GET", tc.target, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, string(want), body)
			h := resp.Header
			assert.Equal(t, tc.contentType, h.Get("Content-Type"))
			assert.Equal(t, csp, h.Get("Content-Security-Policy"))
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			assert.Equal(t, "no-cache", h.Get("Cache-Control"))
			assert.Regexp(t, `^"[0-9a-f]{32}"$`, h.Get("ETag"))
			assert.Equal(t, int64(len(want)), resp.ContentLength)
			assert.Empty(t, h.Get("Access-Control-Allow-Origin"), "not open to other origins")
			assert.NotEmpty(t, h.Get("X-Request-Id"), "served by the API's wrapper, as every route")

			// HEAD answers the same headers without the body.
			head, body := get(t, srv, "HEAD", tc.target, nil)
			assert.Equal(t, http.StatusOK, head.StatusCode)
			assert.Empty(t, body)
			assert.Equal(t, h.Get("ETag"), head.Header.Get("ETag"))
			assert.Equal(t, tc.contentType, head.Header.Get("Content-Type"))
		})
	}
}

// TestDashboardRevalidates: a browser that sends the ETag it has is
// answered 304 with no body while the file is unchanged, and the whole
// file once it has changed.
func TestDashboardRevalidates(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{"index.html": {Data: []byte("<p>one</p>")}, "app.js": {Data: []byte("1;")}}
	srv := newDashboardServer(t, files)
	first, _ := get(t, srv, "GET", "/dashboard", nil)
	etag := first.Header.Get("ETag")
	require.NotEmpty(t, etag)
	script, _ := get(t, srv, "GET", "/dashboard/app.js", nil)
	assert.NotEqual(t, etag, script.Header.Get("ETag"), "each file its own")

	cases := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"SameTag", etag, http.StatusNotModified},
		// If-None-Match compares weakly, and may list several tags.
		{"WeakTag", "W/" + etag, http.StatusNotModified},
		{"AmongOthers", `"other", ` + etag, http.StatusNotModified},
		{"Any", "*", http.StatusNotModified},
		{"OtherTag", `"other"`, http.StatusOK},
	}
	for _, tc := range cases {
		resp, body := get(t, srv, "GET", "/dashboard", http.Header{"If-None-Match": {tc.ifNoneMatch}})
		assert.Equal(t, tc.want, resp.StatusCode, tc.name)
		if tc.want == http.StatusNotModified {
			assert.Empty(t, body, tc.name)
			assert.Equal(t, etag, resp.Header.Get("ETag"), tc.name)
			assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), tc.name)
		}
	}

	// The file system is read on every request: a changed page has a new
	// tag, and the old one gets the whole page.
	files["index.html"] = &fstest.MapFile{Data: []byte("<p>two</p>")}
	resp, body := get(t, srv, "GET", "/dashboard", http.Header{"If-None-Match": {etag}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<p>two</p>", body)
	assert.NotEqual(t, etag, resp.Header.Get("ETag"))
}

// TestDashboardRefusesWhatIsNotAFile: a name the dashboard lacks, a
// folder, a hidden file and every way out of the dashboard's root are the
// API's JSON 404, never a listing or a file outside; the page under other
// names is redirected to /dashboard, relatively.
func TestDashboardRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	srv := newDashboardServer(t, testDashboard)
	cases := []struct {
		name, target string
		status       int
	}{
		{"Missing", "/dashboard/nothing.js", http.StatusNotFound},
		{"Folder", "/dashboard/vendor", http.StatusNotFound},
		{"FolderWithSlash", "/dashboard/vendor/", http.StatusNotFound},
		{"Hidden", "/dashboard/.hidden", http.StatusNotFound},
		{"DotDot", "/dashboard/../secret.txt", http.StatusNotFound},
		{"EscapedDotDot", "/dashboard/%2e%2e/secret.txt", http.StatusNotFound},
		{"EscapedSlash", "/dashboard/..%2fsecret.txt", http.StatusNotFound},
		{"Backslash", "/dashboard/..%5csecret.txt", http.StatusNotFound},
		{"DoubleSlash", "/dashboard//secret.txt", http.StatusNotFound},
		{"OutsideByName", "/dashboard/secret.txt", http.StatusNotFound},
		{"Prefix", "/dashboardx", http.StatusNotFound},
		{"RootSlash", "/dashboard/", http.StatusFound},
		{"IndexByName", "/dashboard/index.html", http.StatusFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, srv, "GET", tc.target, nil)
			require.Equal(t, tc.status, resp.StatusCode, body)
			assert.NotContains(t, body, "TOP SECRET")
			if tc.status == http.StatusFound {
				assert.Equal(t, "../dashboard", resp.Header.Get("Location"))
				return
			}
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var e struct{ Error, Code string }
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			assert.Equal(t, "no_route", e.Code)
			assert.Contains(t, e.Error, "no route for GET /dashboard")
		})
	}
	// The redirect lands on the page, with or without a stage's prefix.
	resp, _ := get(t, srv, "GET", "/dashboard/", nil)
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "/dashboard", loc.Path)
}

// TestDashboardRoutes: the dashboard is there only with WithDashboard,
// whatever WithOnly says, and takes GET and HEAD only.
func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	// The admin function: admin routes and the dashboard.
	admin := newDashboardServer(t, testDashboard, httpapi.WithOnly(httpapi.Admin))
	resp, _ := get(t, admin, "GET", "/dashboard", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "WithOnly keeps the dashboard")
	resp, _ = get(t, admin, "GET", "/api/v1/campaigns", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the API the page calls still needs the key")

	resp, body := get(t, admin, "POST", "/dashboard", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, body)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))

	store, err := memstore.New()
	require.NoError(t, err)
	none := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(none.Close)
	resp, _ = get(t, none, "GET", "/dashboard", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no dashboard without WithDashboard")
}

// brokenFS fails every open, as a file system that cannot be read.
type brokenFS struct{}

func (brokenFS) Open(string) (fs.File, error) { return nil, errors.New("disk on fire") }

// TestDashboardFileSystemFailure: a file system that fails is a 500 with
// the API's "internal error", its cause logged, not shown.
func TestDashboardFileSystemFailure(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	srv := newDashboardServer(t, brokenFS{}, httpapi.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	resp, body := get(t, srv, "GET", "/dashboard", nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.JSONEq(t, `{"error":"internal error","code":"internal"}`, body)
	assert.Empty(t, resp.Header.Get("Content-Security-Policy"), "no file's headers on an error")
	assert.Contains(t, logs.String(), "disk on fire", "the cause is logged")
}
