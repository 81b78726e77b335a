package memstore

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/adcount/impression-counter/shared/adcount"
)

func TestRing(t *testing.T) {
	t.Parallel()
	const day = adcount.DayBuckets
	cases := []struct {
		name string
		adds []int64 // buckets, one impression each
		w    adcount.BucketRange
		want int64
	}{
		// The plain case: everything inside the window.
		{"AllInside", []int64{10, 10, 11}, adcount.BucketRange{First: 0, Last: 20}, 3},
		// Buckets before the window's first are left out.
		{"BeforeWindow", []int64{10, 11, 12}, adcount.BucketRange{First: 11, Last: 20}, 2},
		// A window that reaches past head counts nothing there.
		{"AfterHead", []int64{5}, adcount.BucketRange{First: 5, Last: 5 + day}, 1},
		// Moving head forward by less than a day keeps the newer buckets.
		{"PartialAdvance", []int64{1, 2, 1 + day}, adcount.BucketRange{First: 0, Last: 1 + day}, 2},
		// A slot reused a day later holds only the new bucket's count.
		{"SlotReuse", []int64{3, 3, 3 + day}, adcount.BucketRange{First: 3 + day, Last: 3 + day}, 1},
		// A jump of more than a day clears everything.
		{"LongJump", []int64{1, 2, 3, 5 * day}, adcount.BucketRange{First: 0, Last: 5 * day}, 1},
		// A bucket older than the ring holds, after a clock stepped back,
		// is dropped rather than added to a newer bucket's slot.
		{"TooOld", []int64{2 * day, day}, adcount.BucketRange{First: 0, Last: 2 * day}, 1},
		// Negative buckets, before 1970, use the same slots arithmetic.
		{"Negative", []int64{-3, -2}, adcount.BucketRange{First: -3, Last: -3}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r minuteRing
			for _, b := range tc.adds {
				r.add(b, 1)
			}
			assert.Equal(t, tc.want, r.sum(tc.w.First, tc.w.Last))
		})
	}
}
