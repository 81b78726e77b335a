package botfilter

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// entry is one record of crawler-user-agents.json, with the example
// User-Agents that upstream keeps for each pattern.
type entry struct {
	Pattern   string   `json:"pattern"`
	Instances []string `json:"instances"`
}

// listOnce reads the embedded list as the tests see it, with every
// pattern compiled by Go's regexp: the naive reading the Filter must agree
// with.
var listOnce = sync.OnceValues(func() ([]entry, error) {
	var entries []entry
	if err := json.Unmarshal(listJSON, &entries); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(entries, func(e entry) bool {
		_, skip := excluded[e.Pattern]
		return skip
	}), nil
})

// Each exclusion names a pattern the list still carries, and none of that
// pattern's examples is judged a bot: they are real viewers.
func TestExcludedPatternsAreNotApplied(t *testing.T) {
	t.Parallel()
	var all []entry
	require.NoError(t, json.Unmarshal(listJSON, &all))
	f := filter(t)
	for pattern := range excluded {
		i := slices.IndexFunc(all, func(e entry) bool { return e.Pattern == pattern })
		require.GreaterOrEqual(t, i, 0, "%q is no longer in the list: remove its exclusion", pattern)
		require.NotEmpty(t, all[i].Instances, pattern)
		for _, ua := range all[i].Instances {
			assert.False(t, f.IsBot(ua), "excluded %q, instance %q", pattern, ua)
		}
	}
}

// naivePattern is one pattern compiled by Go's regexp, with the literal
// prefix that regexp itself says every match starts with.
type naivePattern struct {
	re     *regexp.Regexp
	prefix string
}

var naiveOnce = sync.OnceValues(func() ([]naivePattern, error) {
	entries, err := listOnce()
	if err != nil {
		return nil, err
	}
	res := make([]naivePattern, len(entries))
	for i, e := range entries {
		if res[i].re, err = regexp.Compile(e.Pattern); err != nil {
			return nil, err
		}
		res[i].prefix, _ = res[i].re.LiteralPrefix()
	}
	return res, nil
})

// filterOnce is the Filter as the service builds it, with the default
// cache; uncachedOnce has none, so that every call scans.
var (
	filterOnce   = sync.OnceValues(func() (*Filter, error) { return New() })
	uncachedOnce = sync.OnceValues(func() (*Filter, error) { return New(WithCacheSize(0)) })
)

func list(t testing.TB) []entry {
	t.Helper()
	entries, err := listOnce()
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	return entries
}

func filter(t testing.TB) *Filter {
	t.Helper()
	f, err := filterOnce()
	require.NoError(t, err)
	return f
}

func uncached(t testing.TB) *Filter {
	t.Helper()
	f, err := uncachedOnce()
	require.NoError(t, err)
	require.Nil(t, f.cache)
	return f
}

// naiveIsBot is the definition IsBot must meet: any pattern's regexp
// matches, and the empty User-Agent is never a bot. It skips a regexp when
// the User-Agent lacks the regexp's own literal prefix, which every match
// starts with: the answer is the same, and the race detector, which slows
// regexp a hundredfold, leaves the test a few seconds long.
func naiveIsBot(t testing.TB, ua string) bool {
	t.Helper()
	patterns, err := naiveOnce()
	require.NoError(t, err)
	if ua == "" {
		return false
	}
	for _, p := range patterns {
		if strings.Contains(ua, p.prefix) && p.re.MatchString(ua) {
			return true
		}
	}
	return false
}

// browsers are real User-Agents of current browsers, desktop and mobile,
// which must never be filtered: filtering one would under-count an
// advertiser's real audience.
var browsers = []struct {
	name string
	ua   string
}{
	{"ChromeWindows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"},
	{"ChromeMac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"},
	{"ChromeLinux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"},
	{"ChromeAndroid", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36"},
	{"ChromeIPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/142.0.7444.46 Mobile/15E148 Safari/604.1"},
	{"FirefoxWindows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0"},
	{"FirefoxMac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:145.0) Gecko/20100101 Firefox/145.0"},
	{"FirefoxUbuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0"},
	{"FirefoxAndroid", "Mozilla/5.0 (Android 15; Mobile; rv:145.0) Gecko/145.0 Firefox/145.0"},
	{"SafariMac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Safari/605.1.15"},
	{"SafariIPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1"},
	{"SafariIPad", "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1"},
	{"EdgeWindows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0"},
	{"EdgeAndroid", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36 EdgA/142.0.0.0"},
	{"SamsungInternet", "Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36"},
	{"OperaWindows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 OPR/125.0.0.0"},
	{"AndroidWebView", "Mozilla/5.0 (Linux; Android 15; Pixel 8 Build/AP4A.250205.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/142.0.7444.102 Mobile Safari/537.36"},
	// "^Silk\/" names a DMOZ crawler; Amazon's Silk browser carries "Silk/"
	// mid-string, so the anchor is what keeps Fire tablet users counted.
	{"AmazonSilk", "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/134.4.1 like Chrome/134.0.6998.186 Safari/537.36"},
}

func TestEveryUpstreamInstanceIsABot(t *testing.T) {
	t.Parallel()
	f := filter(t)
	n := 0
	for _, e := range list(t) {
		for _, ua := range e.Instances {
			n++
			assert.True(t, f.IsBot(ua), "pattern %q, instance %q", e.Pattern, ua)
		}
	}
	// 1.60.0 carries 2,118 examples; a list without them tests nothing.
	require.Greater(t, n, 1000)
}

// Some patterns have no instances upstream (45 in 1.60.0). Each string of a
// literal pattern is itself a User-Agent it matches, so those are covered
// too.
func TestEveryLiteralPatternMatchesItself(t *testing.T) {
	t.Parallel()
	f := filter(t)
	for _, tr := range f.triggers {
		if tr.exact {
			assert.True(t, f.IsBot(tr.text), "literal %q", tr.text)
			assert.True(t, f.IsBot("x "+tr.text+" y"), "literal %q inside a User-Agent", tr.text)
		}
	}
}

func TestBrowsersAreNotBots(t *testing.T) {
	t.Parallel()
	f := filter(t)
	for _, b := range browsers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			assert.False(t, f.IsBot(b.ua), b.ua)
		})
	}
}

// The absence of a User-Agent is not evidence of a bot: an ad server may
// not forward one. Real crawlers on the list announce themselves.
func TestEmptyUserAgentIsNotABot(t *testing.T) {
	t.Parallel()
	assert.False(t, filter(t).IsBot(""))
}

func TestCaseSensitiveAsUpstream(t *testing.T) {
	t.Parallel()
	f := filter(t)
	assert.True(t, f.IsBot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"))
	// "Googlebot\/" is case-sensitive upstream, and no other pattern
	// matches this spelling.
	assert.False(t, f.IsBot("Mozilla/5.0 (compatible; GOOGLEBOT/2.1)"))
	// "[wW]get": either case of the first letter.
	assert.True(t, f.IsBot("Wget/1.21.4"))
	assert.True(t, f.IsBot("wget/1.21.4"))
}

// corpus gathers User-Agents on both sides of every pattern: upstream's
// instances, each also with one byte changed; the browsers; each trigger
// string (the literals the Filter looks for) alone, at either edge, inside
// a longer string, cut short at either end and with one byte changed,
// which exercises the anchored patterns and the comparison past the
// trigger's key; and random strings.
func corpus(t testing.TB) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(12, 3))
	var out []string
	flip := func(ua string) string {
		b := []byte(ua)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		return string(b)
	}
	for _, e := range list(t) {
		for _, ua := range e.Instances {
			out = append(out, ua, flip(ua))
		}
	}
	for _, b := range browsers {
		out = append(out, b.ua, flip(b.ua))
	}
	for _, tr := range filter(t).triggers {
		s := tr.text
		out = append(out, s, " "+s, s+" ", "x"+s+"x", s[1:], s[:len(s)-1], flip(s))
	}
	for range 1000 {
		out = append(out, randomUA(rng, 1+rng.IntN(300)))
	}
	return out
}

// randomUA returns n random bytes, mostly printable ASCII and sometimes
// any byte, so that invalid UTF-8 is covered.
func randomUA(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		if rng.IntN(20) == 0 {
			b[i] = byte(rng.IntN(256))
		} else {
			b[i] = byte(' ' + rng.IntN(95))
		}
	}
	return string(b)
}

// The Filter, with and without its cache, gives the answer of the naive
// reading for every User-Agent of the corpus. The cached Filter is asked
// twice, so that the second answer comes from the cache where it fits;
// one with a single slot is asked too, so that every User-Agent evicts the
// one before.
func TestAgreesWithEveryRegexp(t *testing.T) {
	t.Parallel()
	scan, cached := uncached(t), filter(t)
	tiny, err := New(WithCacheSize(1))
	require.NoError(t, err)
	bots := 0
	cases := corpus(t)
	for _, ua := range cases {
		want := naiveIsBot(t, ua)
		if want {
			bots++
		}
		require.Equal(t, want, scan.IsBot(ua), "uncached %q", ua)
		require.Equal(t, want, cached.IsBot(ua), "cached, first %q", ua)
		require.Equal(t, want, cached.IsBot(ua), "cached, again %q", ua)
		require.Equal(t, want, tiny.IsBot(ua), "one slot %q", ua)
	}
	// Both sides of the line are exercised.
	require.Greater(t, bots, 1000)
	require.Greater(t, len(cases)-bots, 1000)
}

func FuzzIsBot(f *testing.F) {
	for _, b := range browsers {
		f.Add(b.ua)
	}
	for _, ua := range []string{
		"", "curl/8.5.0", " curl/8.5.0", "Silk/1.0", "x Silk/1.0",
		"AdsBot-Google", "AdsBot-Google-Mobile", "AdsBot-Google (+http://www.google.com/adsbot.html)",
		"BlogTraffic/1.23 Feed-Fetcher", "BlogTraffic/1. Feed-Fetcher",
		"GoogleAssociationService", "GoogleAssociationService/1.0",
		"ContextualBot\nhttps://outcomes.net", "sentry/1", "x-sentry/1", "\xff\xfeGooglebot/",
	} {
		f.Add(ua)
	}
	scan, err := uncachedOnce()
	require.NoError(f, err)
	cached, err := filterOnce()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, ua string) {
		want := naiveIsBot(t, ua)
		require.Equal(t, want, scan.IsBot(ua), "uncached %q", ua)
		require.Equal(t, want, cached.IsBot(ua), "cached %q", ua)
	})
}

// Goroutines share one Filter; with two cache slots for four User-Agents,
// they also replace each other's cached verdicts all the time.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	f, err := New(WithCacheSize(2))
	require.NoError(t, err)
	uas := []struct {
		ua  string
		bot bool
	}{
		{browsers[0].ua, false},
		{"curl/8.5.0", true},
		{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", true},
		{"Current RSS Reader", true},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c := uas[(g+i)%len(uas)]
				assert.Equal(t, c.bot, f.IsBot(c.ua), c.ua)
			}
		})
	}
	wg.Wait()
}

// The verdicts that need no regexp allocate nothing without the cache, and
// a verdict found in the cache allocates nothing. Those that run one of the
// regexps allocate nothing either once regexp's pooled machines are warm
// (BenchmarkIsBot's Curl case shows 0 allocs/op), but the race detector,
// which every test run uses, empties sync.Pool at random, so they are not
// asserted here.
func TestIsBotDoesNotAllocate(t *testing.T) {
	cases := []struct {
		name string
		ua   string
	}{
		{"Browser", browsers[0].ua},
		{"LiteralBot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
		// A trigger's key is seen but the rest of the trigger differs.
		{"KeyOnly", "Mozilla/5.0 AppleWebKit/537.36"},
		// Longer than the cache takes: scanned every time.
		{"TooLongToCache", strings.Repeat(browsers[0].ua, 6)},
	}
	cached, err := New()
	require.NoError(t, err)
	scan := uncached(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cached.IsBot(c.ua)
			assert.Zero(t, testing.AllocsPerRun(100, func() { cached.IsBot(c.ua) }), "cached")
			assert.Zero(t, testing.AllocsPerRun(100, func() { scan.IsBot(c.ua) }), "uncached")
		})
	}
}

// The cache keeps its own copy of a User-Agent: a caller that reuses the
// buffer behind a string it passed must not change what the cache holds.
func TestCacheCopiesTheUserAgent(t *testing.T) {
	t.Parallel()
	f, err := New(WithCacheSize(1))
	require.NoError(t, err)
	buf := []byte("curl/8.5.0")
	require.True(t, f.IsBot(unsafe.String(&buf[0], len(buf))))
	copy(buf, "Mozilla/5.")
	assert.False(t, f.IsBot("Mozilla/5."), "a verdict for the buffer's old content")
}

func TestCacheSizeOutOfRange(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, 1<<20 + 1} {
		f, err := New(WithCacheSize(n))
		assert.Error(t, err, n)
		assert.Nil(t, f)
	}
}

// The Makefile's pinned version and the version of the committed list must
// agree, so bumping one without running `make crawler-list` fails.
func TestListVersionMatchesMakefile(t *testing.T) {
	t.Parallel()
	mk, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	var pinned string
	for line := range strings.Lines(string(mk)) {
		if v, ok := strings.CutPrefix(line, "CRAWLER_LIST_VERSION"); ok {
			pinned = strings.TrimSpace(strings.TrimLeft(v, " :="))
		}
	}
	require.NotEmpty(t, pinned, "CRAWLER_LIST_VERSION in the Makefile")
	assert.Equal(t, pinned, ListVersion())
}
