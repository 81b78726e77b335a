package httpapi

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/adcount/impression-counter/shared/adcount"
)

// textCheck passes a request body through to the JSON decoder and, on the
// way, checks what encoding/json would otherwise accept silently:
//
//   - invalid UTF-8 and lone UTF-16 surrogate escapes (\ud800 alone) in a
//     string, which the decoder replaces with U+FFFD, so that "inv\xff" and
//     "inv\xfe" would be one user;
//   - a field of the request sent twice, where the last would win;
//   - a field name that matches a field only case-insensitively, such as
//     "User_ID", which the decoder would take for user_id;
//   - with strict set, any top-level field that is not one of the
//     request's, which the decoder would ignore.
//
// It is a small JSON scanner that follows strings, escapes and nesting and
// nothing more: syntax errors are the decoder's to report, and a check's
// error counts only once the decoder has accepted the body. Only the
// top-level object's keys are compared with the fields; nested values of
// unknown fields are checked for text only.
type textCheck struct {
	r      io.Reader
	fields []string // the request's JSON field names, in order
	strict bool     // a top-level field not in fields is refused
	err    error    // the first problem found; scanning stops there

	state     uint8
	hexDigits int  // digits of a \u escape read so far
	unit      rune // the UTF-16 code unit of a \u escape
	high      rune // a high surrogate escape, which a low one must follow
	partial   [utf8.UTFMax]byte
	nPartial  int
	depth     int
	objects   uint64 // bit d is set when the container at depth d+1 is an object
	expectKey bool
	isKey     bool
	topLevel  bool     // the key being read belongs to the top-level object
	key       [64]byte // the key being read, decoded, or the last one read
	nKey      int      // its length; more than len(key) when it was cut
	seen      uint64   // bit i is set once fields[i] has been sent
}

const (
	outside = iota
	inString
	inEscape
	inUnicode
)

func (c *textCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.err == nil {
		c.scan(p[:n])
	}
	return n, err
}

func (c *textCheck) scan(b []byte) {
	for i := 0; i < len(b); i++ {
		if c.err != nil {
			return
		}
		ch := b[i]
		if c.state == inString && !c.isKey && c.high == 0 && c.nPartial == 0 {
			// The fast path through a value's plain ASCII, which is
			// nearly every byte of a request.
			for ch < utf8.RuneSelf && ch != '"' && ch != '\\' && i+1 < len(b) {
				i++
				ch = b[i]
			}
			if ch < utf8.RuneSelf && ch != '"' && ch != '\\' {
				continue
			}
		}
		switch c.state {
		case outside:
			c.structural(ch)
		case inString:
			c.text(ch)
		case inEscape:
			c.escape(ch)
		case inUnicode:
			c.hex(ch)
		}
	}
}

// structural follows the nesting outside strings, to know which strings
// are keys and which keys are the request's own.
func (c *textCheck) structural(ch byte) {
	switch ch {
	case '{', '[':
		if c.depth < 64 && ch == '{' {
			c.objects |= 1 << c.depth
		} else if c.depth < 64 {
			c.objects &^= 1 << c.depth
		}
		c.depth++
		c.expectKey = ch == '{'
	case '}', ']':
		if c.depth > 0 {
			c.depth--
		}
		c.expectKey = false
	case ',':
		c.expectKey = c.depth > 0 && c.depth <= 64 && c.objects&(1<<(c.depth-1)) != 0
	case ':':
		c.expectKey = false
		if c.isKey {
			c.keyDone()
		}
	case '"':
		c.state = inString
		c.isKey = c.expectKey
		c.topLevel = c.isKey && c.depth == 1
		if c.isKey {
			c.nKey = 0
		}
	}
}

// text checks one byte inside a string.
func (c *textCheck) text(ch byte) {
	if c.high != 0 && ch != '\\' {
		c.fail()
		return
	}
	if c.nPartial > 0 || ch >= utf8.RuneSelf {
		c.partial[c.nPartial] = ch
		c.nPartial++
		if !utf8.FullRune(c.partial[:c.nPartial]) {
			return
		}
		r, size := utf8.DecodeRune(c.partial[:c.nPartial])
		if r == utf8.RuneError && size <= 1 || size != c.nPartial {
			c.fail()
			return
		}
		c.nPartial = 0
		c.keep(c.partial[:size]...)
		return
	}
	switch ch {
	case '"':
		c.state = outside
	case '\\':
		c.state = inEscape
	default:
		c.keep(ch)
	}
}

// escape reads the byte after a backslash.
func (c *textCheck) escape(ch byte) {
	if c.high != 0 && ch != 'u' {
		c.fail()
		return
	}
	if ch == 'u' {
		c.state, c.hexDigits, c.unit = inUnicode, 0, 0
		return
	}
	c.state = inString
	// Keys are compared as the decoder will read them, escapes decoded.
	switch ch {
	case 'b':
		ch = '\b'
	case 'f':
		ch = '\f'
	case 'n':
		ch = '\n'
	case 'r':
		ch = '\r'
	case 't':
		ch = '\t'
	}
	c.keep(ch)
}

// hex reads the four digits of a \u escape and checks its surrogates.
func (c *textCheck) hex(ch byte) {
	var d rune
	switch {
	case '0' <= ch && ch <= '9':
		d = rune(ch - '0')
	case 'a' <= ch && ch <= 'f':
		d = rune(ch-'a') + 10
	case 'A' <= ch && ch <= 'F':
		d = rune(ch-'A') + 10
	default:
		c.state = inString // a syntax error; the decoder reports it
		return
	}
	c.unit = c.unit<<4 | d
	if c.hexDigits++; c.hexDigits < 4 {
		return
	}
	c.state = inString
	high := 0xD800 <= c.unit && c.unit <= 0xDBFF
	low := 0xDC00 <= c.unit && c.unit <= 0xDFFF
	switch {
	case c.high != 0 && !low, c.high == 0 && low:
		c.fail()
	case c.high != 0:
		c.keepRune(utf16.DecodeRune(c.high, c.unit))
		c.high = 0
	case high:
		c.high = c.unit
	default:
		c.keepRune(c.unit)
	}
}

// keepRune adds r, UTF-8 encoded, to the key being read.
func (c *textCheck) keepRune(r rune) {
	if !c.isKey {
		return
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	c.keep(buf[:n]...)
}

// keep adds bytes to the key being read.
func (c *textCheck) keep(b ...byte) {
	if !c.isKey {
		return
	}
	if c.nKey+len(b) <= len(c.key) {
		copy(c.key[c.nKey:], b)
	}
	c.nKey += len(b)
}

// keyDone takes note of a key once its colon shows it is one: the value
// that follows belongs to it, and a top-level key must be one of the
// request's fields sent once and spelt exactly, or no field at all.
func (c *textCheck) keyDone() {
	c.isKey = false
	if !c.topLevel {
		return
	}
	if c.nKey > len(c.key) {
		// Longer than every field's name.
		if c.strict {
			c.err = badRequest("request body has a field this request does not take; its fields are " + fieldList(c.fields))
		}
		return
	}
	key := c.key[:c.nKey]
	known := false
	for i, f := range c.fields {
		switch {
		case string(key) == f:
			if c.seen&(1<<i) != 0 {
				c.err = &adcount.FieldError{Field: f, Message: "is sent more than once; send each field once"}
			}
			c.seen |= 1 << i
			known = true
		case bytes.EqualFold(key, []byte(f)):
			c.err = &adcount.FieldError{Field: string(key), Message: "field names are case-sensitive; did you mean " + f + "?"}
			known = true
		}
	}
	if c.strict && !known {
		c.err = &adcount.FieldError{Field: string(key), Message: "is not a field of this request; its fields are " + fieldList(c.fields)}
	}
}

// fieldList names fields as a sentence does: "name, start_time and
// end_time".
func fieldList(fields []string) string {
	switch len(fields) {
	case 0:
		return "none"
	case 1:
		return fields[0]
	}
	return strings.Join(fields[:len(fields)-1], ", ") + " and " + fields[len(fields)-1]
}

// fail records text that is not valid UTF-8, naming the field whose value
// holds it: the last key read.
func (c *textCheck) fail() {
	if c.isKey || c.nKey == 0 || c.nKey > len(c.key) {
		c.err = badRequest("request body must be valid UTF-8, without lone surrogate escapes")
		return
	}
	c.err = &adcount.FieldError{Field: string(c.key[:c.nKey]), Message: "must be valid UTF-8"}
}
