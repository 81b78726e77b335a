package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
)

// TestHelp: each way of asking for help prints the usage, with every
// setting and its default, and succeeds, even when the environment holds a
// setting that would stop the server.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help", "-help", "help"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			err := run(context.Background(), []string{arg}, func(k string) string {
				return map[string]string{"DEDUP_TTL": "soon"}[k]
			}, &out)
			require.NoError(t, err, "help is not an error")
			for _, want := range []string{"create-table", "README.md", "docs/security.md"} {
				assert.Contains(t, out.String(), want)
			}
			for _, s := range config.Settings {
				assert.Regexp(t, `(?m)^  `+s.Name+` `, out.String())
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		value     string
		fileLimit uint64
		want      int
		wantErr   bool
	}{
		// auto leaves half the descriptors to the store and everything else.
		{"AutoHalfTheLimit", "", 1024, 512, false},
		{"AutoNamed", "auto", 1024, 512, false},
		// With a generous limit, memory is the bound.
		{"AutoCapped", "", 1 << 20, 10_000, false},
		{"AutoUnknownLimit", "", 0, 10_000, false},
		{"Set", "100", 1024, 100, false},
		// Up to the limit less what the store's files need.
		{"AtMost", "960", 1024, 960, false},
		{"LeavesNoRoomForFiles", "961", 1024, 0, true},
		{"Zero", "0", 1024, 0, true},
		{"NotANumber", "many", 1024, 0, true},
		// A tiny open-file limit: auto stays within what may be set, and
		// one connection is always allowed.
		{"AutoWithinTinyLimit", "", 100, 36, false},
		{"TinyLimitStillTakesOne", "1", 50, 1, false},
		{"TinyLimitAutoIsOne", "", 50, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := maxConnections(func(string) string { return tc.value }, tc.fileLimit)
			if tc.wantErr {
				require.ErrorContains(t, err, "MAX_CONNECTIONS")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// keepAlive opens a connection to base, gets /healthz on it and leaves it
// open and idle, as a client holding keep-alive connections does.
func keepAlive(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "a connection within the limit is served")
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return conn
}

// TestConnectionLimit: with MAX_CONNECTIONS=2 and two idle keep-alive
// connections held, a third is not served until one of them closes. About
// 21,000 idle connections once took every descriptor the process had, and
// the store could not open its next log file.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"MAX_CONNECTIONS": "2"}, nil)
	addr := strings.TrimPrefix(base, "http://")
	first := keepAlive(t, addr)
	keepAlive(t, addr)

	third, err := net.Dial("tcp", addr) // the kernel queues it
	require.NoError(t, err)
	defer third.Close()
	_, err = io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	answers := bufio.NewReader(third)
	require.NoError(t, third.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = answers.Peek(1)
	var netErr net.Error
	require.True(t, errors.As(err, &netErr) && netErr.Timeout(), "the third connection waits while two are held; got %v", err)

	require.NoError(t, first.Close())
	require.NoError(t, third.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(answers, nil)
	require.NoError(t, err, "served once a held connection closes")
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// stallingStdout passes lines through to a pipe until stall is called, then
// blocks every write, as a pipe does whose reader stopped reading, until
// resume. It records every line it was given.
type stallingStdout struct {
	pass    *io.PipeWriter
	mu      sync.Mutex
	stalled chan struct{} // nil while lines pass
	lines   strings.Builder
}

func (s *stallingStdout) Write(p []byte) (int, error) {
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled != nil {
		<-stalled
	} else if _, err := s.pass.Write(p); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines.Write(p)
	return len(p), nil
}

func (s *stallingStdout) stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = make(chan struct{})
}

func (s *stallingStdout) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.stalled)
}

func (s *stallingStdout) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines.String()
}

// TestBlockedStdoutDoesNotBlockRequests: with stdout stalled, every request
// is still answered (a stalled pipe once hung every request after 301,
// /healthz included), and a clean shutdown writes every line once stdout
// is read again.
func TestBlockedStdoutDoesNotBlockRequests(t *testing.T) {
	t.Parallel()
	logs, pass := io.Pipe()
	stdout := &stallingStdout{pass: pass}
	env := map[string]string{"PORT": "0", "ADMIN_API_KEYS": "stdout-test-key-0123456789"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, stdout) }()
	port := listeningPort(t, bufio.NewScanner(logs))
	stdout.stall()
	go io.Copy(io.Discard, logs) //nolint:errcheck // drains the pipe until the test ends

	client := &http.Client{Timeout: 5 * time.Second}
	const requests = 400
	for i := range requests {
		path := "/healthz"
		if i%2 == 1 {
			path = fmt.Sprintf("/api/v1/campaigns/c%d/stats", i)
		}
		resp, err := client.Get("http://127.0.0.1:" + port + path)
		require.NoError(t, err, "request %d is answered while stdout is stalled", i)
		require.NoError(t, resp.Body.Close())
	}

	cancel()
	stdout.resume()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	pass.Close()
	out := stdout.String()
	assert.Equal(t, requests, strings.Count(out, `"msg":"request"`), "every request line is written once stdout is read again")
	assert.True(t, strings.HasSuffix(out, "\"msg\":\"stopped\"}\n"), "the last line is written too")
}

// TestStdoutThatNeverReadsAgain: a reader of stdout that never reads again
// costs the last log lines, not the exit: run returns once SHUTDOWN_TIMEOUT
// has passed, and says so.
func TestStdoutThatNeverReadsAgain(t *testing.T) {
	t.Parallel()
	logs, pass := io.Pipe()
	stdout := &stallingStdout{pass: pass}
	env := map[string]string{"PORT": "0", "SHUTDOWN_TIMEOUT": "100ms"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, stdout) }()
	listeningPort(t, bufio.NewScanner(logs))
	stdout.stall()
	t.Cleanup(stdout.resume)     // lets the abandoned write end with the test
	go io.Copy(io.Discard, logs) //nolint:errcheck // drains the pipe until the test ends

	cancel() // "shutting down" and "stopped" wait in the buffer
	select {
	case err := <-done:
		require.ErrorContains(t, err, "write logs")
	case <-time.After(10 * time.Second):
		t.Fatal("a stdout that never reads again kept the server from stopping")
	}
}
