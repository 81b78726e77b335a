package memstore

import (
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/adcount/impression-counter/shared/adcount"
)

// dedupShards is how many independently locked parts the dedup set has. A
// key picks its shard by its first byte, so concurrent impressions rarely
// wait for one another; 64 is far more than the cores this runs on.
const dedupShards = 64

// cacheLine is the stride that keeps two shards' locks apart. It is two
// 64-byte lines, not one: Intel's spatial prefetcher fetches lines in
// aligned pairs, and Apple's and some other arm64 cores have 128-byte lines,
// which is why sync.Pool and the runtime pad to 128 as well. At that stride
// two locks never share a line or a pair, whatever the array's alignment
// (Go does not align it to a line). The 64 shards cost 8 KiB.
const cacheLine = 128

// Expiries are kept as 32-bit millisecond offsets within a generation that
// spans two TTLs, which is what keeps a live key near 40 bytes; two of
// adcount.MaxDedupTTL fit with ample room.
var _ [math.MaxUint32 - 2*int64(adcount.MaxDedupTTL/time.Millisecond)]struct{}

// generation is one map of dedup keys. Every key in it was added at or after
// base, and its value is its expiry in milliseconds after base.
type generation struct {
	keys map[adcount.DedupKey]uint32
	base int64 // Unix milliseconds
}

func (g *generation) expiry(key adcount.DedupKey) (int64, bool) {
	off, ok := g.keys[key]
	return g.base + int64(off), ok
}

// dedupShard remembers when recently counted keys stop being duplicates.
//
// Memory is reclaimed by rotating two generations instead of scanning: keys
// are added to cur, and once a TTL has passed since cur began, cur becomes
// prev and the old prev is dropped whole. Every key in the dropped map was
// added more than a TTL ago, so none was live. A shard therefore holds at
// most the keys added in the last two TTLs, and lookups stay exact to the
// millisecond because they compare each key's own expiry.
//
// Shards sit side by side in an array and every impression locks one, so
// each is padded to a whole number of cacheLine strides: a shard's lock
// then never shares a cache line with its neighbour's.
type dedupShard struct {
	dedupState
	_ [cacheLine - unsafe.Sizeof(dedupState{})%cacheLine]byte
}

// dedupState is a dedupShard without its padding.
type dedupState struct {
	mu   sync.Mutex
	cur  generation
	prev generation
}

// admitLocked reports whether key counts at now, and if so remembers it
// until now+ttl. Both are in Unix milliseconds. A key is a duplicate while
// now is before its expiry, so a repeat exactly one TTL later counts again.
// The caller holds s.mu, and keeps holding it until the impression is
// applied or forgotten.
func (s *dedupShard) admitLocked(key adcount.DedupKey, now, ttl int64) bool {
	s.rotate(now, ttl)
	if exp, ok := s.cur.expiry(key); ok && now < exp {
		return false
	}
	if exp, ok := s.prev.expiry(key); ok {
		if now < exp {
			return false
		}
		delete(s.prev.keys, key)
	}
	// A clock stepped back before base would make the offset negative; the
	// key then expires at base, early by at most the size of the step.
	s.cur.keys[key] = uint32(min(max(now+ttl-s.cur.base, 0), math.MaxUint32))
	return true
}

// rotate drops the generation whose keys have all expired by now. Keys are
// only added after rotate has run, so cur holds only keys added before
// cur.base+ttl, which have all expired once now reaches cur.base+2*ttl.
func (s *dedupShard) rotate(now, ttl int64) {
	rotateAt := s.cur.base + ttl
	if s.cur.keys != nil && now < rotateAt {
		return
	}
	if s.cur.keys == nil || now >= rotateAt+ttl {
		s.prev = generation{}
		s.cur = generation{keys: make(map[adcount.DedupKey]uint32), base: now}
		return
	}
	s.prev = s.cur
	s.cur = generation{keys: make(map[adcount.DedupKey]uint32, len(s.prev.keys)), base: now}
}

// entries returns how many keys the shard holds, expired ones not yet
// dropped included.
func (s *dedupShard) entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cur.keys) + len(s.prev.keys)
}

// forget removes a key that admit just added, for an impression that could
// not be logged. The caller holds s.mu, as it has since the admit.
func (s *dedupShard) forget(key adcount.DedupKey) {
	delete(s.cur.keys, key)
}

// restore remembers key until expiry, or later if it already was, for a
// store being rebuilt from disk at now. Keys that have expired are left
// out. All restored keys go into one generation based a TTL before now:
// every live key was added after that, so the rotation invariant holds and
// the next admit makes them the previous generation. The caller is the
// only goroutine using the store.
func (s *dedupShard) restore(key adcount.DedupKey, expiry, now, ttl int64) {
	if expiry <= now {
		return
	}
	if s.cur.keys == nil {
		s.cur = generation{keys: make(map[adcount.DedupKey]uint32), base: now - ttl}
	}
	// An expiry beyond two TTLs of now (a clock stepped back, or a TTL
	// shortened since) is cut to the most the generation can hold.
	off := uint32(min(expiry-s.cur.base, 2*ttl))
	if old, ok := s.cur.keys[key]; !ok || off > old {
		s.cur.keys[key] = off
	}
}

// live appends the keys that are still duplicates at now, with their
// expiries, to dst.
func (s *dedupShard) live(dst []dedupEntry, now int64) []dedupEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range [...]*generation{&s.prev, &s.cur} {
		for k, off := range g.keys {
			if exp := g.base + int64(off); exp > now {
				dst = append(dst, dedupEntry{key: k, expiry: exp})
			}
		}
	}
	return dst
}
