// Package wal keeps the files that let the in-memory store survive a
// restart: a write-ahead log of segment files with group-committed fsync,
// and an atomically replaced snapshot. It knows nothing of campaigns or
// impressions: it stores opaque payloads, each framed with its length, a
// sequence number and CRC-32C checksums, and hands them back in order.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Frame layout, little-endian:
//
//	0  uint32 payload length
//	4  uint64 sequence number
//	12 uint32 CRC-32C of bytes 0..12
//	16 payload
//	.. uint32 CRC-32C of the payload
//
// The header has its own checksum so that a damaged length is recognised as
// damage, and is never taken for a record cut short by a crash.
const (
	headerSize  = 16
	trailerSize = 4
	// MaxPayload is the largest payload a frame may carry. It bounds what a
	// damaged length field can make a reader allocate.
	MaxPayload = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends payload to dst as one frame with sequence number seq.
func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:start+12], castagnoli))
	dst = append(dst, payload...)
	// The checksum reads the copy, so that payload does not escape and a
	// caller can build it on its stack.
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start+headerSize:], castagnoli))
}

// CorruptError reports a file whose content failed its checks. The store
// refuses to start on it rather than count from less than it had.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: %s is corrupt at offset %d: %s", e.File, e.Offset, e.Reason)
}

// tornError is what the reader returns for a frame that a crash cut short.
// Whether that is acceptable depends on the file; see readFrames.
type tornError struct {
	offset int64
	reason string
}

func (e *tornError) Error() string {
	return fmt.Sprintf("torn write at offset %d: %s", e.offset, e.reason)
}

// frameReader reads frames one after another from r.
type frameReader struct {
	r    io.Reader
	off  int64 // offset of the next frame
	buf  []byte
	head [headerSize]byte
}

// next returns the next frame's sequence number and payload, which stays
// valid until the following call. At a clean end it returns io.EOF. A frame
// that ends the input early, or a damaged frame followed by nothing but zero
// bytes, is a *tornError: what a crash in the middle of an unacknowledged
// write leaves. Any other damage is a *CorruptError without a file name.
func (fr *frameReader) next() (uint64, []byte, error) {
	n, err := io.ReadFull(fr.r, fr.head[:])
	switch {
	case errors.Is(err, io.EOF):
		return 0, nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, nil, &tornError{fr.off, fmt.Sprintf("%d of %d header bytes", n, headerSize)}
	case err != nil:
		return 0, nil, err
	}
	length := binary.LittleEndian.Uint32(fr.head[0:4])
	seq := binary.LittleEndian.Uint64(fr.head[4:12])
	if crc32.Checksum(fr.head[:12], castagnoli) != binary.LittleEndian.Uint32(fr.head[12:16]) {
		return 0, nil, fr.damaged(fr.head[:], "header checksum mismatch")
	}
	if length > MaxPayload {
		return 0, nil, &CorruptError{Offset: fr.off, Reason: fmt.Sprintf("payload length %d exceeds %d", length, MaxPayload)}
	}
	need := int(length) + trailerSize
	if cap(fr.buf) < need {
		fr.buf = make([]byte, need)
	}
	body := fr.buf[:need]
	if n, err := io.ReadFull(fr.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, &tornError{fr.off, fmt.Sprintf("%d of %d payload bytes", n, need)}
		}
		return 0, nil, err
	}
	payload := body[:length]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(body[length:]) {
		return 0, nil, fr.damaged(nil, "payload checksum mismatch")
	}
	fr.off += int64(headerSize + need)
	return seq, payload, nil
}

// damaged classifies a frame that failed its checksum: torn if everything
// after it (and in it, for the bytes passed) is zero, which is how a file
// extended by a write the crash did not let finish reads back; corrupt
// otherwise.
func (fr *frameReader) damaged(read []byte, reason string) error {
	zero := allZero(read)
	if zero {
		var err error
		if zero, err = restIsZero(fr.r); err != nil {
			return err
		}
	}
	if zero {
		return &tornError{fr.off, reason + ", followed only by zero bytes"}
	}
	return &CorruptError{Offset: fr.off, Reason: reason}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// restIsZero reads r to its end and reports whether every byte was zero.
func restIsZero(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if !allZero(buf[:n]) {
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}
