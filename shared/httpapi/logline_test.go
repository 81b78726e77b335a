package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York on any machine
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/logbuf"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

// logLineAt is the time of every line in these tests.
var logLineAt = time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC)

// slogLine is the line LogSink writes for rec through slog's JSONHandler
// at level, at logLineAt, or "" if it writes none.
func slogLine(t *testing.T, level slog.Level, rec Record) string {
	t.Helper()
	var out syncbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				a.Value = slog.TimeValue(logLineAt)
			}
			return a
		}}))
	LogSink(logger).Observe(context.Background(), rec)
	return out.String()
}

// fastLine is the line JSONLogSink writes for rec at level, at logLineAt,
// or "" if it writes none.
func fastLine(t *testing.T, level slog.Level, rec Record) string {
	t.Helper()
	var out syncbuf.Buffer
	w := logbuf.New(&out)
	newJSONLogSink(w, level, func() time.Time { return logLineAt }).Observe(context.Background(), rec)
	require.NoError(t, w.Close())
	return out.String()
}

// trickyText holds what JSON escaping can get wrong: quotes, backslashes,
// every kind of control character, HTML characters (which slog leaves
// alone), U+2028 and U+2029, multi-byte UTF-8, and bytes that are not
// UTF-8 at all.
var trickyText = []string{
	"",
	"plain",
	`quote " and backslash \ and slash /`,
	"newline \n return \r tab \t",
	"controls \x00 \x01 \x07 \x08 \x0b \x0c \x1b \x1f and DEL \x7f",
	"<script>alert('x') & more</script>",
	"line\u2028separator and paragraph\u2029separator",
	"naïve café ☃ 😀 中文",
	"invalid \xff byte",
	"truncated \xe2\x82 rune",
	"lone surrogate \xed\xa0\x80 encoded",
	"overlong \xc0\xaf slash",
	"\xff\xfe\xfd",
	"ends with a half rune \xf0\x9f\x98",
	`already escaped \u0041 \n \"`,
	"\ufffd the replacement character itself",
}

// TestJSONLogSinkWritesTheSlogLine: the fast request line is, byte for
// byte, the line slog writes for the same record, whatever the record
// holds, so that nothing reading the logs can tell them apart.
func TestJSONLogSinkWritesTheSlogLine(t *testing.T) {
	t.Parallel()
	counted := Record{Method: "POST", Route: RouteRecordImpression, Status: 200, Duration: 1234567 * time.Nanosecond,
		RequestID: "0123456789abcdef-1a", Impressions: Impressions{Counted: 1}}
	cases := []struct {
		name  string
		level slog.Level
		rec   Record
	}{
		// The request line of nearly every request.
		{"Counted", slog.LevelInfo, counted},
		{"Duplicate", slog.LevelInfo, with(counted, func(r *Record) { r.Impressions = Impressions{Duplicate: 1} })},
		// Durations slog writes as whole numbers, very small or very
		// large numbers of milliseconds.
		{"NoDuration", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = 0 })},
		{"UnderAMicrosecond", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = 999 })},
		{"OneMicrosecond", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = time.Microsecond })},
		{"WholeMilliseconds", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = 7 * time.Millisecond })},
		{"Hours", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = 5*time.Hour + 3*time.Nanosecond })},
		{"Longest", slog.LevelInfo, with(counted, func(r *Record) { r.Duration = math.MaxInt64 })},
		// A rejected impression logs its kind and the full error.
		{"Rejected", slog.LevelInfo, with(counted, func(r *Record) {
			r.Status, r.ErrorKind, r.Err = 400, "invalid", errors.New(`user_id: must not be empty`)
			r.Impressions = Impressions{Rejected: []Rejection{{Reason: "invalid", Count: 1}}}
		})},
		// A store failure is an error line, with store_error.
		{"StoreFailure", slog.LevelInfo, with(counted, func(r *Record) {
			r.Status, r.ErrorKind, r.Err, r.StoreError = 503, "unavailable", errors.New("dynamostore: record impression c/u/a: throttled"), true
			r.Impressions = Impressions{Rejected: []Rejection{{Reason: "unavailable", Count: 1}}}
		})},
		// A panic's stack is longer than the buffer on the stack.
		{"LongError", slog.LevelInfo, with(counted, func(r *Record) {
			r.Status, r.ErrorKind = 500, "internal"
			r.Err = &panicError{value: "boom", stack: []byte(strings.Repeat("goroutine 1 [running]:\n\tmain.go:12 +0x1d\n", 100))}
		})},
		// A request with many impressions logs counts instead of an outcome.
		{"Counts", slog.LevelInfo, with(counted, func(r *Record) {
			r.Impressions = Impressions{Counted: 3, Duplicate: 2, Rejected: []Rejection{{Reason: "invalid", Count: 1}, {Reason: "not_found", Count: 2}}}
		})},
		// Routes without impressions, and requests no route took.
		{"NoImpressions", slog.LevelInfo, Record{Method: "GET", Route: RouteGetStats, Status: 200, Duration: time.Millisecond, RequestID: "edge-123"}},
		{"Unmatched", slog.LevelInfo, Record{Method: "BREW", Route: "unmatched", Status: 405, ErrorKind: "method_not_allowed", Err: errors.New("method BREW not allowed"), RequestID: "x"}},
		// LOG_LEVEL=warn hides the line of a request that did not fail
		// with a 5xx; both sinks then write nothing.
		{"HiddenAtWarn", slog.LevelWarn, counted},
		{"StoreFailureAtWarn", slog.LevelWarn, with(counted, func(r *Record) {
			r.Status, r.ErrorKind, r.Err, r.StoreError = 503, "timeout", context.DeadlineExceeded, true
		})},
		{"HiddenAtError", slog.LevelError, with(counted, func(r *Record) { r.Status = 404 })},
		// Below info, info lines are written.
		{"Debug", slog.LevelDebug, counted},
		// The zero record is written like any other.
		{"Zero", slog.LevelInfo, Record{}},
	}
	for _, text := range trickyText {
		// Any text a record holds is escaped as slog escapes it.
		cases = append(cases, struct {
			name  string
			level slog.Level
			rec   Record
		}{"Text" + text, slog.LevelInfo, Record{Method: text, Route: text, Status: 400, RequestID: text, ErrorKind: text,
			Err: errors.New(text), Impressions: Impressions{Counted: 1, Rejected: []Rejection{{Reason: text, Count: 1}}}}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := slogLine(t, tc.level, tc.rec)
			assert.Equal(t, want, fastLine(t, tc.level, tc.rec))
			if want != "" {
				assert.True(t, json.Valid([]byte(want)), want)
			}
		})
	}
}

// with returns a copy of rec changed by change.
func with(rec Record, change func(*Record)) Record {
	change(&rec)
	return rec
}

// TestJSONLogSinkAllocatesNothing: the line of a request that succeeded
// costs no allocation, so that the request log adds no work for the
// garbage collector. (Write copies the line into the Writer's buffer.) Not
// parallel: AllocsPerRun counts every goroutine's allocations.
func TestJSONLogSinkAllocatesNothing(t *testing.T) {
	w := logbuf.New(io.Discard)
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	sink := JSONLogSink(w, slog.LevelInfo)
	rec := Record{Method: "POST", Route: RouteRecordImpression, Status: 200, Duration: 1234567 * time.Nanosecond,
		RequestID: "0123456789abcdef-1a", Impressions: Impressions{Counted: 1}}
	ctx := context.Background()
	sink.Observe(ctx, rec) // the Writer's buffer grows once
	assert.Zero(t, testing.AllocsPerRun(1000, func() { sink.Observe(ctx, rec) }))
}

// TestAppendJSONLineLeavesTheRestToSlog: appendJSONLine reports false for
// what it does not write itself, so that the sink hands those lines to
// slog.
func TestAppendJSONLineLeavesTheRestToSlog(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		at   time.Time
		attr slog.Attr
	}{
		// slog writes these with its own rules; no request line has them.
		{"Any", logLineAt, slog.Any("x", struct{ A int }{1})},
		{"Group", logLineAt, slog.Group("g", slog.Int("a", 1))},
		{"Time", logLineAt, slog.Time("t", logLineAt)},
		{"EmptyKey", logLineAt, slog.Int("", 1)},
		{"NaN", logLineAt, slog.Float64("f", math.NaN())},
		{"Infinity", logLineAt, slog.Float64("f", math.Inf(-1))},
		// RFC 3339 years have four digits; slog reports an error instead.
		{"YearOutOfRange", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.Int("a", 1)},
	}
	for _, tc := range cases {
		_, ok := appendJSONLine(nil, &timeText{}, tc.at, slog.LevelInfo, "request", []slog.Attr{slog.String("ok", "v"), tc.attr})
		assert.False(t, ok, tc.name)
	}
	line, ok := appendJSONLine(nil, &timeText{}, logLineAt, slog.LevelInfo, "request",
		[]slog.Attr{slog.Uint64("u", 7), slog.Bool("b", true), slog.Duration("d", time.Second)})
	require.True(t, ok)
	assert.Equal(t, `{"time":"2026-03-04T05:06:07.890123Z","level":"INFO","msg":"request","u":7,"b":true,"d":1000000000}`+"\n", string(line))
}

// FuzzAppendJSONString checks the escaping against slog, whose line it
// must match byte for byte, and against encoding/json, which must read
// back the text that encoding/json itself writes for it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyText {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		quoted := `"` + string(got) + `"`
		require.True(t, utf8.ValidString(quoted), "%q", quoted)
		var back string
		require.NoError(t, json.Unmarshal([]byte(quoted), &back), "%q", quoted)
		marshalled, err := json.Marshal(s)
		require.NoError(t, err)
		var want string
		require.NoError(t, json.Unmarshal(marshalled, &want))
		assert.Equal(t, want, back, "reads back as encoding/json's own encoding of %q does", s)

		line, ok := appendJSONLine(nil, &timeText{}, logLineAt, slog.LevelInfo, "request", []slog.Attr{slog.String(s, s)})
		if s == "" {
			require.False(t, ok, "an empty key is left to slog")
			return
		}
		require.True(t, ok)
		var out syncbuf.Buffer
		slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				a.Value = slog.TimeValue(logLineAt)
			}
			return a
		}})).Info("request", slog.String(s, s))
		assert.Equal(t, out.String(), string(line))
	})
}

// FuzzAppendJSONFloat checks float formatting against encoding/json.
func FuzzAppendJSONFloat(f *testing.F) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 0.001, 1.234, 1234.567, 1e-6, 9.99e-7, 1e-7,
		1.5e-10, 1e20, 1e21, 1.7976931348623157e308, 5e-324, 9223372036854.775807, 123456789012345680000} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// Not JSON numbers: slog reports an error for them.
			_, ok := appendJSONLine(nil, &timeText{}, logLineAt, slog.LevelInfo, "request", []slog.Attr{slog.Float64("f", v)})
			assert.False(t, ok, "left to slog")
			return
		}
		want, err := json.Marshal(v)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendJSONFloat(nil, v)))
	})
}

// TestTimeText: times are written as time.RFC3339Nano formats them, from
// the cached second or a new one, in any zone, across a change of offset.
func TestTimeText(t *testing.T) {
	t.Parallel()
	newYork, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// 2026-03-08 07:00:00 UTC: New York moves from -05:00 to -04:00.
	dst := time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		times []time.Time // formatted in turn with one cache
	}{
		// The fraction of a second loses its trailing zeros, and the dot
		// with them when there is none.
		{"Fractions", []time.Time{logLineAt, logLineAt.Add(-890123000), logLineAt.Add(1), logLineAt.Add(100), logLineAt.Add(-890123000 + 999999999)}},
		// The next second is a new one.
		{"NextSecond", []time.Time{logLineAt, logLineAt.Add(time.Second), logLineAt}},
		// The same second in another zone is another text.
		{"Zones", []time.Time{logLineAt, logLineAt.In(time.FixedZone("", -7*3600)), logLineAt.In(time.FixedZone("IST", 5*3600+1800)), logLineAt.In(time.Local), logLineAt.In(newYork)}},
		// The offset changes on a whole second.
		{"OffsetChange", []time.Time{dst.Add(-time.Nanosecond).In(newYork), dst.In(newYork), dst.Add(time.Nanosecond).In(newYork)}},
		// What the clock says, with its monotonic reading.
		{"Now", []time.Time{time.Now(), time.Now(), time.Now().UTC()}},
		// The edges of RFC 3339's four-digit years, and before 1970.
		{"Years", []time.Time{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC)}},
	}
	for _, tc := range cases {
		var c timeText
		for i, at := range tc.times {
			got, ok := c.append([]byte("x"), at)
			require.True(t, ok, "%s %d", tc.name, i)
			assert.Equal(t, at.AppendFormat([]byte("x"), time.RFC3339Nano), got, "%s %d", tc.name, i)
		}
	}
	// Years RFC 3339 cannot write are refused, as slog refuses them.
	var c timeText
	for _, year := range []int{-1, 10000} {
		_, ok := c.append(nil, time.Date(year, 6, 1, 0, 0, 0, 0, time.UTC))
		assert.False(t, ok, year)
	}
}

// FuzzTimeText checks the cached time text against time.RFC3339Nano for
// any instant and zone offset, with a cache that last held the second
// before.
func FuzzTimeText(f *testing.F) {
	f.Add(logLineAt.Unix(), int64(logLineAt.Nanosecond()), 0)
	f.Add(int64(-62135596800), int64(0), -3600)
	f.Add(int64(253402300799), int64(999999999), 5*3600+1800)
	f.Fuzz(func(t *testing.T, unix, nsec int64, offset int) {
		at := time.Unix(unix, nsec).In(time.FixedZone("", offset%(24*3600)))
		var c timeText
		for _, t2 := range []time.Time{at.Add(-time.Second), at} {
			got, ok := c.append(nil, t2)
			if y := t2.Year(); y < 0 || y >= 10000 {
				assert.False(t, ok)
				continue
			}
			require.True(t, ok)
			assert.Equal(t, t2.Format(time.RFC3339Nano), string(got))
		}
	})
}

func BenchmarkAppendJSONString(b *testing.B) {
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = appendJSONString(buf[:0], "0123456789abcdef-1a2b3c")
		buf = appendJSONString(buf, "POST /api/v1/impressions")
		buf = appendJSONString(buf, "duration_ms")
	}
}
