// Package botfilter judges whether a User-Agent belongs to a known bot or
// crawler, so that impressions from invalid traffic are filtered rather
// than counted.
//
// The patterns are those of the community-maintained list
// crawler-user-agents (https://github.com/monperrus/crawler-user-agents,
// MIT licence, beside this file), embedded at build time from
// crawler-user-agents.json. `make crawler-list` fetches a pinned version
// from npm; the README says how to update it.
//
// Matching is exact: IsBot reports true exactly when one of the list's
// regular expressions, compiled by Go's regexp package, matches the
// User-Agent, as a test checks against that naive reading. It is fast
// because almost every pattern is a literal string: an Aho–Corasick
// automaton finds every literal in one pass over the User-Agent, and the
// few patterns with real regular-expression syntax run their regexp only
// when a string that every match of theirs contains is present.
package botfilter

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

//go:embed crawler-user-agents.json
var listJSON []byte

//go:embed crawler-user-agents.version
var listVersion string

// ListVersion returns the version of the crawler-user-agents npm package
// whose list is embedded, for logs and diagnostics.
func ListVersion() string {
	return strings.TrimSpace(listVersion)
}

// Filter matches User-Agents against a compiled list of bot patterns. It is
// safe for concurrent use by any number of goroutines: the compiled list is
// immutable, and the cache of recent verdicts is updated atomically. Build
// it once at startup: compiling is the costly part; matching reads each
// byte of the User-Agent once, and a repeated User-Agent is found in the
// cache.
type Filter struct {
	ac       *automaton
	triggers []trigger
	// confirm holds the regexps of the patterns that are not plain
	// literals; a trigger names them by index.
	confirm []*regexp.Regexp
	// always indexes the confirm patterns that have no trigger, which
	// therefore run on every User-Agent.
	always []uint32
	// cache keeps recent verdicts; nil when turned off.
	cache *verdictCache
}

// trigger is a string whose presence in a User-Agent either proves a bot
// (exact: some pattern is that literal) or makes patterns worth running.
type trigger struct {
	text string
	// keyLen is how many leading bytes of text the automaton looks for.
	keyLen  int
	exact   bool
	confirm []uint32
}

// Option configures New.
type Option func(*options)

type options struct {
	cacheSize int
}

// WithCacheSize sets how many recent verdicts the Filter keeps, rounded up
// to a power of two; 0 turns the cache off. The default is
// DefaultCacheSize.
func WithCacheSize(n int) Option {
	return func(o *options) { o.cacheSize = n }
}

// excluded holds the upstream patterns this filter does not apply, each
// with the reason. A pattern belongs here only when it matches real
// viewers: a count lost to a wrong filter costs advertisers as much as a
// bot counted. A test fails when an exclusion is no longer in the list, so
// that an update that fixes it upstream also removes it here.
var excluded = map[string]string{
	// Added upstream in 2026 for one crawler, but it is an Android 15
	// firmware build ID that many phones ship: it matches the in-app
	// browsers (Instagram, Facebook) of real users on those phones.
	`AP3A\.240617\.008`: "an Android build ID, not a crawler's name",
}

// New compiles the embedded crawler-user-agents list. It returns an error,
// never panics, when a pattern is not valid in Go's regexp (RE2) syntax or
// matches the empty string (it would flag every User-Agent): the list is
// data from outside, and such a change must stop `make crawler-list`, whose
// tests call New, rather than pass silently. A negative cache size is an
// error too.
func New(opts ...Option) (*Filter, error) {
	o := options{cacheSize: DefaultCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheSize < 0 || o.cacheSize > 1<<20 {
		return nil, fmt.Errorf("botfilter: cache size %d is not between 0 and %d", o.cacheSize, 1<<20)
	}
	var entries []struct {
		Pattern string `json:"pattern"`
	}
	if err := json.Unmarshal(listJSON, &entries); err != nil {
		return nil, fmt.Errorf("botfilter: decode crawler-user-agents.json: %w", err)
	}
	patterns := make([]string, 0, len(entries))
	for _, e := range entries {
		if _, skip := excluded[e.Pattern]; !skip {
			patterns = append(patterns, e.Pattern)
		}
	}
	f, err := compile(patterns)
	if err != nil {
		return nil, err
	}
	f.cache = newVerdictCache(o.cacheSize)
	return f, nil
}

// compile builds a Filter for patterns, each a Go regexp.
func compile(patterns []string) (*Filter, error) {
	f := &Filter{}
	index := map[string]int{}
	addTrigger := func(text string) *trigger {
		i, ok := index[text]
		if !ok {
			i = len(f.triggers)
			index[text] = i
			f.triggers = append(f.triggers, trigger{text: text})
		}
		return &f.triggers[i]
	}
	for _, p := range patterns {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return nil, fmt.Errorf("botfilter: pattern %#q: %w", p, err)
		}
		re = re.Simplify()
		if lang, ok := language(re); ok {
			if slices.Contains(lang, "") {
				return nil, fmt.Errorf("botfilter: pattern %#q matches the empty string, so every User-Agent", p)
			}
			for _, s := range lang {
				addTrigger(s).exact = true
			}
			continue
		}
		compiled, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("botfilter: pattern %#q: %w", p, err)
		}
		if compiled.MatchString("") {
			return nil, fmt.Errorf("botfilter: pattern %#q matches the empty string", p)
		}
		id := uint32(len(f.confirm))
		f.confirm = append(f.confirm, compiled)
		req, ok := required(re)
		if !ok {
			f.always = append(f.always, id)
			continue
		}
		for _, s := range req {
			t := addTrigger(s)
			t.confirm = append(t.confirm, id)
		}
	}
	texts := make([]string, len(f.triggers))
	for i, t := range f.triggers {
		texts[i] = t.text
	}
	keys := keys(texts)
	for i := range f.triggers {
		f.triggers[i].keyLen = len(keys[i])
	}
	ac, err := newAutomaton(keys)
	if err != nil {
		return nil, err
	}
	f.ac = ac
	return f, nil
}

// confirmOnStack is how many confirm patterns IsBot tracks in a bitmap on
// its stack (the embedded list has far fewer); a list with more
// would cost an allocation per call that sees a trigger.
const confirmOnStack = 8 * 64

// IsBot reports whether userAgent matches any pattern of the list.
// Patterns are case-sensitive, as upstream writes and tests them.
//
// An empty User-Agent is not a bot: its absence is not evidence of a
// crawler, and an ad server may simply not forward one; a real crawler on
// the list announces itself. No pattern of the list matches the empty
// string anyway (New refuses one that would).
//
// A verdict found in the cache costs a hash and a comparison and does not
// allocate. Otherwise the cost is linear in the length of userAgent, and
// caching the verdict allocates a copy of userAgent (up to 512 bytes; a
// longer one is judged afresh each time, without allocating).
func (f *Filter) IsBot(userAgent string) bool {
	if userAgent == "" {
		return false
	}
	c := f.cache
	if c == nil || len(userAgent) > maxCachedLen {
		return f.match(userAgent)
	}
	slot := c.slot(userAgent)
	if v := slot.Load(); v != nil && v.userAgent == userAgent {
		return v.bot
	}
	bot := f.match(userAgent)
	// A copy, so that the cache neither keeps a caller's larger buffer
	// alive nor changes if the caller reuses one.
	slot.Store(&verdict{userAgent: strings.Clone(userAgent), bot: bot})
	return bot
}

// match is IsBot without the cache, for a non-empty userAgent.
func (f *Filter) match(userAgent string) bool {
	var seenOnStack [confirmOnStack / 64]uint64
	var seen []uint64
	candidates := false

	ac := f.ac
	trans := ac.trans
	s := uint32(0)
	for i := 0; i < len(userAgent); i++ {
		t := trans[s+uint32(ac.class[userAgent[i]])]
		s = t &^ matchFlag
		if t&matchFlag == 0 {
			continue
		}
		for _, id := range ac.matches(t) {
			tr := &f.triggers[id]
			if len(tr.text) > tr.keyLen {
				// Only the trigger's key is in the automaton: compare
				// the rest.
				if !strings.HasPrefix(userAgent[i+1-tr.keyLen:], tr.text) {
					continue
				}
			}
			if tr.exact {
				return true
			}
			if seen == nil {
				seen = seenOnStack[:]
				if len(f.confirm) > confirmOnStack {
					seen = make([]uint64, (len(f.confirm)+63)/64)
				}
			}
			for _, c := range tr.confirm {
				seen[c/64] |= 1 << (c % 64)
				candidates = true
			}
		}
	}
	// The regexps run after the scan, and each at most once, so that a
	// User-Agent repeating one trigger costs one regexp run, and an exact
	// literal later in the User-Agent costs none.
	if candidates {
		for w, word := range seen {
			for ; word != 0; word &= word - 1 {
				c := w*64 + bits.TrailingZeros64(word)
				if f.confirm[c].MatchString(userAgent) {
					return true
				}
			}
		}
	}
	for _, c := range f.always {
		if f.confirm[c].MatchString(userAgent) {
			return true
		}
	}
	return false
}

// Judge returns the bot filter a deployment asks for: a new Filter's IsBot
// when on, and nil, which judges no User-Agent, when off. Every entry point
// calls it with its FILTER_BOTS setting, so that they all filter alike.
func Judge(on bool) (func(userAgent string) bool, error) {
	if !on {
		return nil, nil
	}
	f, err := New()
	if err != nil {
		return nil, err
	}
	return f.IsBot, nil
}
