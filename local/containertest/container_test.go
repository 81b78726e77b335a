//go:build container

package containertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
)

// What Dockerfile promises, and what the tests give the server.
const (
	entrypoint = "/impression-counter"
	// nonRoot is the image's user, by number, so that an orchestrator
	// can verify it is not root without an /etc/passwd to read.
	nonRoot = "65532:65532"
	// maxImageBytes is the size target: under 20 MB.
	maxImageBytes = 20_000_000
	adminKey      = "container-test-admin-key-0123456789"
	// healthWait bounds the wait for a container to turn healthy: the
	// image's first check runs 10 s after the start.
	healthWait = 2 * time.Minute
)

// The engine and image that run.sh hands the tests, read by TestMain.
var (
	dockerCLI  string   // the engine's client
	composeCLI []string // docker-compose, or docker compose
	image      string   // impression-counter:<tag>, built by make image
	revision   string   // the commit the image was built from
	goCmd      string   // the go command, for the load harness
	repoRoot   string   // where compose.yaml is
)

func TestMain(m *testing.M) {
	dockerCLI, image, revision = os.Getenv("DOCKER"), os.Getenv("IMAGE"), os.Getenv("REVISION")
	composeCLI = strings.Fields(os.Getenv("COMPOSE"))
	if goCmd = os.Getenv("GO"); goCmd == "" {
		goCmd = "go"
	}
	if dockerCLI == "" || image == "" || revision == "" || len(composeCLI) == 0 || os.Getenv("DOCKER_HOST") == "" {
		fmt.Fprintln(os.Stderr, "containertest: run these tests with make container-test, which starts their engine and builds their image")
		os.Exit(1)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "containertest:", err)
		os.Exit(1)
	}
	repoRoot = root
	os.Exit(m.Run())
}

// TestImage checks what the image is, without running it: its size, its
// configuration and labels, and the files it holds.
func TestImage(t *testing.T) {
	t.Parallel()
	var images []struct {
		Size   int64
		Config struct {
			User         string
			ExposedPorts map[string]struct{}
			Env          []string
			Entrypoint   []string
			Cmd          []string
			Labels       map[string]string
			StopSignal   string
			Healthcheck  struct {
				Test                           []string
				Interval, Timeout, StartPeriod time.Duration
				Retries                        int
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(docker(t, "image", "inspect", image)), &images))
	require.Len(t, images, 1)
	img := images[0]
	t.Logf("%s: %d bytes", image, img.Size)
	assert.Less(t, img.Size, int64(maxImageBytes), "the image is to stay under 20 MB")

	cfg := img.Config
	assert.Equal(t, nonRoot, cfg.User)
	assert.Equal(t, map[string]struct{}{"8080/tcp": {}}, cfg.ExposedPorts)
	assert.Equal(t, []string{entrypoint}, cfg.Entrypoint)
	assert.Empty(t, cfg.Cmd)
	assert.Equal(t, "SIGTERM", cfg.StopSignal, "the signal the server drains on")
	assert.Equal(t, []string{"CMD", entrypoint, "healthcheck"}, cfg.Healthcheck.Test)
	assert.Greater(t, cfg.Healthcheck.Timeout, 2*time.Second, "longer than the healthcheck's own timeout")
	assert.Positive(t, cfg.Healthcheck.Interval)
	assert.Positive(t, cfg.Healthcheck.Retries)
	assert.Contains(t, cfg.Env, "DATA_DIR=/data")
	for _, kv := range cfg.Env {
		assert.False(t, strings.HasPrefix(kv, "ADMIN_API_KEYS="), "an admin key is never built into the image")
	}
	assert.Equal(t, revision, cfg.Labels["org.opencontainers.image.revision"])
	assert.NotEmpty(t, cfg.Labels["org.opencontainers.image.version"])
	assert.Equal(t, "https://github.com/adcount/impression-counter", cfg.Labels["org.opencontainers.image.source"])

	// The files, copied out of a container that never starts.
	id := docker(t, "create", image)
	t.Cleanup(func() { dockerCleanup(t, "rm", "-f", id) })

	certs := fileFromImage(t, id, "/etc/ssl/certs/ca-certificates.crt")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certs.body), "the CA bundle parses")
	assert.Greater(t, bytes.Count(certs.body, []byte("BEGIN CERTIFICATE")), 100, "a full bundle of roots, for DynamoDB over TLS")

	data := fileFromImage(t, id, "/data")
	assert.Equal(t, byte(tar.TypeDir), data.header.Typeflag)
	assert.Equal(t, 65532, data.header.Uid, "DATA_DIR belongs to the user the server runs as")

	bin := fileFromImage(t, id, entrypoint)
	f, err := elf.NewFile(bytes.NewReader(bin.body))
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary names no dynamic loader")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "a static binary needs no shared library")
}

// TestRunAndStop runs the image as `docker run` would, with a published
// port and a volume: it turns healthy, runs as its non-root user, serves
// the API, and a `docker stop` ends it gracefully.
func TestRunAndStop(t *testing.T) {
	t.Parallel()
	id, base := runContainer(t)
	waitHealthy(t, id, 0)

	checkHardened(t, id)

	c := client(t, base, adminKey)
	camp := countSome(t, c)
	_, err := client(t, base, "").Stats(context.Background(), camp.ID)
	assert.ErrorIs(t, err, apiclient.ErrUnauthorized, "the admin key from the environment guards the admin API")

	docker(t, "stop", id)
	lines := checkGracefulStop(t, id)
	var listening struct{ Revision string }
	for _, l := range lines {
		if l.Msg == "listening" {
			require.NoError(t, json.Unmarshal(l.raw, &listening))
		}
	}
	assert.True(t, strings.HasPrefix(listening.Revision, revision), "the startup line names the image's commit, got %q", listening.Revision)
}

// TestCompose runs compose.yaml as a user does, with the admin key from an
// env file: the service turns healthy, counts, is restarted after a crash
// with every acknowledged impression, stops gracefully, and keeps its
// counts across down and up; down -v removes what up made.
func TestCompose(t *testing.T) {
	t.Parallel()
	project := "ictest" + randomHex(t)
	port := freePort(t)
	name, tag, ok := strings.Cut(image, ":")
	require.True(t, ok, "IMAGE is name:tag")
	settings := "IMAGE=" + name + "\nIMAGE_TAG=" + tag + "\nHOST_PORT=" + port + "\n"
	// composeWith runs compose on compose.yaml with envFile as its .env
	// and none of the variables the file reads in its environment, which
	// would override the file's (as IMAGE, which run.sh sets, would).
	composeFile := filepath.Join(repoRoot, "compose.yaml")
	env := environWithout(t, composeFile)
	composeWith := func(envFile string, args ...string) (string, error) {
		full := append([]string{"-p", project, "-f", composeFile, "--env-file", envFile}, args...)
		cmd := exec.Command(composeCLI[0], append(composeCLI[1:], full...)...)
		cmd.Env = env
		return output(cmd)
	}

	// Without an admin key compose refuses to start the service.
	noKey := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(noKey, []byte(settings), 0o600))
	_, err := composeWith(noKey, "up", "-d", "--no-build")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set ADMIN_API_KEYS in .env")

	envFile := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(envFile, []byte(settings+"ADMIN_API_KEYS="+adminKey+"\n"), 0o600))
	compose := func(args ...string) string {
		t.Helper()
		out, err := composeWith(envFile, args...)
		require.NoError(t, err)
		return out
	}
	t.Cleanup(func() {
		if out, err := composeWith(envFile, "down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	})
	volume := project + "_counts"

	// --no-build: the image make image built; compose must not try to
	// build one, which would need a registry.
	compose("up", "-d", "--no-build")
	id := compose("ps", "-q", "impression-counter")
	require.NotEmpty(t, id)
	waitHealthy(t, id, 0)
	checkHardened(t, id)

	base := "http://127.0.0.1:" + port
	c := client(t, base, adminKey)
	camp := countSome(t, c)
	want := stats(t, c, camp.ID)
	_, err = client(t, base, "").Stats(context.Background(), camp.ID)
	assert.ErrorIs(t, err, apiclient.ErrUnauthorized, "the admin key from the env file guards the admin API")

	// A crash: the restart policy brings the server back, and its log
	// brings back every impression it acknowledged.
	require.NoError(t, syscall.Kill(inspectContainer(t, id).State.Pid, syscall.SIGKILL))
	waitHealthy(t, id, 1)
	assert.Equal(t, want, stats(t, c, camp.ID), "a crash loses no acknowledged impression")

	compose("stop")
	checkGracefulStop(t, id)

	compose("down")
	assert.Empty(t, compose("ps", "-q"), "down removes the container")
	docker(t, "volume", "inspect", volume) // down keeps the volume

	compose("up", "-d", "--no-build")
	id2 := compose("ps", "-q", "impression-counter")
	require.NotEqual(t, id, id2, "a new container")
	waitHealthy(t, id2, 0)
	assert.Equal(t, want, stats(t, c, camp.ID), "the counts survive down and up")
	more, err := c.RecordImpression(context.Background(), adcount.Impression{CampaignID: camp.ID, UserID: "user-0", AdID: "ad-0"})
	require.NoError(t, err)
	assert.Equal(t, adcount.Duplicate, more, "the dedup window survives too")

	compose("down", "-v")
	_, err = command(dockerCLI, "volume", "inspect", volume)
	assert.Error(t, err, "down -v removes the volume")
	_, err = command(dockerCLI, "network", "inspect", project+"_default")
	assert.Error(t, err, "down removes the network")
}

// TestLoadHarness runs the load harness against the container for a few
// seconds, single impressions and batches, and the harness verifies the
// counts exactly. It runs alone, before the parallel tests, so that they
// do not share its two cores.
func TestLoadHarness(t *testing.T) {
	harness := filepath.Join(t.TempDir(), "loadtest")
	out, err := exec.Command(goCmd, "build", "-o", harness, "github.com/adcount/impression-counter/loadtest").CombinedOutput()
	require.NoError(t, err, "go build ./loadtest: %s", out)

	id, base := runContainer(t)
	waitHealthy(t, id, 0)
	runs := [][]string{
		{"-rate", "1000", "-duration", "5s", "-campaigns", "4", "-dup", "0.3", "-seed", "1"},
		{"-rate", "20", "-duration", "5s", "-batch", "100", "-campaigns", "2", "-dup", "0.2", "-seed", "2"},
	}
	for _, args := range runs {
		cmd := exec.Command(harness, append([]string{"-target", base, "-progress", "0"}, args...)...)
		cmd.Env = append(os.Environ(), "LOADTEST_ADMIN_KEY="+adminKey)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "loadtest %v:\n%s", args, out)
		assert.Contains(t, string(out), "verification passed", "loadtest %v:\n%s", args, out)
		t.Logf("loadtest %v:\n%s", args, out)
	}
	docker(t, "stop", id)
	checkGracefulStop(t, id)
}

// runContainer starts the image as the README's docker run line does,
// hardened, with a published port on 127.0.0.1, a volume at /data and the
// admin key, on a network of its own (the engine has no default bridge),
// and returns its id and base URL. The
// container, volume and network go when the test ends.
func runContainer(t *testing.T) (id, base string) {
	t.Helper()
	name := "ictest" + randomHex(t)
	docker(t, "network", "create", name)
	t.Cleanup(func() { dockerCleanup(t, "network", "rm", name) })
	docker(t, "volume", "create", name)
	t.Cleanup(func() { dockerCleanup(t, "volume", "rm", name) })
	// The README's docker run flags, and a port and network of its own.
	id = docker(t, "run", "-d", "--name", name, "--network", name, "--publish", "127.0.0.1::8080",
		"--volume", name+":/data", "--env", "ADMIN_API_KEYS="+adminKey,
		"--stop-timeout", "30", "--restart", "unless-stopped",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		image)
	t.Cleanup(func() { dockerCleanup(t, "rm", "-f", id) })
	return id, "http://" + docker(t, "port", id, "8080/tcp")
}

// container is what the tests read of `docker inspect`.
type container struct {
	RestartCount int
	State        struct {
		Status    string
		Pid       int
		ExitCode  int
		OOMKilled bool
		Health    *struct{ Status string }
	}
	HostConfig struct {
		RestartPolicy  struct{ Name string }
		ReadonlyRootfs bool
		CapDrop        []string
	}
}

func inspectContainer(t *testing.T, id string) container {
	t.Helper()
	var cs []container
	require.NoError(t, json.Unmarshal([]byte(docker(t, "inspect", id)), &cs))
	require.Len(t, cs, 1)
	return cs[0]
}

// waitHealthy waits until the container's health check has passed after
// at least restarts restarts, and fails the test with its logs if it
// exits for good or takes longer than healthWait.
func waitHealthy(t *testing.T, id string, restarts int) {
	t.Helper()
	deadline := time.Now().Add(healthWait)
	for {
		c := inspectContainer(t, id)
		if c.RestartCount >= restarts && c.State.Status == "running" && c.State.Health != nil && c.State.Health.Status == "healthy" {
			return
		}
		if time.Now().After(deadline) || (c.State.Status == "exited" && c.HostConfig.RestartPolicy.Name == "no") {
			logs, _ := command(dockerCLI, "logs", "--tail", "20", id)
			require.FailNow(t, "the container did not turn healthy", "state %+v, restarts %d\n%s", c.State, c.RestartCount, logs)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkHardened checks that the running container id is as the README's
// docker run line and compose.yaml make it: its process runs as the
// image's user, as the host's kernel sees it, on a read-only root with no
// capabilities, and a crash restarts it.
func checkHardened(t *testing.T, id string) {
	t.Helper()
	c := inspectContainer(t, id)
	var uids []string
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State.Pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			uids = strings.Fields(rest)
		}
	}
	assert.Equal(t, []string{"65532", "65532", "65532", "65532"}, uids, "real, effective, saved and file-system uid")
	assert.Equal(t, "unless-stopped", c.HostConfig.RestartPolicy.Name)
	assert.True(t, c.HostConfig.ReadonlyRootfs, "the server writes only its volume")
	assert.Equal(t, []string{"ALL"}, c.HostConfig.CapDrop)
}

// checkGracefulStop checks that the container exited with status 0 and
// that its last log lines say it drained and stopped, with nothing on
// standard error, and returns its log lines.
func checkGracefulStop(t *testing.T, id string) []logLine {
	t.Helper()
	c := inspectContainer(t, id)
	assert.Equal(t, "exited", c.State.Status)
	assert.Equal(t, 0, c.State.ExitCode, "a graceful stop exits 0")
	assert.False(t, c.State.OOMKilled)
	lines, stderr := containerLogs(t, id)
	require.GreaterOrEqual(t, len(lines), 2)
	assert.Equal(t, "shutting down", lines[len(lines)-2].Msg)
	assert.Equal(t, "stopped", lines[len(lines)-1].Msg)
	assert.Empty(t, stderr, "the server reports a failed stop on stderr")
	return lines
}

// logLine is one JSON line the server wrote to stdout.
type logLine struct {
	Msg, Level string
	raw        []byte
}

// containerLogs is every JSON line the container wrote to stdout, over
// all its starts, and what it wrote to stderr.
func containerLogs(t *testing.T, id string) ([]logLine, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(dockerCLI, "logs", id)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "docker logs %s: %s", id, stderr.String())
	var lines []logLine
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := logLine{raw: bytes.Clone(sc.Bytes())}
		require.NoError(t, json.Unmarshal(l.raw, &l), "a log line is JSON: %s", l.raw)
		assert.NotEqual(t, "ERROR", l.Level, "%s", l.raw)
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines, stderr.String()
}

// countSome creates a campaign and records impressions on it, single and
// in a batch, each sent twice, and checks that the stats count each once.
func countSome(t *testing.T, c *apiclient.Client) adcount.Campaign {
	t.Helper()
	ctx := context.Background()
	camp, err := c.Create(ctx, "container", time.Now().Add(-time.Minute))
	require.NoError(t, err)
	imp := func(i int) adcount.Impression {
		return adcount.Impression{CampaignID: camp.ID, UserID: fmt.Sprintf("user-%d", i), AdID: fmt.Sprintf("ad-%d", i%3)}
	}
	for i := range 5 {
		for _, want := range []adcount.Outcome{adcount.Counted, adcount.Duplicate} {
			got, err := c.RecordImpression(ctx, imp(i))
			require.NoError(t, err)
			assert.Equal(t, want, got, "impression %d", i)
		}
	}
	batch := make([]adcount.Impression, 0, 300)
	for i := 5; i < 205; i++ {
		batch = append(batch, imp(i))
	}
	for i := 105; i < 205; i++ { // a repeat of half the batch in the batch itself
		batch = append(batch, imp(i))
	}
	results, err := c.RecordImpressions(ctx, batch)
	require.NoError(t, err)
	counted := 0
	for _, r := range results {
		require.NoError(t, r.Err)
		if r.Outcome == adcount.Counted {
			counted++
		}
	}
	assert.Equal(t, 200, counted)

	s := stats(t, c, camp.ID)
	assert.Equal(t, [3]int64{205, 205, 205}, [3]int64{s.LastHour, s.LastDay, s.Total})
	assert.Equal(t, int64(205), s.UniqueUsers.Total, "exact below 1,000 users")
	return camp
}

// stats reads a campaign's stats without AsOf, which moves with the clock.
func stats(t *testing.T, c *apiclient.Client, id string) adcount.Stats {
	t.Helper()
	s, err := c.Stats(context.Background(), id)
	require.NoError(t, err)
	s.AsOf = time.Time{}
	return s
}

// browserUA is a browser's User-Agent: the server filters impressions
// from Go's default one, which is on the crawler list.
const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func client(t *testing.T, base, key string) *apiclient.Client {
	t.Helper()
	opts := []apiclient.Option{apiclient.WithUserAgent(browserUA)}
	if key != "" {
		opts = append(opts, apiclient.WithAdminKey(key))
	}
	c, err := apiclient.New(base, opts...)
	require.NoError(t, err)
	return c
}

// file is one file copied out of a container, with its tar header.
type file struct {
	header *tar.Header
	body   []byte
}

// fileFromImage copies path out of the container id with docker cp, which
// writes a tar stream, and returns its first entry.
func fileFromImage(t *testing.T, id, path string) file {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command(dockerCLI, "cp", id+":"+path, "-")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	require.NoError(t, cmd.Run(), "docker cp %s: %s", path, stderr.String())
	tr := tar.NewReader(&out)
	h, err := tr.Next()
	require.NoError(t, err)
	body, err := io.ReadAll(tr)
	require.NoError(t, err)
	return file{header: h, body: body}
}

// docker runs the engine's client and returns what it wrote to stdout,
// trimmed; the test fails with its stderr if it fails.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := command(dockerCLI, args...)
	require.NoError(t, err)
	return out
}

// dockerCleanup runs docker in a cleanup, where a failure is reported
// but must not stop the other cleanups; run.sh removes what is left.
func dockerCleanup(t *testing.T, args ...string) {
	t.Helper()
	if out, err := command(dockerCLI, args...); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

// command runs name with args and returns its stdout, trimmed, or an
// error naming the command and carrying its stderr.
func command(name string, args ...string) (string, error) {
	return output(exec.Command(name, args...))
}

// output runs cmd and returns its stdout, trimmed, or an error naming the
// command and carrying its stderr.
func output(cmd *exec.Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// composeVariable is a variable a compose file reads: ${NAME...}.
var composeVariable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)

// environWithout is this process's environment without the variables the
// compose file at path reads.
func environWithout(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	read := map[string]bool{}
	for _, m := range composeVariable.FindAllStringSubmatch(string(raw), -1) {
		read[m[1]] = true
	}
	require.True(t, read["ADMIN_API_KEYS"] && read["IMAGE"], "the pattern finds compose.yaml's variables")
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !read[name] {
			env = append(env, kv)
		}
	}
	return env
}

// freePort is a TCP port nothing listens on now, for compose to publish.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	return port
}

// randomHex names what a test makes in the engine, so that two runs, or
// two tests, never collide.
func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
