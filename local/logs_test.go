package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCleanShutdownWritesEveryRequestLine: request lines are written many
// to a call, a short interval after they are logged, yet a clean shutdown
// right after a burst of concurrent requests loses none of them: every
// request answered has exactly one line, with its fields, and the
// "stopped" line comes last.
func TestCleanShutdownWritesEveryRequestLine(t *testing.T) {
	t.Parallel()
	logs, pass := io.Pipe()
	stdout := &stallingStdout{pass: pass} // never stalled: it records
	env := map[string]string{"PORT": "0", "ADMIN_API_KEYS": "shutdown-log-key-0123456789"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, stdout) }()
	base := "http://127.0.0.1:" + listeningPort(t, bufio.NewScanner(logs))
	go io.Copy(io.Discard, logs) //nolint:errcheck // drains the pipe until the test ends

	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/campaigns", strings.NewReader(`{"name":"Logged","start_time":"2020-01-01T00:00:00Z"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env["ADMIN_API_KEYS"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var campaign struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&campaign))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	const workers, each = 8, 50
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// A browser's User-Agent, as Go's own is a crawler's.
				body := fmt.Sprintf(`{"campaign_id":%q,"user_id":"u-%d-%d","ad_id":"a","user_agent":%q}`, campaign.ID, w, i, browserUA)
				resp, err := http.Post(base+"/api/v1/impressions", "application/json", strings.NewReader(body))
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				assert.NoError(t, resp.Body.Close())
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				mu.Lock()
				ids[resp.Header.Get("X-Request-Id")] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// At once: the last lines are still waiting for their interval.
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	pass.Close()

	out := stdout.String()
	require.True(t, strings.HasSuffix(out, "\n"), "whole lines only")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	logged := map[string]int{}
	for _, raw := range lines {
		var line struct {
			Msg, Level, Method, Route, Outcome string
			RequestID                          string   `json:"request_id"`
			Status                             int      `json:"status"`
			DurationMS                         *float64 `json:"duration_ms"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &line), raw)
		if line.Msg != "request" || line.Route != "POST /api/v1/impressions" {
			continue
		}
		logged[line.RequestID]++
		assert.Equal(t, "INFO", line.Level, raw)
		assert.Equal(t, "POST", line.Method, raw)
		assert.Equal(t, http.StatusOK, line.Status, raw)
		assert.Equal(t, "counted", line.Outcome, raw)
		assert.NotNil(t, line.DurationMS, raw)
	}
	require.Len(t, ids, workers*each, "every answer has its own request ID")
	assert.Len(t, logged, workers*each, "every request answered has a line")
	for id := range ids {
		assert.Equal(t, 1, logged[id], "exactly one line for request %s", id)
	}
	assert.Contains(t, lines[len(lines)-1], `"msg":"stopped"`, "the last line is written too")
}
