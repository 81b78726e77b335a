package dynamotest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func str(v string) attr { return attr{S: &v} }
func num(v string) attr { return attr{N: &v} }

// TestItemSize checks the item sizes DynamoDB documents, which billing
// rests on.
func TestItemSize(t *testing.T) {
	t.Parallel()
	yes := true
	cases := []struct {
		name string
		it   item
		want int
	}{
		// Why: a name and a string count their UTF-8 bytes.
		{"String", item{"ab": str("héllo")}, 2 + 6},
		// Why: a number is a byte per two significant digits, plus one;
		// zeros at either end do not count.
		{"Number", item{"n": num("12345")}, 1 + 3 + 1},
		{"NumberZeros", item{"n": num("-000120.0500")}, 1 + 3 + 1},
		{"NumberExponent", item{"n": num("1.5E+10")}, 1 + 1 + 1},
		{"Zero", item{"n": num("0")}, 1 + 1 + 1},
		// Why: a marker's expiry, Unix milliseconds, is 13 digits.
		{"UnixMs", item{"expMs": num("1767225600123")}, 5 + 7 + 1},
		{"BoolAndNull", item{"b": {BOOL: &yes}, "z": {NULL: &yes}}, 2 + 2},
		{"Binary", item{"b": {B: []byte{1, 2, 3}}}, 1 + 3},
		{"Sets", item{"ss": {SS: []string{"a", "bc"}}, "ns": {NS: []string{"1", "22"}}}, 2 + 3 + 2 + 2 + 2},
		// Why: a list or map is 3 bytes plus each element and 1 byte
		// for each.
		{"List", item{"l": {L: []attr{str("ab"), num("1")}}}, 1 + 3 + (1 + 2) + (1 + 2)},
		{"Map", item{"m": {M: map[string]attr{"k": str("ab")}}}, 1 + 3 + (1 + 1 + 2)},
		{"Empty", item{"l": {L: []attr{}}}, 1 + 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, itemSize(tc.it))
		})
	}
}

// TestUnits checks the rounding of sizes to units.
func TestUnits(t *testing.T) {
	t.Parallel()
	for size, want := range map[int]int64{0: 1, 1: 1, 1024: 1, 1025: 2, 4096: 4} {
		assert.Equal(t, want, writeUnits(size), "write of %d bytes", size)
	}
	for size, want := range map[int]float64{0: 1, 4096: 1, 4097: 2} {
		assert.Equal(t, want, readUnits(size), "read of %d bytes", size)
	}
}

// TestSameItem checks when a write counts as no change: the same values,
// however spelt.
func TestSameItem(t *testing.T) {
	t.Parallel()
	assert.True(t, sameItem(nil, nil))
	assert.True(t, sameItem(item{"n": num("1.0")}, item{"n": num("1")}))
	assert.True(t, sameItem(item{"s": {SS: []string{"a", "b"}}}, item{"s": {SS: []string{"b", "a"}}}))
	assert.False(t, sameItem(item{"n": num("1")}, item{"n": num("2")}))
	assert.False(t, sameItem(item{"n": num("1")}, nil))
	assert.False(t, sameItem(item{"a": str("1")}, item{"b": str("1")}))
	assert.False(t, sameItem(item{"a": str(strings.Repeat("x", 2))}, item{"a": str("x")}))
}
