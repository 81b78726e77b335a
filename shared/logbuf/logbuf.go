// Package logbuf puts a bounded buffer between a logger and its output, so
// that a slow or stopped reader of the output never blocks the code that
// logs. A server whose stdout was piped to a reader that stopped reading
// once hung every request, /healthz included, as soon as the pipe filled.
package logbuf

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultMaxBytes is how much a Writer holds by default before it drops
// lines: some thousands of request lines, a few seconds of a busy server.
const DefaultMaxBytes = 1 << 20

// ErrClosed is returned by Write and Flush after Close.
var ErrClosed = errors.New("logbuf: closed")

// Writer is an io.Writer that never blocks on its output. Write copies each
// line into a bounded buffer and returns; one goroutine writes what has
// gathered to the output, in order, as soon as the output takes it, so a
// busy logger's lines go out many to a write. When the buffer is full, a
// line is dropped whole and counted rather than waited for.
//
// Each Write is taken as one line (log/slog's handlers write a record in
// one call). A Writer is safe for concurrent use. Close it to write out
// what is buffered.
type Writer struct {
	out io.Writer
	max int

	mu       sync.Mutex
	buf      []byte        // lines not yet handed to the output
	accepted uint64        // bytes ever buffered
	written  uint64        // bytes ever handed to the output
	progress chan struct{} // closed, and replaced, each time written grows
	closed   bool
	err      error // the output's first error

	wake    chan struct{}
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

// New returns a Writer that writes to out, and starts its goroutine.
func New(out io.Writer, opts ...Option) *Writer {
	w := &Writer{
		out:      out,
		max:      DefaultMaxBytes,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
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
	if len(w.buf)+len(p) > w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	w.accepted += uint64(len(p))
	// Sent under the lock, so that Close cannot close wake in between.
	select {
	case w.wake <- struct{}{}:
	default: // the goroutine is already due to look
	}
	w.mu.Unlock()
	return len(p), nil
}

// Dropped is how many lines were dropped because the buffer was full, since
// New. Export it as a counter: a rising count means the log's reader cannot
// keep up and lines are lost.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Flush waits until every line written before it has been handed to the
// output, or ctx ends. It returns the output's first error, if any. The
// local server flushes at shutdown, so that a clean stop loses no line.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.accepted
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
		close(w.wake)
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// drain hands the buffered lines to the output, all that have gathered at
// once, until Close; then it writes what is left and returns.
func (w *Writer) drain() {
	defer close(w.done)
	var spare []byte
	for {
		_, open := <-w.wake
		for {
			w.mu.Lock()
			lines := w.buf
			if len(lines) == 0 {
				w.mu.Unlock()
				break
			}
			w.buf = spare[:0]
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
			spare = lines
		}
		if !open {
			return
		}
	}
}
