package logbuf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/logbuf"
)

// gate is an output that blocks every Write until it is opened, as a pipe
// does whose reader stopped reading, and records what it was given.
type gate struct {
	open    chan struct{}
	entered chan struct{} // receives once per Write that starts
	mu      sync.Mutex
	got     bytes.Buffer
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got.String()
}

func line(i int) string { return fmt.Sprintf("{\"msg\":\"line %04d\"}\n", i) }

func TestWriterNeverBlocksOnAStoppedReader(t *testing.T) {
	t.Parallel()
	out := newGate()
	w := logbuf.New(out, logbuf.WithMaxBytes(10*len(line(0))))

	// The first line is taken by the goroutine, which then blocks in the
	// output; ten more fill the buffer; the rest are dropped. No Write
	// waits for the output.
	n, err := w.Write([]byte(line(0)))
	require.NoError(t, err)
	require.Equal(t, len(line(0)), n)
	<-out.entered
	for i := 1; i < 100; i++ {
		n, err := w.Write([]byte(line(i)))
		require.NoError(t, err, "a full buffer is not the logger's error")
		require.Equal(t, len(line(i)), n)
	}
	assert.Equal(t, uint64(89), w.Dropped(), "lines beyond the buffer are dropped and counted")

	// Once the reader reads again, a clean shutdown writes every line
	// that was taken, in order, and nothing that was dropped.
	close(out.open)
	require.NoError(t, w.Close())
	var want strings.Builder
	for i := range 11 {
		want.WriteString(line(i))
	}
	assert.Equal(t, want.String(), out.String())
}

func TestWriterFlush(t *testing.T) {
	t.Parallel()
	t.Run("WaitsForEveryEarlierLine", func(t *testing.T) {
		t.Parallel()
		out := newGate()
		w := logbuf.New(out)
		for i := range 3 {
			_, err := w.Write([]byte(line(i)))
			require.NoError(t, err)
		}
		flushed := make(chan error, 1)
		go func() { flushed <- w.Flush(context.Background()) }()
		<-out.entered
		close(out.open)
		require.NoError(t, <-flushed)
		assert.Equal(t, line(0)+line(1)+line(2), out.String(), "Flush returns only after the lines reached the output")
		require.NoError(t, w.Close())
	})
	t.Run("GivesUpWithItsContext", func(t *testing.T) {
		t.Parallel()
		out := newGate()
		w := logbuf.New(out)
		_, err := w.Write([]byte(line(0)))
		require.NoError(t, err)
		<-out.entered
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, w.Flush(ctx), context.Canceled)
		close(out.open)
		require.NoError(t, w.Close())
	})
	t.Run("NothingBuffered", func(t *testing.T) {
		t.Parallel()
		w := logbuf.New(io.Discard)
		require.NoError(t, w.Flush(context.Background()))
		require.NoError(t, w.Close())
	})
}

// TestWriterConcurrentWriters: lines from many goroutines arrive whole,
// each exactly once, and Close loses none.
func TestWriterConcurrentWriters(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got bytes.Buffer
	w := logbuf.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return got.Write(p)
	}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				_, err := w.Write([]byte(line(g*1000 + i)))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())
	require.Zero(t, w.Dropped())
	lines := strings.SplitAfter(got.String(), "\n")
	lines = lines[:len(lines)-1]
	require.Len(t, lines, 1600)
	seen := map[string]bool{}
	for _, l := range lines {
		assert.Regexp(t, `^\{"msg":"line \d{4}"\}\n$`, l, "a whole line")
		assert.False(t, seen[l], "once")
		seen[l] = true
	}
}

func TestWriterAfterClose(t *testing.T) {
	t.Parallel()
	w := logbuf.New(io.Discard)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "a second Close is harmless")
	_, err := w.Write([]byte(line(0)))
	assert.ErrorIs(t, err, logbuf.ErrClosed)
}

// TestWriterReportsTheOutputsError: a failing output does not stop the
// writer, and Close says it failed.
func TestWriterReportsTheOutputsError(t *testing.T) {
	t.Parallel()
	broken := errors.New("broken pipe")
	w := logbuf.New(writerFunc(func([]byte) (int, error) { return 0, broken }))
	_, err := w.Write([]byte(line(0)))
	require.NoError(t, err)
	assert.ErrorIs(t, w.Close(), broken)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// recorder is an output that keeps every write call apart, so that a test
// sees how the lines were gathered.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) Writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

// TestWriterGathersLines runs in a synctest bubble, whose clock moves only
// when every goroutine of the test waits, so that the flush interval is
// crossed exactly, never slept through.
func TestWriterGathersLines(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	t.Run("ForTheIntervalIntoOneWrite", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			out := &recorder{}
			w := logbuf.New(out, logbuf.WithFlushInterval(interval))
			for i := range 3 {
				_, err := w.Write([]byte(line(i)))
				require.NoError(t, err)
			}
			time.Sleep(interval - time.Nanosecond)
			synctest.Wait()
			assert.Empty(t, out.Writes(), "nothing is written before the interval has passed")
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			assert.Equal(t, []string{line(0) + line(1) + line(2)}, out.Writes(), "the lines go out together once it has")

			// The interval starts again with the next line, not on a tick.
			time.Sleep(10 * interval)
			_, err := w.Write([]byte(line(3)))
			require.NoError(t, err)
			time.Sleep(interval - time.Nanosecond)
			synctest.Wait()
			assert.Len(t, out.Writes(), 1)
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			assert.Equal(t, []string{line(0) + line(1) + line(2), line(3)}, out.Writes())
			require.NoError(t, w.Close())
		})
	})
	t.Run("NotOnceAQuarterOfTheBufferIsTaken", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			out := &recorder{}
			// Five lines fill a quarter of the buffer.
			w := logbuf.New(out, logbuf.WithFlushInterval(interval), logbuf.WithMaxBytes(20*len(line(0))))
			for i := range 4 {
				_, err := w.Write([]byte(line(i)))
				require.NoError(t, err)
			}
			synctest.Wait()
			assert.Empty(t, out.Writes(), "four lines wait for the interval")
			_, err := w.Write([]byte(line(4)))
			require.NoError(t, err)
			synctest.Wait()
			assert.Equal(t, []string{line(0) + line(1) + line(2) + line(3) + line(4)}, out.Writes(), "the fifth sends them all at once")
			require.NoError(t, w.Close())
		})
	})
	t.Run("NotOnFlush", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			out := &recorder{}
			w := logbuf.New(out, logbuf.WithFlushInterval(interval))
			start := time.Now()
			_, err := w.Write([]byte(line(0)))
			require.NoError(t, err)
			require.NoError(t, w.Flush(context.Background()))
			assert.Zero(t, time.Since(start), "Flush does not wait for the interval")
			assert.Equal(t, []string{line(0)}, out.Writes())
			require.NoError(t, w.Close())
		})
	})
	t.Run("NotOnClose", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			out := &recorder{}
			w := logbuf.New(out, logbuf.WithFlushInterval(interval))
			start := time.Now()
			_, err := w.Write([]byte(line(0)))
			require.NoError(t, err)
			require.NoError(t, w.Close())
			assert.Zero(t, time.Since(start), "Close does not wait for the interval")
			assert.Equal(t, []string{line(0)}, out.Writes(), "and loses no line")
		})
	})
	t.Run("NotWithAZeroInterval", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			out := &recorder{}
			w := logbuf.New(out, logbuf.WithFlushInterval(0))
			_, err := w.Write([]byte(line(0)))
			require.NoError(t, err)
			synctest.Wait()
			assert.Equal(t, []string{line(0)}, out.Writes(), "written without any time passing")
			require.NoError(t, w.Close())
		})
	})
}
