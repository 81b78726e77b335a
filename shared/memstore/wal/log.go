package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by appends after Close.
var ErrClosed = errors.New("wal: log is closed")

// Defaults for Options fields left zero.
const (
	DefaultFsyncBatch   = 1024
	DefaultSegmentBytes = 64 << 20
)

// segmentMagic opens every segment's first frame, so that a stray file is
// never read as a log.
const segmentMagic = "adcount wal v1\n"

// Options tune the log. The zero value is usable.
type Options struct {
	// FsyncInterval is how long the log waits for more records after the
	// first one of a batch arrives before it writes and fsyncs the batch.
	// Zero starts each fsync as soon as the previous one has finished;
	// records that arrive during an fsync then share the next one.
	FsyncInterval time.Duration
	// FsyncBatch is how many pending records end the wait early.
	// Zero means DefaultFsyncBatch.
	FsyncBatch int
	// SegmentBytes is the segment size past which Full signals that a
	// snapshot is due. Zero means DefaultSegmentBytes.
	SegmentBytes int64
	// Logger receives the warning about a torn final record. Nil means
	// slog.Default().
	Logger *slog.Logger
	// FS is what the log writes through. Nil means the operating system.
	FS FS
	// Durable is the last record that the caller knows was durable, such
	// as one its snapshot saw durable. Open refuses a log that ends before
	// it, or before the log's own watermark, with a *LossError.
	Durable uint64
	// AcceptLoss lets Open start from a log that ends before what was
	// durable, logging what is lost, instead of refusing with a
	// *LossError. It is for an operator who has decided that the
	// remaining data is better than none.
	AcceptLoss bool
}

// Commit is the fsync that makes a group of appended records durable.
type Commit struct {
	done chan struct{}
	err  error
}

// Wait blocks until the records are durable, or returns why they may not
// be. It does not take a context: the outcome is decided by the fsync, and
// answering before it would be a guess.
func (c *Commit) Wait() error {
	<-c.done
	return c.err
}

// Done is closed when the outcome is known; Wait then returns it at once.
// It lets a caller stop waiting when its context ends.
func (c *Commit) Done() <-chan struct{} { return c.done }

func doneCommit(err error) *Commit {
	c := &Commit{done: make(chan struct{}), err: err}
	close(c.done)
	return c
}

var durableCommit = doneCommit(nil)

// Log is an append-only sequence of records, numbered from 1, kept in
// segment files named for their first record's number. It is safe for
// concurrent use.
//
// Appends copy the record into a memory buffer under one mutex and return
// the Commit of the batch they joined. One goroutine writes and fsyncs each
// batch in turn, so one fsync covers every record appended while the
// previous one ran: this group commit is what lets durability cost one disk
// flush per batch instead of per record.
type Log struct {
	dir  string
	opts Options

	mu      sync.Mutex
	buf     []byte  // framed records not yet written
	pending *Commit // the batch buf belongs to, nil when buf is empty
	written *Commit // the batch last handed to the flushing goroutine
	count   int     // records in buf
	next    uint64  // number the next record gets
	err     error   // sticky: after a failed write every append fails
	closed  bool

	durable atomic.Uint64 // the last record known durable

	kick    chan struct{}
	rotates chan chan rotation
	full    chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	// Owned by the flushing goroutine.
	fs     FS
	f      File
	wm     File // the watermark file
	wmWarn bool // a failed watermark write has been logged
	wmBuf  []byte
	first  uint64 // number of the current segment's first record
	size   int64  // the current segment's durable size
	spare  []byte
}

type rotation struct {
	cut uint64
	err error
}

// Open replays the segments in dir, in order, through apply, then opens a
// new segment for appends. after is the number of the last record that an
// already loaded snapshot covers (0 without one): the log must continue from
// there without a gap. apply sees every record, including ones the snapshot
// already covers, and decides itself what to skip.
//
// A damaged frame anywhere but at the end of the last segment is a
// *CorruptError naming the file and offset. At the end of the last segment,
// a frame cut short by a crash, or a damaged frame followed only by zero
// bytes, was never acknowledged if it lies past the watermark, because its
// fsync had not returned: it is cut off the file and logged as a warning.
// After a failed write (see Append), everything past the watermark is cut
// off the same way, whatever it holds. A log that ends before the
// watermark or opts.Durable has lost acknowledged records: that is a
// *LossError, unless opts.AcceptLoss.
func Open(dir string, after uint64, opts Options, apply func(lsn uint64, payload []byte) error) (*Log, error) {
	if opts.FsyncBatch <= 0 {
		opts.FsyncBatch = DefaultFsyncBatch
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fs := orOS(opts.FS)
	wm, hasWM, err := readWatermark(dir)
	if err != nil {
		if !opts.AcceptLoss {
			return nil, err
		}
		opts.Logger.Warn("wal: ignoring a damaged watermark, as loss is accepted", "err", err)
		hasWM = false
	}
	need := max(opts.Durable, after)
	if hasWM {
		need = max(need, wm.lsn)
	}
	segs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	last, prevSeg := after, uint64(0)
	lastFile := filepath.Join(dir, "(no log file)")
	if hasWM {
		lastFile = filepath.Join(dir, segmentName(wm.first)) + ", which is missing"
	}
	for i, seg := range segs {
		if seg.first > last+1 {
			return nil, fmt.Errorf("wal: %s starts at record %d but the records before it end at %d: a log file is missing", seg.path, seg.first, last)
		}
		if seg.first <= after && i+1 < len(segs) && segs[i+1].first <= after+1 {
			continue // wholly covered by the snapshot, left by a crash before its removal
		}
		isLast := i == len(segs)-1
		var limit int64 = -1
		if isLast && hasWM && wm.failed && wm.first == seg.first {
			limit = wm.size // written after a failed write: never acknowledged
		}
		segLast, torn, err := replaySegment(seg, prevSeg, limit, apply)
		var corrupt *CorruptError
		if isLast && opts.AcceptLoss && errors.As(err, &corrupt) {
			// The operator accepts losing what follows the damage.
			torn, err = &tornError{corrupt.Offset, corrupt.Reason}, nil
		}
		if err != nil {
			return nil, err
		}
		if segLast < seg.first && prevSeg > 0 && seg.first <= prevSeg {
			// A segment without records that overlaps the one before: a
			// rotation that failed after creating it. Its name is free.
			if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("wal: remove empty %s: %w", seg.path, err)
			}
			continue
		}
		switch {
		case torn != nil && !isLast:
			return nil, &CorruptError{File: seg.path, Offset: torn.offset, Reason: torn.reason + " in a log file that is not the last"}
		case torn != nil && segLast < need && !opts.AcceptLoss:
			return nil, fmt.Errorf("%w; the first damage is at offset %d: %s", &LossError{Dir: dir, File: seg.path, Have: max(segLast, after), Want: need}, torn.offset, torn.reason)
		case torn != nil:
			if err := cutTornTail(seg, torn, segLast < need, opts.Logger); err != nil {
				return nil, err
			}
		}
		last, lastFile, prevSeg = max(segLast, last), seg.path, segLast
	}
	if last < need {
		loss := &LossError{Dir: dir, File: lastFile, Have: last, Want: need}
		if !opts.AcceptLoss {
			return nil, loss
		}
		opts.Logger.Error("wal: starting without acknowledged records, as loss is accepted", "err", loss.Error())
	}
	// A last segment without records is replaced by the new one, which
	// has the same name.
	if n := len(segs); n > 0 && segs[n-1].first == last+1 {
		if err := os.Remove(segs[n-1].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("wal: remove empty %s: %w", segs[n-1].path, err)
		}
	}
	l := &Log{
		dir:     dir,
		fs:      fs,
		first:   last + 1,
		opts:    opts,
		next:    last + 1,
		kick:    make(chan struct{}, 1),
		rotates: make(chan chan rotation),
		full:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	l.durable.Store(last)
	wmPath := filepath.Join(dir, WatermarkFile)
	if l.wm, err = fs.OpenFile(wmPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", wmPath, err)
	}
	if l.f, l.size, err = createSegment(fs, dir, last+1); err != nil {
		l.wm.Close()
		return nil, err
	}
	// The watermark now describes the new segment: what the log holds after
	// any cut above, so that an accepted loss is not refused again.
	if err := l.mark(true); err != nil {
		l.f.Close()
		l.wm.Close()
		return nil, err
	}
	go l.flushLoop()
	return l, nil
}

type segment struct {
	path  string
	first uint64
}

func segmentName(first uint64) string { return fmt.Sprintf("wal-%020d.log", first) }

// segments lists dir's segment files in record order.
func segments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var segs []segment
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "wal-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		num := strings.TrimSuffix(strings.TrimPrefix(name, "wal-"), ".log")
		first, err := strconv.ParseUint(num, 10, 64)
		if err != nil || name != segmentName(first) {
			return nil, fmt.Errorf("wal: %s: unexpected log file name", filepath.Join(dir, name))
		}
		segs = append(segs, segment{path: filepath.Join(dir, name), first: first})
	}
	slices.SortFunc(segs, func(a, b segment) int { return compareUint(a.first, b.first) })
	return segs, nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// replaySegment applies one segment's records and returns the number of its
// last one and, if the segment ends in a torn frame, where. prev is the
// last record before the segment; a record at or below it is corruption.
// A limit of 0 or more stops reading there: what follows is torn whatever
// it holds.
func replaySegment(seg segment, prev uint64, limit int64, apply func(uint64, []byte) error) (uint64, *tornError, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return 0, nil, fmt.Errorf("wal: open %s: %w", seg.path, err)
	}
	defer f.Close()
	var r io.Reader = f
	size := int64(-1)
	if limit >= 0 {
		info, err := f.Stat()
		if err != nil {
			return 0, nil, fmt.Errorf("wal: stat %s: %w", seg.path, err)
		}
		size, r = info.Size(), io.LimitReader(f, limit)
	}
	fr := &frameReader{r: bufio.NewReaderSize(r, 256<<10)}
	lsn := seg.first - 1
	for i := 0; ; i++ {
		seq, payload, err := fr.next()
		var torn *tornError
		var corrupt *CorruptError
		switch {
		case errors.Is(err, io.EOF) && i == 0:
			return lsn, &tornError{0, "empty file"}, nil
		case errors.Is(err, io.EOF) && size > fr.off:
			return lsn, &tornError{fr.off, "written after a write to the log failed"}, nil
		case errors.Is(err, io.EOF):
			return lsn, nil, nil
		case errors.As(err, &torn):
			return lsn, torn, nil
		case errors.As(err, &corrupt):
			corrupt.File = seg.path
			return lsn, nil, corrupt
		case err != nil:
			return 0, nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
		}
		if i == 0 {
			if err := checkSegmentHeader(seq, payload, seg.first); err != nil {
				return lsn, nil, &CorruptError{File: seg.path, Offset: 0, Reason: err.Error()}
			}
			continue
		}
		if seq != lsn+1 || seq <= prev {
			return lsn, nil, &CorruptError{File: seg.path, Offset: fr.off, Reason: fmt.Sprintf("record %d follows record %d", seq, max(lsn, prev))}
		}
		lsn = seq
		if err := apply(seq, payload); err != nil {
			return 0, nil, fmt.Errorf("wal: %s: record %d: %w", seg.path, seq, err)
		}
	}
}

func checkSegmentHeader(seq uint64, payload []byte, first uint64) error {
	magic, rest, ok := bytes.Cut(payload, []byte("\n"))
	if !ok || string(magic)+"\n" != segmentMagic || seq != 0 || len(rest) != 8 {
		return errors.New("not a log segment header")
	}
	if got := binary.LittleEndian.Uint64(rest); got != first {
		return fmt.Errorf("header says the first record is %d, the name says %d", got, first)
	}
	return nil
}

// cutTornTail truncates the last segment to its last whole frame, or
// removes it if not even its header survived, and says so loudly: records
// are being dropped. lost says whether some of them had been acknowledged,
// which only an operator's AcceptLoss lets happen.
func cutTornTail(seg segment, torn *tornError, lost bool, logger *slog.Logger) error {
	info, err := os.Stat(seg.path)
	if err != nil {
		return fmt.Errorf("wal: stat %s: %w", seg.path, err)
	}
	msg := "wal: dropping a torn record at the end of the log: a crash or a failed write interrupted it, so it was never acknowledged"
	if lost {
		msg = "wal: dropping damaged records at the end of the log, including acknowledged ones, as loss is accepted"
	}
	logger.Warn(msg, "file", seg.path, "offset", torn.offset, "bytes_dropped", info.Size()-torn.offset, "reason", torn.reason)
	if torn.offset == 0 {
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("wal: remove torn %s: %w", seg.path, err)
		}
		return syncDir(OS, filepath.Dir(seg.path))
	}
	f, err := os.OpenFile(seg.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", seg.path, err)
	}
	defer f.Close()
	if err := f.Truncate(torn.offset); err != nil {
		return fmt.Errorf("wal: truncate %s: %w", seg.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: sync %s: %w", seg.path, err)
	}
	return nil
}

// createSegment creates the segment whose first record is first, with its
// header frame written and the file and directory entry durable. A file of
// that name can only be left by a rotation that failed before any record
// went into it, so it is replaced. On failure nothing is left behind, as far
// as the file system lets.
func createSegment(fs FS, dir string, first uint64) (File, int64, error) {
	path := filepath.Join(dir, segmentName(first))
	f, err := fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: create %s: %w", path, err)
	}
	header := appendFrame(nil, 0, binary.LittleEndian.AppendUint64([]byte(segmentMagic), first))
	_, err = f.Write(header)
	if err != nil {
		err = fmt.Errorf("wal: write %s: %w", path, err)
	} else if err = f.Sync(); err != nil {
		err = fmt.Errorf("wal: sync %s: %w", path, err)
	} else {
		err = syncDir(fs, dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, 0, err
	}
	return f, int64(len(header)), nil
}

func syncDir(fs FS, dir string) error {
	d, err := fs.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync directory %s: %w", dir, err)
	}
	return nil
}

// Append adds a record and returns its number and the Commit that will make
// it durable. The record is in the log's order from the moment Append
// returns, so a caller that holds a lock across Append orders its records
// the way it orders its state changes. Append copies payload and does not
// allocate, apart from one Commit per batch. After a failed write or Close
// it returns an error and adds nothing.
func (l *Log) Append(payload []byte) (uint64, *Commit, error) {
	if len(payload) > MaxPayload {
		return 0, nil, fmt.Errorf("wal: record of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	l.mu.Lock()
	if err := l.unusable(); err != nil {
		l.mu.Unlock()
		return 0, nil, err
	}
	lsn := l.next
	l.next++
	l.buf = appendFrame(l.buf, lsn, payload)
	l.count++
	if l.pending == nil {
		l.pending = &Commit{done: make(chan struct{})}
	}
	c := l.pending
	wake := l.count == 1 || l.count == l.opts.FsyncBatch
	l.mu.Unlock()
	if wake {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return lsn, c, nil
}

func (l *Log) unusable() error {
	if l.err != nil {
		return fmt.Errorf("wal: the log failed and takes no more writes; restart to recover what was durable: %w", l.err)
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// Barrier returns the Commit after which every record appended so far is
// durable.
func (l *Log) Barrier() *Commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.unusable(); err != nil && !errors.Is(err, ErrClosed) {
		return doneCommit(err)
	}
	switch {
	case l.pending != nil:
		return l.pending
	case l.written != nil:
		return l.written // batches finish in order: this one is the last
	}
	return durableCommit
}

// Err returns why the log takes no more writes, or nil while it does. A
// closed log is not an error here.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.unusable(); !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Durable returns the number of the last record known to be durable.
func (l *Log) Durable() uint64 { return l.durable.Load() }

// Full delivers a value when the current segment has grown past
// Options.SegmentBytes, to say that a snapshot and Rotate are due.
func (l *Log) Full() <-chan struct{} { return l.full }

// Rotate makes every record appended so far durable in the current segment
// and starts a new one. It returns the number of the last record in the
// older segments, which RemoveThrough may delete once a snapshot covers
// them.
func (l *Log) Rotate() (uint64, error) {
	reply := make(chan rotation, 1)
	select {
	case l.rotates <- reply:
	case <-l.stopped:
		return 0, ErrClosed
	}
	r := <-reply
	return r.cut, r.err
}

// RemoveThrough deletes the segments whose records are all numbered cut or
// lower. Call it only after a snapshot that covers them is durable.
func (l *Log) RemoveThrough(cut uint64) error {
	segs, err := segments(l.dir)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		if i+1 < len(segs) && segs[i+1].first <= cut+1 {
			if err := os.Remove(seg.path); err != nil {
				return fmt.Errorf("wal: remove %s: %w", seg.path, err)
			}
		}
	}
	return syncDir(l.fs, l.dir)
}

// Close writes and fsyncs what is pending, stops the flushing goroutine and
// closes the segment. Later appends fail with ErrClosed. It is safe to call
// more than once.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		close(l.stop)
	}
	<-l.stopped
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// flushLoop is the one goroutine that writes the log files.
func (l *Log) flushLoop() {
	defer close(l.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-l.kick:
		case reply := <-l.rotates:
			reply <- l.rotate()
			continue
		case <-l.stop:
			l.flush()
			if l.Err() == nil {
				_ = l.mark(true) // best effort, as mark logs
			}
			if err := l.f.Close(); err != nil {
				l.fail(fmt.Errorf("wal: close segment: %w", err))
			}
			l.wm.Close()
			return
		}
		if l.opts.FsyncInterval > 0 && !l.batchFull() {
			timer.Reset(l.opts.FsyncInterval)
			select {
			case <-l.kick:
			case <-timer.C:
			case <-l.stop:
			}
			timer.Stop()
		}
		l.flush()
	}
}

func (l *Log) batchFull() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count >= l.opts.FsyncBatch
}

// flush writes and fsyncs the pending batch and releases its waiters. It
// returns the number of the last record appended.
//
// Once a write or fsync has failed, no later batch is written: after a
// failed fsync the kernel may have dropped the dirty pages it could not
// write, so a later fsync that succeeds proves nothing about them
// (PostgreSQL's "fsyncgate" rule). The log is failed from that byte on.
func (l *Log) flush() uint64 {
	l.mu.Lock()
	buf, c, last := l.buf, l.pending, l.next-1
	l.buf, l.pending, l.count = l.spare[:0], nil, 0
	if c != nil {
		l.written = c
	}
	err := l.err
	l.mu.Unlock()
	l.spare = buf
	if c == nil {
		return last
	}
	if err != nil {
		err = fmt.Errorf("wal: not written, as an earlier write failed: %w", err)
	} else {
		err = l.write(buf, last)
	}
	if cap(l.spare) > 4<<20 {
		l.spare = nil // do not keep a burst's buffer forever
	}
	c.err = err
	close(c.done)
	if err == nil {
		// After the waiters are released: the watermark may lag the log,
		// never lead it.
		_ = l.mark(false) // best effort, as mark logs
	}
	return last
}

// write writes one batch, whose last record is last, and fsyncs it.
func (l *Log) write(buf []byte, last uint64) error {
	_, err := l.f.Write(buf)
	if err != nil {
		return l.failWrite(fmt.Errorf("wal: write %s: %w", l.f.Name(), err))
	}
	if err := l.f.Sync(); err != nil {
		return l.failWrite(fmt.Errorf("wal: sync %s: %w", l.f.Name(), err))
	}
	l.size += int64(len(buf))
	l.durable.Store(last)
	if l.size > l.opts.SegmentBytes {
		select {
		case l.full <- struct{}{}:
		default:
		}
	}
	return nil
}

// failWrite fails the log for good and leaves the files as a restart
// should find them: the segment is cut back to its last durable byte, and
// the watermark says that a write failed there, so that the next start
// drops whatever the failed write left past it, even if the cut fails.
func (l *Log) failWrite(err error) error {
	l.fail(err)
	cut := l.f.Truncate(l.size)
	if cut == nil {
		cut = l.f.Sync()
	}
	if cut != nil {
		l.opts.Logger.Error("wal: could not cut the log back to its last durable record; the next start drops what follows it",
			"file", l.f.Name(), "offset", l.size, "err", cut)
	}
	if werr := l.writeMark(watermark{first: l.first, size: l.size, lsn: l.durable.Load(), failed: true}, true); werr != nil {
		l.opts.Logger.Error("wal: could not record the failed write in the watermark", "err", werr)
	}
	return err
}

// mark records the current segment's durable size in the watermark, with
// an fsync if sync. A failure is logged once and otherwise ignored: the
// watermark only guards against losing what the log holds, and an old one
// guards less, never wrongly.
func (l *Log) mark(sync bool) error {
	err := l.writeMark(watermark{first: l.first, size: l.size, lsn: l.durable.Load()}, sync)
	if err != nil && !l.wmWarn {
		l.wmWarn = true
		l.opts.Logger.Warn("wal: could not update the watermark; a damaged log tail is detected only up to its last update", "err", err)
	}
	return err
}

func (l *Log) writeMark(w watermark, sync bool) error {
	l.wmBuf = w.encode(l.wmBuf[:0])
	if _, err := l.wm.WriteAt(l.wmBuf, 0); err != nil {
		return fmt.Errorf("wal: write %s: %w", l.wm.Name(), err)
	}
	if sync {
		if err := l.wm.Sync(); err != nil {
			return fmt.Errorf("wal: sync %s: %w", l.wm.Name(), err)
		}
	}
	return nil
}

func (l *Log) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// rotate starts a new segment. A failure to create it, such as running out
// of file descriptors or a directory made read-only for a while, does not
// fail the log: the current segment is intact and appends go on into it,
// and the caller retries later.
func (l *Log) rotate() rotation {
	cut := l.flush()
	if err := l.Err(); err != nil {
		return rotation{err: err}
	}
	if cut+1 == l.first {
		return rotation{cut: cut} // the current segment has no records yet
	}
	f, size, err := createSegment(l.fs, l.dir, cut+1)
	if err != nil {
		return rotation{err: err}
	}
	if err := l.f.Close(); err != nil {
		// Every byte of it is fsynced; only the descriptor is in doubt.
		l.opts.Logger.Warn("wal: close a full log segment", "file", l.f.Name(), "err", err)
	}
	l.f, l.size, l.first = f, size, cut+1
	_ = l.mark(true) // best effort, as mark logs
	return rotation{cut: cut}
}
