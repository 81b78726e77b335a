package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		items, err := parseBatch(body, 10)
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
		items, err := parseBatch(body, 3)
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
		_, err := parseBatch([]byte(body), 10)
		require.Error(t, err, body)
		var v struct {
			Impressions []json.RawMessage `json:"impressions"`
		}
		want := decodeFrom(strings.NewReader(body), &v, []string{"impressions"})
		require.Error(t, want, body)
		assert.Equal(t, classify(want), classify(err), "%.40s", body)
	}
}
