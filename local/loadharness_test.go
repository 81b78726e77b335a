package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamotest"
)

// TestLoadHarnessVerifiesTwoServersOnOneTable runs the vegeta load harness
// against two local servers with STORE=dynamodb on one table, each server
// aggregating the table's stream, as several servers behind one load
// balancer would. Each harness creates its own campaigns, sends new and
// repeated impressions in batches and singly, waits for the stats' as_of
// to pass the end of its attack, and checks every campaign's counts
// against the replies, exactly.
func TestLoadHarnessVerifiesTwoServersOnOneTable(t *testing.T) {
	t.Parallel()
	srv := dynamotest.StartServer(t)
	streamTable(t, srv, "impressions")
	env := func() map[string]string {
		e := dynamotest.Env(srv.URL)
		e["STORE"], e["DYNAMODB_TABLE"] = "dynamodb", "impressions"
		return e
	}
	bases := []string{startServer(t, env(), nil), startServer(t, env(), nil)}

	harness := filepath.Join(t.TempDir(), "loadtest")
	out, err := exec.Command("go", "build", "-o", harness, "github.com/adcount/impression-counter/loadtest").CombinedOutput()
	require.NoError(t, err, "go build ./loadtest: %s", out)

	runs := [][]string{
		{"-rate", "300", "-duration", "2s", "-campaigns", "3", "-dup", "0.3", "-seed", "1"},
		{"-rate", "20", "-duration", "2s", "-batch", "50", "-campaigns", "2", "-dup", "0.2", "-seed", "2"},
	}
	var wg sync.WaitGroup
	for i, args := range runs {
		wg.Go(func() {
			cmd := exec.Command(harness, append([]string{"-target", bases[i], "-progress", "0"}, args...)...)
			cmd.Env = os.Environ()
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "loadtest %v against server %d:\n%s", args, i, out)
			assert.Contains(t, string(out), "verification passed", "loadtest %v:\n%s", args, out)
			assert.False(t, strings.Contains(string(out), "problems"), "loadtest %v:\n%s", args, out)
		})
	}
	wg.Wait()
}
