package httpapi_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// BenchmarkBotFilterCost measures what judging User-Agents adds to
// POST /api/v1/impressions: the whole handler with FILTER_BOTS off, with
// the crawler list and its verdict cache (real traffic repeats a few
// User-Agents), and with the list but no cache, the cost of a User-Agent
// never seen before. Compare Off with the others (benchstat).
func BenchmarkBotFilterCost(b *testing.B) {
	cached, err := botfilter.Judge(true)
	require.NoError(b, err)
	scan, err := botfilter.New(botfilter.WithCacheSize(0))
	require.NoError(b, err)
	for _, tc := range []struct {
		name  string
		isBot func(string) bool
	}{
		{"Off", nil},
		{"Cached", cached},
		{"Uncached", scan.IsBot},
	} {
		b.Run(tc.name, func(b *testing.B) {
			store, err := memstore.New(memstore.WithClock(storetest.NewClock(storetest.Epoch).Now))
			require.NoError(b, err)
			c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
			require.NoError(b, err)
			require.NoError(b, store.CreateCampaign(context.Background(), c))
			h := httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler)), httpapi.WithBotFilter(tc.isBot))
			br := newBenchRequest(c.ID, "0")
			br.req.Header.Set("User-Agent", chromeUA)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				br.serve(b, h, i)
			}
		})
	}
}

// The benchmark's requests are judged: with the filter on, a crawler's
// User-Agent on the same request is filtered, so the benchmark measures
// a filter that runs.
func TestBotFilterBenchmarkJudges(t *testing.T) {
	t.Parallel()
	isBot, err := botfilter.Judge(true)
	require.NoError(t, err)
	require.False(t, isBot(chromeUA))
	require.True(t, isBot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"))
}
