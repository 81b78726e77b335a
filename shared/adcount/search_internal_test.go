package adcount

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestFoldRuneIsEqualFold checks every rune: foldRune maps it into its
// own case-folding orbit and maps every member of the orbit alike, so
// that folded strings are equal exactly when strings.EqualFold says the
// runes are.
func TestFoldRuneIsEqualFold(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		f := foldRune(r)
		require.True(t, strings.EqualFold(string(r), string(f)), "%U folds to %U, outside its orbit", r, f)
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			require.Equal(t, f, foldRune(o), "%U and %U are one orbit", r, o)
		}
	}
}

// TestFoldCaseKeepsLowerASCII: a lower-case ASCII name, the common case,
// folds without allocating.
func TestFoldCaseKeepsLowerASCII(t *testing.T) {
	name := "summer sale 2026 - kids & sports"
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = foldCase(name) }))
}
