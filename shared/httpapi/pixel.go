package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Headers of the tracking pixel's answer. The body is always the image, so
// these, the status and the request log are where the outcome shows.
const (
	// OutcomeHeader says what became of the pixel's impression: counted,
	// duplicate or filtered (status 200), rejected (400, 404 or 409), or
	// unavailable (503, or 500 for a server fault).
	OutcomeHeader = "X-Impression-Outcome"
	// ErrorHeader names the error code, as the JSON routes' "code", of a
	// pixel that was not recorded, such as not_found or unavailable.
	ErrorHeader = "X-Impression-Error"
)

// Pixel outcomes beyond the store's own (adcount.Outcome's names).
const (
	outcomeUnavailable = "unavailable"
)

// pixelType is the pixel's media type.
const pixelType = "image/gif"

// pixelGIF is a 1x1 GIF whose one pixel is transparent: the smallest image
// every browser renders, 43 bytes. A test decodes it.
var pixelGIF = []byte("GIF89a" + // header
	"\x01\x00\x01\x00" + // logical screen 1x1
	"\x80\x00\x00" + // a global colour table of two colours
	"\x00\x00\x00\xff\xff\xff" + // black and white
	"\x21\xf9\x04\x01\x00\x00\x00\x00" + // graphic control: colour 0 is transparent
	"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" + // image descriptor: 1x1 at 0,0
	"\x02\x02\x44\x01\x00" + // LZW data: one pixel of colour 0
	"\x3b") // trailer

// setPixelHeaders sets the headers of every pixel answer but the outcome:
// no cache may keep it, since each load must reach the server to count.
func setPixelHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
}

// failPixel answers a pixel that was not recorded with the image all the
// same, so that the page never shows a broken one, and with the status
// the single route would send, which logs and metrics record:
// X-Impression-Outcome is rejected for the client's errors and
// unavailable for the server's, and X-Impression-Error names the code.
func failPixel(w http.ResponseWriter, _ error, p problem) {
	h := w.Header()
	setPixelHeaders(h)
	outcome := outcomeRejected
	if p.status >= http.StatusInternalServerError || p.status == StatusClientClosedRequest {
		outcome = outcomeUnavailable
	}
	h.Set(OutcomeHeader, outcome)
	h.Set(ErrorHeader, p.code())
	if p.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	writeBody(w, p.status, pixelType, pixelGIF)
}

// pixelImpression reads the pixel's impression from its query string.
// Other parameters, such as a cache buster, are ignored, even malformed
// ones: an ad server that leaves a macro such as %%CACHEBUSTER%% unexpanded
// must not cost the impression. A parameter of the impression that is
// malformed, or sent twice (as a JSON field sent twice), is refused. The
// store validates the values.
func pixelImpression(rawQuery string) (adcount.Impression, error) {
	var imp adcount.Impression
	fields := [...]struct {
		name string
		dst  *string
		seen bool
	}{
		{"campaign_id", &imp.CampaignID, false},
		{"user_id", &imp.UserID, false},
		{"ad_id", &imp.AdID, false},
	}
	// The pairs are split as url.ParseQuery splits them, but an error in
	// a pair that is not the impression's is no error of the impression.
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			continue // not one of the impression's names
		}
		k := -1
		for i := range fields {
			if fields[i].name == name {
				k = i
			}
		}
		if k < 0 {
			continue
		}
		f := &fields[k]
		if strings.Contains(pair, ";") {
			return adcount.Impression{}, badRequest("malformed query string: invalid semicolon separator in query")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return adcount.Impression{}, badRequest("malformed query string: " + err.Error())
		}
		if f.seen {
			return adcount.Impression{}, &adcount.FieldError{Field: f.name, Message: "is sent more than once; send each field once"}
		}
		f.seen = true
		*f.dst = value
	}
	return imp, nil
}
