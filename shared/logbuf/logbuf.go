// Package logbuf puts a bounded buffer between a logger and its output, so
// that a slow or stopped reader of the output never blocks the code that
// logs, and so that a busy logger's lines go out many to a write. A server
// whose stdout was piped to a reader that stopped reading once hung every
// request, /healthz included, as soon as the pipe filled; and one write
// call per request line cost a busy server a tenth of its throughput.
package logbuf

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes is how much a Writer holds by default before it drops
// lines: some thousands of request lines, a few seconds of a busy server.
const DefaultMaxBytes = 1 << 20

// DefaultFlushInterval is how long a Writer lets lines gather, by default,
// before it writes them: short enough that a person watching the log sees
// a line at once and a crash loses little, long enough that a busy server
// writes hundreds of lines a call, not one.
const DefaultFlushInterval = 50 * time.Millisecond

// ErrClosed is returned by Write and Flush after Close.
var ErrClosed = errors.New("logbuf: closed")

// Writer is an io.Writer that never blocks on its output. Write copies each
// line into a bounded buffer and returns; one goroutine writes what has
// gathered to the output, in order, a flush interval after the first line
// of a batch arrives, or at once when a quarter of the buffer is taken, on
// Flush and on Close. When the buffer is full, a line is dropped whole and
// counted rather than waited for.
//
// Each Write is taken as one line (log/slog's handlers write a record in
// one call). A Writer is safe for concurrent use. Close it, or Flush it,
// to write out what is buffered: lines that only wait for the interval are
// lost if the process exits without either.
type Writer struct {
	out      io.Writer
	max      int
	interval time.Duration

	mu       sync.Mutex
	buf      []byte        // lines not yet handed to the output
	accepted uint64        // bytes ever buffered
	written  uint64        // bytes ever handed to the output
	progress chan struct{} // closed, and replaced, each time written grows
	closed   bool
	err      error // the output's first error

	// pending is signalled when the buffer takes its first line after a
	// write, now when the lines must go out without waiting for the
	// interval (Flush, or the buffer a quarter full), and stop is closed
	// by Close.
	pending chan struct{}
	now     chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

// Option configures a Writer.
type Option func(*Writer)

// WithMaxBytes sets how many bytes of lines a Writer holds before it drops
// new ones; DefaultMaxBytes if not set. A line longer than n is dropped.
func WithMaxBytes(n int) Option {
	return func(w *Writer) { w.max = n }
}

// WithFlushInterval sets how long lines gather before they are written;
// DefaultFlushInterval if not set. Zero writes each line as soon as the
// output takes it, which costs a write call, and waking the Writer's
// goroutine, for nearly every line of a busy logger.
func WithFlushInterval(d time.Duration) Option {
	return func(w *Writer) { w.interval = max(d, 0) }
}

// New returns a Writer that writes to out, and starts its goroutine.
func New(out io.Writer, opts ...Option) *Writer {
	w := &Writer{
		out:      out,
		max:      DefaultMaxBytes,
		interval: DefaultFlushInterval,
		progress: make(chan struct{}),
		pending:  make(chan struct{}, 1),
		now:      make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(w)
	}
	go w.drain()
	return w
}

// Write buffers p as one line and returns len(p) without waiting for the
// output. If the buffer has no room for p, p is dropped, counted in
// Dropped, and Write still returns len(p), nil: a logger must not fail, or
// retry, because its reader is slow. After Close it returns ErrClosed.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, ErrClosed
	}
	n := len(w.buf)
	if n+len(p) > w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	w.accepted += uint64(len(p))
	// Only the first line of a batch, and the line that fills a quarter of
	// the buffer, signal the goroutine: the lines between cost no more
	// than a copy.
	if n == 0 {
		signal(w.pending)
	}
	if quarter := w.max / 4; n < quarter && n+len(p) >= quarter {
		signal(w.now)
	}
	w.mu.Unlock()
	return len(p), nil
}

// signal sends on c, a channel of capacity 1, unless a signal already
// waits there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Dropped is how many lines were dropped because the buffer was full, since
// New. Export it as a counter: a rising count means the log's reader cannot
// keep up and lines are lost.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Flush has every line written before it handed to the output without
// waiting for the flush interval, and waits until they have been, or ctx
// ends. It returns the output's first error, if any. The local server
// flushes at shutdown, so that a clean stop loses no line.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.accepted
	if w.written < target {
		signal(w.now)
	}
	for w.written < target {
		progress := w.progress
		w.mu.Unlock()
		select {
		case <-progress:
			w.mu.Lock()
		case <-ctx.Done():
			w.mu.Lock()
			return ctx.Err()
		}
	}
	return w.err
}

// Close stops taking lines, writes out every line already buffered, however
// long the output takes, and returns the output's first error. No line
// written before Close is lost on a clean shutdown.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// drain hands the buffered lines to the output, all that have gathered at
// once, a flush interval after the first of them arrived or sooner when
// asked, until Close; then it writes what is left and returns.
func (w *Writer) drain() {
	defer close(w.done)
	timer := time.NewTimer(w.interval)
	timer.Stop()
	var spare []byte
	for {
		select {
		case <-w.pending:
			if w.interval > 0 {
				timer.Reset(w.interval)
				select {
				case <-timer.C:
				case <-w.now:
				case <-w.stop:
				}
				timer.Stop()
			}
		case <-w.now:
		case <-w.stop:
			// Close has stopped Write, so this takes the last lines.
			w.write(&spare)
			return
		}
		w.write(&spare)
	}
}

// write hands every buffered line to the output in one call. spare is the
// buffer of the previous write, reused for the lines that come next.
func (w *Writer) write(spare *[]byte) {
	w.mu.Lock()
	lines := w.buf
	if len(lines) == 0 {
		w.mu.Unlock()
		return
	}
	w.buf = (*spare)[:0]
	w.mu.Unlock()

	_, err := w.out.Write(lines)

	w.mu.Lock()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.written += uint64(len(lines))
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
	*spare = lines
}
