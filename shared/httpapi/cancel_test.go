package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

// slowStore is a real memory store whose RecordImpression waits until the
// request's context ends before going on, as a remote store's call would
// still be in flight when the client hangs up. No real store is slow on
// demand, so this fake stands in for one.
// With unavailable set it then fails as a store that reports the cut call
// as an outage of its own would.
type slowStore struct {
	adcount.Store
	unavailable bool
}

func (s slowStore) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	if s.unavailable {
		return 0, fmt.Errorf("slow: record %s: %w", imp.UserID, adcount.ErrUnavailable)
	}
	return s.Store.RecordImpression(ctx, imp)
}

// TestClientHangUpIs499: a client that sends a whole, valid impression and
// then closes its side of the connection cancels the request. That is its
// doing, not the service's: the request is recorded and logged as nginx's
// 499 with the kind client_closed, never as a 5xx or a store error, and
// nothing is counted.
func TestClientHangUpIs499(t *testing.T) {
	t.Parallel()
	rec, line := hangUp(t, false)
	assert.Equal(t, 499, rec.Status)
	assert.Equal(t, "client_closed", rec.ErrorKind)
	assert.False(t, rec.StoreError, "a client's hang-up is no store failure")
	assert.Equal(t, httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "client_closed", Count: 1}}}, rec.Impressions)
	assert.Equal(t, "INFO", line["level"], "not an error of the service")
	assert.Equal(t, 499.0, line["status"])
	assert.Equal(t, "client_closed", line["error_kind"])
	assert.NotContains(t, line, "store_error")
}

// TestStoreFailureDuringHangUpStaysAStoreFailure: a store that fails on its
// own, with an error that does not carry the client's cancellation, is an
// outage even if the client has gone meanwhile: it must reach the store
// error metrics and the ERROR log, not hide as a 499.
func TestStoreFailureDuringHangUpStaysAStoreFailure(t *testing.T) {
	t.Parallel()
	rec, line := hangUp(t, true)
	assert.Equal(t, 503, rec.Status)
	assert.Equal(t, "unavailable", rec.ErrorKind)
	assert.True(t, rec.StoreError)
	assert.Equal(t, "unavailable", line["store_error"])
}

// hangUp sends a whole, valid impression to a store that waits for the
// request to end, half-closes the connection, and returns the request's
// record and log line. With unavailable the store then fails on its own.
func hangUp(t *testing.T, unavailable bool) (httpapi.Record, map[string]any) {
	t.Helper()
	mem, err := memstore.New(memstore.WithClock(storetest.NewClock(storetest.Epoch).Now))
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c", "c", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, mem.CreateCampaign(context.Background(), c))
	var logs syncbuf.Buffer
	sink := &records{}
	srv := httptest.NewServer(httpapi.NewHandler(slowStore{Store: mem, unavailable: unavailable},
		httpapi.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))), httpapi.WithMetrics(sink)))
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	// A large valid body: the user ID is long, within the limit.
	body := impression("c", strings.Repeat("u", adcount.MaxIDBytes), "a")
	_, err = fmt.Fprintf(conn, "POST /api/v1/impressions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the handler answered before the 10 s fallback")
	// Once the whole body is read, the handler, sinks included, is done.
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	rec := sink.last(t)
	assert.Equal(t, rec.Status, resp.StatusCode)

	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line))
	stats, err := mem.Stats(context.Background(), "c")
	require.NoError(t, err)
	assert.Zero(t, stats.Total, "nothing counted")
	return rec, line
}
