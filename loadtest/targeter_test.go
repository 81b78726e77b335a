package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// impressionBody is the JSON body of POST /api/v1/impressions, and one item
// of a batch.
type impressionBody struct {
	CampaignID string  `json:"campaign_id"`
	UserID     string  `json:"user_id"`
	AdID       string  `json:"ad_id"`
	UserAgent  *string `json:"user_agent,omitempty"`
}

// batchBody is the JSON body of POST /api/v1/impressions/batch.
type batchBody struct {
	Impressions []impressionBody `json:"impressions"`
}

// decodeStrict decodes JSON that must have no field the API does not know.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "body %s", body)
}

// sentImpressions decodes what tgt carries, whatever its route, as the
// service would read it, with the User-Agent it would judge each by.
func sentImpressions(t *testing.T, tgt vegeta.Target) []impressionBody {
	t.Helper()
	ua := tgt.Header.Get("User-Agent")
	switch u, err := url.Parse(tgt.URL); {
	case err != nil:
		t.Fatal(err)
	case u.Path == pathBatch:
		var b batchBody
		decodeStrict(t, tgt.Body, &b)
		return b.Impressions
	case u.Path == pathPixel:
		require.Empty(t, tgt.Body, "a pixel load has no body")
		q := u.Query()
		return []impressionBody{{CampaignID: q.Get("campaign_id"), UserID: q.Get("user_id"), AdID: q.Get("ad_id"), UserAgent: &ua}}
	default:
		var b impressionBody
		decodeStrict(t, tgt.Body, &b)
		require.Nil(t, b.UserAgent, "the single route's User-Agent is its header")
		b.UserAgent = &ua
		return []impressionBody{b}
	}
	return nil
}

func TestTargeterIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  targetConfig
		per  int
	}{
		// One impression per request, the User-Agent in the header.
		{"Single", targetConfig{Mode: modeSingle}, 1},
		// Batches of 7, every item with its viewer's User-Agent.
		{"Batch", targetConfig{Mode: modeBatch, ItemUA: true}, 7},
		// Pixel loads, the IDs in the query.
		{"Pixel", targetConfig{Mode: modePixel}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const goroutines, each = 8, 500
			p := mustPlan(t, PlanConfig{Campaigns: 3, Users: 100_000, Ads: 5, PerRequest: tc.per, DupRatio: 0.25, ReadShare: 0.1, BotShare: 0.1, Seed: 3})
			tc.cfg.AdminKey, tc.cfg.BrowserUA = "secret", defaultBrowserUA
			ts, err := newTargets(p, "http://127.0.0.1:1", []string{"c0", "c1", "c2"}, tc.cfg)
			require.NoError(t, err)
			tr := ts.targeter()

			got := make([][]vegeta.Target, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for range each {
						var tgt vegeta.Target
						if err := tr(&tgt); err != nil {
							t.Error(err)
							return
						}
						got[g] = append(got[g], tgt)
					}
				})
			}
			wg.Wait()

			byIndex := map[uint64]vegeta.Target{}
			bodies := map[*byte]bool{}
			for _, ts := range got {
				for _, tgt := range ts {
					i, err := resultIndex(tgt.URL)
					require.NoError(t, err)
					_, dup := byIndex[i]
					require.False(t, dup, "index %d was handed out twice", i)
					byIndex[i] = tgt
					if len(tgt.Body) > 0 {
						require.False(t, bodies[&tgt.Body[0]], "request %d shares a body buffer", i)
						bodies[&tgt.Body[0]] = true
					}
				}
			}
			require.Len(t, byIndex, goroutines*each, "every index from 0 handed out once")

			// Whatever the interleaving, index i got exactly the plan's
			// request i, so the duplicate ratio is the plan's, exactly.
			repeats, imps := 0, 0
			for i := range uint64(goroutines * each) {
				want := p.Request(i)
				tgt, ok := byIndex[i]
				require.True(t, ok, "index %d missing", i)
				if want.Read {
					assert.Equal(t, http.MethodGet, tgt.Method)
					assert.Equal(t, "Bearer secret", tgt.Header.Get("Authorization"), "stats reads carry the admin key")
					continue
				}
				assert.Empty(t, tgt.Header.Get("Authorization"), "ingest is open; the admin key stays off it")
				sent := sentImpressions(t, tgt)
				require.Len(t, sent, want.Count)
				for k, got := range sent {
					im, err := p.Impression(want.First + uint64(k))
					require.NoError(t, err)
					imps++
					if im.Repeat {
						repeats++
					}
					ua := defaultBrowserUA
					if im.Bot {
						ua = botUA
					}
					require.NotNil(t, got.UserAgent)
					assert.Equal(t, impressionBody{CampaignID: ts.campaignIDs[im.Campaign], UserID: im.UserID(), AdID: im.AdID(), UserAgent: &ua}, got)
				}
			}
			assert.Equal(t, int(selected(uint64(imps), p.dupPPM, p.dupPhase)), repeats, "a quarter of %d impressions repeat, to within one", imps)
			assert.InDelta(t, imps/4, repeats, 1)
		})
	}
}

func TestTargetsByRoute(t *testing.T) {
	t.Parallel()
	// An ID that needs escaping in JSON and in a query, to show both are.
	const id = `c"&=?/ 1`
	cases := []struct {
		name   string
		cfg    targetConfig
		per    int
		method string
		path   string
		header http.Header // wanted on a browser's impression
		itemUA bool        // batch items other than bots' carry user_agent
	}{
		// POST with a JSON body, the browser's User-Agent in the header.
		{"Single", targetConfig{Mode: modeSingle, BrowserUA: defaultBrowserUA}, 1, http.MethodPost, pathImpressions,
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {defaultBrowserUA}}, false},
		// The batch's own header is the ad server's; items carry no
		// user_agent unless asked, so they are not judged.
		{"Batch", targetConfig{Mode: modeBatch, BrowserUA: defaultBrowserUA}, 4, http.MethodPost, pathBatch,
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {defaultBrowserUA}}, false},
		// -item-ua: every item forwards its viewer's User-Agent.
		{"BatchItemUA", targetConfig{Mode: modeBatch, BrowserUA: defaultBrowserUA, ItemUA: true}, 4, http.MethodPost, pathBatch,
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {defaultBrowserUA}}, true},
		// A GET with no body, as a browser loads an image.
		{"Pixel", targetConfig{Mode: modePixel, BrowserUA: defaultBrowserUA}, 1, http.MethodGet, pathPixel,
			http.Header{"Accept": {pixelAccept}, "User-Agent": {defaultBrowserUA}}, false},
		// -ua "": an empty User-Agent, which net/http sends as none at
		// all rather than as its own default, a listed bot.
		{"NoUserAgent", targetConfig{Mode: modeSingle}, 1, http.MethodPost, pathImpressions,
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {""}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Every third impression is a bot's.
			p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 1000, Ads: 1, PerRequest: tc.per, BotShare: 1.0 / 3, Seed: 5})
			ts, err := newTargets(p, "http://h", []string{id}, tc.cfg)
			require.NoError(t, err)
			var sawBot, sawBrowser bool
			for i := range uint64(6) {
				var tgt vegeta.Target
				require.NoError(t, ts.target(i, &tgt))
				u, err := url.Parse(tgt.URL)
				require.NoError(t, err)
				assert.Equal(t, tc.method, tgt.Method)
				assert.Equal(t, tc.path, u.Path)
				got, err := resultIndex(tgt.URL)
				require.NoError(t, err)
				assert.Equal(t, i, got)
				r := p.Request(i)
				if tc.cfg.Mode == modeBatch {
					assert.Equal(t, tc.header, tgt.Header, "the batch request's own header")
					var b batchBody
					decodeStrict(t, tgt.Body, &b)
					require.Len(t, b.Impressions, tc.per)
					for k, item := range b.Impressions {
						im, err := p.Impression(r.First + uint64(k))
						require.NoError(t, err)
						assert.Equal(t, id, item.CampaignID)
						assert.Equal(t, im.UserID(), item.UserID)
						switch {
						case im.Bot:
							sawBot = true
							require.NotNil(t, item.UserAgent, "a bot item always names its User-Agent")
							assert.Equal(t, botUA, *item.UserAgent)
						case tc.itemUA:
							sawBrowser = true
							require.NotNil(t, item.UserAgent)
							assert.Equal(t, defaultBrowserUA, *item.UserAgent)
						default:
							sawBrowser = true
							assert.Nil(t, item.UserAgent)
						}
					}
					continue
				}
				im, err := p.Impression(r.First)
				require.NoError(t, err)
				sent := sentImpressions(t, tgt)
				require.Len(t, sent, 1)
				assert.Equal(t, id, sent[0].CampaignID, "the ID survives escaping")
				assert.Equal(t, im.UserID(), sent[0].UserID)
				assert.Equal(t, im.AdID(), sent[0].AdID)
				if im.Bot {
					sawBot = true
					assert.Equal(t, botUA, tgt.Header.Get("User-Agent"))
					continue
				}
				sawBrowser = true
				assert.Equal(t, tc.header, tgt.Header)
			}
			assert.True(t, sawBot && sawBrowser, "six requests hold bots and browsers")
		})
	}
}

func TestOneImpressionRoutesRefuseBatches(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 10, Ads: 1, PerRequest: 2})
	for _, m := range []mode{modeSingle, modePixel} {
		_, err := newTargets(p, "http://h", []string{"c"}, targetConfig{Mode: m})
		require.ErrorContains(t, err, "one impression per request", m.String())
	}
}

func TestResultIndex(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		url  string
		want uint64
		ok   bool
	}{
		// The index is the only parameter of the POST routes.
		{"Single", "http://h/api/v1/impressions?req=42", 42, true},
		{"Batch", "http://h/api/v1/impressions/batch?req=7", 7, true},
		// The pixel's index follows the impression's own parameters.
		{"Pixel", "http://h/api/v1/pixel.gif?campaign_id=c&user_id=user-1&ad_id=ad-2&req=9", 9, true},
		// A parameter that merely ends in the name is not the index.
		{"LookAlike", "http://h/api/v1/pixel.gif?campaign_id=xreq=3", 0, false},
		// A result of another client's request.
		{"NoIndex", "http://h/api/v1/impressions", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := resultIndex(tc.url)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestWithoutIndex(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		// A transport error quotes the URL; the index goes.
		{"Error", `Post "http://h/api/v1/impressions?req=123": timeout`, `Post "http://h/api/v1/impressions": timeout`},
		// A pixel's whole query goes, so that errors group by route.
		{"Pixel", `Get "http://h/api/v1/pixel.gif?campaign_id=c&user_id=user-1&ad_id=ad-0&req=5": EOF`, `Get "http://h/api/v1/pixel.gif": EOF`},
		// A status text has no URL and stays.
		{"Status", "503 Service Unavailable", "503 Service Unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, withoutIndex(tc.in))
		})
	}
}

// BenchmarkBatchTarget is the cost of building one request of a thousand
// impressions, which the harness does on the cores the service runs on.
func BenchmarkBatchTarget(b *testing.B) {
	p, err := NewPlan(PlanConfig{Campaigns: 4, Users: 100_000_000, Ads: 1, PerRequest: maxBatch, DupRatio: 0.2, Seed: 1})
	require.NoError(b, err)
	ts, err := newTargets(p, "http://127.0.0.1:8080", []string{"0a1b2c3d-4e5f-6789-abcd-ef0123456789", "c1", "c2", "c3"}, targetConfig{Mode: modeBatch})
	require.NoError(b, err)
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		var tgt vegeta.Target
		if err := ts.target(i, &tgt); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*maxBatch), "ns/impression")
}
