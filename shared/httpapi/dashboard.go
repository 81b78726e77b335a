package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// WithDashboard serves the dashboard from fsys, whose root holds its
// index.html and the files it loads: GET /dashboard answers index.html and
// GET /dashboard/{file...} every other file. A name fsys lacks, a
// directory and a path that leaves fsys are the API's JSON 404; no
// directory is ever listed. The routes need no admin key (see Dashboard),
// and WithOnly does not drop them. fsys is read on every request, so it
// may be an os.DirFS that changes while the server runs; the local server
// and the admin function pass the embedded web.Dashboard().
func WithDashboard(fsys fs.FS) Option {
	return func(a *api) { a.dashboard = fsys }
}

// DashboardCSP is the Content-Security-Policy of every dashboard file:
// the page may load scripts, styles and data only from its own origin,
// images from there or data: URLs (a chart library draws with them), and
// no other site may frame it. A script that an attacker gets into the page
// can neither run inline nor send the admin key elsewhere.
const DashboardCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// dashboardTypes are the Content-Types of the dashboard's files, by
// extension. They are listed here, not taken from mime.TypeByExtension,
// whose answers depend on the machine's mime.types files: a module script
// with another type is refused by the browser. A file without an
// extension, such as a vendored LICENSE, is text.
var dashboardTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
	".md":    "text/plain; charset=utf-8",
	"":       "text/plain; charset=utf-8",
}

// dashboardType is the Content-Type a dashboard file is served with.
func dashboardType(name string) string {
	if t, ok := dashboardTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}

// handleDashboard serves GET /dashboard: the dashboard's page. Its URLs
// are relative (dashboard/app.js, api/v1/campaigns), so that it works
// under an API Gateway stage's prefix too.
func (a *api) handleDashboard() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		return a.dashboardFile(w, r, "index.html")
	}
}

// handleDashboardFile serves GET /dashboard/{file...}: one of the files
// the page loads. The page itself under another name, /dashboard/ or
// /dashboard/index.html, is redirected to /dashboard, relatively so as to
// keep a stage's prefix, since its relative URLs would resolve wrongly
// there.
func (a *api) handleDashboardFile() endpoint {
	return func(w http.ResponseWriter, r *http.Request) (response, error) {
		name := r.PathValue("file")
		if name == "" || name == "index.html" {
			w.Header().Set("Location", "../dashboard")
			return response{status: http.StatusFound}, nil
		}
		return a.dashboardFile(w, r, name)
	}
}

// dashboardFile answers the named file of the dashboard, or a JSON 404.
//
// Every file is served with Cache-Control: no-cache and an ETag of its
// content, so that a browser asks again each time the page loads and is
// answered 304 Not Modified while the file is unchanged. Longer caching
// would need file names that change with their content, which takes a
// build step; without one, a cached app.js could outlive the index.html
// it was written for.
func (a *api) dashboardFile(w http.ResponseWriter, r *http.Request, name string) (response, error) {
	if !dashboardName(name) {
		return response{}, &noRouteError{method: r.Method, path: r.URL.Path}
	}
	info, err := fs.Stat(a.dashboard, name)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !info.Mode().IsRegular() {
		return response{}, &noRouteError{method: r.Method, path: r.URL.Path}
	}
	if err != nil {
		return response{}, fmt.Errorf("dashboard: %s: %w", name, err)
	}
	body, err := fs.ReadFile(a.dashboard, name)
	if err != nil {
		return response{}, fmt.Errorf("dashboard: %s: %w", name, err)
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Content-Security-Policy", DashboardCSP)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		return response{status: http.StatusNotModified}, nil
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return response{status: http.StatusOK, encoded: body, contentType: dashboardType(name)}, nil
}

// dashboardName reports whether name may be a dashboard file: a valid
// fs.FS path, so within the root, with no backslash, which some file
// systems take for a separator, and no element hidden by a leading dot,
// as go:embed leaves out and an os.DirFS in development would not.
func dashboardName(name string) bool {
	if !fs.ValidPath(name) || strings.Contains(name, `\`) {
		return false
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return false
		}
	}
	return true
}

// etagMatches reports whether an If-None-Match header names etag, weakly
// compared as RFC 9110 asks for If-None-Match, or is "*".
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
