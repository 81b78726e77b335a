package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startLocalServer builds the real local server, starts it on a free port
// with env added, and returns its base URL. The server gets SIGTERM when the
// test ends and must exit cleanly.
func startLocalServer(t *testing.T, env ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the smoke test builds the server with the go command")
	bin := filepath.Join(t.TempDir(), "local")
	build := exec.Command(goTool, "build", "-o", bin, "github.com/adcount/impression-counter/local")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./local: %s", out)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"PORT=0"}, env...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			assert.NoError(t, err, "the server stops cleanly on SIGTERM")
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the server did not stop within 15s of SIGTERM")
		}
	})

	// The first log line says where the server listens; the rest is
	// drained so that logging never blocks the server.
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "the server printed no log line: %v", lines.Err())
	var first struct{ Msg, Addr string }
	require.NoError(t, json.Unmarshal(lines.Bytes(), &first), "log line %q", lines.Text())
	require.Equal(t, "listening", first.Msg)
	_, port, err := net.SplitHostPort(first.Addr)
	require.NoError(t, err)
	go func() {
		for lines.Scan() {
		}
	}()
	return "http://127.0.0.1:" + port
}

// TestSmokeAgainstLocalServer is the load test CI runs: a few seconds at a
// low rate against the real server binary, which must verify exactly, with
// every request answered.
func TestSmokeAgainstLocalServer(t *testing.T) {
	t.Parallel()
	const key = "smoke-admin-key-0123456789"
	base := startLocalServer(t, "ADMIN_API_KEYS="+key)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{
		"-target", base, "-rate", "200", "-duration", "3s",
		"-campaigns", "3", "-users", "500", "-ads", "4",
		"-dup", "0.3", "-reads", "0.1", "-seed", "7",
		"-progress", "0", "-out", dir,
	}, func(k string) string { return map[string]string{adminKeyEnv: key}[k] }, &stdout, &stderr)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	report := stdout.String()
	assert.Contains(t, report, "verification passed")
	assert.Regexp(t, `Success\s+\[ratio\]\s+100.00%`, report)
	assert.Contains(t, report, "requests without a definite answer: 0;")
	for _, f := range []string{"report.json", "histogram.hdr", "plot.html"} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.NotZero(t, info.Size(), f)
	}
}

// wrongCounter is an API that acknowledges impressions correctly but
// reports stats off by skew: the failure a correct server cannot be made to
// show, for checking that the harness catches it.
func wrongCounter(t *testing.T, skew int64) string {
	t.Helper()
	var (
		mu   sync.Mutex
		seen = map[impressionBody]bool{}
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/campaigns", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"c1"}`))
	})
	mux.HandleFunc("POST /api/v1/impressions", func(w http.ResponseWriter, r *http.Request) {
		var b impressionBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		first := !seen[b]
		seen[b] = true
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"counted": first})
	})
	mux.HandleFunc("GET /api/v1/campaigns/{id}/stats", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		n := int64(len(seen)) + skew
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(Stats{LastHour: n, LastDay: n, Total: n})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestHarnessFailsOnWrongCounts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		skew int64
		ok   bool
	}{
		// The control: the same fake with honest stats passes.
		{"HonestStatsPass", 0, true},
		// One impression more than acknowledged: a double count.
		{"ExtraCountFails", 1, false},
		// One fewer: an acknowledged impression lost.
		{"LostCountFails", -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout bytes.Buffer
			err := run(context.Background(), []string{
				"-target", wrongCounter(t, tc.skew), "-rate", "100", "-duration", "1s",
				"-campaigns", "1", "-users", "100", "-ads", "2", "-dup", "0.5", "-progress", "0",
			}, func(string) string { return "" }, &stdout, &bytes.Buffer{})
			if tc.ok {
				require.NoError(t, err, stdout.String())
				return
			}
			require.ErrorIs(t, err, errVerification)
			assert.Contains(t, stdout.String(), "verification FAILED")
			assert.Contains(t, stdout.String(), "stats total is")
		})
	}
}
