package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
)

// adminKeys checks Bearer tokens against the active admin keys. It keeps
// only SHA-256 digests, and compares the digest of a presented token with
// every key's digest in constant time, so neither a key's bytes nor its
// length leak through timing.
type adminKeys struct {
	digests [][sha256.Size]byte
}

func newAdminKeys(keys []string) adminKeys {
	var k adminKeys
	for _, key := range keys {
		if key = strings.TrimSpace(key); key != "" {
			k.digests = append(k.digests, sha256.Sum256([]byte(key)))
		}
	}
	return k
}

// open reports whether no key is configured, which leaves the admin routes
// open for local development.
func (k adminKeys) open() bool { return len(k.digests) == 0 }

// check returns nil if r carries an active key, errNoCredentials if it
// carries no Bearer token, and errWrongCredentials otherwise.
func (k adminKeys) check(r *http.Request) error {
	if k.open() {
		return nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errNoCredentials
	}
	presented := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for _, d := range k.digests {
		match |= subtle.ConstantTimeCompare(presented[:], d[:])
	}
	if match != 1 {
		return errWrongCredentials
	}
	return nil
}

// admin guards an admin route with the admin keys.
func (a *api) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.keys.check(r); err != nil {
			a.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossOrigin lets ad tags on any site post impressions from the browser. It
// allows any origin but never credentials: the route needs none, and a
// wildcard origin with credentials is refused by browsers anyway.
func crossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next.ServeHTTP(w, r)
	})
}

// handlePreflight answers a browser's CORS preflight for a cross-origin POST
// with a JSON body. Browsers may cache the answer for a day.
func handlePreflight() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	})
}

// recoverPanics turns a panic in a handler into a 500 JSON error and logs it
// with its stack, so one bad request never takes the server down or leaves
// the client without an answer. http.ErrAbortHandler is re-raised: it is
// net/http's way to abort a response on purpose.
func (a *api) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.fail(w, r, &panicError{value: fmt.Sprint(v), stack: debug.Stack()})
		}()
		next.ServeHTTP(w, r)
	})
}

// panicError carries a recovered panic and its stack to the request log.
type panicError struct {
	value string
	stack []byte
}

func (e *panicError) Error() string { return "panic: " + e.value + "\n" + string(e.stack) }
