package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		`[]`, `null`, `{}{}`, `{"a":`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []struct {
			v      any
			fields []string
		}{{&impressionRequest{}, impressionFields}, {&campaignRequest{}, campaignFields}} {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			err := decode(httptest.NewRecorder(), r, dst.v, dst.fields)
			if err == nil {
				if imp, ok := dst.v.(*impressionRequest); ok {
					err = adcount.Impression{CampaignID: imp.CampaignID, UserID: imp.UserID, AdID: imp.AdID}.Validate()
				}
				if err == nil {
					continue
				}
				var fe *adcount.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("validation error %v is not a field error", err)
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
		h := NewHandler(store, WithAdminKeys([]string{"k"}), WithBotFilter(bot), WithLogger(slog.New(slog.DiscardHandler)))
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
