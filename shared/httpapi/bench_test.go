package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// benchRequest is one reusable POST /api/v1/impressions: each call to next
// writes a new distinct body into the same buffer, so that the benchmark
// counts the handler's work and allocations, not the request's.
type benchRequest struct {
	req     *http.Request
	body    resettableBody
	buf     []byte
	prefix  string
	written discardWriter
}

type resettableBody struct{ bytes.Reader }

func (*resettableBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status; a
// ResponseRecorder would add its own allocations to every operation.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func newBenchRequest(campaignID, worker string) *benchRequest {
	br := &benchRequest{
		req:     httptest.NewRequest(http.MethodPost, "/api/v1/impressions", nil),
		prefix:  `{"campaign_id":"` + campaignID + `","ad_id":"ad-1","user_id":"user-` + worker + `-`,
		written: discardWriter{header: http.Header{}},
	}
	br.req.Body = &br.body
	return br
}

// serve sends the impression of user i through h and checks it counted.
func (br *benchRequest) serve(b *testing.B, h http.Handler, i int) {
	br.buf = append(strconv.AppendInt(append(br.buf[:0], br.prefix...), int64(i), 10), `"}`...)
	br.body.Reset(br.buf)
	br.req.ContentLength = int64(len(br.buf))
	clear(br.written.header)
	br.written.status = 0
	h.ServeHTTP(&br.written, br.req)
	if br.written.status != http.StatusOK {
		b.Fatalf("status %d for %s", br.written.status, br.buf)
	}
}

func newBenchHandler(b *testing.B) (http.Handler, string) {
	b.Helper()
	store, err := memstore.New(memstore.WithClock(storetest.NewClock(storetest.Epoch).Now))
	require.NoError(b, err)
	c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
	require.NoError(b, err)
	require.NoError(b, store.CreateCampaign(context.Background(), c))
	return httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler))), c.ID
}

// BenchmarkHandlerRecordImpression measures POST /api/v1/impressions
// through the whole handler (routing, decoding, validation, the memory
// store, the JSON reply) for distinct keys, without a network: serially and
// from every core (run with -cpu 1,2).
func BenchmarkHandlerRecordImpression(b *testing.B) {
	b.Run("Serial", func(b *testing.B) {
		h, id := newBenchHandler(b)
		br := newBenchRequest(id, "0")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			br.serve(b, h, i)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		h, id := newBenchHandler(b)
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

// BenchmarkBatch1000 measures POST /api/v1/impressions/batch with batches
// of 1,000 distinct impressions through the whole handler (reading and
// parsing the body, the memory store's batch call, the reply written by
// hand), without a network, and reports impressions per second. The
// issue's target is 500 batches of 1,000 a second on two cores, HTTP and
// all; each iteration writes a new body into a reused buffer, which is
// counted too.
func BenchmarkBatch1000(b *testing.B) {
	h, id := newBenchHandler(b)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/impressions/batch", nil)
	var body resettableBody
	req.Body = &body
	w := discardWriter{header: http.Header{}}
	var buf []byte
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		buf = append(buf[:0], `{"impressions":[`...)
		for i := range adcount.MaxBatch {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"campaign_id":"`...)
			buf = append(buf, id...)
			buf = append(buf, `","user_id":"user-`...)
			buf = strconv.AppendInt(buf, int64(n), 10)
			buf = append(buf, `","ad_id":"ad-1"}`...)
			n++
		}
		buf = append(buf, "]}"...)
		body.Reset(buf)
		req.ContentLength = int64(len(buf))
		clear(w.header)
		w.status = 0
		h.ServeHTTP(&w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "impressions/s")
}
