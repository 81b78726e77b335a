package main

import (
	"bytes"
	"encoding/json"
	"image/gif"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// browser is a client that sends no cookie and keeps none, as a browser
// loading a third-party pixel with cookies blocked does.
var browser = &http.Client{Jar: nil}

// totalOf reads a campaign's stats.
func totalOf(t *testing.T, base, id string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/campaigns/" + id + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var stats map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
	return stats
}

// TestPixelAsABrowserLoadsIt loads the tracking pixel from the real server
// over HTTP the way a browser loads an <img> on a publisher's page: a GET
// with a browser's headers, no body and no cookie. The answer is the
// transparent GIF, uncacheable and open to the page's origin, sets no
// cookie, and the impression counts once however often the page reloads.
func TestPixelAsABrowserLoadsIt(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{}, nil)
	id := post(t, base+"/api/v1/campaigns", `{"name":"Pixel","start_time":"2020-01-01T00:00:00Z"}`)["id"].(string)
	require.Equal(t, 0.0, totalOf(t, base, id)["total"])

	load := func() (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/pixel.gif?campaign_id="+id+"&user_id=reader-1&ad_id=banner-7&cb=1764130000", nil)
		require.NoError(t, err)
		for k, v := range map[string]string{
			"Accept":             "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
			"Accept-Language":    "en-GB,en;q=0.9",
			"Referer":            "https://news.publisher.example/articles/42",
			"Sec-Fetch-Dest":     "image",
			"Sec-Fetch-Mode":     "no-cors",
			"Sec-Fetch-Site":     "cross-site",
			"Sec-Ch-Ua-Mobile":   "?0",
			"Sec-Ch-Ua-Platform": `"Windows"`,
			"User-Agent":         browserUA,
		} {
			req.Header.Set(k, v)
		}
		resp, err := browser.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	resp, body := load()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "counted", resp.Header.Get("X-Impression-Outcome"))
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "the pixel sets no cookie")
	img, err := gif.Decode(bytes.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, 1, img.Bounds().Dx())
	assert.Equal(t, 1, img.Bounds().Dy())
	_, _, _, alpha := img.At(img.Bounds().Min.X, img.Bounds().Min.Y).RGBA()
	assert.Zero(t, alpha, "transparent")
	assert.Equal(t, 1.0, totalOf(t, base, id)["total"], "the stats moved")

	// A reload inside the dedup window is a duplicate and counts nothing.
	resp, _ = load()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "duplicate", resp.Header.Get("X-Impression-Outcome"))
	assert.Equal(t, 1.0, totalOf(t, base, id)["total"])
}

// TestBeaconAsABrowserSendsIt sends impressions to the real server as
// navigator.sendBeacon(url, string) does: a POST whose Content-Type is
// text/plain;charset=UTF-8, with the page's Origin and no cookie. Both
// impression routes read the body as JSON, and the stats move.
func TestBeaconAsABrowserSendsIt(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{}, nil)
	id := post(t, base+"/api/v1/campaigns", `{"name":"Beacon","start_time":"2020-01-01T00:00:00Z"}`)["id"].(string)
	beacon := func(path, body string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", "https://news.publisher.example")
		req.Header.Set("Sec-Fetch-Mode", "no-cors")
		req.Header.Set("Sec-Fetch-Dest", "empty")
		req.Header.Set("User-Agent", browserUA)
		resp, err := browser.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), path)
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return out
	}
	single := beacon("/api/v1/impressions", `{"campaign_id":"`+id+`","user_id":"reader-1","ad_id":"banner-7"}`)
	assert.Equal(t, "counted", single["outcome"])
	batch := beacon("/api/v1/impressions/batch", `{"impressions":[{"campaign_id":"`+id+`","user_id":"reader-2","ad_id":"banner-7","user_agent":"`+browserUA+`"},{"campaign_id":"`+id+`","user_id":"reader-1","ad_id":"banner-7"}]}`)
	assert.Equal(t, map[string]any{"counted": 1.0, "duplicates": 1.0, "filtered": 0.0, "rejected": 0.0}, batch["summary"])
	assert.Equal(t, 2.0, totalOf(t, base, id)["total"])
}
