package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/storetest"
)

// startServer runs the real server through run on a free port and returns
// its base URL. The server stops, and run must return nil, when the test
// ends. Log lines after the first are offered to logLines if it is not nil
// and has room.
func startServer(t *testing.T, env map[string]string, logLines chan<- string) string {
	t.Helper()
	env["PORT"] = "0"
	ctx, cancel := context.WithCancel(context.Background())
	logs, logw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, logw)
		logw.Close()
	}()
	lines := bufio.NewScanner(logs)
	port := listeningPort(t, lines)
	go func() {
		for lines.Scan() {
			select {
			case logLines <- lines.Text():
			default: // nobody is reading: never block the server's logging
			}
		}
		if logLines != nil {
			close(logLines)
		}
	}()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "a graceful shutdown returns nil")
	})
	return "http://127.0.0.1:" + port
}

// listeningPort reads log lines until the one that says where the server
// listens, which comes after any lines about restoring its data, and
// returns its port.
func listeningPort(t *testing.T, lines *bufio.Scanner) string {
	t.Helper()
	for lines.Scan() {
		var line struct{ Msg, Addr string }
		require.NoError(t, json.Unmarshal(lines.Bytes(), &line), lines.Text())
		if line.Msg == "listening" {
			_, port, err := net.SplitHostPort(line.Addr)
			require.NoError(t, err)
			return port
		}
	}
	require.FailNow(t, "the server stopped before it listened", "%v", lines.Err())
	return ""
}

// browserUA is a browser's User-Agent: the server filters impressions
// from Go's default one, which is on the crawler list.
const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// post sends body as JSON with a browser's User-Agent and decodes the
// answer, with its status as "status".
func post(t *testing.T, url, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	out["status"] = float64(resp.StatusCode)
	return out
}

func TestServerOverHTTP(t *testing.T) {
	t.Parallel()
	checkServerOverHTTP(t, map[string]string{"DEDUP_TTL": "30m"}, 0)
}

// TestDynamoDBServerOverHTTP creates the table with the create-table
// subcommand and serves the API with STORE=dynamodb against an in-process
// DynamoDB, reached through the AWS SDK's own settings, which run reads
// through its getenv like every other setting.
func TestDynamoDBServerOverHTTP(t *testing.T) {
	t.Parallel()
	env := dynamotest.Env(dynamotest.Start(t))
	env["STORE"], env["DYNAMODB_TABLE"] = "dynamodb", "impressions"
	getenv := func(k string) string { return env[k] }
	for _, want := range []string{"created table impressions\n", "table impressions already exists\n"} {
		var out strings.Builder
		require.NoError(t, run(context.Background(), []string{"create-table"}, getenv, &out))
		assert.Equal(t, want, out.String())
	}
	// A pause or an end reaches every instance of the store within its
	// campaign refresh.
	checkServerOverHTTP(t, env, dynamostore.CampaignRefresh)
}

// checkServerOverHTTP starts the server with env and drives every route;
// a pause or an end reaches the store within pauseBound.
func checkServerOverHTTP(t *testing.T, env map[string]string, pauseBound time.Duration) {
	t.Helper()
	base := startServer(t, env, nil)

	c := post(t, base+"/api/v1/campaigns", `{"name":"Launch","start_time":"2020-01-01T00:00:00Z"}`)
	require.Equal(t, 201.0, c["status"])
	id := c["id"].(string)

	imp := fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a1"}`, id)
	counted := time.Now()
	assert.Equal(t, true, post(t, base+"/api/v1/impressions", imp)["counted"])
	assert.Equal(t, false, post(t, base+"/api/v1/impressions", imp)["counted"])
	bad := post(t, base+"/api/v1/impressions", `{"campaign_id":"`+id+`"}`)
	assert.Equal(t, 400.0, bad["status"])

	stats := settledStats(t, base, id, time.Now())
	for _, reach := range []string{"unique_users", "frequency"} {
		require.IsType(t, map[string]any{}, stats[reach], "stats carry %s", reach)
		assert.ElementsMatch(t, []string{"last_hour", "last_day", "total"}, slices.Collect(maps.Keys(stats[reach].(map[string]any))), reach)
		delete(stats, reach)
	}
	assert.Equal(t, map[string]any{"campaign_id": id, "last_hour": 1.0, "last_day": 1.0, "total": 1.0, "filtered": 0.0}, stats)
	checkReportsOverHTTP(t, base, id, counted, pauseBound)
}

// settledStats reads a campaign's stats once their as_of has passed since,
// as a store that aggregates behind its writes needs, and returns them
// without as_of. It reads again, backing off, for up to
// storetest.SettleBound; it never sleeps a fixed time.
func settledStats(t *testing.T, base, id string, since time.Time) map[string]any {
	t.Helper()
	deadline := time.Now().Add(storetest.SettleBound)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		resp, err := http.Get(base + "/api/v1/campaigns/" + id + "/stats")
		require.NoError(t, err)
		var stats map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, stats)
		text, _ := stats["as_of"].(string)
		at, err := time.Parse(time.RFC3339, text)
		if err == nil && at.After(since) {
			delete(stats, "as_of")
			return stats
		}
		require.True(t, time.Now().Before(deadline), "as_of %q never passed %v", text, since)
		time.Sleep(pause)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"BadTTL", map[string]string{"DEDUP_TTL": "soon"}, nil, "DEDUP_TTL"},
		{"BadPort", map[string]string{"PORT": "http"}, nil, "PORT"},
		{"BadShutdownTimeout", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, nil, "SHUTDOWN_TIMEOUT"},
		{"BadReadHeaderTimeout", map[string]string{"READ_HEADER_TIMEOUT": "5"}, nil, "READ_HEADER_TIMEOUT"},
		// Past the 10 s read timeout a header timeout would never apply.
		{"ReadHeaderTimeoutPastReadTimeout", map[string]string{"READ_HEADER_TIMEOUT": "11s"}, nil, "READ_HEADER_TIMEOUT"},
		{"PortTooHigh", map[string]string{"PORT": "65536"}, nil, "PORT"},
		{"BadMaxConnections", map[string]string{"MAX_CONNECTIONS": "none"}, nil, "MAX_CONNECTIONS"},
		{"ZeroMaxConnections", map[string]string{"MAX_CONNECTIONS": "0"}, nil, "MAX_CONNECTIONS"},
		// Set but holding no key: this once served the admin API open,
		// with a warning that the variable was not set.
		{"AdminKeysOnlyAComma", map[string]string{"ADMIN_API_KEYS": ","}, nil, "ADMIN_API_KEYS"},
		{"AdminKeysOnlyASpace", map[string]string{"ADMIN_API_KEYS": " "}, nil, "ADMIN_API_KEYS"},
		// template.yaml refuses a key this short; so does the local server.
		{"ShortAdminKey", map[string]string{"ADMIN_API_KEYS": "admin"}, nil, "ADMIN_API_KEYS"},
		// Flags are not how this server is configured; say so.
		{"Arguments", map[string]string{}, []string{"-port", "80"}, "unexpected arguments"},
		{"CreateTableWithExtraArguments", map[string]string{}, []string{"create-table", "now"}, "unexpected arguments"},
		// The DynamoDB store needs its table named.
		{"DynamoDBWithoutTable", map[string]string{"STORE": "dynamodb"}, nil, "DYNAMODB_TABLE"},
		{"CreateTableWithoutTable", map[string]string{}, []string{"create-table"}, "DYNAMODB_TABLE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestRunNamesDataDir: a DATA_DIR the store cannot use stops the server
// with a message that names the variable, as every other bad setting does.
func TestRunNamesDataDir(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-directory")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	env := map[string]string{"PORT": "0", "DATA_DIR": file}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard)
	require.ErrorContains(t, err, "DATA_DIR="+file)
}

// TestListeningLineAtAnyLevel: the line that says where the server listens
// is written even when LOG_LEVEL hides info lines; startServer reads it.
func TestListeningLineAtAnyLevel(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"LOG_LEVEL": "error"}, nil)
	resp, err := http.Get(base + "/api/v1/campaigns/x/stats")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestAdminKeyWarning(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		keys       string
		logLevel   string
		warned     bool
		statsNoKey int
	}{
		// Development: the server starts, open, and says so loudly.
		{"NoKeys", "", "", true, http.StatusNotFound},
		// LOG_LEVEL=error once hid the warning; an open admin API is
		// always said.
		{"NoKeysAtLevelError", "", "error", true, http.StatusNotFound},
		// With keys the admin API is closed and there is nothing to warn of.
		{"Keys", "k1-0123456789abcdef,k2-0123456789abcdef", "", false, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logLines := make(chan string, 16)
			base := startServer(t, map[string]string{"ADMIN_API_KEYS": tc.keys, "LOG_LEVEL": tc.logLevel}, logLines)
			resp, err := http.Get(base + "/api/v1/campaigns/nope/stats")
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, tc.statsNoKey, resp.StatusCode)
			if tc.warned {
				select {
				case line := <-logLines:
					assert.Contains(t, line, `"level":"WARN"`)
					assert.Contains(t, line, "ADMIN_API_KEYS is not set")
				case <-time.After(10 * time.Second):
					t.Fatal("no warning that the admin API is open")
				}
			}
		})
	}
}

// TestSlowLorisIsCutOff: a client that sends its header a byte at a time is
// disconnected once READ_HEADER_TIMEOUT passes, and other clients are served
// meanwhile.
func TestSlowLorisIsCutOff(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"READ_HEADER_TIMEOUT": "300ms"}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()

	dripped := make(chan error, 1)
	go func() {
		header := "POST /api/v1/impressions HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 10_000)
		for i := range len(header) {
			if _, err := conn.Write([]byte{header[i]}); err != nil {
				dripped <- err
				return
			}
			time.Sleep(10 * time.Millisecond) // the attack: one byte at a time
		}
		dripped <- nil
	}()

	// Other clients are served while the slow one holds its connection.
	for range 5 {
		resp, err := http.Get(base + "/api/v1/campaigns/x/stats")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	}

	// The server closes the slow connection: a read ends, well before the
	// 100 s the whole header would take, with EOF or a reset rather than
	// our own deadline.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(conn)
	var netErr net.Error
	if errors.As(err, &netErr) {
		assert.False(t, netErr.Timeout(), "the server did not cut the slow client off")
	}
	assert.Error(t, <-dripped, "writing to a cut-off connection fails")
}
