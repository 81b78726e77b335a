package memstore

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestDedupShardFillsWholeCacheLines guards the padding: shards sit side by
// side in an array, and a shard that is not a whole number of lines puts its
// lock on a line (or adjacent-line pair) that a neighbour writes too.
func TestDedupShardFillsWholeCacheLines(t *testing.T) {
	t.Parallel()
	size := unsafe.Sizeof(dedupShard{})
	assert.Zero(t, size%cacheLine, "dedupShard is %d bytes, not a multiple of %d", size, cacheLine)
}
