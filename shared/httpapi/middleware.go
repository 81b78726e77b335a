package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
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
