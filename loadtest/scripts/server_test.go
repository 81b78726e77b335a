// Package scripts_test checks the shell helpers the load and benchmark
// targets share, by running them with bash against a stand-in server.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeServer stands in for bin/local: it says where it listens, after a
// moment, on a port from its environment, and then serves nothing.
const fakeServer = `#!/bin/sh
sleep 0.05
echo '{"level":"INFO","msg":"listening","addr":"[::]:'"$FAKE_PORT"'"}'
exec sleep 30
`

// TestStartServerReadsOnlyItsOwnLog: start_server finds the port in the log
// of the server it started. It once read the log before the background
// process had created it ("sed: can't read out/loadtest/service.log", one
// make bench-http in ten), and could read a previous run's port from a log
// that had not yet been truncated.
func TestStartServerReadsOnlyItsOwnLog(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	server := filepath.Join(dir, "fake-server")
	require.NoError(t, os.WriteFile(server, []byte(fakeServer), 0o755))
	helper, err := filepath.Abs("server.sh")
	require.NoError(t, err)

	// Each round leaves its log behind for the next, with another port in
	// it, as runs of the make targets do.
	script := `
source "$1"
cd "$2"
mkdir -p out/loadtest
for i in $(seq 1 20); do
	start_server race-probe "$3" FAKE_PORT=$((40000 + i))
	[ "$SERVER_URL" = "http://127.0.0.1:$((40000 + i))" ] || { echo "round $i read $SERVER_URL"; exit 1; }
	stop_servers
done
echo ok
`
	cmd := exec.Command(bash, "-c", script, "server-test", helper, dir, server)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.True(t, strings.HasSuffix(string(out), "ok\n"), "%s", out)
}

// TestStopServerStopsOnlyThatServer: bench-ingest starts a fresh server for
// every run and stops it after; stop_server must stop that one, wait for
// it, and leave the others running and listed for the exit trap.
func TestStopServerStopsOnlyThatServer(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	server := filepath.Join(dir, "fake-server")
	require.NoError(t, os.WriteFile(server, []byte(fakeServer), 0o755))
	helper, err := filepath.Abs("server.sh")
	require.NoError(t, err)

	script := `
source "$1"
cd "$2"
mkdir -p out/loadtest
start_server first "$3" FAKE_PORT=40101 >/dev/null
first=$SERVER_PID
start_server second "$3" FAKE_PORT=40102 >/dev/null
second=$SERVER_PID
stop_server "$first"
if kill -0 "$first" 2>/dev/null; then echo "the stopped server still runs"; exit 1; fi
kill -0 "$second" || { echo "the other server was stopped too"; exit 1; }
[ "${SERVER_PIDS[*]}" = "$second" ] || { echo "listed: ${SERVER_PIDS[*]}"; exit 1; }
stop_server "$second"
[ "${#SERVER_PIDS[@]}" = 0 ] || { echo "listed: ${SERVER_PIDS[*]}"; exit 1; }
echo ok
`
	cmd := exec.Command(bash, "-c", script, "server-test", helper, dir, server)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.True(t, strings.HasSuffix(string(out), "ok\n"), "%s", out)
}
