package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/syncbuf"
)

// The restart tests run the real binary, because what they test is what
// happens to the process and its files: a SIGTERM, a kill -9, a restart.

var binary struct {
	once sync.Once
	path string
	err  error
}

// serverBinary builds ./local once per test run.
func serverBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "adcount-local-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "local")
		out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, binary.err)
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// process is a running server binary.
type process struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncbuf.Buffer
	exited chan error
}

// startProcess starts the binary on a free port with its state in dataDir
// and waits for its "listening" log line.
func startProcess(t *testing.T, dataDir string) *process {
	t.Helper()
	cmd := exec.Command(serverBinary(t))
	cmd.Env = []string{"PORT=0", "DATA_DIR=" + dataDir, "SHUTDOWN_TIMEOUT=10s"}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &process{cmd: cmd, stderr: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", p.stderr.String())
		}
	})

	lines := bufio.NewScanner(stdout)
	port := listeningPort(t, lines)
	go func() {
		for lines.Scan() {
		}
	}()
	p.base = "http://127.0.0.1:" + port
	return p
}

// wait returns the process's exit error, failing the test if it does not
// exit in time.
func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not exit; stderr:\n%s", p.stderr.String())
		return nil
	}
}

func postJSON(c *http.Client, url, body string) (map[string]any, int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", browserUA)
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, resp.StatusCode, err
	}
	return out, resp.StatusCode, nil
}

func impressionBody(campaign, user string) string {
	return fmt.Sprintf(`{"campaign_id":%q,"user_id":%q,"ad_id":"ad"}`, campaign, user)
}

// loadResult is what the clients of a load saw.
type loadResult struct {
	acked []string // users whose impression was answered counted:true
	sent  int      // requests sent, each with a distinct user
}

// runLoad sends impressions, each for a new user, from workers goroutines
// until a request fails (the server went away) or each has sent perWorker.
// Once atLeast impressions are acknowledged it closes reached.
func runLoad(base, campaign string, workers, perWorker, atLeast int, reached chan<- struct{}) loadResult {
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers},
	}
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		res    loadResult
		count  atomic.Int64
		signal sync.Once
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				user := fmt.Sprintf("w%d-%d", w, i)
				mu.Lock()
				res.sent++
				mu.Unlock()
				out, code, err := postJSON(client, base+"/api/v1/impressions", impressionBody(campaign, user))
				if err != nil || code != http.StatusOK {
					return
				}
				if out["counted"] == true {
					mu.Lock()
					res.acked = append(res.acked, user)
					mu.Unlock()
					if count.Add(1) == int64(atLeast) {
						signal.Do(func() { close(reached) })
					}
				}
			}
		})
	}
	wg.Wait()
	signal.Do(func() { close(reached) }) // never leave the caller waiting
	return res
}

func statsTotal(t *testing.T, base, campaign string) int {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/campaigns/" + campaign + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st struct {
		LastHour int `json:"last_hour"`
		LastDay  int `json:"last_day"`
		Total    int `json:"total"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	assert.Equal(t, st.Total, st.LastHour, "all of it happened in the last hour")
	assert.Equal(t, st.Total, st.LastDay)
	return st.Total
}

func TestRestartKeepsAcknowledgedImpressions(t *testing.T) {
	t.Parallel()
	const workers, perWorker, signalAfter = 8, 2000, 400
	cases := []struct {
		name   string
		signal syscall.Signal
		// exact: nothing but the acknowledged impressions may be counted.
		// A graceful shutdown answers every request it accepted; a kill
		// -9 may have counted requests whose answers it never sent.
		exact bool
	}{
		{"GracefulSIGTERM", syscall.SIGTERM, true},
		{"KillDashNine", syscall.SIGKILL, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := startProcess(t, dir)
			out, code, err := postJSON(http.DefaultClient, p.base+"/api/v1/campaigns", `{"name":"Restart","start_time":"2020-01-01T00:00:00Z"}`)
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, code)
			campaign := out["id"].(string)

			reached := make(chan struct{})
			done := make(chan loadResult, 1)
			go func() { done <- runLoad(p.base, campaign, workers, perWorker, signalAfter, reached) }()
			<-reached
			require.NoError(t, p.cmd.Process.Signal(tc.signal))
			res := <-done
			exitErr := p.wait(t)
			if tc.signal == syscall.SIGTERM {
				require.NoError(t, exitErr, "a graceful shutdown exits 0")
			}
			require.GreaterOrEqual(t, len(res.acked), signalAfter)
			require.Less(t, res.sent, workers*perWorker, "the load was still running at the signal")

			p = startProcess(t, dir)
			total := statsTotal(t, p.base, campaign)
			t.Logf("acknowledged %d, sent %d, restored %d", len(res.acked), res.sent, total)
			assert.GreaterOrEqual(t, total, len(res.acked), "every acknowledged impression is restored")
			assert.LessOrEqual(t, total, res.sent, "nothing is counted twice")
			if tc.exact {
				assert.Equal(t, len(res.acked), total)
			}

			// The dedup keys came back too: acknowledged impressions are
			// still duplicates, and the count does not move.
			for _, user := range res.acked[:50] {
				out, code, err := postJSON(http.DefaultClient, p.base+"/api/v1/impressions", impressionBody(campaign, user))
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code)
				assert.Equal(t, false, out["counted"], user)
			}
			assert.Equal(t, total, statsTotal(t, p.base, campaign))

			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, p.wait(t))
			assert.NotContains(t, p.stderr.String(), "ERROR")
		})
	}
}

// TestRunClosesTheStore checks the in-process path too: run returns only
// after the store has released its directory, so the next run can open it.
func TestRunClosesTheStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		env := map[string]string{"PORT": "0", "DATA_DIR": dir}
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &syncbuf.Buffer{}) }()
		cancel()
		require.NoError(t, <-done)
	}
}
