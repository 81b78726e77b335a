package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomText returns a string of valid UTF-8 drawn from every plane, with
// quotes, backslashes and control characters that force escapes.
func randomText(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(12) {
		var r rune
		switch rng.IntN(4) {
		case 0:
			r = rune(rng.IntN(0x80))
		case 1:
			r = rune(rng.IntN(0x800))
		case 2:
			r = rune(rng.IntN(0x10000))
		default:
			r = rune(0x10000 + rng.IntN(0x100000))
		}
		if !utf8.ValidRune(r) {
			r = '"'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestTextCheckAcceptsValidJSON: whatever encoding/json writes from valid
// text (escaping some of it, surrogate pairs included, when asked to by
// the \u form below), read a byte at a time or all at once, passes the
// check unchanged.
func TestTextCheckAcceptsValidJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		doc := map[string]any{"campaign_id": randomText(rng), "user_id": randomText(rng), "ad_id": randomText(rng)}
		for range rng.IntN(3) {
			key := "x" + randomText(rng)
			doc[key] = map[string]any{randomText(rng): []any{randomText(rng), 1.5, true, nil}}
		}
		body, err := json.Marshal(doc)
		require.NoError(t, err)
		if i%2 == 1 {
			body = asciiEscaped(body)
		}
		for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body))} {
			c := &textCheck{r: r, fields: impressionFields}
			var got impressionRequest
			require.NoError(t, json.NewDecoder(c).Decode(&got), "%s", body)
			_, _ = io.Copy(io.Discard, c)
			require.NoError(t, c.err, "%s: refused", body)
			require.Equal(t, impressionRequest{CampaignID: doc["campaign_id"].(string), UserID: doc["user_id"].(string), AdID: doc["ad_id"].(string)}, got, "%s", body)
		}
	}
}

// asciiEscaped rewrites every non-ASCII character inside body's strings
// as \u escapes, surrogate pairs for those above the BMP.
func asciiEscaped(body []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(body) {
		switch {
		case r < utf8.RuneSelf:
			out.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			out.WriteString(`\u` + hex4(0xD800+(r>>10)) + `\u` + hex4(0xDC00+(r&0x3FF)))
		default:
			out.WriteString(`\u` + hex4(r))
		}
	}
	return out.Bytes()
}

func hex4(r rune) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[r>>12&0xF], digits[r>>8&0xF], digits[r>>4&0xF], digits[r&0xF]})
}

// TestTextCheckRefusesAcrossReads: a bad sequence is found however the
// body is split between reads.
func TestTextCheckRefusesAcrossReads(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"user_id":"inv` + "\xff" + `"}`,
		`{"user_id":"` + "\xe2\x82" + `"}`,
		`{"user_id":"\ud800"}`,
		`{"user_id":"\udc00"}`,
		`{"user_id":"\ud800\u0041"}`,
	} {
		c := &textCheck{r: iotest.OneByteReader(strings.NewReader(body)), fields: impressionFields}
		_, _ = io.Copy(io.Discard, c)
		assert.EqualError(t, c.err, "user_id: must be valid UTF-8", "%q", body)
	}
}
