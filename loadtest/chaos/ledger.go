package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// key is an impression's dedup key.
type key struct{ campaign, user, ad string }

// ledger appends one line per answer to a file that outlives the server and
// every cycle, so that verify sees all of them:
//
//	imp <outcome> <campaign> <user> <ad>
//	campaign <id>          a 201 for a new campaign
//	campaign-unknown -     a campaign request that got no definite answer
//
// Fields are separated by tabs; the load command's IDs contain none.
type ledger struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

func openLedger(path string) (*ledger, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return &ledger{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *ledger) impression(o outcome, k key) {
	l.line("imp", string(o), k.campaign, k.user, k.ad)
}

func (l *ledger) campaign(id string) { l.line("campaign", id) }

func (l *ledger) campaignUnknown() { l.line("campaign-unknown", "-") }

func (l *ledger) line(fields ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A write error is kept by the bufio.Writer and returned by Close.
	_, _ = l.w.WriteString(strings.Join(fields, "\t") + "\n")
}

// Close writes what is buffered and closes the file.
func (l *ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		l.f.Close()
		return fmt.Errorf("write ledger: %w", err)
	}
	return l.f.Close()
}

// keyRecord is everything the ledger says about one key.
type keyRecord struct {
	counted, duplicate, rejected, unknown int
}

// acknowledged is true when the service promised a durable record of the
// key: it answered counted or duplicate.
func (r keyRecord) acknowledged() bool { return r.counted > 0 || r.duplicate > 0 }

// book is a ledger read back.
type book struct {
	keys      map[key]*keyRecord
	order     []key // first sighting order, for a stable probe
	campaigns []string
	// campaignsUnknown counts campaign requests without a definite answer.
	campaignsUnknown int
	// requests counts every line: impressions and campaigns.
	requests int
}

func readBook(r io.Reader) (*book, error) {
	b := &book{keys: map[key]*keyRecord{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		switch {
		case f[0] == "imp" && len(f) == 5:
			k := key{f[2], f[3], f[4]}
			rec := b.keys[k]
			if rec == nil {
				rec = &keyRecord{}
				b.keys[k] = rec
				b.order = append(b.order, k)
			}
			switch outcome(f[1]) {
			case counted:
				rec.counted++
			case duplicate:
				rec.duplicate++
			case rejected:
				rec.rejected++
			case unknown:
				rec.unknown++
			default:
				return nil, fmt.Errorf("ledger line %d: unknown outcome %q", n, f[1])
			}
			b.requests++
		case f[0] == "campaign" && len(f) == 2:
			b.campaigns = append(b.campaigns, f[1])
			b.requests++
		case f[0] == "campaign-unknown" && len(f) == 2:
			b.campaignsUnknown++
			b.requests++
		default:
			return nil, fmt.Errorf("ledger line %d: cannot read %q", n, sc.Text())
		}
	}
	return b, sc.Err()
}
