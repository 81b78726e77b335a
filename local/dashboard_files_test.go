package main

import (
	"io"
	"io/fs"
	"net/http"
	"path"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/web"
)

// TestServesTheEmbeddedDashboard: the real server, with an admin key set,
// serves every file of web.Dashboard() without the key, byte for byte,
// with the type a browser needs to run it: the page at /dashboard, each
// other file under /dashboard/.
func TestServesTheEmbeddedDashboard(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"ADMIN_API_KEYS": "admin-key-0123456789"}, nil)
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
	}
	files := 0
	err := fs.WalkDir(web.Dashboard(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		want, err := fs.ReadFile(web.Dashboard(), name)
		require.NoError(t, err)
		target := "/dashboard/" + name
		if name == "index.html" {
			target = "/dashboard"
		}
		resp, err := http.Get(base + target)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", target, got)
		assert.Equal(t, string(want), string(got), target)
		if ct, ok := types[path.Ext(name)]; ok {
			assert.Equal(t, ct, resp.Header.Get("Content-Type"), target)
		}
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", target)
		return nil
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, files, 4, "the page, its script, its style sheet and the chart library")

	resp, err := http.Get(base + "/dashboard/no-such-file.js")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
}
