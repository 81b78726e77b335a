package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WatermarkFile is the name of the file in the data directory that says
// how far the log was durable.
const WatermarkFile = "watermark"

const watermarkMagic = "adcount watermark v1\n"

// watermark is how far the log was durable: after a process crash, a log
// that ends before it has lost acknowledged records, which a torn write
// cannot explain. It is rewritten in place after every fsync of the log,
// once that batch's waiters are released, without an fsync of its own (one
// at each rotation and at Close). So after a crash of the process it lags
// the log by at most one batch, and after a power cut it may be older than
// the log, never newer: it is written only after the log's fsync returned.
type watermark struct {
	first  uint64 // the segment being written
	size   int64  // its size after its last successful fsync
	lsn    uint64 // the last durable record
	failed bool   // a write after size failed: nothing from size on was acknowledged
}

// encode returns the watermark's frame, appended to dst.
func (w watermark) encode(dst []byte) []byte {
	var buf [len(watermarkMagic) + 25]byte
	p := append(buf[:0], watermarkMagic...)
	p = binary.LittleEndian.AppendUint64(p, w.first)
	p = binary.LittleEndian.AppendUint64(p, uint64(w.size))
	p = binary.LittleEndian.AppendUint64(p, w.lsn)
	var flag byte
	if w.failed {
		flag = 1
	}
	return appendFrame(dst, 0, append(p, flag))
}

// readWatermark reads dir's watermark. It reports false if there is none,
// which is the case for a directory written before watermarks existed.
func readWatermark(dir string) (watermark, bool, error) {
	path := filepath.Join(dir, WatermarkFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return watermark{}, false, nil
	}
	if err != nil {
		return watermark{}, false, fmt.Errorf("wal: read %s: %w", path, err)
	}
	fr := &frameReader{r: bytes.NewReader(data)}
	seq, p, err := fr.next()
	if errors.Is(err, io.EOF) {
		err = errors.New("empty file")
	}
	if err == nil && (seq != 0 || len(p) != len(watermarkMagic)+25 || string(p[:len(watermarkMagic)]) != watermarkMagic) {
		err = errors.New("not a watermark")
	}
	if err != nil {
		return watermark{}, false, &CorruptError{File: path, Reason: err.Error()}
	}
	p = p[len(watermarkMagic):]
	return watermark{
		first:  binary.LittleEndian.Uint64(p[0:]),
		size:   int64(binary.LittleEndian.Uint64(p[8:])),
		lsn:    binary.LittleEndian.Uint64(p[16:]),
		failed: p[24] == 1,
	}, true, nil
}

// LossError reports a log that ends before records it had made durable:
// acknowledged writes are missing, through damage or deletion, not a crash.
type LossError struct {
	Dir  string
	File string // the newest log file, or where the missing records were
	Have uint64 // the last record the log still holds
	Want uint64 // the last record it had made durable
}

// Error says how far the log reached and how far it had been durable.
func (e *LossError) Error() string {
	return fmt.Sprintf("wal: the log in %s ends at record %d (%s), but records through %d were durable and acknowledged: %d acknowledged records are missing",
		e.Dir, e.Have, e.File, e.Want, e.Want-e.Have)
}
