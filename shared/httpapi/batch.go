package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/adcount/impression-counter/shared/adcount"
)

// A batch body is {"impressions":[item, ...]}, each item an impression as
// the single route takes it. A batch of a thousand impressions arrives
// hundreds of times a second, so it is not decoded with encoding/json's
// reflection: batchParser reads it in one pass that allocates nothing per
// item, and hands encoding/json only what is unusual.
//
// The rule that keeps the two routes agreeing: an item is answered exactly
// as the single route would answer the same JSON sent alone. The parser
// takes the common item on its own (an object whose known fields are
// strings, each sent once, with text that is valid UTF-8), and sends any
// other item through decodeFrom, the single route's own decoder, so that
// its error is the single route's error by construction. The single route
// reads its one object the same way (parseItem, readImpression), so that
// there is one parser and one decoder for both. Problems outside
// the items fail the whole batch: a body that is not JSON (its message
// comes from encoding/json, as on the single route), a body that is not a
// batch, a field sent twice, and too many items.

// batchItem is one item of a batch, from parsing to the reply.
type batchItem struct {
	imp          adcount.Impression
	userAgent    string
	hasUserAgent bool // the item sent a user_agent, which is then judged
	outcome      adcount.Outcome
	// err is why the item was refused, as the single route would say it:
	// by its decoding, or by the store.
	err error
	// start and end delimit an item the parser left to decodeFrom.
	start, end int
}

// The fields of an item the parser takes itself, in impressionFields order.
const (
	fieldCampaignID = iota
	fieldUserID
	fieldAdID
	fieldUserAgent
)

// maxDepth is encoding/json's nesting limit; a body that passes it is
// malformed there, so it is here.
const maxDepth = 10000

// batchParser reads one batch body.
type batchParser struct {
	b   []byte
	s   string // b as a string: the items' fields are substrings of it
	i   int    // the next byte to read
	max int    // the most items a batch may hold

	items []batchItem
	// problem is the first reason, found outside the items, to refuse the
	// whole body as a batch. It is reported only once the body has proved
	// to be JSON, because encoding/json reports syntax first.
	problem error
	// fallback means the body is not JSON or not an object with an array
	// of impressions, which encoding/json is left to say in its words.
	fallback bool
	depth    int
	stack    []byte // the open containers of a skipped value
}

// parseBatch parses body, refusing it whole with an error that classify
// maps to 400 or 413, or returning its items in order, each with the
// impression it carries or the error the single route would answer for it.
// The items are appended to items[:0], so that a caller may reuse them.
func parseBatch(body []byte, max int, items []batchItem) ([]batchItem, error) {
	p := &batchParser{b: body, s: string(body), max: max, items: items[:0]}
	if err := p.body(); err != nil {
		return nil, err
	}
	if p.fallback {
		return nil, notABatch(body)
	}
	if p.problem != nil {
		return nil, p.problem
	}
	for k := range p.items {
		it := &p.items[k]
		if it.end == 0 {
			continue
		}
		decoded, err := decodeItem(bytes.NewReader(body[it.start:it.end]))
		if err != nil {
			it.err = err
			continue
		}
		it.imp, it.userAgent, it.hasUserAgent = decoded.imp, decoded.userAgent, decoded.hasUserAgent
	}
	return p.items, nil
}

// decodeItem reads one impression from src with decodeFrom, the single
// route's decoder, which answers every body the parser does not take.
func decodeItem(src io.Reader) (batchItem, error) {
	var req impressionRequest
	if err := decodeFrom(src, &req, impressionFields); err != nil {
		return batchItem{}, err
	}
	it := batchItem{imp: adcount.Impression{CampaignID: req.CampaignID, UserID: req.UserID, AdID: req.AdID}}
	if req.UserAgent != nil {
		it.userAgent, it.hasUserAgent = *req.UserAgent, true
	}
	return it, nil
}

// parseItem reads body, the single route's whole body, with the reader of
// a batch's items, so that the two routes share one parser. It reports
// false for anything but the common item (see itemObject) with nothing
// but whitespace around it: decodeItem must answer that body, in its
// words.
func parseItem(body []byte) (batchItem, bool) {
	p := batchParser{b: body, s: string(body)}
	var it batchItem
	p.ws()
	if !p.itemObject(&it) || p.fallback {
		return batchItem{}, false
	}
	p.ws()
	return it, p.i == len(p.b)
}

// notABatch says, in encoding/json's words as the single route would, why
// body is not JSON or not an object whose impressions are an array.
func notABatch(body []byte) error {
	var v struct {
		Impressions []json.RawMessage `json:"impressions"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(&v)
	if err == nil {
		if err = dec.Decode(&struct{}{}); err == nil {
			return badRequest("request body must hold exactly one JSON object")
		}
		if errors.Is(err, io.EOF) {
			// Only a parser bug gets here: encoding/json took the body.
			return badRequest("malformed JSON: the body is not a batch of impressions")
		}
	}
	return decodeError(err)
}

// body reads the whole body. It returns only the errors that end reading
// at once (too many items); every other problem is noted and reading goes
// on, so that a syntax error later in the body still wins.
func (p *batchParser) body() error {
	p.ws()
	if p.i == len(p.b) {
		return badRequest("request body is empty; send a JSON object")
	}
	switch {
	case p.b[p.i] == '{':
		if err := p.object(); err != nil || p.fallback {
			return err
		}
	case p.literal("null"):
		// encoding/json leaves the batch empty: no impressions.
	default:
		p.fallback = true
		return nil
	}
	p.ws()
	if p.i != len(p.b) {
		p.fallback = true // more after the object; encoding/json says what
		return nil
	}
	if p.problem == nil && len(p.items) == 0 {
		p.problem = &adcount.FieldError{Field: "impressions", Message: "must be an array of 1 to " + strconv.Itoa(p.max) + " impressions"}
	}
	return nil
}

// object reads the body's top-level object.
func (p *batchParser) object() error {
	p.i++ // {
	p.depth++
	p.ws()
	if p.next('}') {
		p.depth--
		return nil
	}
	seen := false
	for {
		if !p.at('"') {
			p.fallback = true
			return nil
		}
		start := p.i
		escaped, textOK := p.str()
		if p.fallback {
			return nil
		}
		key := ""
		if textOK {
			key = p.key(start, escaped)
		}
		p.ws()
		if !p.next(':') {
			p.fallback = true
			return nil
		}
		p.ws()
		switch {
		case !textOK:
			p.note(badRequest("request body must be valid UTF-8, without lone surrogate escapes"))
			p.skip()
		case key == "impressions" && seen:
			p.note(&adcount.FieldError{Field: "impressions", Message: "is sent more than once; send each field once"})
			p.skip()
		case key == "impressions":
			seen = true
			switch {
			case p.at('['):
				if err := p.array(); err != nil {
					return err
				}
			case p.literal("null"):
			default:
				p.fallback = true // not an array; encoding/json names the type
				return nil
			}
		case bytes.EqualFold([]byte(key), []byte("impressions")):
			p.note(&adcount.FieldError{Field: key, Message: "field names are case-sensitive; did you mean impressions?"})
			p.skip()
		default:
			// Another field is ignored, as on the single route, but its
			// text must be text.
			if !p.skip() {
				p.note(textError(key))
			}
		}
		if p.fallback {
			return nil
		}
		if p.closes('}') {
			return nil
		}
	}
}

// closes reads what follows a member of an object or an element of an
// array: a comma, after which another comes, or close, which ends it. It
// reports true when there is no more to read here: the end, or anything
// else, which leaves the body to the decoder (p.fallback).
func (p *batchParser) closes(close byte) bool {
	p.ws()
	switch {
	case p.next(','):
		p.ws()
		return false
	case p.next(close):
		p.depth--
		return true
	default:
		p.fallback = true
		return true
	}
}

// array reads the impressions array.
func (p *batchParser) array() error {
	p.i++ // [
	p.depth++
	p.ws()
	if p.next(']') {
		p.depth--
		return nil
	}
	for {
		if len(p.items) == p.max {
			return &batchTooLargeError{limit: p.max}
		}
		p.items = append(p.items, batchItem{})
		p.item(&p.items[len(p.items)-1])
		if p.fallback {
			return nil
		}
		if p.closes(']') {
			return nil
		}
	}
}

// item reads one item. An item it cannot take on its own it marks, with
// its bounds, for decodeFrom.
func (p *batchParser) item(it *batchItem) {
	start, depth := p.i, p.depth
	ok := p.itemObject(it)
	p.depth = depth
	if !ok && !p.fallback {
		*it = batchItem{start: start}
		p.i = start
		p.skip()
		it.end = p.i
	}
}

// itemObject reads an item that is an object of known string fields and
// other fields with valid text; it returns false, where it stopped, at
// anything else.
func (p *batchParser) itemObject(it *batchItem) bool {
	if !p.at('{') || p.depth+1 > maxDepth {
		return false
	}
	p.i++
	p.depth++
	p.ws()
	if p.next('}') {
		return true
	}
	var seen [4]bool
	for {
		if !p.at('"') {
			p.fallback = true
			return false
		}
		start := p.i
		escaped, textOK := p.str()
		if p.fallback || !textOK {
			return false
		}
		key := p.key(start, escaped)
		p.ws()
		if !p.next(':') {
			p.fallback = true
			return false
		}
		p.ws()
		field := -1
		switch key {
		case "campaign_id":
			field = fieldCampaignID
		case "user_id":
			field = fieldUserID
		case "ad_id":
			field = fieldAdID
		case "user_agent":
			field = fieldUserAgent
		}
		switch {
		case field >= 0:
			if seen[field] || !p.at('"') {
				return false
			}
			seen[field] = true
			vstart := p.i
			escaped, textOK := p.str()
			if p.fallback || !textOK {
				return false
			}
			v := p.s[vstart+1 : p.i-1]
			if escaped {
				v = unquote(p.b[vstart+1 : p.i-1])
			}
			switch field {
			case fieldCampaignID:
				it.imp.CampaignID = v
			case fieldUserID:
				it.imp.UserID = v
			case fieldAdID:
				it.imp.AdID = v
			case fieldUserAgent:
				it.userAgent, it.hasUserAgent = v, true
			}
		case foldsToField(key):
			return false
		default:
			if !p.skip() {
				return false
			}
			if p.fallback {
				return false
			}
		}
		p.ws()
		switch {
		case p.next(','):
			p.ws()
		case p.next('}'):
			return true
		default:
			p.fallback = true
			return false
		}
	}
}

// foldsToField reports whether key differs from an impression's field
// only in case, which encoding/json would take for the field and the
// single route refuses.
func foldsToField(key string) bool {
	for _, f := range impressionFields {
		if len(key) <= 3*len(f) && bytes.EqualFold([]byte(key), []byte(f)) {
			return true
		}
	}
	return false
}

// key returns the key whose quoted form starts at start and ends at p.i.
func (p *batchParser) key(start int, escaped bool) string {
	if escaped {
		return unquote(p.b[start+1 : p.i-1])
	}
	return p.s[start+1 : p.i-1]
}

// textError says that the value of the top-level field key is not valid
// text, in the single route's words: naming the field only when textCheck
// would, so that a long name never comes back in the answer or the log.
func textError(key string) error {
	if key == "" || len(key) > len(textCheck{}.key) {
		return badRequest("request body must be valid UTF-8, without lone surrogate escapes")
	}
	return &adcount.FieldError{Field: key, Message: "must be valid UTF-8"}
}

// note keeps the first reason to refuse the whole body.
func (p *batchParser) note(err error) {
	if p.problem == nil {
		p.problem = err
	}
}

// ws skips JSON whitespace.
func (p *batchParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// at reports whether the next byte is c.
func (p *batchParser) at(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

// next reads c if it is the next byte.
func (p *batchParser) next(c byte) bool {
	if p.at(c) {
		p.i++
		return true
	}
	return false
}

// literal reads word (true, false or null) if it comes next.
func (p *batchParser) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string that starts at p.i, a quote, up to and past its
// closing quote. escaped says it holds an escape; textOK is false when
// its text is not valid UTF-8 or holds a lone surrogate escape, which
// encoding/json would repair. A string that is not JSON sets fallback.
func (p *batchParser) str() (escaped, textOK bool) {
	b := p.b
	i := p.i + 1
	textOK = true
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			p.fallback = true
			return escaped, textOK
		}
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			return escaped, textOK
		case c == '\\':
			escaped = true
			n, ok, syntaxOK := escapeAt(b, i)
			if !syntaxOK {
				p.fallback = true
				return escaped, textOK
			}
			textOK = textOK && ok
			i += n
		case c < 0x20:
			p.fallback = true // a control character must be escaped
			return escaped, textOK
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				textOK = false
				size = 1
			}
			i += size
		}
	}
}

// escapeAt reads the escape at b[i], a backslash, and returns its length.
// ok is false for a lone surrogate; syntaxOK is false for what is no JSON
// escape. A high surrogate takes the low one that must follow with it.
func escapeAt(b []byte, i int) (n int, ok, syntaxOK bool) {
	if i+1 >= len(b) {
		return 0, false, false
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true, true
	case 'u':
	default:
		return 0, false, false
	}
	u, good := readHex4(b, i+2)
	if !good {
		return 0, false, false
	}
	switch {
	case 0xDC00 <= u && u <= 0xDFFF:
		return 6, false, true
	case u < 0xD800 || u > 0xDBFF:
		return 6, true, true
	}
	// A high surrogate: a low one must follow, escaped.
	if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
		if lo, good := readHex4(b, i+8); good && 0xDC00 <= lo && lo <= 0xDFFF {
			return 12, true, true
		}
	}
	return 6, false, true
}

// hex4 reads four hex digits at b[i].
func readHex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var u rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			u = u<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return u, true
}

// unquote decodes the escapes of a string's inside that str has checked:
// valid escapes, valid text, surrogates in pairs.
func unquote(in []byte) string {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch in[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			u, _ := readHex4(in, i+2)
			if 0xD800 <= u && u <= 0xDBFF {
				lo, _ := readHex4(in, i+8)
				out = utf8.AppendRune(out, utf16.DecodeRune(u, lo))
				i += 12
				continue
			}
			out = utf8.AppendRune(out, u)
			i += 6
			continue
		default: // " \ /
			out = append(out, in[i+1])
		}
		i += 2
	}
	return string(out)
}

// skip reads one value of any kind, checking its syntax, and reports
// whether its text (keys and strings) is all valid. A value that is not
// JSON sets fallback.
func (p *batchParser) skip() (textOK bool) {
	textOK = true
	stack := p.stack[:0]
	defer func() { p.stack = stack[:0] }()
	for {
		// A value.
		p.ws()
		if p.i >= len(p.b) {
			p.fallback = true
			return textOK
		}
		switch c := p.b[p.i]; {
		case c == '{' || c == '[':
			if p.depth+len(stack)+1 > maxDepth {
				p.fallback = true
				return textOK
			}
			stack = append(stack, c)
			p.i++
			p.ws()
			if p.next(c + 2) { // } and ] are { and [ plus two
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if !p.member(&textOK) {
					return textOK
				}
			}
			continue
		case c == '"':
			_, ok := p.str()
			textOK = textOK && ok
		case c == '-' || '0' <= c && c <= '9':
			p.number()
		case p.literal("true"), p.literal("false"), p.literal("null"):
		default:
			p.fallback = true
		}
		if p.fallback {
			return textOK
		}
		// After a value: close containers or go on to the next element.
		for {
			if len(stack) == 0 {
				return textOK
			}
			p.ws()
			open := stack[len(stack)-1]
			if p.next(open + 2) {
				stack = stack[:len(stack)-1]
				continue
			}
			if !p.next(',') {
				p.fallback = true
				return textOK
			}
			if open == '{' {
				p.ws()
				if !p.member(&textOK) {
					return textOK
				}
			}
			break
		}
	}
}

// member reads an object member's key and colon, in skip.
func (p *batchParser) member(textOK *bool) bool {
	if !p.at('"') {
		p.fallback = true
		return false
	}
	_, ok := p.str()
	*textOK = *textOK && ok
	p.ws()
	if p.fallback || !p.next(':') {
		p.fallback = true
		return false
	}
	return true
}

// number reads a JSON number.
func (p *batchParser) number() {
	b := p.b
	i := p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		p.fallback = true
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			p.fallback = true
			return
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.fallback = true
			return
		}
	}
	p.i = i
}

// mergeResults gives each item the store sent its result, in order. An
// item's error that is no fault of the item (the store failed) fails the
// whole batch, as the store contract allows only item errors per item.
func mergeResults(items []batchItem, results []adcount.Result) error {
	j := 0
	for k := range items {
		it := &items[k]
		if it.err != nil {
			continue
		}
		res := results[j]
		j++
		if res.Err != nil {
			if p := classify(res.Err); p.status >= http.StatusInternalServerError || p.status == StatusClientClosedRequest {
				return res.Err
			}
			it.err = res.Err
			continue
		}
		if _, err := recorded(res.Outcome); err != nil {
			return err
		}
		it.outcome = res.Outcome
	}
	return nil
}

// batchScratch is what one batch request needs while it is served and no
// longer: its body and its items. A full batch's take a few hundred
// kilobytes, so they are reused rather than collected. The impressions
// handed to the store are not: a store whose call was cut short may still
// be writing them.
type batchScratch struct {
	body  bytes.Buffer
	items []batchItem
}

var batchScratches = sync.Pool{New: func() any {
	return &batchScratch{items: make([]batchItem, 0, adcount.MaxBatch)}
}}

// release forgets the request, so that nothing it held is kept alive, and
// returns sc for another request.
func (sc *batchScratch) release() {
	clear(sc.items[:cap(sc.items)])
	sc.body.Reset()
	batchScratches.Put(sc)
}

// batchResponse is the batch reply as json.Marshal would write it;
// encodeBatchReply writes the same bytes by hand (a test checks).
type batchResponse struct {
	Summary batchSummary  `json:"summary"`
	Results []batchResult `json:"results"`
}

type batchSummary struct {
	Counted    int `json:"counted"`
	Duplicates int `json:"duplicates"`
	Filtered   int `json:"filtered"`
	Rejected   int `json:"rejected"`
}

type batchResult struct {
	Outcome string `json:"outcome"`
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
}

// outcomeRejected is a batch item's outcome when it was refused.
const outcomeRejected = "rejected"

// encodeBatchReply writes the reply to a recorded batch, as json.Marshal
// of a batchResponse would with a trailing newline, and counts its
// impressions by outcome.
func encodeBatchReply(items []batchItem) ([]byte, Impressions) {
	var n Impressions
	rejected := 0
	for k := range items {
		it := &items[k]
		if it.err != nil {
			rejected++
			kind := classify(it.err).kind
			found := false
			for r := range n.Rejected {
				if n.Rejected[r].Reason == kind {
					n.Rejected[r].Count++
					found = true
					break
				}
			}
			if !found {
				n.Rejected = append(n.Rejected, Rejection{Reason: kind, Count: 1})
			}
			continue
		}
		switch it.outcome {
		case adcount.Counted:
			n.Counted++
		case adcount.Duplicate:
			n.Duplicate++
		case adcount.Filtered:
			n.Filtered++
		}
	}
	b := make([]byte, 0, 96+len(items)*24+rejected*96)
	b = append(b, `{"summary":{"counted":`...)
	b = strconv.AppendInt(b, int64(n.Counted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(n.Duplicate), 10)
	b = append(b, `,"filtered":`...)
	b = strconv.AppendInt(b, int64(n.Filtered), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(rejected), 10)
	b = append(b, `},"results":[`...)
	for k := range items {
		it := &items[k]
		if k > 0 {
			b = append(b, ',')
		}
		if it.err == nil {
			b = append(b, `{"outcome":"`...)
			b = append(b, it.outcome.String()...)
			b = append(b, `"}`...)
			continue
		}
		p := classify(it.err)
		b = append(b, `{"outcome":"rejected","status":`...)
		b = strconv.AppendInt(b, int64(p.status), 10)
		b = append(b, `,"code":`...)
		b = appendMarshaledString(b, p.code())
		b = append(b, `,"error":`...)
		b = appendMarshaledString(b, p.message)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	return b, n
}

// appendMarshaledString appends s as json.Marshal writes a string: quoted,
// with HTML characters escaped and invalid UTF-8 replaced.
func appendMarshaledString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !plain[c] || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
