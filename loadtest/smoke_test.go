package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	report := smoke(t, "-rate", "200", "-duration", "3s", "-campaigns", "3", "-users", "500", "-ads", "4", "-dup", "0.3", "-reads", "0.1", "-seed", "7")
	assert.Regexp(t, `Impressions\s+\[answered.*\]\s+[1-9]\d*, `, report)
}

// The smoke tests below drive the routes and the bot filter of issue 12:
// POST /api/v1/impressions/batch, GET /api/v1/pixel.gif, and the filtered
// outcome and stat. They pass against a server that has them.

// TestSmokeBatchAgainstLocalServer sends batches, each item with its
// viewer's User-Agent and a tenth of them a bot's, with repeats inside
// and across batches, and verifies every item's answer, the totals and
// the filtered stats.
func TestSmokeBatchAgainstLocalServer(t *testing.T) {
	t.Parallel()
	report := smoke(t, "-batch", "50", "-item-ua", "-bot-share", "0.1", "-rate", "40", "-duration", "3s",
		"-campaigns", "3", "-users", "2000", "-ads", "4", "-dup", "0.3", "-reads", "0.1", "-seed", "8")
	assert.Regexp(t, `Impressions\s+\[answered.*\]\s+[1-9]\d*, [\d.]+, [1-9]\d*, [1-9]\d*, [1-9]\d*, 0, 0\n`, report, "counted, duplicates and filtered, none rejected or unknown")
}

// TestSmokePixelAgainstLocalServer loads the pixel as browsers and bots
// do, reading each outcome from the X-Impression-Outcome header.
func TestSmokePixelAgainstLocalServer(t *testing.T) {
	t.Parallel()
	report := smoke(t, "-pixel", "-bot-share", "0.1", "-rate", "200", "-duration", "3s",
		"-campaigns", "2", "-users", "500", "-ads", "4", "-dup", "0.3", "-reads", "0.05", "-seed", "9")
	assert.Regexp(t, `Impressions\s+\[answered.*\]\s+[1-9]\d*, [\d.]+, [1-9]\d*, [1-9]\d*, [1-9]\d*, 0, 0\n`, report)
}

// TestSmokeSingleRouteFiltersBots sends a fifth of the single route's
// impressions with a bot's User-Agent header.
func TestSmokeSingleRouteFiltersBots(t *testing.T) {
	t.Parallel()
	report := smoke(t, "-bot-share", "0.2", "-rate", "200", "-duration", "2s",
		"-campaigns", "2", "-users", "500", "-ads", "4", "-dup", "0.3", "-seed", "10")
	assert.Regexp(t, `Impressions\s+\[answered.*\]\s+[1-9]\d*, [\d.]+, [1-9]\d*, [1-9]\d*, [1-9]\d*, 0, 0\n`, report)
}

// TestSmokeReachAboveTheExactRange reaches thousands of users of one
// campaign, more than the service counts exactly, in batches with
// repeats and bots, and checks the estimate within the harness's
// tolerance; the runs above reach fewer than 1,000 users a campaign, and
// check reach exactly.
func TestSmokeReachAboveTheExactRange(t *testing.T) {
	t.Parallel()
	report := smoke(t, "-batch", "1000", "-item-ua", "-bot-share", "0.05", "-rate", "0", "-workers", "2", "-max-workers", "2",
		"-requests", "8", "-duration", "1m", "-campaigns", "1", "-users", "5000", "-ads", "2", "-dup", "0.2", "-seed", "11")
	assert.Contains(t, report, "unique users and frequency match")
}

// smoke runs the harness with args against the real local server, which
// must verify exactly with every request answered, and returns the report.
func smoke(t *testing.T, args ...string) string {
	t.Helper()
	const key = "smoke-admin-key-0123456789"
	base := startLocalServer(t, "ADMIN_API_KEYS="+key)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"-target", base, "-progress", "0", "-out", dir}, args...),
		func(k string) string { return map[string]string{adminKeyEnv: key}[k] }, &stdout, &stderr)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	report := stdout.String()
	assert.Contains(t, report, "verification passed")
	assert.Regexp(t, `Success\s+\[ratio\]\s+100.00%`, report)
	assert.Contains(t, report, "impressions without a definite answer: 0;")
	for _, f := range []string{"report.json", "histogram.hdr", "plot.html", "impressions.json"} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.NotZero(t, info.Size(), f)
	}
	return report
}
