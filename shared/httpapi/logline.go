package httpapi

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/adcount/impression-counter/shared/logbuf"
)

// JSONLogSink returns a Sink that writes each request's log line to w: the
// line that LogSink writes through slog.NewJSONHandler(w,
// &slog.HandlerOptions{Level: level}), byte for byte, with the same fields
// (Record.AppendLogAttrs) and the same escaping, but without slog's
// machinery and with no allocation for a request that succeeded. The
// request line is the one log line of every request, and through slog it
// cost a busy local server several percent of its throughput.
//
// A nil level is slog.LevelInfo, as for slog's handlers. Use it with
// WithRequestLog.
func JSONLogSink(w *logbuf.Writer, level slog.Leveler) Sink {
	return newJSONLogSink(w, level, time.Now)
}

func newJSONLogSink(w *logbuf.Writer, level slog.Leveler, now func() time.Time) *jsonLogSink {
	if level == nil {
		level = slog.LevelInfo
	}
	return &jsonLogSink{
		w:     w,
		level: level,
		now:   now,
		slog:  slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})),
	}
}

type jsonLogSink struct {
	// w is the concrete writer, not an io.Writer, so that the line can be
	// built in a buffer on the stack: through an interface it would escape
	// to the heap.
	w     *logbuf.Writer
	level slog.Leveler
	now   func() time.Time
	// slog writes the rare line whose attributes appendJSONLine does not
	// write itself.
	slog  *slog.Logger
	times timeText
}

var _ Sink = (*jsonLogSink)(nil)

// lineBytes holds a typical request line, with room for an error message;
// a longer line grows onto the heap.
const lineBytes = 1024

func (s *jsonLogSink) Observe(ctx context.Context, rec Record) {
	level := rec.Level()
	if level < s.level.Level() {
		return
	}
	var attrs [16]slog.Attr
	as := rec.AppendLogAttrs(attrs[:0])
	var buf [lineBytes]byte
	line, ok := appendJSONLine(buf[:0], &s.times, s.now(), level, "request", as)
	if !ok {
		s.slog.LogAttrs(ctx, level, "request", slices.Clone(as)...)
		return
	}
	// A Writer never fails a line; it counts the ones it drops.
	_, _ = s.w.Write(line)
}

// appendJSONLine appends the line slog's JSONHandler (with no options but
// the level) writes for a record at t with level, msg and attrs, and
// reports true; or reports false, having appended nothing that counts, if
// attrs hold a kind of value or key it leaves to slog (only non-empty keys
// and string, integer, finite float, bool and duration values are written
// here), or t a year RFC 3339 cannot write. It formats t with times.
func appendJSONLine(b []byte, times *timeText, t time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	b = append(b, `{"time":"`...)
	b, ok := times.append(b, t)
	if !ok {
		return b, false
	}
	b = append(b, `","level":"`...)
	b = appendJSONString(b, level.String())
	b = append(b, `","msg":"`...)
	b = appendJSONString(b, msg)
	b = append(b, '"')
	for _, a := range attrs {
		if a.Key == "" {
			return b, false
		}
		b = append(b, `,"`...)
		b = appendJSONString(b, a.Key)
		b = append(b, `":`...)
		v := a.Value
		switch v.Kind() {
		case slog.KindString:
			b = append(b, '"')
			b = appendJSONString(b, v.String())
			b = append(b, '"')
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(b, v.Uint64(), 10)
		case slog.KindFloat64:
			f := v.Float64()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return b, false
			}
			b = appendJSONFloat(b, f)
		case slog.KindBool:
			b = strconv.AppendBool(b, v.Bool())
		case slog.KindDuration:
			b = strconv.AppendInt(b, int64(v.Duration()), 10)
		default:
			return b, false
		}
	}
	return append(b, "}\n"...), true
}

// appendJSONFloat appends a finite f as encoding/json writes a float64 (the
// shortest decimal that reads back as f, in ECMAScript's notation), which
// is what slog writes too.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// jsonSafe marks the bytes that stand for themselves inside a JSON string:
// the ASCII ones but the control characters below the space, the quote and
// the backslash. (DEL needs no escape in JSON, and slog leaves it alone.)
// Bytes of multi-byte UTF-8 are checked apart.
var jsonSafe = func() (safe [256]bool) {
	for c := byte(' '); c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\'
	}
	return safe
}()

// appendJSONString appends s escaped as the inside of a JSON string,
// exactly as slog's JSONHandler escapes it: the quote, the backslash and
// control characters escaped (\n, \r and \t by name), U+2028 and U+2029
// escaped for JavaScript's sake, and each byte that is not valid UTF-8
// replaced by U+FFFD, so that the line is always valid JSON in UTF-8.
// <, > and & are left alone, as slog leaves them.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// timeText formats times as time.RFC3339Nano does, as slog writes them,
// caching the text of the last second: formatting the whole time was a
// good part of a request line's cost, and a busy server writes many lines
// a second. It is safe for concurrent use; its zero value is ready.
type timeText struct {
	last atomic.Pointer[secondText]
}

// secondText is the text of one second in one location, which a time's
// fraction of a second completes.
type secondText struct {
	unix int64
	loc  *time.Location
	// ok is false for a year outside RFC 3339's four digits.
	ok   bool
	date string // such as 2026-01-02T15:04:05
	zone string // Z, or an offset such as -07:00
}

// append appends t, or reports false, having appended nothing, if its year
// is not within [0, 9999], as slog refuses it.
func (c *timeText) append(b []byte, t time.Time) ([]byte, bool) {
	unix, loc := t.Unix(), t.Location()
	s := c.last.Load()
	if s == nil || s.unix != unix || s.loc != loc {
		// Allocates, once a second. A zone's offset changes only on a
		// whole second.
		y := t.Year()
		s = &secondText{unix: unix, loc: loc, ok: y >= 0 && y < 10000,
			date: t.Format("2006-01-02T15:04:05"), zone: t.Format("Z07:00")}
		c.last.Store(s)
	}
	if !s.ok {
		return b, false
	}
	b = append(b, s.date...)
	if ns := t.Nanosecond(); ns != 0 {
		// Nine digits, less the trailing zeros.
		var digits [9]byte
		for i := len(digits) - 1; i >= 0; i-- {
			digits[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(digits)
		for digits[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, digits[:n]...)
	}
	return append(b, s.zone...), true
}
