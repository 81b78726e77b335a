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
