package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// SnapshotFile is the name of the snapshot in the data directory.
const SnapshotFile = "snapshot"

// snapshotMagic is the first frame's payload. The last frame has sequence
// number trailerSeq and carries the count of frames between, so a snapshot
// cut short is never mistaken for a smaller one.
const (
	snapshotMagic = "adcount snapshot v1\n"
	trailerSeq    = math.MaxUint64
)

// SnapshotWriter adds payloads to a snapshot being written.
type SnapshotWriter struct {
	w     *bufio.Writer
	count uint64
	buf   []byte
}

// Add appends one payload of at most MaxPayload bytes.
func (sw *SnapshotWriter) Add(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("wal: snapshot record of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	sw.count++
	sw.buf = appendFrame(sw.buf[:0], sw.count, payload)
	_, err := sw.w.Write(sw.buf)
	return err
}

// WriteSnapshot replaces dir's snapshot with the payloads that write adds.
// The new snapshot is written to a temporary file, fsynced and renamed over
// the old one, and the directory is fsynced, so a crash leaves either the
// old snapshot or the new one, whole. fs is what it writes through; nil
// means the operating system.
func WriteSnapshot(fs FS, dir string, write func(*SnapshotWriter) error) (err error) {
	fs = orOS(fs)
	path := filepath.Join(dir, SnapshotFile)
	tmp := path + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	sw := &SnapshotWriter{w: bufio.NewWriterSize(f, 256<<10)}
	if _, err := sw.w.Write(appendFrame(nil, 0, []byte(snapshotMagic))); err != nil {
		return fmt.Errorf("wal: write %s: %w", tmp, err)
	}
	if err := write(sw); err != nil {
		return fmt.Errorf("wal: write %s: %w", tmp, err)
	}
	trailer := appendFrame(nil, trailerSeq, binary.LittleEndian.AppendUint64(nil, sw.count))
	if _, err := sw.w.Write(trailer); err != nil {
		return fmt.Errorf("wal: write %s: %w", tmp, err)
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("wal: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("wal: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wal: rename %s: %w", tmp, err)
	}
	return syncDir(fs, dir)
}

// ReadSnapshot passes each payload of dir's snapshot to read, in order. It
// reports false if there is no snapshot. Any damage, including a missing
// trailer, is a *CorruptError: a snapshot is only ever renamed into place
// whole, so a damaged one is never a crash's doing.
func ReadSnapshot(dir string, read func(payload []byte) error) (bool, error) {
	path := filepath.Join(dir, SnapshotFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	fr := &frameReader{r: bufio.NewReaderSize(f, 256<<10)}
	corrupt := func(reason string) error { return &CorruptError{File: path, Offset: fr.off, Reason: reason} }
	for i := uint64(0); ; i++ {
		at := fr.off
		seq, payload, err := fr.next()
		var torn *tornError
		var bad *CorruptError
		switch {
		case errors.Is(err, io.EOF):
			return true, corrupt("the file ends before its trailer")
		case errors.As(err, &torn):
			return true, &CorruptError{File: path, Offset: torn.offset, Reason: torn.reason}
		case errors.As(err, &bad):
			bad.File = path
			return true, bad
		case err != nil:
			return true, fmt.Errorf("wal: read %s: %w", path, err)
		}
		switch {
		case i == 0:
			if seq != 0 || !bytes.Equal(payload, []byte(snapshotMagic)) {
				return true, &CorruptError{File: path, Offset: at, Reason: "not a snapshot header"}
			}
		case seq == trailerSeq:
			if len(payload) != 8 || binary.LittleEndian.Uint64(payload) != i-1 {
				return true, &CorruptError{File: path, Offset: at, Reason: "the trailer's record count does not match"}
			}
			if _, _, err := fr.next(); !errors.Is(err, io.EOF) {
				return true, corrupt("data after the trailer")
			}
			return true, nil
		case seq != i:
			return true, &CorruptError{File: path, Offset: at, Reason: fmt.Sprintf("record %d where %d belongs", seq, i)}
		default:
			if err := read(payload); err != nil {
				return true, &CorruptError{File: path, Offset: at, Reason: err.Error()}
			}
		}
	}
}
