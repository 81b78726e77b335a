package botfilter

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// DefaultCacheSize is how many recent verdicts a Filter keeps unless
// WithCacheSize says otherwise.
const DefaultCacheSize = 4096

// maxCachedLen is the longest User-Agent whose verdict is cached. Browsers'
// User-Agents are shorter (in-app browsers' are the longest, near 400
// bytes); the bound keeps the cache's memory at most DefaultCacheSize times
// about 560 bytes (about 2.3 MB), whatever the User-Agents sent.
const maxCachedLen = 512

// verdictCache is a direct-mapped cache of recent verdicts: each
// User-Agent hashes to one slot, and a newer User-Agent replaces the one
// there. Real traffic repeats a few hundred User-Agents, so most lookups
// hit, and a hit costs a hash and a comparison instead of a scan.
// Lookups and stores are single atomic operations, so it needs no lock.
type verdictCache struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[verdict]
}

type verdict struct {
	userAgent string
	bot       bool
}

// newVerdictCache returns a cache of size slots, rounded up to a power of
// two, or nil for size 0.
func newVerdictCache(size int) *verdictCache {
	if size == 0 {
		return nil
	}
	n := 1 << bits.Len(uint(size-1))
	return &verdictCache{
		seed:  maphash.MakeSeed(),
		mask:  uint64(n - 1),
		slots: make([]atomic.Pointer[verdict], n),
	}
}

// slot returns the slot that userAgent's verdict lives in.
func (c *verdictCache) slot(userAgent string) *atomic.Pointer[verdict] {
	return &c.slots[maphash.String(c.seed, userAgent)&c.mask]
}
