package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// example is one curl command of the README and the response it shows.
type example struct {
	command string      // the command as the README shows it, for messages
	env     string      // the example server's settings, from the marker before its block
	args    []string    // the command's words, after "curl"
	status  int         // 0 when the README shows no status line (no -i)
	header  http.Header // the headers shown
	body    string
	// noBody is set for a command whose body curl writes elsewhere
	// (-o /dev/null), such as an image.
	noBody bool
}

// exampleServer is the marker comment that runs the next block against a
// server with these settings, such as admin keys; without one, a block runs
// against the server with none, as `go run ./local` starts.
var exampleServer = regexp.MustCompile(`^<!-- example server: (.*) -->$`)

// readmeExamples reads the console blocks of the README's API section.
func readmeExamples(t *testing.T) []example {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, api, ok := bytes.Cut(readme, []byte("\n## API\n"))
	require.True(t, ok, "the README has an API section")
	api, _, _ = bytes.Cut(api, []byte("\n## "))

	var examples []example
	var env string
	var block []string
	inBlock := false
	lines := bufio.NewScanner(bytes.NewReader(api))
	for lines.Scan() {
		line := lines.Text()
		switch {
		case !inBlock && exampleServer.MatchString(line):
			env = exampleServer.FindStringSubmatch(line)[1]
		case !inBlock && line == "```console":
			inBlock, block = true, nil
		case inBlock && line == "```":
			examples = append(examples, parseBlock(t, env, block)...)
			inBlock, env = false, ""
		case inBlock:
			block = append(block, line)
		}
	}
	return examples
}

// parseBlock splits a console block into its commands and their responses.
func parseBlock(t *testing.T, env string, lines []string) []example {
	t.Helper()
	var examples []example
	for i := 0; i < len(lines); {
		require.True(t, strings.HasPrefix(lines[i], "$ curl "), "a block holds curl commands and their output, got %q", lines[i])
		command := strings.TrimPrefix(lines[i], "$ ")
		for strings.HasSuffix(command, `\`) {
			i++
			command = strings.TrimSuffix(command, `\`) + strings.TrimSpace(lines[i])
		}
		i++
		var output []string
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "$ "); i++ {
			output = append(output, lines[i])
		}
		for len(output) > 0 && output[len(output)-1] == "" {
			output = output[:len(output)-1]
		}
		ex := example{command: command, env: env, args: shellWords(t, strings.TrimPrefix(command, "curl ")), header: http.Header{}}
		for k, a := range ex.args {
			if a == "-o" && k+1 < len(ex.args) && ex.args[k+1] == "/dev/null" {
				ex.noBody = true
			}
		}
		if len(output) > 0 && strings.HasPrefix(output[0], "HTTP/1.1 ") {
			_, err := fmt.Sscanf(output[0], "HTTP/1.1 %d", &ex.status)
			require.NoError(t, err, output[0])
			output = output[1:]
			for len(output) > 0 && output[0] != "" {
				name, value, ok := strings.Cut(output[0], ": ")
				require.True(t, ok, "a header line: %q", output[0])
				ex.header.Add(name, value)
				output = output[1:]
			}
		}
		ex.body = strings.TrimSpace(strings.Join(output, "\n"))
		examples = append(examples, ex)
	}
	return examples
}

// shellWords splits a command line as a POSIX shell would, for the quoting
// the README uses: single and double quotes, no expansion.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			require.GreaterOrEqual(t, end, 0, "unclosed quote in %q", s)
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == ' ':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// uuidRE matches the IDs the server makes for campaigns.
var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// hexRunRE reduces a request ID to its shape: the README's
// e4f9027dd287cb77-1 and the server's 0b3c…-2f are both x-x.
var hexRunRE = regexp.MustCompile(`[0-9a-f]+`)

// ignoredHeaders are left out of the README's responses: they change with
// every request or only restate the body.
var ignoredHeaders = map[string]bool{"Date": true, "Content-Length": true}

// updateREADME makes TestREADMEExamples write this run's response bodies
// into the README instead of comparing them:
//
//	go test ./local -run TestREADMEExamples -update-readme
//
// A change to what the API answers, such as a new field, or to what a
// store answers, such as reach once a store counts it, then needs only a
// look at the diff. The README's IDs, cursors and times are kept, request
// IDs take this run's counters, and statuses and other headers are still
// checked, not rewritten.
var updateREADME = flag.Bool("update-readme", false, "rewrite the README's example bodies with this run's responses")

// TestREADMEExamples replays the README's API examples, in order, against
// the real server, and checks that each shows the status, every header
// (Date and Content-Length aside) and the exact body the server answers. The
// campaign IDs and page cursors the README shows stand for the ones this
// server makes: the first time one appears in a response it is bound to
// the real one, and from then on replaced by it, in later commands too.
// The times the server reads off its clock (see serverTimes) stand for
// this run's. With -update-readme it writes the bodies instead.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	examples := readmeExamples(t)
	require.NotEmpty(t, examples)
	servers := map[string]string{}
	ids := map[string]string{} // README ID or cursor -> this run's
	replaceIDs := func(s string) string {
		s = uuidRE.ReplaceAllStringFunc(s, func(id string) string {
			if real, ok := ids[id]; ok {
				return real
			}
			return id
		})
		for shown, real := range ids {
			if !uuidRE.MatchString(shown) {
				s = strings.ReplaceAll(s, shown, real)
			}
		}
		return s
	}
	// shownIDs is replaceIDs backwards, for a body written into the README.
	shownIDs := func(s string) string {
		for shown, real := range ids {
			s = strings.ReplaceAll(s, real, shown)
		}
		return s
	}
	var rewrites []rewrite
	for _, ex := range examples {
		base, ok := servers[ex.env]
		if !ok {
			env := map[string]string{}
			if ex.env != "" {
				name, value, _ := strings.Cut(ex.env, "=")
				env[name] = value
			}
			base = startServer(t, env, nil)
			servers[ex.env] = base
		}

		req := curlRequest(t, base, ex, replaceIDs)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, ex.command)
		// A person pasting the examples sends no two in the same
		// millisecond, which the list's order (by created_at, to the
		// millisecond, then by the random ID) shows: wait, at most a
		// millisecond, for the next one.
		next := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
		time.Sleep(time.Until(next))
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		got := strings.TrimSpace(string(body))

		if shown := ex.header.Get("X-Request-Id"); *updateREADME && shown != "" {
			// Keep the README's prefix; take this run's counter, which
			// moves when examples are added before this one.
			real := resp.Header.Get("X-Request-Id")
			i, j := strings.LastIndexByte(shown, '-'), strings.LastIndexByte(real, '-')
			require.True(t, i >= 0 && j >= 0, "request IDs %q and %q end in a counter", shown, real)
			renumbered := shown[:i] + real[j:]
			rewrites = append(rewrites, rewrite{old: "X-Request-Id: " + shown, new: "X-Request-Id: " + renumbered})
			ex.header.Set("X-Request-Id", renumbered)
		}
		if ex.noBody {
			assert.Empty(t, ex.body, "%s writes its body to /dev/null", ex.command)
		} else {
			bindIDs(t, ex, got, ids)
			want := replaceIDs(ex.body)
			got = serverTimes(t, ex.command, want, got)
			if *updateREADME {
				rewrites = append(rewrites, rewrite{old: ex.body, new: shownIDs(got)})
			} else {
				assert.Equal(t, want, got, "the body of %s", ex.command)
			}
		}
		if ex.status == 0 {
			assert.Less(t, resp.StatusCode, 300, "%s fails, though the README shows no status", ex.command)
			continue
		}
		assert.Equal(t, ex.status, resp.StatusCode, ex.command)
		for name := range resp.Header {
			if !ignoredHeaders[name] {
				assert.Contains(t, ex.header, name, "the README leaves out %s: %s from %s", name, resp.Header.Get(name), ex.command)
			}
		}
		for name := range ex.header {
			want, got := replaceIDs(ex.header.Get(name)), resp.Header.Get(name)
			if name == "X-Request-Id" {
				want, got = hexRunRE.ReplaceAllString(want, "x"), hexRunRE.ReplaceAllString(got, "x")
			}
			assert.Equal(t, want, got, "header %s of %s", name, ex.command)
		}
	}
	if *updateREADME {
		rewriteREADME(t, rewrites)
	}
}

// rewrite is one example's body, or its request ID line, as the README
// shows it and as this run answered it.
type rewrite struct{ old, new string }

// rewriteREADME makes the rewrites in the API section, in order, each at
// its first place after the one before.
func rewriteREADME(t *testing.T, rewrites []rewrite) {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	at := strings.Index(readme, "\n## API\n")
	require.GreaterOrEqual(t, at, 0, "the README has an API section")
	for _, b := range rewrites {
		i := strings.Index(readme[at:], b.old)
		require.GreaterOrEqual(t, i, 0, "the README shows %q", b.old)
		readme = readme[:at+i] + b.new + readme[at+i+len(b.old):]
		at += i + len(b.new)
	}
	require.NoError(t, os.WriteFile("../README.md", []byte(readme), 0o644))
}

// curlRequest builds the request the example's curl command sends, to the
// test's server rather than localhost:8080.
func curlRequest(t *testing.T, base string, ex example, replaceIDs func(string) string) *http.Request {
	t.Helper()
	method, url, data := "", "", ""
	// curl names itself unless -A says otherwise; the server's bot filter
	// judges that name, so the examples must send what curl sends.
	header := http.Header{"User-Agent": {"curl/8.5.0"}}
	for i := 0; i < len(ex.args); i++ {
		switch a := ex.args[i]; a {
		case "-i", "-s":
		case "-D", "-o":
			// -D - shows the headers as -i does; -o /dev/null drops the body.
			i++
			want := map[string]string{"-D": "-", "-o": "/dev/null"}[a]
			require.Equal(t, want, ex.args[i], "the test knows only %s %s", a, want)
		case "-A":
			i++
			header.Set("User-Agent", ex.args[i])
		case "-X":
			i++
			method = ex.args[i]
		case "-d":
			i++
			data = replaceIDs(ex.args[i])
		case "-H":
			i++
			name, value, ok := strings.Cut(ex.args[i], ": ")
			require.True(t, ok, "a header: %q", ex.args[i])
			header.Set(name, value) // as curl replaces its own, such as User-Agent
		default:
			require.False(t, strings.HasPrefix(a, "-"), "the test does not know curl's %s; teach curlRequest", a)
			require.True(t, strings.HasPrefix(a, "localhost:8080/"), "examples talk to localhost:8080, got %q", a)
			url = base + replaceIDs(strings.TrimPrefix(a, "localhost:8080"))
		}
	}
	require.NotEmpty(t, url, ex.command)
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
		// What curl -d sends.
		header.Set("Content-Type", "application/x-www-form-urlencoded")
		if method == "" {
			method = http.MethodPost
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	req.Header = header
	return req
}

// bindIDs binds each campaign ID and page cursor the README shows in a
// response, and has not bound yet, to the one in the same place of the
// real response.
func bindIDs(t *testing.T, ex example, got string, ids map[string]string) {
	t.Helper()
	var shown, real map[string]any
	if json.Unmarshal([]byte(ex.body), &shown) != nil || json.Unmarshal([]byte(got), &real) != nil {
		return
	}
	for key, v := range shown {
		id, ok := v.(string)
		if !ok || (!uuidRE.MatchString(id) && key != "next_cursor") {
			continue
		}
		realID, _ := real[key].(string)
		if _, bound := ids[id]; !bound && realID != "" && (key == "next_cursor" || uuidRE.MatchString(realID)) {
			ids[id] = realID
		}
	}
}

// serverTimeRE matches the times the server reads off its clock and
// answers to the millisecond: stats' and reports' as_of, created_at, and
// a series' bounds and points.
var serverTimeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)

// serverTimes returns got with each time the server read off its clock
// replaced by the one the README shows in the same place, once it has
// checked that the README shows as many and that each real one is of this
// run: within the last two days (a day series reaches back to yesterday's
// start), and not after now.
func serverTimes(t *testing.T, command, want, got string) string {
	t.Helper()
	shown, real := serverTimeRE.FindAllString(want, -1), serverTimeRE.FindAllStringIndex(got, -1)
	require.Len(t, real, len(shown), "the times of %s", command)
	var b strings.Builder
	last := 0
	now := time.Now()
	for i, at := range real {
		text := got[at[0]:at[1]]
		if text != shown[i] {
			tm, err := time.Parse(time.RFC3339, text)
			require.NoError(t, err)
			assert.True(t, !tm.After(now) && tm.After(now.Add(-50*time.Hour)), "%s of %s is no time of this run", text, command)
			text = shown[i]
		}
		b.WriteString(got[last:at[0]])
		b.WriteString(text)
		last = at[1]
	}
	b.WriteString(got[last:])
	return b.String()
}
