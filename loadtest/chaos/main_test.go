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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "chaos-test-admin-key"

// startLocalServer builds the real local server, starts it on a free port
// with env added, and returns its base URL. It gets SIGTERM when the test
// ends.
func startLocalServer(t *testing.T, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "local")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/adcount/impression-counter/local").CombinedOutput()
	require.NoError(t, err, "go build ./local: %s", out)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"PORT=0", "LOG_LEVEL=warn", "ADMIN_API_KEYS=" + testKey}, env...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "the server printed no log line")
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

// chaos runs one subcommand with the test's admin key and returns its
// stdout and error.
func chaos(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, func(k string) string {
		return map[string]string{adminKeyEnv: testKey}[k]
	}, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// TestVerifyCatchesWhatTheLedgerContradicts runs real traffic against the
// real server, then adds to the ledger an answer the server never gave,
// and checks that verify names it.
func TestVerifyCatchesWhatTheLedgerContradicts(t *testing.T) {
	t.Parallel()
	base := startLocalServer(t)
	cases := []struct {
		name string
		// forged is appended to a ledger of real answers; %s is a
		// campaign of the run.
		forged  string
		summary string
		fails   bool
	}{
		// Nothing forged: every answer is true, so verify passes, and
		// the probe leaves each total at the distinct keys sent.
		{name: "ExactWhenNothingIsForged", summary: "lost=0 double=0"},
		// A key answered counted that the server never stored is a
		// loss: the probe counts it again.
		{name: "LossWhenAnAcknowledgedKeyIsMissing", forged: "imp\tcounted\t%s\tnever-stored\tad-1\n", summary: "lost=1 double=0", fails: true},
		// A duplicate answer promises a durable record just as much.
		{name: "LossWhenADuplicateAnswerHasNoRecord", forged: "imp\tduplicate\t%s\tnever-stored\tad-1\n", summary: "lost=1 double=0", fails: true},
		// A key with no definite answer may be missing: no problem.
		{name: "NoProblemWhenAnUnknownKeyIsMissing", forged: "imp\tunknown\t%s\tnever-stored\tad-1\n", summary: "lost=0 double=0"},
		// Two counted answers for one key mean the service forgot it
		// once: a double count.
		{name: "DoubleWhenAKeyIsCountedTwice", forged: "imp\tcounted\t%s\tload-0-0\tad-1\n", summary: "lost=0 double=1", fails: true},
		// Impressions acknowledged in a campaign that is gone are lost
		// with it, as when a restart comes back empty.
		{name: "LossWhenTheirCampaignIsGone", forged: "imp\tcounted\t00000000-0000-4000-8000-000000000001\tu\tad-1\n", summary: "lost=1 double=0 campaigns=0 missing_campaigns=1", fails: true},
		// A 201 for a campaign that is gone is a missing campaign.
		{name: "MissingCampaign", forged: "campaign\t00000000-0000-4000-8000-000000000000\n", summary: "missing_campaigns=1", fails: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ledger := filepath.Join(t.TempDir(), "ledger")
			ids, err := chaos(t, "create", "-target", base, "-n", "1")
			require.NoError(t, err, ids)
			id := strings.TrimSpace(ids)
			out, err := chaos(t, "load", "-target", base, "-campaign-ids", id, "-ledger", ledger,
				"-prefix", "load", "-workers", "1", "-max", "200", "-duration", "10s")
			require.NoError(t, err, out)
			if tc.forged != "" {
				f, err := os.OpenFile(ledger, os.O_APPEND|os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = f.WriteString(strings.ReplaceAll(tc.forged, "%s", id))
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
			out, err = chaos(t, "verify", "-target", base, "-ledger", ledger)
			assert.Contains(t, out, tc.summary)
			if tc.fails {
				require.ErrorIs(t, err, errFailed, out)
			} else {
				require.NoError(t, err, out)
			}
		})
	}
}

// TestCampaignsAreRecorded: every 201 lands in the ledger and verifies.
func TestCampaignsAreRecorded(t *testing.T) {
	t.Parallel()
	base := startLocalServer(t)
	ledger := filepath.Join(t.TempDir(), "ledger")
	out, err := chaos(t, "campaigns", "-target", base, "-ledger", ledger, "-prefix", "c", "-max", "20", "-duration", "10s")
	require.NoError(t, err, out)
	out, err = chaos(t, "verify", "-target", base, "-ledger", ledger)
	require.NoError(t, err, out)
	assert.Contains(t, out, "campaigns=20 missing_campaigns=0")
}

// TestDupGivesOneCountedPerKey runs the concurrent-duplicates check against
// the real server with its data on disk.
func TestDupGivesOneCountedPerKey(t *testing.T) {
	t.Parallel()
	base := startLocalServer(t, "DATA_DIR="+t.TempDir())
	out, err := chaos(t, "dup", "-target", base, "-keys", "20", "-copies", "8")
	require.NoError(t, err, out)
	assert.Contains(t, out, "keys=20 counted=20 duplicate=140 unanswered=0 wrong_keys=0 total=20")
}

// TestIdleHoldsEveryConnection opens idle connections to the real server
// and times impressions around them. The latency limit is loose here: the
// test checks the mechanics, make chaos the figure.
func TestIdleHoldsEveryConnection(t *testing.T) {
	t.Parallel()
	base := startLocalServer(t)
	out, err := chaos(t, "idle", "-target", base, "-conns", "50", "-samples", "50", "-factor", "50")
	require.NoError(t, err, out)
	assert.Contains(t, out, "idle connections held: 50 of 50")
}

// TestDripUntilCutMeasuresTheServersTimeouts uses a net/http server with
// short timeouts, so that the test takes a second, not ten.
func TestDripUntilCutMeasuresTheServersTimeouts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = bytes.NewBuffer(nil).ReadFrom(r.Body)
		w.WriteHeader(http.StatusBadRequest)
	}))
	srv.Config.ReadHeaderTimeout = 500 * time.Millisecond
	srv.Config.ReadTimeout = 1500 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	head := "POST / HTTP/1.1\r\nHost: x\r\n"
	cases := []struct {
		name  string
		start string
		want  time.Duration
	}{
		// A header that never ends is cut at ReadHeaderTimeout.
		{"SlowHeaderCutAtHeaderTimeout", head + "X-Slow: ", 500 * time.Millisecond},
		// A body that never ends is cut at ReadTimeout.
		{"SlowBodyCutAtReadTimeout", head + "Content-Length: 100\r\n\r\n{", 1500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := dripUntilCut(context.Background(), host, tc.start, 10*time.Second)
			require.NoError(t, err)
			// The server's clock starts at accept, a little before
			// the client's.
			assert.GreaterOrEqual(t, got, tc.want-100*time.Millisecond)
			assert.Less(t, got, tc.want+2*time.Second)
		})
	}
	t.Run("GivesUpOnAServerThatWaitsForever", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		_, err = dripUntilCut(context.Background(), ln.Addr().String(), head, 700*time.Millisecond)
		require.ErrorContains(t, err, "still connected")
	})
}

// TestReadBookRejectsWhatItCannotRead: a ledger it cannot read is an error,
// never a silent pass.
func TestReadBookRejectsWhatItCannotRead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, ledger, err string
	}{
		// An outcome the load command never writes.
		{"UnknownOutcome", "imp\tmaybe\tc\tu\ta\n", "unknown outcome"},
		// A line cut short, as a full disk might leave it.
		{"ShortLine", "imp\tcounted\tc\n", "cannot read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := readBook(strings.NewReader(tc.ledger))
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// TestRunRejectsBadArguments: usage errors exit 2, not 1.
func TestRunRejectsBadArguments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
	}{
		{"NoSubcommand", nil},
		{"UnknownSubcommand", []string{"explode"}},
		{"NoTarget", []string{"verify", "-ledger", "x"}},
		{"LoadWithoutLedger", []string{"load", "-target", "http://127.0.0.1:1", "-campaign-ids", "a", "-prefix", "p"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := chaos(t, tc.args...)
			require.ErrorIs(t, err, errUsage)
		})
	}
}
