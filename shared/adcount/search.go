package adcount

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckNameSearch returns an ErrInvalid FieldError on "name" unless s is
// valid UTF-8 of 1 to MaxNameRunes characters: no longer than a name it
// could be found in. It is not trimmed: a search for " sale" looks for the
// word's start.
func CheckNameSearch(s string) error {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return fieldError("name", "must be valid UTF-8")
	case n == 0 || n > MaxNameRunes:
		return fieldError("name", "must be from 1 to %d characters, got %d", MaxNameRunes, n)
	}
	return nil
}

// NameMatches reports whether name holds search, with letters compared
// regardless of case: under Unicode simple case folding, as
// strings.EqualFold compares, so that "SALE" finds "Summer sale" and "ſ"
// finds "s". An empty search matches every name.
func NameMatches(name, search string) bool {
	return strings.Contains(foldCase(name), foldCase(search))
}

// foldCase maps every rune of s to one chosen member of its case-folding
// orbit (see unicode.SimpleFold), so that two strings equal under
// strings.EqualFold fold to the same string. The member chosen is the
// orbit's lower-case ASCII letter if it has one, else its smallest rune;
// so a name in lower-case ASCII, the common case, folds to itself without
// allocating. (unicode.ToLower would not do: it maps "İ" to "i", which
// EqualFold does not take for it.)
func foldCase(s string) string {
	return strings.Map(foldRune, s)
}

func foldRune(r rune) rune {
	least := r
	if r >= utf8.RuneSelf {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
	}
	if 'A' <= least && least <= 'Z' {
		return least + 'a' - 'A'
	}
	return least
}
