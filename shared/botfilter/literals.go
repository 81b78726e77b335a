package botfilter

import (
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

// maxStrings bounds how many strings one pattern, or one part of it, may
// expand to. Upstream's largest expansion, "(sistrix|SISTRIX) [cC]rawler",
// is 4 strings; the bound keeps a pattern such as "[a-z]{3}" from expanding
// to thousands of literals, and sends it to the regexp instead.
const maxStrings = 64

// language returns every string that re matches, when that set is finite
// and has at most maxStrings members; ok is false otherwise. A pattern whose
// language is finite matches a User-Agent exactly when the User-Agent
// contains one of those strings, so it needs no regexp at match time.
//
// Strings are compared as bytes. That agrees with Go's regexp, which
// decodes UTF-8, as long as no string contains U+FFFD: the regexp also reads
// an invalid byte as U+FFFD, which bytes cannot express, so such a literal
// is refused here (and left to the regexp).
func language(re *syntax.Regexp) (strs []string, ok bool) {
	switch re.Op {
	case syntax.OpNoMatch:
		return nil, true
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			if !slices.ContainsFunc(re.Rune, func(r rune) bool { return !bytesAgree(r) }) {
				return []string{string(re.Rune)}, true
			}
			return nil, false
		}
		parts := make([][]string, len(re.Rune))
		for i, r := range re.Rune {
			forms, ok := runeForms(r, re.Flags&syntax.FoldCase != 0)
			if !ok {
				return nil, false
			}
			parts[i] = forms
		}
		return product(parts)
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if int(hi-lo)+1 > maxStrings-len(strs) {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				if !bytesAgree(r) {
					return nil, false
				}
				strs = append(strs, string(r))
			}
		}
		return strs, true
	case syntax.OpCapture:
		return language(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := language(re.Sub[0])
		if !ok {
			return nil, false
		}
		return union([][]string{sub, {""}})
	case syntax.OpConcat:
		parts := make([][]string, len(re.Sub))
		for i, sub := range re.Sub {
			if parts[i], ok = language(sub); !ok {
				return nil, false
			}
		}
		return product(parts)
	case syntax.OpAlternate:
		sets := make([][]string, len(re.Sub))
		for i, sub := range re.Sub {
			if sets[i], ok = language(sub); !ok {
				return nil, false
			}
		}
		return union(sets)
	}
	// Anchors, word boundaries, any-character, and repetitions: not a
	// finite set of strings found anywhere in the text.
	return nil, false
}

// required returns strings of which every match of re contains at least
// one, or ok false when there is no such set of non-empty strings. They
// are the pattern's triggers: only a User-Agent that contains one is worth
// running the pattern's regexp on. Among several candidate sets it keeps
// the best by better.
func required(re *syntax.Regexp) (strs []string, ok bool) {
	if lang, ok := language(re); ok {
		if slices.Contains(lang, "") {
			return nil, false
		}
		return lang, true
	}
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpAlternate:
		sets := make([][]string, len(re.Sub))
		for i, sub := range re.Sub {
			if sets[i], ok = required(sub); !ok {
				return nil, false
			}
		}
		return union(sets)
	case syntax.OpConcat:
		// Each part's own required strings are candidates, and so is each
		// run of consecutive parts with a finite language: "Blog\/\d\."
		// gives ten strings of the whole run, longer than any one part's.
		var best []string
		consider := func(c []string) {
			if len(c) > 0 && !slices.Contains(c, "") && (best == nil || better(c, best)) {
				best = c
			}
		}
		var run [][]string
		closeRun := func() {
			if len(run) > 0 {
				if c, ok := product(run); ok {
					consider(c)
				}
			}
			run = nil
		}
		for _, sub := range re.Sub {
			if c, ok := required(sub); ok {
				consider(c)
			}
			lang, ok := language(sub)
			if !ok {
				closeRun()
				continue
			}
			if _, fits := product(append(slices.Clone(run), lang)); !fits {
				closeRun()
			}
			run = append(run, lang)
		}
		closeRun()
		return best, best != nil
	}
	return nil, false
}

// better reports whether candidate set a makes better triggers than b: its
// shortest string is longer, since a longer string occurs less often by
// chance, or as long with fewer strings. Lengths count up to 8 bytes only,
// past which a string is rare enough: "BlogTraffic\/\d\.\d+ Feed-Fetcher"
// takes the one "BlogTraffic/", not ten "BlogTraffic/0." to "BlogTraffic/9.".
func better(a, b []string) bool {
	const enough = 8
	la, lb := min(shortest(a), enough), min(shortest(b), enough)
	if la != lb {
		return la > lb
	}
	return len(a) < len(b)
}

func shortest(strs []string) int {
	n := -1
	for _, s := range strs {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}

// runeForms returns the UTF-8 strings that the literal rune r matches:
// itself, or with fold every rune of its case-folding orbit, which is
// what Go's regexp matches for a case-insensitive literal (so "k" also
// matches the Kelvin sign U+212A).
func runeForms(r rune, fold bool) ([]string, bool) {
	if !bytesAgree(r) {
		return nil, false
	}
	forms := []string{string(r)}
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if !bytesAgree(f) {
				return nil, false
			}
			forms = append(forms, string(f))
		}
	}
	return forms, true
}

// bytesAgree reports whether matching r's UTF-8 bytes means the same as
// the regexp matching r: true for every valid rune except U+FFFD.
func bytesAgree(r rune) bool {
	return r != utf8.RuneError && utf8.ValidRune(r)
}

// product returns every concatenation of one string from each part, in
// order, or ok false past maxStrings.
func product(parts [][]string) ([]string, bool) {
	out := []string{""}
	for _, part := range parts {
		if len(out)*len(part) > maxStrings {
			return nil, false
		}
		next := make([]string, 0, len(out)*len(part))
		for _, prefix := range out {
			for _, s := range part {
				next = append(next, prefix+s)
			}
		}
		out = next
	}
	return out, true
}

// union returns the distinct strings of all sets, or ok false past
// maxStrings.
func union(sets [][]string) ([]string, bool) {
	var out []string
	for _, set := range sets {
		for _, s := range set {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, len(out) <= maxStrings
}
