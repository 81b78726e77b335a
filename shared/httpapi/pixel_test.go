package httpapi_test

import (
	"bytes"
	"image/gif"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
)

// pixelReply is a pixel's answer.
type pixelReply struct {
	status int
	header http.Header
	body   []byte
}

func getPixel(t *testing.T, base, query, ua string) pixelReply {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/pixel.gif"+query, nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return pixelReply{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestPixelOutcomes: the pixel answers the transparent GIF, uncacheable
// and open to every origin, whatever became of the impression; the status
// and X-Impression-Outcome say what did, with the single route's status
// and the error's code for an impression that was not recorded.
func TestPixelOutcomes(t *testing.T) {
	t.Parallel()
	s := newFilterServer(t)
	down := httptest.NewServer(httpapi.NewHandler(&failingStore{err: adcount.ErrUnavailable}, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(down.Close)

	cases := []struct {
		name    string
		base    string
		query   string
		ua      string
		status  int
		outcome string
		code    string // X-Impression-Error; empty when recorded
	}{
		{"Counted", s.URL, "?campaign_id=live&user_id=u1&ad_id=a", chromeUA, 200, "counted", ""},
		{"Duplicate", s.URL, "?campaign_id=live&user_id=u1&ad_id=a", chromeUA, 200, "duplicate", ""},
		// Other parameters, such as a cache buster, are ignored.
		{"CacheBuster", s.URL, "?campaign_id=live&user_id=u2&ad_id=a&cb=1712345", chromeUA, 200, "counted", ""},
		{"Escaped", s.URL, "?campaign_id=live&user_id=user%20%C3%A9&ad_id=a%2Fb", chromeUA, 200, "counted", ""},
		// The request's User-Agent is judged.
		{"Crawler", s.URL, "?campaign_id=live&user_id=u3&ad_id=a", googlebotUA, 200, "filtered", ""},
		// Refused impressions: the single route's status and code.
		{"MissingParameter", s.URL, "?campaign_id=live&user_id=u4", chromeUA, 400, "rejected", "invalid"},
		{"NoQuery", s.URL, "", chromeUA, 400, "rejected", "invalid"},
		{"SentTwice", s.URL, "?campaign_id=live&user_id=u5&user_id=u6&ad_id=a", chromeUA, 400, "rejected", "invalid"},
		{"BadEscape", s.URL, "?campaign_id=live&user_id=%zz&ad_id=a", chromeUA, 400, "rejected", "malformed"},
		{"NotUTF8", s.URL, "?campaign_id=live&user_id=%FF&ad_id=a", chromeUA, 400, "rejected", "invalid"},
		{"UnknownCampaign", s.URL, "?campaign_id=nope&user_id=u&ad_id=a", chromeUA, 404, "rejected", "not_found"},
		{"NotStarted", s.URL, "?campaign_id=future&user_id=u&ad_id=a", chromeUA, 409, "rejected", "not_started"},
		{"Paused", s.URL, "?campaign_id=paused&user_id=u&ad_id=a", chromeUA, 409, "rejected", "paused"},
		{"Ended", s.URL, "?campaign_id=ended&user_id=u&ad_id=a", chromeUA, 409, "rejected", "ended"},
		// The store's failure: retry later.
		{"StoreDown", down.URL, "?campaign_id=live&user_id=u&ad_id=a", chromeUA, 503, "unavailable", "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := getPixel(t, tc.base, tc.query, tc.ua)
			assert.Equal(t, tc.status, r.status)
			assert.Equal(t, "image/gif", r.header.Get("Content-Type"))
			assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
			assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
			assert.Equal(t, tc.outcome, r.header.Get(httpapi.OutcomeHeader))
			assert.Equal(t, tc.code, r.header.Get(httpapi.ErrorHeader))
			if tc.status == http.StatusServiceUnavailable {
				assert.Equal(t, "1", r.header.Get("Retry-After"))
			}
			img, err := gif.Decode(bytes.NewReader(r.body))
			require.NoError(t, err, "every answer is the image, so the page never breaks")
			assert.Equal(t, 1, img.Bounds().Dx()*img.Bounds().Dy())
		})
	}
	stats := s.stats(t, "live")
	assert.Equal(t, 3.0, stats["total"])
	assert.Equal(t, 1.0, stats["filtered"])
}

// TestPixelHeadRecordsNothing: a HEAD request, as a link checker sends,
// gets the image's headers and records no impression.
func TestPixelHeadRecordsNothing(t *testing.T) {
	t.Parallel()
	sink := &records{}
	s := newFilterServer(t, httpapi.WithMetrics(sink))
	req, err := http.NewRequest("HEAD", s.URL+"/api/v1/pixel.gif?campaign_id=live&user_id=u&ad_id=a", nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", chromeUA)
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Empty(t, resp.Header.Get(httpapi.OutcomeHeader))
	assert.Equal(t, httpapi.Impressions{}, sink.last(t).Impressions)
	assert.Equal(t, 0.0, s.stats(t, "live")["total"])
}

// TestPixelRecord: the pixel's record carries its true status, outcome
// and error kind, for the log line and the metrics, though its body is
// always the image.
func TestPixelRecord(t *testing.T) {
	t.Parallel()
	sink := &records{}
	s := newFilterServer(t, httpapi.WithMetrics(sink))
	cases := []struct {
		name, query, ua string
		status          int
		kind            string
		impressions     httpapi.Impressions
	}{
		{"Counted", "?campaign_id=live&user_id=u&ad_id=a", chromeUA, 200, "", httpapi.Impressions{Counted: 1}},
		{"Filtered", "?campaign_id=live&user_id=v&ad_id=a", googlebotUA, 200, "", httpapi.Impressions{Filtered: 1}},
		{"NotFound", "?campaign_id=nope&user_id=u&ad_id=a", chromeUA, 404, "not_found", httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "not_found", Count: 1}}}},
	}
	for _, tc := range cases {
		getPixel(t, s.URL, tc.query, tc.ua)
		rec := sink.last(t)
		assert.Equal(t, httpapi.RoutePixel, rec.Route, tc.name)
		assert.Equal(t, tc.status, rec.Status, tc.name)
		assert.Equal(t, tc.kind, rec.ErrorKind, tc.name)
		assert.Equal(t, tc.impressions, rec.Impressions, tc.name)
	}
}

// TestPixelIgnoresMalformedOtherParameters: other parameters are ignored,
// so one the ad server left malformed (an unexpanded macro such as
// %%CACHEBUSTER%%, a semicolon) must not cost the impression; the
// impression's own parameters are still refused when malformed.
func TestPixelIgnoresMalformedOtherParameters(t *testing.T) {
	t.Parallel()
	s := newFilterServer(t)
	cases := []struct {
		name    string
		query   string
		status  int
		outcome string
		code    string
	}{
		// Google Ad Manager's cache-buster macro, left unexpanded: "%%C"
		// is no percent-escape.
		{"UnexpandedMacro", "?campaign_id=live&user_id=m1&ad_id=a&cb=%%CACHEBUSTER%%", 200, "counted", ""},
		// A stray percent sign in a tracking parameter.
		{"StrayPercent", "?campaign_id=live&user_id=m2&ad_id=a&utm_content=50%off", 200, "counted", ""},
		// A semicolon in another parameter's pair.
		{"SemicolonElsewhere", "?campaign_id=live&user_id=m3&ad_id=a&x=1;y=2", 200, "counted", ""},
		// A malformed parameter name that is not one of the three.
		{"MalformedName", "?campaign_id=live&user_id=m4&ad_id=a&%zz=1", 200, "counted", ""},
		// The impression's own parameters, malformed, are still refused.
		{"OwnBadEscape", "?campaign_id=live&user_id=%zz&ad_id=a&cb=%%CACHEBUSTER%%", 400, "rejected", "malformed"},
		{"OwnSemicolon", "?campaign_id=live&user_id=m5;x&ad_id=a", 400, "rejected", "malformed"},
		// Sent twice is still refused, whatever else the query holds.
		{"OwnTwice", "?campaign_id=live&user_id=m6&user_id=m7&ad_id=a&cb=%%CB%%", 400, "rejected", "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := getPixel(t, s.URL, tc.query, chromeUA)
			assert.Equal(t, tc.status, r.status)
			assert.Equal(t, tc.outcome, r.header.Get(httpapi.OutcomeHeader))
			assert.Equal(t, tc.code, r.header.Get(httpapi.ErrorHeader))
		})
	}
	assert.Equal(t, 4.0, s.stats(t, "live")["total"])
}
