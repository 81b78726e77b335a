package reach_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/reach"
)

func TestExactLimitIsTheDomains(t *testing.T) {
	t.Parallel()
	assert.Equal(t, adcount.ExactReach, reach.ExactLimit)
}

// users returns the fingerprints of n distinct user IDs from a seeded
// stream, so that every run sees the same population.
func users(seed uint64, n int) []uint64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	hs := make([]uint64, n)
	buf := make([]byte, 0, 32)
	for i := range hs {
		buf = strconv.AppendUint(append(buf[:0], 'u', '-'), r.Uint64(), 36)
		buf = strconv.AppendInt(append(buf, '-'), int64(i), 10)
		hs[i] = reach.Hash(string(buf))
	}
	return hs
}

func setOf(hs []uint64) *reach.Set {
	s := new(reach.Set)
	for _, h := range hs {
		s.Add(h)
	}
	return s
}

func TestCountIsExactUpToTheLimit(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2, 10, 100, 999, reach.ExactLimit} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			hs := users(uint64(n), n)
			s := setOf(hs)
			// Every user again: a repeat adds nothing.
			for _, h := range hs {
				s.Add(h)
			}
			assert.Equal(t, int64(n), s.Count())
			assert.True(t, s.Exact())
			assert.LessOrEqual(t, s.Bytes(), reach.ExactLimit*6, "an exact set holds at most 6 bytes a user")
		})
	}
}

func TestOnePastTheLimitIsASketch(t *testing.T) {
	t.Parallel()
	s := setOf(users(7, reach.ExactLimit+1))
	assert.False(t, s.Exact())
	assert.InDelta(t, reach.ExactLimit+1, s.Count(), 0.05*(reach.ExactLimit+1))
	assert.Equal(t, 1<<reach.Precision, s.Bytes())
}

// TestRelativeErrorWithinTwoPercent checks the accuracy target on
// known populations: over many populations of each size, the root mean
// square of the relative error (the standard deviation about the truth)
// is at most 2%, and no single estimate strays past 4 standard errors.
// Every population comes from a fixed seed, so the test cannot flake.
func TestRelativeErrorWithinTwoPercent(t *testing.T) {
	t.Parallel()
	const stdErr = 1.04 / 64 // 1.04/√(2^12)
	cases := []struct {
		n      int
		trials int
	}{
		// At the edge of the exact range the sketch takes over.
		{n: 1_001, trials: 64},
		{n: 3_000, trials: 64},
		{n: 10_000, trials: 64},
		{n: 100_000, trials: 32},
		{n: 1_000_000, trials: 16},
		// The top of the range: fingerprints drawn straight from the
		// seeded stream, since hashing 10 million IDs adds nothing to
		// what the smaller sizes show about Hash.
		{n: 10_000_000, trials: 8},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.n), func(t *testing.T) {
			t.Parallel()
			var sumSq float64
			for trial := range c.trials {
				seed := uint64(c.n)*1000 + uint64(trial)
				var s reach.Set
				if c.n > 1_000_000 {
					r := rand.New(rand.NewPCG(seed, seed))
					for range c.n {
						s.Add(r.Uint64())
					}
				} else {
					for _, h := range users(seed, c.n) {
						s.Add(h)
					}
				}
				rel := (float64(s.Count()) - float64(c.n)) / float64(c.n)
				assert.Less(t, math.Abs(rel), 4*stdErr, "trial %d: estimate %d of %d", trial, s.Count(), c.n)
				sumSq += rel * rel
			}
			rms := math.Sqrt(sumSq / float64(c.trials))
			t.Logf("n=%d: relative standard error %.2f%% over %d populations", c.n, 100*rms, c.trials)
			assert.LessOrEqual(t, rms, 0.02)
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	a, b := users(1, 800), users(2, 800)
	cases := []struct {
		name  string
		x, y  []uint64
		want  int
		exact bool
	}{
		// Two small sets whose union fits stay exact.
		{name: "ExactUnionFits", x: a[:400], y: b[:300], want: 700, exact: true},
		// Overlap counts once.
		{name: "OverlapCountsOnce", x: a[:600], y: a[200:], want: 800, exact: true},
		// Exactly the limit is still exact.
		{name: "UnionAtTheLimit", x: a[:500], y: b[:500], want: 1000, exact: true},
		// A union past the limit becomes a sketch.
		{name: "UnionPastTheLimit", x: a, y: b, want: 1600},
		// A sketch merged into an exact set.
		{name: "SketchIntoExact", x: a[:10], y: append(append([]uint64{}, a...), b...), want: 1600},
		// An exact set merged into a sketch.
		{name: "ExactIntoSketch", x: append(append([]uint64{}, a...), b[:400]...), y: b[300:], want: 1600},
		// Nothing merged into something.
		{name: "Empty", x: a[:3], y: nil, want: 3, exact: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x, y := setOf(c.x), setOf(c.y)
			before, err := y.MarshalBinary()
			require.NoError(t, err)
			x.Merge(y)
			assert.Equal(t, c.exact, x.Exact())
			if c.exact {
				assert.Equal(t, int64(c.want), x.Count())
			} else {
				assert.InDelta(t, c.want, x.Count(), 0.05*float64(c.want))
			}
			once, err := x.MarshalBinary()
			require.NoError(t, err)
			// Merging again, and merging the result into itself, is a
			// no-op: a redelivered batch cannot inflate reach.
			x.Merge(y)
			x.Merge(x.Clone())
			twice, err := x.MarshalBinary()
			require.NoError(t, err)
			assert.Equal(t, once, twice)
			after, err := y.MarshalBinary()
			require.NoError(t, err)
			assert.Equal(t, before, after, "the merged set is unchanged")
		})
	}
}

// TestMergeEqualsAdd: merging the parts gives the same set, byte for
// byte, as adding every user to one set, whatever the split, so windows
// merged from buckets equal one sketch of the window.
func TestMergeEqualsAdd(t *testing.T) {
	t.Parallel()
	for _, n := range []int{50, 1000, 1001, 5000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			hs := users(uint64(n)+99, n)
			whole, err := setOf(hs).MarshalBinary()
			require.NoError(t, err)
			var merged reach.Set
			for part := 0; part < n; part += 97 {
				merged.Merge(setOf(hs[part:min(part+97, n)]))
			}
			got, err := merged.MarshalBinary()
			require.NoError(t, err)
			assert.Equal(t, whole, got)
		})
	}
}

func TestEncodingRoundTrips(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 999, 1000, 1001, 20000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			s := setOf(users(uint64(n)+5, n))
			b, err := s.MarshalBinary()
			require.NoError(t, err)
			assert.Less(t, len(b), 6_100, "an encoding stays small: %d bytes", len(b))
			var got reach.Set
			require.NoError(t, got.UnmarshalBinary(b))
			assert.Equal(t, s.Count(), got.Count())
			assert.Equal(t, s.Exact(), got.Exact())
			again, err := got.MarshalBinary()
			require.NoError(t, err)
			assert.Equal(t, b, again)
		})
	}
}

func TestUnmarshalRefusesWhatNoSetEncodes(t *testing.T) {
	t.Parallel()
	exact, err := setOf(users(3, 3)).MarshalBinary()
	require.NoError(t, err)
	sketch, err := setOf(users(4, 2000)).MarshalBinary()
	require.NoError(t, err)
	swapped := append([]byte{exact[0]}, exact[7:13]...)
	swapped = append(swapped, exact[1:7]...)
	tooMany := append([]byte{1}, make([]byte, 6*(reach.ExactLimit+1))...)
	otherPrecision := append([]byte{}, sketch...)
	otherPrecision[2] = 14
	cases := []struct {
		name string
		b    []byte
	}{
		{name: "Empty", b: nil},
		{name: "UnknownForm", b: []byte{9, 1, 2}},
		{name: "CutFingerprint", b: exact[:len(exact)-1]},
		{name: "OutOfOrder", b: swapped},
		{name: "Repeated", b: append(append([]byte{1}, exact[1:7]...), exact[1:7]...)},
		{name: "PastTheLimit", b: tooMany},
		{name: "CutSketch", b: sketch[:len(sketch)-1]},
		{name: "OtherPrecision", b: otherPrecision},
		{name: "SketchHeaderOnly", b: sketch[:3]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := setOf(users(8, 5))
			err := s.UnmarshalBinary(c.b)
			require.ErrorIs(t, err, reach.ErrInvalidEncoding)
			assert.Equal(t, int64(5), s.Count(), "a refused encoding leaves the set as it was")
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, n := range []int{0, 2, 1500} {
		b, err := setOf(users(uint64(n), n)).MarshalBinary()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s reach.Set
		if err := s.UnmarshalBinary(b); err != nil {
			require.ErrorIs(t, err, reach.ErrInvalidEncoding)
			return
		}
		// Whatever decodes encodes back to the same bytes and counts.
		again, err := s.MarshalBinary()
		require.NoError(t, err)
		assert.Equal(t, b, again)
		assert.GreaterOrEqual(t, s.Count(), int64(0))
	})
}

func TestResetEmpties(t *testing.T) {
	t.Parallel()
	s := setOf(users(11, 5000))
	s.Reset()
	assert.True(t, s.Empty())
	assert.Equal(t, int64(0), s.Count())
}

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{100, 1000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			hs := users(1, n)
			s := setOf(hs)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s.Add(hs[i%n])
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		_ = reach.Hash("user-1234567890")
	}
}

// TestHolds checks that an exact set says which users it holds, and a
// sketch none: Holds never claims a user a set might not hold.
func TestHolds(t *testing.T) {
	t.Parallel()
	hs := users(21, reach.ExactLimit+1)
	s := new(reach.Set)
	assert.False(t, s.Holds(hs[0]), "an empty set holds no one")
	for i, h := range hs[:reach.ExactLimit] {
		s.Add(h)
		require.True(t, s.Holds(h), "user %d", i)
		require.True(t, s.Holds(h|0xffff), "a fingerprint ignores the low 16 bits")
		require.False(t, s.Holds(hs[i+1]), "user %d is not yet in", i+1)
	}
	s.Add(hs[reach.ExactLimit])
	require.False(t, s.Exact())
	for _, h := range hs {
		require.False(t, s.Holds(h), "a sketch cannot tell")
	}
}
