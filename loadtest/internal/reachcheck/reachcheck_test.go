package reachcheck_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

func TestBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		lo, hi      int64
		tol         float64
		least, most int64
	}{
		// Nothing reached: nothing to report.
		{"Nobody", 0, 0, 0.05, 0, 0},
		// Within the exact range, exactly the users reached.
		{"SmallIsExact", 10, 10, 0.05, 10, 10},
		// A key with no definite answer may or may not have reached its
		// user, so either count is right.
		{"UncertainWidens", 10, 12, 0.05, 10, 12},
		// The last population counted exactly.
		{"AtTheExactLimit", 1000, 1000, 0.05, 1000, 1000},
		// One more, and the service estimates: 5% either side, outward.
		{"JustAboveIsAnEstimate", 1001, 1001, 0.05, 950, 1052},
		{"LargeIsAnEstimate", 3000, 3000, 0.05, 2850, 3150},
		// Between 990 and 1010: exact at 990, an estimate of 1001 as low
		// as 950, one of 1010 as high as 1061.
		{"StraddlesTheExactLimit", 990, 1010, 0.05, 950, 1061},
		// A zero tolerance asks an estimate to be exact.
		{"ZeroTolerance", 3000, 3000, 0, 3000, 3000},
		// A population of millions.
		{"Millions", 10_000_000, 10_000_000, 0.05, 9_500_000, 10_500_000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			least, most := reachcheck.Bounds(tc.lo, tc.hi, tc.tol)
			assert.Equal(t, [2]int64{tc.least, tc.most}, [2]int64{least, most})
		})
	}
}

func TestFrequency(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		count, users int64
		want         float64
	}{
		// No users: 0, never a division by zero.
		{"NoUsers", 0, 0, 0},
		{"CountWithoutUsers", 5, 0, 0},
		// One impression a user.
		{"One", 7, 7, 1},
		// Rounded to two decimals, half away from zero: 13/8 is 1.625.
		{"HalfRoundsUp", 13, 8, 1.63},
		{"Thirds", 10, 3, 3.33},
		{"TwoThirds", 2, 3, 0.67},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, reachcheck.Frequency(tc.count, tc.users))
		})
	}
}
