package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// itemSeeds are items that take every path of the batch parser: the
// common item, escapes, extra fields of every kind, and each way an item
// can fail that the single route answers with its own message.
var itemSeeds = []string{
	`{"campaign_id":"c","user_id":"u","ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"u","ad_id":"a","user_agent":"Mozilla\/5.0"}`,
	` { "ad_id" : "a" , "user_id" : "u\u00e9\ud83d\ude00" , "campaign_id" : "c\n" } `,
	`{"campaign_id":"c","user_id":"u","ad_id":"a","ts":-1.5e+3,"x":[true,false,null,{"user_id":"y"}],"z":{}}`,
	`{"campaign\u005fid":"c","user_id":"u","ad_id":"a"}`,
	`{}`,
	`{"campaign_id":"c","user_id":7,"ad_id":"a"}`,
	`{"campaign_id":"c","user_id":null,"ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"u","ad_id":"a","user_agent":null}`,
	`{"campaign_id":"c","user_id":"u","ad_id":"a","user_agent":["x"]}`,
	`{"campaign_id":"c","user_id":"a","user_id":"b","ad_id":"a"}`,
	`{"campaign_id":"c","User_ID":"u","ad_id":"a"}`,
	`{"campaign_id":"c","uſer_id":"u","ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"inv` + "\xff" + `","ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"\ud800","ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"\udc00\ud800","ad_id":"a"}`,
	`{"campaign_id":"c","user_id":"u","ad_id":"a","extra":{"k":"` + "\xff" + `"}}`,
	`{"` + "\xff" + `":1}`,
	`"a string"`, `7`, `true`, `null`, `[]`, `[{"campaign_id":"c"}]`,
}

// FuzzBatchItem: an item in a batch is read exactly as the same JSON sent
// alone to the single route: the same impression and User-Agent, or the
// same error, status and message.
func FuzzBatchItem(f *testing.F) {
	for _, s := range itemSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, item []byte) {
		if !json.Valid(item) {
			return
		}
		body := []byte(`{"impressions":[` + string(item) + `]}`)
		items, err := parseBatch(body, 10, nil)
		if err != nil {
			t.Fatalf("item %q: the whole batch was refused: %v", item, err)
		}
		if len(items) != 1 {
			t.Fatalf("item %q: read as %d items", item, len(items))
		}
		got := items[0]
		var req impressionRequest
		want := decodeFrom(bytes.NewReader(item), &req, impressionFields)
		if want != nil || got.err != nil {
			if want == nil || got.err == nil {
				t.Fatalf("item %q: batch error %v, single route error %v", item, got.err, want)
			}
			if g, w := classify(got.err), classify(want); g != w {
				t.Fatalf("item %q: batch answers %+v, single route %+v", item, g, w)
			}
			return
		}
		if got.imp.CampaignID != req.CampaignID || got.imp.UserID != req.UserID || got.imp.AdID != req.AdID {
			t.Fatalf("item %q: batch read %+v, single route %+v", item, got.imp, req)
		}
		if got.hasUserAgent != (req.UserAgent != nil) || req.UserAgent != nil && got.userAgent != *req.UserAgent {
			t.Fatalf("item %q: batch read user agent %q (%v), single route %v", item, got.userAgent, got.hasUserAgent, req.UserAgent)
		}
	})
}

// FuzzBatchBody: no body makes the parser panic, a body that is not JSON
// is refused whole with 400, and one it takes is JSON.
func FuzzBatchBody(f *testing.F) {
	for _, s := range itemSeeds {
		f.Add([]byte(`{"impressions":[` + s + `]}`))
	}
	for _, s := range []string{
		``, ` `, `{`, `{"impressions":[`, `{"impressions":[]}`, `{"impressions":{}}`, `{"impressions":[{}]}x`,
		`{"impressions":[{}]}{}`, `{"impressions":[{}],"impressions":[{}]}`, `{"Impressions":[{}]}`, `[1]`, `null`,
		`{"impressions":[{"a":01}]}`, `{"impressions":[{"a":1.}]}`, `{"impressions":[{"a":"\x"}]}`, `{"impressions":[{}],}`,
		`{"impressions":[{},]}`, `{"impressions":[{"a":tru}]}`, "{\"impressions\":[{\"a\":\"\t\"}]}",
		`{"impressions":[[[[[[[[[[]]]]]]]]]]}`, `{"x":"` + "\xff" + `","impressions":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := parseBatch(body, 3, nil)
		if err != nil {
			if p := classify(err); p.status != http.StatusBadRequest && p.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("body %q: status %d (%s), want 400 or 413", body, p.status, p.message)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("body %q is not JSON, yet read as %d items", body, len(items))
		}
		if len(items) < 1 || len(items) > 3 {
			t.Fatalf("body %q: read as %d items, allowed 1 to 3", body, len(items))
		}
	})
}

// TestBatchNotJSONIsTheSingleRoutesMessage: a body that is not JSON is
// refused with encoding/json's words, as the single route refuses it.
func TestBatchNotJSONIsTheSingleRoutesMessage(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"impressions":[{"campaign_id":`,
		`{"impressions":[{"a":01}]}`,
		`{"impressions":[{}]}x`,
		`[1]`,
		`{"impressions":"x"}`,
		`{"impressions":[` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `]}`,
	} {
		_, err := parseBatch([]byte(body), 10, nil)
		require.Error(t, err, body)
		var v struct {
			Impressions []json.RawMessage `json:"impressions"`
		}
		want := decodeFrom(strings.NewReader(body), &v, []string{"impressions"})
		require.Error(t, want, body)
		assert.Equal(t, classify(want), classify(err), "%.40s", body)
	}
}

// batchBody1000 is a batch of 1,000 ordinary impressions, some with a
// browser's User-Agent.
func batchBody1000() []byte {
	b := []byte(`{"impressions":[`)
	for i := range adcount.MaxBatch {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"campaign_id":"campaign-1","user_id":"user-%d","ad_id":"ad-%d"`, i, i%7)
		if i%4 == 0 {
			b = append(b, `,"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// BenchmarkParseBatch1000 measures reading a batch of 1,000 by itself:
// the batch parser, encoding/json into the same items for comparison, and
// writing the reply; each reports the cost per impression.
func BenchmarkParseBatch1000(b *testing.B) {
	body := batchBody1000()
	perImpression := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*adcount.MaxBatch), "ns/impression")
	}
	b.Run("Parser", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		items := make([]batchItem, 0, adcount.MaxBatch)
		for b.Loop() {
			var err error
			if items, err = parseBatch(body, adcount.MaxBatch, items); err != nil {
				b.Fatal(err)
			}
		}
		perImpression(b)
	})
	b.Run("EncodingJSON", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var v struct {
				Impressions []impressionRequest `json:"impressions"`
			}
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
		perImpression(b)
	})
	b.Run("Reply", func(b *testing.B) {
		items := make([]batchItem, adcount.MaxBatch)
		for i := range items {
			items[i].outcome = adcount.Outcome(1 + i%3)
		}
		b.ReportAllocs()
		for b.Loop() {
			encodeBatchReply(items)
		}
		perImpression(b)
	})
}

// TestBatchDoesNotEchoALongFieldName: a top-level field whose value is not
// valid text refuses the batch, and the message names the field as the
// single route's does, only when the name is short: a name of a hundred
// kilobytes must not come back in the answer, nor go into the log line.
func TestBatchDoesNotEchoALongFieldName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		key  string
		// named says the message names the field.
		named bool
	}{
		// A short name is named, as the single route names it.
		{"Short", "note", true},
		// The longest the single route names.
		{"AtTheSingleRoutesLimit", strings.Repeat("k", 64), true},
		// Past it, the message is the single route's, without the name.
		{"Long", strings.Repeat("k", 100_000), false},
		// An empty name is no name to give.
		{"Empty", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := `{"impressions":[{"campaign_id":"c","user_id":"u","ad_id":"a"}],"` + tc.key + `":"` + "\xff" + `"}`
			_, err := parseBatch([]byte(body), 10, nil)
			require.Error(t, err)
			p := classify(err)
			assert.Equal(t, http.StatusBadRequest, p.status)
			assert.Equal(t, tc.named, strings.Contains(p.message, tc.key+": must"), p.message)
			assert.Less(t, len(err.Error()), 200, "the message stays short")
			// The single route, sent the same field, answers alike.
			var req impressionRequest
			single := decodeFrom(strings.NewReader(`{"`+tc.key+`":"`+"\xff"+`"}`), &req, impressionFields)
			assert.Equal(t, classify(single), p)
		})
	}
}
