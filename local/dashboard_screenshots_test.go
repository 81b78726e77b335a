package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// screenshotsDir is where TestDashboardScreenshots writes the README's
// screenshots; `make screenshots` sets it to docs/screenshots.
var screenshotsDir = flag.String("screenshots", "", "write the dashboard's screenshots into this directory (make screenshots)")

// screenSizes are the viewports of the screenshots: a laptop's and a
// phone's.
var screenSizes = []struct {
	name          string
	width, height int64
	phone         bool
}{
	{"desktop", 1280, 800, false},
	{"phone", 390, 844, true},
}

// TestDashboardScreenshots takes the README's four screenshots of the
// dashboard, the campaign list and a campaign's page on a desktop and on a
// phone, with seeded data. With -screenshots=<dir> (make screenshots) it
// writes them into that directory; without, into a temporary one, so that
// every test run takes them and checks them: each is a PNG of its
// viewport's size that shows more than a blank page.
func TestDashboardScreenshots(t *testing.T) {
	t.Parallel()
	dir := *screenshotsDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	base := startDashboardServer(t)
	featured := seedShowcase(t, base)

	browser := newTab(t, nil, false)
	for _, size := range screenSizes {
		t.Run(size.name, func(t *testing.T) {
			tb := newTab(t, browser, false)
			var opts []chromedp.EmulateViewportOption
			if size.phone {
				opts = append(opts, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			tb.do(chromedp.EmulateViewport(size.width, size.height, opts...))
			tb.open(base)
			tb.signIn(dashKey)
			tb.wait("the list shows the seeded campaigns", `document.querySelectorAll('table#campaign-table tbody tr[data-campaign-id]').length >= 6`)
			tb.settle()
			shoot(t, tb, filepath.Join(dir, "list-"+size.name+".png"), size.width, size.height)

			tb.openCampaign(featured)
			tb.wait("the chart is drawn", `!!document.querySelector('#series-chart canvas') && document.querySelectorAll('table#ads-table tr[data-ad-id]').length > 0`)
			tb.settle()
			shoot(t, tb, filepath.Join(dir, "campaign-"+size.name+".png"), size.width, size.height)
		})
	}
}

// shoot writes a screenshot of the tab's viewport to path and checks it.
func shoot(t *testing.T, tb *tab, path string, width, height int64) {
	t.Helper()
	// The status line holds the time of the last refresh; it is part of
	// the picture, and the caret of a focused field is not.
	eval[chromedp.Void](tb, `document.activeElement && document.activeElement.blur()`)
	shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	checkScreenshot(t, shot, int(width), int(height))
	require.NoError(t, os.WriteFile(path, shot, 0o644))
}

// checkScreenshot checks that a screenshot is a PNG of the viewport's size
// showing a page: many colours (text, table lines, a chart), none of them
// covering nearly all of it.
func checkScreenshot(t *testing.T, shot []byte, width, height int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "a PNG")
	assert.Equal(t, image.Rect(0, 0, width, height), img.Bounds(), "the viewport's size")
	counts := map[[4]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[[4]uint32{r, g, bl, a}]++
		}
	}
	most := 0
	for _, n := range counts {
		most = max(most, n)
	}
	assert.Greater(t, len(counts), 64, "a page shows more colours than %d", len(counts))
	assert.Less(t, float64(most)/float64(width*height), 0.97, "one colour covers nearly all of it: a blank page")
}

// seedShowcase creates the campaigns the screenshots show, with traffic,
// and returns the one whose page they show.
func seedShowcase(t *testing.T, base string) string {
	t.Helper()
	start := time.Now().Add(-20 * 24 * time.Hour).UTC().Format(time.RFC3339)
	type seed struct {
		name        string
		start, end  string
		impressions int
		ads         int
		paused      bool
	}
	seeds := []seed{
		{name: "Summer 2026 (ended)", start: "2026-06-01T00:00:00Z", end: "2026-09-01T00:00:00Z"},
		{name: "Holiday season 2027", start: "2027-11-15T00:00:00Z"},
		{name: "Black Friday", start: start, impressions: 2650, ads: 3, paused: true},
		{name: "Retargeting: cart abandoners", start: start, impressions: 5120, ads: 4},
		{name: "Brand awareness", start: start, impressions: 870, ads: 2},
		{name: "Winter sale", start: start, impressions: 12480, ads: 6},
	}
	var featured string
	for _, s := range seeds {
		fields := map[string]any{"name": s.name, "start_time": s.start}
		if s.end != "" {
			fields["end_time"] = s.end
		}
		id := createCampaign(t, base, fields)
		var imps []impression
		for i := range s.impressions {
			// Ads draw unevenly, as creatives do: the first ad most.
			ad := i % (s.ads * (s.ads + 1) / 2)
			n := 0
			for k := s.ads; ad >= k; k-- {
				ad -= k
				n++
			}
			imps = append(imps, impression{CampaignID: id, UserID: fmt.Sprintf("user-%d", i%(s.impressions*2/3+1)), AdID: fmt.Sprintf("creative-%c", 'a'+n)})
		}
		for i := range s.impressions / 40 {
			imps = append(imps, impression{CampaignID: id, UserID: fmt.Sprintf("bot-%d", i), AdID: "creative-a", UserAgent: "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"})
		}
		if len(imps) > 0 {
			sendImpressions(t, base, imps)
		}
		if s.paused {
			apiOK(t, base, http.MethodPatch, "/api/v1/campaigns/"+id, map[string]any{"paused": true})
		}
		featured = id
	}
	return featured
}
