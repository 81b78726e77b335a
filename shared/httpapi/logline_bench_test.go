package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/logbuf"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// BenchmarkRequestLog measures POST /api/v1/impressions through the whole
// handler, from every core (run with -cpu 1,2), with the request log line
// off (LOG_LEVEL=warn), written through slog (LogSink) and written by
// JSONLogSink. Both write as the local server does, through a
// logbuf.Writer to a file (/dev/null), so that the Writer's goroutine and
// its write calls are counted too. The difference between Off and a sink is
// what the line costs a request.
func BenchmarkRequestLog(b *testing.B) {
	cases := []struct {
		name string
		sink func(w *logbuf.Writer) httpapi.Option
	}{
		{"Off", func(w *logbuf.Writer) httpapi.Option {
			return httpapi.WithLogger(slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})))
		}},
		{"Slog", func(w *logbuf.Writer) httpapi.Option {
			return httpapi.WithLogger(slog.New(slog.NewJSONHandler(w, nil)))
		}},
		{"JSONLogSink", func(w *logbuf.Writer) httpapi.Option {
			return httpapi.WithRequestLog(httpapi.JSONLogSink(w, slog.LevelInfo))
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h, id := newLoggingBenchHandler(b, tc.sink)
			var workers atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				br := newBenchRequest(id, strconv.FormatInt(workers.Add(1), 10))
				for i := 0; pb.Next(); i++ {
					br.serve(b, h, i)
				}
			})
		})
	}
}

// BenchmarkRequestLogLine measures the request line alone: one sink's
// Observe for a counted impression, written to a logbuf.Writer that
// throws its lines away. The benchmark flushes the Writer every 1,024
// lines, about as often as a busy server's Writer writes, so that its
// buffer stays the size it has in a server.
func BenchmarkRequestLogLine(b *testing.B) {
	rec := httpapi.Record{Method: "POST", Route: httpapi.RouteRecordImpression, Status: 200,
		Duration: 123456, RequestID: "0123456789abcdef-1a2b3c", Impressions: httpapi.Impressions{Counted: 1}}
	cases := []struct {
		name string
		sink func(w *logbuf.Writer) httpapi.Sink
	}{
		{"Slog", func(w *logbuf.Writer) httpapi.Sink { return httpapi.LogSink(slog.New(slog.NewJSONHandler(w, nil))) }},
		{"JSONLogSink", func(w *logbuf.Writer) httpapi.Sink { return httpapi.JSONLogSink(w, slog.LevelInfo) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			w := logbuf.New(io.Discard)
			b.Cleanup(func() { require.NoError(b, w.Close()) })
			sink := tc.sink(w)
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				sink.Observe(ctx, rec)
				if i%1024 == 1023 {
					require.NoError(b, w.Flush(ctx))
				}
			}
			if n := w.Dropped(); n > 0 {
				b.Errorf("%d lines dropped: the benchmark would leave out their cost", n)
			}
		})
	}
}

// benchLogBytes is the benchmarks' log buffer: large enough that the
// Writer's goroutine, which a benchmark that keeps every core busy starves,
// drops no line, whose cost would then be left out.
const benchLogBytes = 64 << 20

// newLoggingBenchHandler is the handler over a memory store with one
// started campaign, logging through the option sink makes from a
// logbuf.Writer on /dev/null.
func newLoggingBenchHandler(b *testing.B, sink func(*logbuf.Writer) httpapi.Option) (h http.Handler, campaignID string) {
	b.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(b, err)
	w := logbuf.New(f, logbuf.WithMaxBytes(benchLogBytes))
	b.Cleanup(func() {
		if n := w.Dropped(); n > 0 {
			b.Errorf("%d lines dropped: the benchmark would leave out their cost", n)
		}
		require.NoError(b, w.Close())
		require.NoError(b, f.Close())
	})
	store, err := memstore.New(memstore.WithClock(storetest.NewClock(storetest.Epoch).Now))
	require.NoError(b, err)
	c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
	require.NoError(b, err)
	require.NoError(b, store.CreateCampaign(context.Background(), c))
	return httpapi.NewHandler(store, sink(w)), c.ID
}
