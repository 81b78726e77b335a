package botfilter

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Patterns beyond plain literals, each checked against Go's regexp on
// texts that sit on either side of it.
func TestSpecialPatternsAgreeWithRegexp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		pattern string
		texts   []string
		// exact: the pattern needs no regexp at match time.
		exact bool
	}{
		// Upstream: a literal escaped the way JavaScript writes it.
		{"EscapedLiteral", `Googlebot\/`, []string{"Googlebot/2.1", "Googlebot 2.1", "xGooglebot/"}, true},
		// Upstream: a case-insensitive first letter.
		{"CharClass", `[wW]get`, []string{"Wget/1", "wget/1", "WGET", "Xget"}, true},
		// Upstream: a top-level alternation.
		{"Alternation", `Automaton|Newsify Feed Fetcher`, []string{"Automaton", "Newsify Feed Fetcher", "Newsify"}, true},
		// Upstream: alternation and classes in one pattern.
		{"Product", `(sistrix|SISTRIX) [cC]rawler`, []string{"sistrix crawler", "SISTRIX Crawler", "Sistrix crawler", "sistrix  crawler"}, true},
		// Upstream: anchored at the start, so the same text later is not a bot.
		{"BeginAnchor", `^curl`, []string{"curl/8.5.0", " curl/8.5.0", "libcurl", "cur"}, false},
		// Upstream: start of text or after a space.
		{"BeginOrSpace", `(^| )sentry\/`, []string{"sentry/1", "x sentry/1", "x-sentry/1", "sentry"}, false},
		// Upstream: anchored at the end.
		{"EndAnchor", `SSL Labs$`, []string{"SSL Labs", "SSL Labs ", "x SSL Labs", "SSL Lab"}, false},
		// Upstream: a negated class or the end of the text.
		{"NegatedClassOrEnd", `AdsBot-Google([^-]|$)`, []string{"AdsBot-Google", "AdsBot-Google-Mobile", "AdsBot-Google (+http)", "AdsBot-Google\xff", "AdsBot-Googl"}, false},
		// Upstream: anything, newlines included, between two literals.
		{"AnyBetween", `ContextualBot[\s\S]*outcomes\.net`, []string{"ContextualBot outcomes.net", "ContextualBot\nhttps://outcomes.net", "outcomes.net ContextualBot", "ContextualBot"}, false},
		// Upstream: digits and a repetition between two literals.
		{"Digits", `BlogTraffic\/\d\.\d+ Feed-Fetcher`, []string{"BlogTraffic/1.23 Feed-Fetcher", "BlogTraffic/1. Feed-Fetcher", "BlogTraffic/x.1 Feed-Fetcher"}, false},
		// Not upstream: case folding, where "k" also matches the Kelvin sign.
		{"FoldCase", `(?i)kbot`, []string{"KBOT", "kBoT", "\u212abot", "kbo"}, true},
		// Not upstream: an optional part is still a finite set of strings.
		{"Optional", `Mail\.RU_Bot(\/2)?`, []string{"Mail.RU_Bot", "Mail.RU_Bot/2", "Mail.RU"}, true},
		// A literal longer than its key, which the automaton spells out
		// in part and the filter compares to the end.
		{"LongLiteral", `YandexRenderResourcesBot\/`, []string{"YandexRenderResourcesBot/1.0", "YandexRenderResourcesBot", "YandexRender", "YandexRenderResourcesBox/"}, true},
		// Not upstream: U+FFFD also matches an invalid byte, which a byte
		// comparison cannot express, so the regexp decides.
		{"ReplacementChar", "bot\uFFFD", []string{"bot\uFFFD", "bot\xff", "bot"}, false},
		// Not upstream: no literal every match contains, so the regexp runs
		// on every User-Agent.
		{"NoTrigger", `^[A-Z]\d+$`, []string{"A1", "A12", "a1", "A1 "}, false},
		// Not upstream: a class too large to expand.
		{"LargeClass", `bot[a-z]{2}x`, []string{"botabx", "botABx", "botax"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := compile([]string{c.pattern})
			require.NoError(t, err)
			assert.Equal(t, c.exact, len(f.confirm) == 0, "exact")
			re := regexp.MustCompile(c.pattern)
			for _, text := range c.texts {
				assert.Equal(t, re.MatchString(text), f.IsBot(text), "%q", text)
			}
		})
	}
}

// A pattern that RE2 cannot compile, or that would flag every User-Agent,
// is an error naming it, never a panic, so a bad list update stops
// `make crawler-list`.
func TestCompileRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		pattern string
	}{
		// Lookbehind is PCRE/JavaScript syntax that RE2 lacks.
		{"Lookbehind", `(?<!Not)Bot`},
		// So is lookahead.
		{"Lookahead", `Bot(?!ox)`},
		// And backreferences.
		{"Backreference", `(a)\1`},
		// Unbalanced.
		{"Unbalanced", `Bot(`},
		// A finite set of strings that includes the empty one.
		{"OptionalOnly", `(bot)?`},
		// A regexp that matches the empty string.
		{"StarOnly", `x*`},
		// An anchor alone.
		{"AnchorOnly", `^`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := compile([]string{"Googlebot", c.pattern})
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), c.pattern)
		})
	}
}

// With several patterns, a later exact literal wins before any regexp runs,
// and a trigger seen twice runs its regexp once; both must still give the
// regexp's answer.
func TestMixedPatterns(t *testing.T) {
	t.Parallel()
	patterns := []string{`^curl`, `Googlebot`, `ContextualBot[\s\S]*outcomes\.net`, `curl\/7`}
	f, err := compile(patterns)
	require.NoError(t, err)
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i] = regexp.MustCompile(p)
	}
	for _, text := range []string{
		"x curl x curl Googlebot",
		"x curl x curl",
		"curl x curl",
		"x curl/7 x",
		"ContextualBot ContextualBot ContextualBot",
		"ContextualBot ContextualBot outcomes.net",
	} {
		want := false
		for _, re := range res {
			want = want || re.MatchString(text)
		}
		assert.Equal(t, want, f.IsBot(text), "%q", text)
	}
}
