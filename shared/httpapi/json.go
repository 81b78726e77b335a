package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// decodeStrict reads exactly one JSON object from an admin route's request
// body into dst. The body is capped at MaxBodyBytes. Errors say, in words
// a client can act on, what was wrong and which field; fail turns them
// into 400 or 413. The Content-Type is not checked, as on every route.
//
// fields are dst's JSON field names: text that decoding would repair
// (invalid UTF-8, lone surrogate escapes), a field sent twice, a field
// name in the wrong case and a field the request does not have are
// refused, where encoding/json would accept them silently (see
// textCheck). The impression routes' bodies are read more leniently (see
// decodeFrom): an ad tag that sends extra data still has its impressions
// counted; a campaign is changed on purpose, by a person or a program
// that means every field it sends, and a misspelt "endtime" ignored would
// leave running a campaign that its owner believes ended.
func decodeStrict(w http.ResponseWriter, r *http.Request, dst any, fields []string) error {
	return decodeChecked(http.MaxBytesReader(w, r.Body, MaxBodyBytes), dst, &textCheck{fields: fields, strict: true})
}

// decodeFrom reads exactly one JSON object from body into dst, as
// decodeStrict does but ignoring fields that are not the request's. It
// reads the single impression route's body and each item of a batch, so
// that an item is answered exactly as the same JSON sent alone would be.
func decodeFrom(body io.Reader, dst any, fields []string) error {
	return decodeChecked(body, dst, &textCheck{fields: fields})
}

// decodeChecked decodes body into dst through check, whose r it sets.
func decodeChecked(body io.Reader, dst any, check *textCheck) error {
	check.r = body
	dec := json.NewDecoder(check)
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	// Anything after the object, even a second object, is a malformed body.
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return badRequest("request body must hold exactly one JSON object")
		}
		return decodeError(err)
	}
	// The whole body has been read and checked.
	return check.err
}

// readImpression reads the single route's body: the impression and the
// user_agent it sends, or the error decodeFrom would answer, word for word.
//
// The body is read whole, up to MaxBodyBytes, into a reused buffer, and
// the common body (one object of string fields, each sent once, with
// valid text) is read by parseItem, the batch's item reader, in one pass
// that allocates one string. Any other body goes to decodeItem, and when
// reading stopped early (a body over the limit, or a read error), it
// reads again the same bytes followed by the rest of the body or the same
// error, through the same MaxBytesReader, so that the answer is the one
// decoding the body as it arrives would give.
func readImpression(w http.ResponseWriter, r *http.Request) (batchItem, error) {
	buf := bodyBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledBody {
			bodyBuffers.Put(buf)
		}
	}()
	body, rest := readBody(r.Body, (*buf)[:0], MaxBodyBytes)
	*buf = body[:0]
	if rest == nil {
		if it, ok := parseItem(body); ok {
			return it, nil
		}
		return decodeItem(bytes.NewReader(body))
	}
	again := io.NopCloser(io.MultiReader(bytes.NewReader(body), rest))
	return decodeItem(http.MaxBytesReader(w, again, MaxBodyBytes))
}

// bodyBuffers are the single route's body buffers; one larger than
// maxPooledBody, which no ordinary body needs, is left to the collector.
var bodyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

const maxPooledBody = 8 << 10

// readBody appends what src holds to buf, up to limit bytes. When src
// ends within the limit, rest is nil; otherwise body holds the first
// bytes read, more than limit when the body is too large, and rest gives
// what reading on would have: the rest of src, or the error src returned.
func readBody(src io.Reader, buf []byte, limit int) (body []byte, rest io.Reader) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := src.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF && len(buf) <= limit:
			return buf, nil
		case err != nil:
			return buf, errorReader{err}
		case len(buf) > limit:
			return buf, src
		}
	}
}

// errorReader returns err, as the reader it came from did.
type errorReader struct{ err error }

func (r errorReader) Read([]byte) (int, error) { return 0, r.err }

// jsonFields returns the JSON names of T's fields, from their tags.
func jsonFields[T any]() []string {
	t := reflect.TypeFor[T]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// decodeError says what was wrong with a body that did not decode.
func decodeError(err error) error {
	var (
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(fmt.Sprintf("%s: must be %s, got %s", typ.Field, withArticle(jsonType(typ.Type.Kind().String())), typ.Value))
	case errors.As(err, &typ):
		return badRequest("request body must be a JSON object, got " + typ.Value)
	default:
		return badRequest("malformed JSON: " + err.Error())
	}
}

// jsonType names a Go kind as JSON calls it.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}

// withArticle puts "a" or "an" before a JSON type's name.
func withArticle(name string) string {
	if name == "array" || name == "object" {
		return "an " + name
	}
	return "a " + name
}

// writeJSON sends v as the whole response and returns the status sent. v
// is always one of the API's own response types, so a marshalling error is
// a bug; it is still answered with a 500 rather than a truncated body.
func writeJSON(w http.ResponseWriter, status int, v any) int {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error"}`)
	}
	writeEncoded(w, status, append(body, '\n'))
	return status
}

// writeEncoded sends body, JSON with its trailing newline, as the whole
// response.
func writeEncoded(w http.ResponseWriter, status int, body []byte) {
	writeBody(w, status, "application/json", body)
}

// writeBody sends body, of the given media type, as the whole response.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	if contentType == "application/json" {
		h["Content-Type"] = jsonContentType
	} else {
		h["Content-Type"] = []string{contentType}
	}
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorResponse is the API's one error shape: a message for people and a
// stable code for programs, such as the Go client, so that no client has
// to read the message to tell one error from another.
type errorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// writeError sends the API's one error shape, {"error": message, "code":
// code}; the code is the error's kind, as logs and metrics name it.
func writeError(w http.ResponseWriter, status int, message, code string) {
	writeJSON(w, status, errorResponse{Error: message, Code: code})
}
