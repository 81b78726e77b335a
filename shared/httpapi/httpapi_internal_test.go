package httpapi

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// TestRequestIDsAreUnique: IDs made from every core at once, across many
// blocks and the races to install the next block, are all different,
// all of the documented form, and each the one value of a slice that a
// response header may keep (appending to it never touches another's ID).
func TestRequestIDsAreUnique(t *testing.T) {
	t.Parallel()
	g := newRequestIDs()
	const workers, each = 4, 10 * idBlockSize
	got := make([][][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				got[w] = append(got[w], g.next())
			}
		})
	}
	wg.Wait()
	form := regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-z]+$`)
	seen := map[string]bool{}
	for _, ids := range got {
		for _, id := range ids {
			require.Len(t, id, 1)
			require.Equal(t, 1, cap(id), "a header's Add must not write into the block")
			require.Regexp(t, form, id[0])
			require.False(t, seen[id[0]], "%s handed out twice", id[0])
			seen[id[0]] = true
		}
	}
	assert.Len(t, seen, workers*each)
}

// FuzzIsCanonical: the quick check of a path agrees with cleaning it.
func FuzzIsCanonical(f *testing.F) {
	for _, p := range []string{"", "/", "/api/v1/impressions", "/api//v1", "/a/./b", "/a/../b", "/a/.", "/a/..",
		"/.well-known/x", "/a/b/", "a/b", "/a/.b", "/..", "//"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := isCanonical(p), p == canonicalPath(p); got != want {
			t.Fatalf("isCanonical(%q) = %v, want %v", p, got, want)
		}
	})
}

// TestPixelReadsItsQuery: the pixel reads its impression from exactly the
// parameters the route table lists for it (pixelQuery), which the
// contract test compares with docs/openapi.yaml: each is read, and sent
// twice is refused by its name.
func TestPixelReadsItsQuery(t *testing.T) {
	t.Parallel()
	for _, name := range pixelQuery {
		imp, err := pixelImpression(name + "=v")
		require.NoError(t, err)
		assert.Equal(t, 1, strings.Count(imp.CampaignID+imp.UserID+imp.AdID, "v"), "%s is read", name)
		_, err = pixelImpression(name + "=v&" + name + "=w")
		var fe *adcount.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, name, fe.Field)
	}
}
