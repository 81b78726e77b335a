package memstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestSnapshotBackoff checks the waits between attempts of a snapshot that
// keeps failing.
func TestSnapshotBackoff(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		prev, every time.Duration
		want        time.Duration
	}{
		// The first failure waits the least.
		{"FirstFailure", 0, time.Minute, snapshotRetryMin},
		// Each later one waits twice as long as the last...
		{"Doubles", 4 * time.Second, time.Minute, 8 * time.Second},
		// ...up to the snapshot interval, and no further.
		{"CappedAtTheInterval", 40 * time.Second, time.Minute, time.Minute},
		{"StaysAtTheInterval", time.Minute, time.Minute, time.Minute},
		// An interval shorter than the first wait caps that too.
		{"ShortInterval", 0, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, snapshotBackoff(tc.prev, tc.every))
		})
	}
	// From the first failure, the waits are 1, 2, 4, ... s and reach the
	// interval in a few steps.
	var waits []time.Duration
	for d := time.Duration(0); len(waits) < 8; {
		d = snapshotBackoff(d, 30*time.Second)
		waits = append(waits, d)
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}, waits)
}
