package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/adcount/impression-counter/shared/syncbuf"
)

func TestConcurrentWritesStayWhole(t *testing.T) {
	t.Parallel()
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, strings.Repeat("line\n", 800), b.String(), "no write is torn or lost")
	assert.Equal(t, b.String(), string(b.Bytes()))
	b.Reset()
	assert.Empty(t, b.String())
}
