package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
)

// FuzzDecode feeds arbitrary bodies to request decoding and validation. Every
// body must either decode into a request that passes or fails validation
// with a field error, or be refused as a 400 or 413; nothing may panic.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"campaign_id":"c","user_id":"u","ad_id":"a"}`,
		`{"campaign_id":"c","user_id":7}`,
		`{"name":"x","start_time":"2026-01-01T00:00:00Z"}`,
		`{"name":"x","start_time":"2026-01-01T00:00:00Z","end_time":null}`,
		`{"name":"x","end_time":"2026-02-01T00:00:00Z","paused":true}`,
		`{"end":1}`,
		`[]`, `null`, `{}{}`, `{"a":`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []struct {
			v      any
			fields []string
			strict bool
		}{
			{&impressionRequest{}, impressionFields, false},
			{&campaignRequest{}, campaignFields, true},
			{&patchRequest{}, patchFields, true},
		} {
			w, r := httptest.NewRecorder(), httptest.NewRequest("POST", "/", bytes.NewReader(body))
			var err error
			if dst.strict {
				err = decodeStrict(w, r, dst.v, dst.fields)
			} else {
				err = decodeFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes), dst.v, dst.fields)
			}
			if err == nil {
				switch req := dst.v.(type) {
				case *impressionRequest:
					err = adcount.Impression{CampaignID: req.CampaignID, UserID: req.UserID, AdID: req.AdID}.Validate()
				case *campaignRequest:
					_, err = parseEndTime(req.EndTime)
				case *patchRequest:
					_, err = parseEndTime(req.EndTime)
				}
				if err == nil {
					continue
				}
				var fe *adcount.FieldError
				var re *requestError
				if !errors.As(err, &fe) && !errors.As(err, &re) {
					t.Fatalf("validation error %v is neither a field error nor a request error", err)
				}
			}
			if p := classify(err); p.status != http.StatusBadRequest && p.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("body %q: status %d (%s), want 400 or 413", body, p.status, p.message)
			}
		}
	})
}

// documented are the statuses the API may answer. A 500 is not among them:
// with a working store it can only mean a bug, such as a recovered panic.
var documented = map[int]bool{
	200: true, 201: true, 204: true,
	400: true, 401: true, 403: true, 404: true, 405: true, 409: true, 413: true,
}

// FuzzHandler sends requests with arbitrary methods, paths, a header and
// bodies through the whole handler and checks the invariants the API
// promises: no panic, a JSON body (or the pixel), a documented status, and
// a count that moves only as far as the answer says impressions counted.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/api/v1/impressions", "Content-Type", "application/json", []byte(`{"campaign_id":"c1","user_id":"u","ad_id":"a"}`))
	f.Add("POST", "/api/v1/impressions", "Content-Type", "text/plain", []byte(`{"campaign_id":"nope","user_id":"u","ad_id":"a"}`))
	f.Add("OPTIONS", "/api/v1/impressions", "Origin", "https://x.example", []byte(nil))
	f.Add("POST", "/api/v1/campaigns", "Authorization", "Bearer k", []byte(`{"name":"n","start_time":"2026-01-01T00:00:00Z"}`))
	f.Add("GET", "/api/v1/campaigns/c1/stats", "Authorization", "Bearer wrong", []byte(nil))
	f.Add("GET", "/api/v1/campaigns/c1", "Authorization", "Basic x", []byte(nil))
	f.Add("DELETE", "/api/v1/campaigns/c1/stats", "", "", []byte(nil))
	f.Add("GET", "//api/v1/../v1/campaigns/c1", "", "", []byte(nil))
	f.Add("PATCH", "/api/v1/impressions/", "Content-Length", "5", []byte(`{"x":1}`))
	f.Add("POST", "/api/v1/impressions/batch", "Content-Type", "text/plain;charset=UTF-8", []byte(`{"impressions":[{"campaign_id":"c1","user_id":"u","ad_id":"a"},{"campaign_id":"c1","user_id":"u","ad_id":"a"},7]}`))
	f.Add("POST", "/api/v1/impressions/batch", "User-Agent", "Googlebot/2.1", []byte(`{"impressions":[{"campaign_id":"c1","user_id":"u","ad_id":"a","user_agent":"bot"}]}`))
	f.Add("GET", "/api/v1/pixel.gif?campaign_id=c1&user_id=u&ad_id=a", "User-Agent", "Mozilla/5.0", []byte(nil))
	f.Add("HEAD", "/api/v1/pixel.gif?campaign_id=c1&user_id=u&ad_id=%zz", "", "", []byte(nil))
	f.Add("GET", "/api/v1/campaigns?limit=2&status=active&cursor=x", "Authorization", "Bearer k", []byte(nil))
	f.Add("PATCH", "/api/v1/campaigns/c1", "Authorization", "Bearer k", []byte(`{"name":"n","end_time":null,"paused":true}`))
	f.Add("GET", "/api/v1/campaigns/c1/timeseries?interval=minute&from=2026-01-05T09:00:00Z&ad_id=a", "Authorization", "Bearer k", []byte(nil))
	f.Add("GET", "/api/v1/campaigns/c1/ads?limit=1", "Authorization", "Bearer k", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, hkey, hval string, body []byte) {
		req, err := http.NewRequest(method, "http://counter.example"+path, bytes.NewReader(body))
		if err != nil || !utf8.ValidString(hkey) {
			return // not a request a client could send
		}
		if hkey != "" {
			req.Header.Set(hkey, hval)
		}
		start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
		store, err := memstore.New(memstore.WithClock(func() time.Time { return start }))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateCampaign(context.Background(), adcount.Campaign{ID: "c1", Name: "fuzz", StartTime: start}); err != nil {
			t.Fatal(err)
		}
		bot := func(ua string) bool { return strings.Contains(ua, "bot") }
		h := NewHandler(store, WithAdminKeys([]string{"k"}), WithBotFilter(bot), WithClock(func() time.Time { return start }), WithLogger(slog.New(slog.DiscardHandler)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if !documented[rec.Code] {
			t.Fatalf("%s %q: undocumented status %d: %s", method, path, rec.Code, rec.Body)
		}
		var reply struct {
			Counted *bool `json:"counted"`
			Summary *struct {
				Counted int64 `json:"counted"`
			} `json:"summary"`
		}
		var want int64
		switch {
		case rec.Code == http.StatusNoContent || req.Method == http.MethodHead:
		case rec.Header().Get("Content-Type") == pixelType:
			// The pixel says in a header what its image cannot.
			if !bytes.Equal(rec.Body.Bytes(), pixelGIF) {
				t.Fatalf("%s %q: status %d with an image that is not the pixel", method, path, rec.Code)
			}
			if rec.Header().Get(OutcomeHeader) == "counted" {
				want = 1
			}
		default:
			if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
				t.Fatalf("%s %q: status %d with a body that is not JSON: %q", method, path, rec.Code, rec.Body)
			}
			switch {
			case reply.Counted != nil && *reply.Counted:
				want = 1
			case reply.Summary != nil:
				want = reply.Summary.Counted
			}
		}
		stats, err := store.Stats(context.Background(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		if stats.Total != want {
			t.Fatalf("%s %q: total %d, but the answer said %d counted: %s", method, path, stats.Total, want, rec.Body)
		}
	})
}

// withDecoderOnly makes the single route read its body as it did before
// the fast path: decodeItem alone, reading the body as it arrives.
func withDecoderOnly() Option {
	return func(a *api) {
		a.readImpression = func(w http.ResponseWriter, r *http.Request) (batchItem, error) {
			return decodeItem(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		}
	}
}

// chunkedBody gives body at most chunk bytes a read (all at once when
// chunk is 0), then end: io.EOF, or the error a broken connection gives.
type chunkedBody struct {
	body  []byte
	chunk int
	end   error
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if len(b.body) == 0 {
		return 0, b.end
	}
	if b.chunk > 0 && len(p) > b.chunk {
		p = p[:b.chunk]
	}
	n := copy(p, b.body)
	b.body = b.body[n:]
	return n, nil
}

func (*chunkedBody) Close() error { return nil }

// FuzzSingleFastPath: the single route answers every body exactly as it
// does when the body is only decoded (see sameAnswer). The body may be
// padded with whitespace to either side of MaxBodyBytes, where the fast
// path stops reading early, and TestSingleFastPath adds the bodies too
// large or too deep to fuzz quickly.
func FuzzSingleFastPath(f *testing.F) {
	for _, s := range itemSeeds {
		f.Add([]byte(s), "Mozilla/5.0", uint8(0), uint8(0), uint8(0))
	}
	for _, s := range []string{
		`{"campaign_id":"c1","user_id":"u","ad_id":"a"}`,
		`{"campaign_id":"c1","user_id":"u","ad_id":"a","user_agent":"Googlebot"}`,
		`{"campaign_id":"c1","user_id":"u","ad_id":"a","user_agent":null}`,
		`{"campaign_id":"c1","user_id":"u","ad_id":"a"} {}`,
		`{"campaign_id":"c1","user_id":"u","ad_id":"a"} x`,
		`{"campaign_id":"c1","user_id":"u","ad_id":"a"`,
		``, ` `, `{`, `x`, "\ufeff{}",
	} {
		for _, grow := range []uint8{0, 127, 128, 129, 130} {
			f.Add([]byte(s), "", uint8(0), uint8(0), grow)
		}
		f.Add([]byte(s), "bot", uint8(3), uint8(1), uint8(0))
		f.Add([]byte(s), "", uint8(1), uint8(2), uint8(200))
	}
	f.Fuzz(func(t *testing.T, body []byte, userAgent string, chunk, end, grow uint8) {
		if grow > 0 {
			// Whitespace before the body (odd grow) or after it (even),
			// to a length from 127 bytes under the limit to 128 over it.
			pad := bytes.Repeat([]byte(" "), max(MaxBodyBytes-len(body)-128+int(grow), 0))
			if grow%2 == 1 {
				body = append(pad, body...)
			} else {
				body = append(body, pad...)
			}
		}
		readEnds := []error{io.EOF, io.ErrUnexpectedEOF, errors.New("connection reset by peer")}
		sameAnswer(t, body, userAgent, int(chunk), readEnds[int(end)%len(readEnds)])
	})
}

// TestSingleFastPath: bodies too large or too deep for the fuzzer to
// try quickly are answered alike with and without the fast path.
func TestSingleFastPath(t *testing.T) {
	t.Parallel()
	item := `{"campaign_id":"c1","user_id":"u","ad_id":"a"`
	for _, tc := range []struct {
		name string
		body string
		want int // the status both answer
	}{
		// The fast path's item reader hands a value nested deeper than
		// encoding/json allows to the decoder, whose error it is.
		{"TooDeep", item + `,"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, http.StatusBadRequest},
		// As deep as encoding/json allows: still a counted impression.
		{"DeepestAllowed", item + `,"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`, http.StatusOK},
		// A string value that runs past the limit: 413.
		{"LongValue", item + `,"x":"` + strings.Repeat("v", MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		// A syntax error before the limit wins over the body's size.
		{"SyntaxErrorThenTooLarge", `{"campaign_id":x` + strings.Repeat(" ", 2*MaxBodyBytes), http.StatusBadRequest},
		// A second object after the limit: the size is what is wrong.
		{"TooLargeThenSecondObject", item + `}` + strings.Repeat(" ", MaxBodyBytes) + `{}`, http.StatusRequestEntityTooLarge},
		// Many times the limit: the fast path stops reading at the limit.
		{"FarTooLarge", item + `}` + strings.Repeat("\n", 8*MaxBodyBytes), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range []int{0, 1, 4096} {
				assert.Equal(t, tc.want, sameAnswer(t, []byte(tc.body), "", chunk, io.EOF), "chunk %d", chunk)
			}
		})
	}
}

// sameAnswer checks that the single route answers body, with userAgent
// as the request's User-Agent, exactly as it does when the body is only
// decoded (withDecoderOnly): the same status, headers and body, and the
// same count in the store. It returns the status. The body ends with end (io.EOF, or a broken
// connection's error), and arrives at the fast path in reads of at most
// chunk bytes (any size when 0) and at the decoder whole: encoding/json's
// message for some bodies depends on where reads split them (invalid
// UTF-8 at the start is named by its first byte or its whole rune), and
// the fast path answers, however the body arrives, as the decoder does
// for a body that arrives whole, as a small body does.
func sameAnswer(t *testing.T, body []byte, userAgent string, chunk int, end error) int {
	t.Helper()
	start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	bot := func(ua string) bool { return strings.Contains(ua, "bot") }
	serve := func(chunk int, opts ...Option) (*httptest.ResponseRecorder, adcount.Stats) {
		store, err := memstore.New(memstore.WithClock(func() time.Time { return start }))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateCampaign(context.Background(), adcount.Campaign{ID: "c1", Name: "fuzz", StartTime: start}); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, WithBotFilter(bot), WithLogger(slog.New(slog.DiscardHandler)))
		req := httptest.NewRequest(http.MethodPost, "/api/v1/impressions", nil)
		req.Body = &chunkedBody{body: body, chunk: chunk, end: end}
		req.Header.Set(RequestIDHeader, "fuzz")
		if utf8.ValidString(userAgent) {
			req.Header.Set("User-Agent", userAgent)
		}
		rec := httptest.NewRecorder()
		NewHandler(store, opts...).ServeHTTP(rec, req)
		stats, err := store.Stats(context.Background(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		return rec, stats
	}
	fast, fastStats := serve(chunk)
	slow, slowStats := serve(0, withDecoderOnly())
	if fast.Code != slow.Code || !bytes.Equal(fast.Body.Bytes(), slow.Body.Bytes()) {
		t.Fatalf("body %.200q: fast path answers %d %s, decoder %d %s", body, fast.Code, fast.Body, slow.Code, slow.Body)
	}
	if !reflect.DeepEqual(fast.Header(), slow.Header()) {
		t.Fatalf("body %.200q: fast path headers %v, decoder %v", body, fast.Header(), slow.Header())
	}
	if fastStats != slowStats {
		t.Fatalf("body %.200q: fast path leaves %+v, decoder %+v", body, fastStats, slowStats)
	}
	return fast.Code
}
