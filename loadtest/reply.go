package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// outcomeHeader is the pixel's answer header.
const outcomeHeader = "X-Impression-Outcome"

// outcomeNamed maps an outcome as the API spells it to the ledger's; zero
// for a name the API does not use for a recorded impression.
func outcomeNamed(name []byte) outcome {
	switch string(name) { // no allocation: the compiler compares the bytes
	case "counted":
		return counted
	case "duplicate":
		return duplicate
	case "filtered":
		return filtered
	case "rejected":
		return rejected
	}
	return 0
}

// classifySingle reads the reply to POST /api/v1/impressions. A 2xx says
// "counted" and, since bots are filtered, "outcome"; a reply without the
// outcome comes from a service before filtering and is read by its flag.
func classifySingle(code uint16, body []byte) outcome {
	switch {
	case code >= 200 && code < 300:
		var reply struct {
			Counted *bool  `json:"counted"`
			Outcome string `json:"outcome"`
		}
		if json.Unmarshal(body, &reply) != nil || reply.Counted == nil {
			return unreadable
		}
		o := counted
		switch {
		case reply.Outcome != "":
			o = outcomeNamed([]byte(reply.Outcome))
		case !*reply.Counted:
			o = duplicate
		}
		if o == 0 || o == rejected || (o == counted) != *reply.Counted {
			return unreadable
		}
		return o
	case code >= 400 && code < 500:
		return rejected
	default:
		return uncertain
	}
}

// classifyPixel reads the answer to GET /api/v1/pixel.gif: its status and
// its X-Impression-Outcome header, never the body, which is always the
// same image.
func classifyPixel(code uint16, header http.Header) outcome {
	switch {
	case code >= 200 && code < 300:
		var name string
		if vs := header[outcomeHeader]; len(vs) == 1 {
			name = vs[0]
		}
		switch o := outcomeNamed([]byte(name)); o {
		case counted, duplicate, filtered:
			return o
		}
		return unreadable
	case code >= 400 && code < 500:
		return rejected
	default:
		return uncertain
	}
}

// batchSummary is the summary of a batch reply.
type batchSummary struct {
	Counted    int64 `json:"counted"`
	Duplicates int64 `json:"duplicates"`
	Filtered   int64 `json:"filtered"`
	Rejected   int64 `json:"rejected"`
}

// errBatchReply marks a 2xx batch reply that breaks the contract.
var errBatchReply = errors.New("batch reply")

// parseBatchReply reads the body of a 2xx answer to a batch of len(out)
// impressions:
//
//	{"summary":{"counted":N,"duplicates":N,"filtered":N,"rejected":N},
//	 "results":[{"outcome":"counted"},...,{"outcome":"rejected","status":404,...}]}
//
// It fills out with each item's outcome, in order, and fails (wrapping
// errBatchReply) unless the body is one JSON object whose results name a
// known outcome for each item, exactly len(out) of them, and whose summary
// agrees with them. Other fields are skipped.
//
// It is a hand-written scanner rather than encoding/json: the harness reads
// up to a thousand results per reply, hundreds of replies a second, on the
// cores the service under test runs on. It decodes nothing it does not
// need and allocates nothing (but to decode a string with escapes, which
// the API does not write), and BenchmarkParseBatchReply measures it
// against encoding/json and encoding/json/v2.
func parseBatchReply(body []byte, out []outcome) error {
	s := jsonScanner{b: body}
	var (
		sum                  batchSummary
		tally                batchSummary
		haveSum, haveResults bool
		n                    int
	)
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "summary":
			if haveSum {
				return errors.New("two summaries")
			}
			haveSum = true
			return s.summary(&sum)
		case "results":
			if haveResults {
				return errors.New("two result lists")
			}
			haveResults = true
			return s.array(func() error {
				o := s.compactResult()
				if o == 0 {
					var err error
					if o, err = s.result(); err != nil {
						return err
					}
				}
				if o == 0 {
					return fmt.Errorf("result %d has no outcome", n)
				}
				if n < len(out) {
					out[n] = o
				}
				n++
				switch o {
				case counted:
					tally.Counted++
				case duplicate:
					tally.Duplicates++
				case filtered:
					tally.Filtered++
				case rejected:
					tally.Rejected++
				}
				return nil
			})
		}
		return s.skip()
	})
	if err == nil {
		err = s.end()
	}
	switch {
	case err != nil:
	case !haveResults:
		err = errors.New("no results")
	case n != len(out):
		err = fmt.Errorf("%d results for %d impressions", n, len(out))
	case !haveSum:
		err = errors.New("no summary")
	case sum != tally:
		err = fmt.Errorf("the summary says %+v, the results %+v", sum, tally)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errBatchReply, err)
	}
	return nil
}

// compactResult reads a result in the form the API writes for every
// outcome but rejected, {"outcome":"<name>"}, without the general
// machinery: nearly every result of a batch. It returns 0, having read
// nothing, for any other form, which result then reads.
func (s *jsonScanner) compactResult() outcome {
	const prefix = `{"outcome":"`
	s.ws()
	rest := s.b[s.i:]
	if !bytes.HasPrefix(rest, []byte(prefix)) {
		return 0
	}
	rest = rest[len(prefix):]
	end := bytes.IndexByte(rest[:min(len(rest), len("duplicate")+1)], '"')
	if end < 0 || end+1 >= len(rest) || rest[end+1] != '}' {
		return 0
	}
	o := outcomeNamed(rest[:end])
	if o != 0 {
		s.i += len(prefix) + end + 2
	}
	return o
}

// result reads one result object in any form: its outcome, and other
// fields skipped.
func (s *jsonScanner) result() (outcome, error) {
	var o outcome
	err := s.object(func(key []byte) error {
		if string(key) != "outcome" {
			return s.skip()
		}
		if o != 0 {
			return errors.New("an item with two outcomes")
		}
		name, err := s.text()
		if err != nil {
			return err
		}
		if o = outcomeNamed(name); o == 0 {
			return fmt.Errorf("unknown outcome %q", name)
		}
		return nil
	})
	return o, err
}

// jsonScanner reads JSON from b strictly by the grammar of RFC 8259, except
// that it does not check that strings are UTF-8 or that names are unique.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte, 0 at the end.
func (s *jsonScanner) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) expect(c byte) error {
	if s.next() != c {
		return s.errorf("want %q", c)
	}
	s.i++
	return nil
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: "+format, append([]any{s.i}, args...)...)
}

// end checks that only white space follows.
func (s *jsonScanner) end() error {
	if s.next() != 0 {
		return s.errorf("data after the reply")
	}
	return nil
}

// object reads an object, calling member for each name with the scanner
// at the name's value; member must consume the value.
func (s *jsonScanner) object(member func(name []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.next() == '}' {
		s.i++
		return nil
	}
	for {
		name, err := s.text()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("want , or }")
		}
	}
}

// array reads an array, calling elem with the scanner at each element;
// elem must consume it.
func (s *jsonScanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.next() == ']' {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("want , or ]")
		}
	}
}

// text reads a string. It returns the raw bytes between the quotes, which
// alias the input, unless the string has escapes: then it decodes it.
func (s *jsonScanner) text() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start, escaped := s.i, false
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			raw := s.b[start : s.i-1]
			if !escaped {
				return raw, nil
			}
			var v string
			if err := json.Unmarshal(s.b[start-1:s.i], &v); err != nil {
				return nil, s.errorf("string: %v", err)
			}
			return []byte(v), nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, s.errorf("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex(s.b[s.i+2:s.i+6]) {
					return nil, s.errorf("bad \\u escape")
				}
				s.i += 6
			default:
				return nil, s.errorf("bad escape")
			}
		case c < 0x20:
			return nil, s.errorf("control character in a string")
		default:
			s.i++
		}
	}
	return nil, s.errorf("unterminated string")
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number reads a number and returns its text.
func (s *jsonScanner) number() ([]byte, error) {
	s.ws()
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case digits() == 0:
		return nil, s.errorf("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, s.errorf("bad number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, s.errorf("bad number")
		}
	}
	return s.b[start:s.i], nil
}

// count reads a number that must be a count: a non-negative integer.
func (s *jsonScanner) count() (int64, error) {
	text, err := s.number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil || n < 0 {
		return 0, s.errorf("%s is not a count", text)
	}
	return n, nil
}

// summary reads a batch reply's summary: all four counts, other fields
// skipped.
func (s *jsonScanner) summary(sum *batchSummary) error {
	var seen [4]bool
	if err := s.object(func(name []byte) error {
		var field *int64
		var i int
		switch string(name) {
		case "counted":
			field, i = &sum.Counted, 0
		case "duplicates":
			field, i = &sum.Duplicates, 1
		case "filtered":
			field, i = &sum.Filtered, 2
		case "rejected":
			field, i = &sum.Rejected, 3
		default:
			return s.skip()
		}
		if seen[i] {
			return fmt.Errorf("summary names %s twice", name)
		}
		seen[i] = true
		n, err := s.count()
		*field = n
		return err
	}); err != nil {
		return err
	}
	if seen != [4]bool{true, true, true, true} {
		return errors.New("the summary lacks one of counted, duplicates, filtered, rejected")
	}
	return nil
}

// skip reads any value and drops it.
func (s *jsonScanner) skip() error {
	switch c := s.next(); {
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == '"':
		_, err := s.text()
		return err
	case c == '-' || '0' <= c && c <= '9':
		_, err := s.number()
		return err
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return nil
		}
	}
	return s.errorf("want a value")
}
