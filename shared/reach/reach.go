// Package reach counts distinct users in bounded memory: exactly up to
// ExactLimit users, and above that with a HyperLogLog sketch
// (github.com/axiomhq/hyperloglog) of precision 12, whose relative
// standard error is 1.04/√4096, about 1.6%.
//
// A Set holds users by fingerprint: the top 48 bits of the MetroHash64
// that the sketch library itself hashes with. Two of 1,000 users share a
// fingerprint with a probability under 2·10⁻⁹, so the exact range is exact
// in practice, and a Set never holds more than 6,000 bytes of them: the
// same order as the 4,096 registers of a sketch. Both bound a Set's memory
// whatever it is fed; see docs/performance.md.
//
// Sets merge exactly (a union of fingerprints while it fits, then the
// register-wise maximum), so merging the same Set twice changes nothing.
// That is what lets a DynamoDB aggregator merge a redelivered batch
// without inflating reach.
package reach

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/axiomhq/hyperloglog"
	metro "github.com/dgryski/go-metro"
)

// Precision is the sketch's precision: 2^12 one-byte registers.
const Precision = 12

// ExactLimit is the most users a Set counts exactly. It is
// adcount.ExactReach.
const ExactLimit = 1000

// fpBytes is the size of one fingerprint held by an exact Set.
const fpBytes = 6

// maxExactBytes bounds the exact list's capacity, so that its growth never
// doubles past what ExactLimit fingerprints take.
const maxExactBytes = ExactLimit * fpBytes

// metroSeed is the seed hyperloglog.Sketch.Insert hashes with; Hash uses
// it too, so a fingerprint lands in the register Insert would pick.
const metroSeed = 1337

// Hash returns the fingerprint of a user ID, the value Set.Add takes.
func Hash(userID string) uint64 {
	return metro.Hash64Str(userID, metroSeed) &^ 0xffff
}

// Set is a set of users' fingerprints, counted exactly while it holds at
// most ExactLimit of them and estimated after. Its zero value is an empty
// Set. It is not safe for concurrent use.
type Set struct {
	// exact holds the fingerprints, sorted, 6 big-endian bytes each,
	// until the Set passes ExactLimit; sk is nil until then, and exact
	// nil after.
	exact []byte
	sk    *hyperloglog.Sketch
}

// Add adds the fingerprint h (see Hash).
func (s *Set) Add(h uint64) {
	h &^= 0xffff
	if s.sk != nil {
		s.sk.InsertHash(h)
		return
	}
	i, found := s.search(h)
	if found {
		return
	}
	if s.exactLen() == ExactLimit {
		s.toSketch()
		s.sk.InsertHash(h)
		return
	}
	off := i * fpBytes
	s.grow()
	s.exact = s.exact[:len(s.exact)+fpBytes]
	copy(s.exact[off+fpBytes:], s.exact[off:])
	putFP(s.exact[off:], h)
}

// Holds reports whether s is exact and holds the fingerprint h (see
// Hash). A sketch cannot tell, and reports false. It costs what Add costs
// to find h, so a caller that adds one user to several sets, each holding
// all of a smaller one's users, can skip them all when the smallest holds
// the user already.
func (s *Set) Holds(h uint64) bool {
	if s.sk != nil {
		return false
	}
	_, found := s.search(h &^ 0xffff)
	return found
}

// Merge adds every user of o to s. Merging a Set that s already holds,
// wholly or in part, adds nothing for what it held.
func (s *Set) Merge(o *Set) {
	switch {
	case o == nil || o.Empty():
	case o.sk != nil:
		if s.sk == nil {
			own := s.exact
			s.sk = o.sk.Clone()
			s.exact = nil
			insertAll(s.sk, own)
			return
		}
		// Both sketches are made by this package, at Precision: Merge
		// cannot fail on a precision mismatch.
		_ = s.sk.Merge(o.sk)
	case s.sk != nil:
		insertAll(s.sk, o.exact)
	default:
		s.mergeExact(o.exact)
	}
}

// Count returns how many users s holds: exact while it is Exact, and an
// estimate after.
func (s *Set) Count() int64 {
	if s.sk != nil {
		return int64(s.sk.Estimate())
	}
	return int64(s.exactLen())
}

// Exact reports whether Count is exact.
func (s *Set) Exact() bool { return s.sk == nil }

// Empty reports whether s holds no user.
func (s *Set) Empty() bool { return s.sk == nil && len(s.exact) == 0 }

// Clone returns a copy of s that shares nothing with it.
func (s *Set) Clone() *Set {
	c := &Set{}
	if s.sk != nil {
		c.sk = s.sk.Clone()
	} else if len(s.exact) > 0 {
		c.exact = bytes.Clone(s.exact)
	}
	return c
}

// Reset empties s, keeping nothing.
func (s *Set) Reset() { *s = Set{} }

// Bytes returns about how many bytes s holds: fingerprints or registers.
func (s *Set) Bytes() int {
	if s.sk != nil {
		return 1 << Precision
	}
	return cap(s.exact)
}

// The encoding's first byte says which form follows.
const (
	formExact  = 1 // fingerprints, 6 big-endian bytes each, ascending
	formSketch = 2 // hyperloglog.Sketch's own dense encoding
)

// ErrInvalidEncoding is returned, wrapped, by UnmarshalBinary for bytes that
// no Set encodes to.
var ErrInvalidEncoding = errors.New("reach: invalid encoding")

// AppendBinary appends s's encoding to b. The encoding is canonical: two
// Sets holding the same users, or the same registers, encode to the same
// bytes, so a store may skip writing a Set whose encoding a merge left
// unchanged.
func (s *Set) AppendBinary(b []byte) ([]byte, error) {
	if s.sk != nil {
		b = append(b, formSketch)
		return s.sk.AppendBinary(b)
	}
	b = append(b, formExact)
	return append(b, s.exact...), nil
}

// MarshalBinary returns s's encoding; see AppendBinary.
func (s *Set) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// UnmarshalBinary replaces s with the Set that b encodes. It returns an
// error matching ErrInvalidEncoding, and leaves s unchanged, for bytes
// that AppendBinary cannot have written.
func (s *Set) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidEncoding)
	}
	switch b[0] {
	case formExact:
		fps := b[1:]
		if len(fps)%fpBytes != 0 || len(fps) > maxExactBytes {
			return fmt.Errorf("%w: %d bytes of fingerprints", ErrInvalidEncoding, len(fps))
		}
		for off := fpBytes; off < len(fps); off += fpBytes {
			if getFP(fps[off-fpBytes:]) >= getFP(fps[off:]) {
				return fmt.Errorf("%w: fingerprints out of order", ErrInvalidEncoding)
			}
		}
		*s = Set{}
		if len(fps) > 0 {
			s.exact = bytes.Clone(fps)
		}
		return nil
	case formSketch:
		// The library's dense header: version, precision, 0, 0 (dense).
		if len(b) < 5 || b[2] != Precision || b[4] != 0 {
			return fmt.Errorf("%w: not a dense sketch of precision %d", ErrInvalidEncoding, Precision)
		}
		sk := new(hyperloglog.Sketch)
		if err := sk.UnmarshalBinary(b[1:]); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidEncoding, err)
		}
		*s = Set{sk: sk}
		return nil
	}
	return fmt.Errorf("%w: form %d", ErrInvalidEncoding, b[0])
}

func (s *Set) exactLen() int { return len(s.exact) / fpBytes }

// search returns where h is, or would go, in the exact list.
func (s *Set) search(h uint64) (int, bool) {
	n := s.exactLen()
	i := sort.Search(n, func(i int) bool { return getFP(s.exact[i*fpBytes:]) >= h })
	return i, i < n && getFP(s.exact[i*fpBytes:]) == h
}

// grow makes room for one more fingerprint, doubling the capacity but
// never past maxExactBytes.
func (s *Set) grow() {
	if len(s.exact)+fpBytes <= cap(s.exact) {
		return
	}
	c := min(max(2*cap(s.exact), 8*fpBytes), maxExactBytes)
	next := make([]byte, len(s.exact), c)
	copy(next, s.exact)
	s.exact = next
}

// toSketch moves the exact list into a new sketch.
func (s *Set) toSketch() {
	s.sk = newSketch()
	insertAll(s.sk, s.exact)
	s.exact = nil
}

// mergeExact unites the exact list with another, moving to a sketch if
// the union passes ExactLimit.
func (s *Set) mergeExact(o []byte) {
	out := make([]byte, 0, min(len(s.exact)+len(o), maxExactBytes+fpBytes))
	a, b := s.exact, o
	for len(a) > 0 || len(b) > 0 {
		var next uint64
		switch {
		case len(b) == 0:
			next, a = getFP(a), a[fpBytes:]
		case len(a) == 0:
			next, b = getFP(b), b[fpBytes:]
		default:
			x, y := getFP(a), getFP(b)
			switch {
			case x < y:
				next, a = x, a[fpBytes:]
			case y < x:
				next, b = y, b[fpBytes:]
			default:
				next, a, b = x, a[fpBytes:], b[fpBytes:]
			}
		}
		if len(out) == maxExactBytes {
			s.exact = out
			s.toSketch()
			s.sk.InsertHash(next)
			insertAll(s.sk, a)
			insertAll(s.sk, b)
			return
		}
		out = out[:len(out)+fpBytes]
		putFP(out[len(out)-fpBytes:], next)
	}
	s.exact = out
}

func newSketch() *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(Precision, false)
	if err != nil {
		// Precision is a constant the library accepts; a test holds it.
		panic(err)
	}
	return sk
}

func insertAll(sk *hyperloglog.Sketch, fps []byte) {
	for off := 0; off < len(fps); off += fpBytes {
		sk.InsertHash(getFP(fps[off:]))
	}
}

func getFP(b []byte) uint64 {
	_ = b[fpBytes-1]
	return uint64(binary.BigEndian.Uint32(b))<<32 | uint64(binary.BigEndian.Uint16(b[4:]))<<16
}

func putFP(b []byte, h uint64) {
	binary.BigEndian.PutUint32(b, uint32(h>>32))
	binary.BigEndian.PutUint16(b[4:], uint16(h>>16))
}
