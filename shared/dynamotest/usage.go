package dynamotest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
)

// CallerHeader is the request header that names the caller a request is
// counted under in Usage; Label sets it.
const CallerHeader = "X-Dynamotest-Caller"

// Label returns a transport wrapper, for the wrap argument of Client and
// StreamsClient, that names every request of the client as sent by caller,
// so that Usage can tell, say, the store's requests from the aggregator's.
// A request without the header is counted under the app ID of its
// User-Agent (the SDK's AppID, or AWS_SDK_UA_APP_ID for a process that
// loads its own configuration), else under "".
func Label(caller string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set(CallerHeader, caller)
			return next.RoundTrip(r)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// callerOf names the caller of r for Usage: see Label.
func callerOf(r *http.Request) string {
	if c := r.Header.Get(CallerHeader); c != "" {
		return c
	}
	for _, f := range strings.Fields(r.Header.Get("User-Agent")) {
		if id, ok := strings.CutPrefix(f, "app/"); ok {
			return id
		}
	}
	return ""
}

// Counts is what some requests to the server did and what DynamoDB would
// bill for them on demand.
type Counts struct {
	// Requests is how many requests the server received, whatever their
	// outcome; Errors how many of them it answered with an error (a
	// failed condition included).
	Requests, Errors int64
	// ItemsRead is how many items reads returned.
	ItemsRead int64
	// ItemsWritten is how many put, update and delete actions on single
	// items the server carried out or refused on a condition: each is
	// billed. A ConditionCheck is not one.
	ItemsWritten int64
	// Changes is how many of those changed an item: each made a stream
	// record if the table has a stream.
	Changes int64
	// WriteUnits is the write request units (WRU) billed; see Server.
	WriteUnits int64
	// ReadUnits is the read request units (RRU) billed; see Server.
	ReadUnits float64
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.ItemsRead += o.ItemsRead
	c.ItemsWritten += o.ItemsWritten
	c.Changes += o.Changes
	c.WriteUnits += o.WriteUnits
	c.ReadUnits += o.ReadUnits
}

// Usage is the server's request accounting since it started or since
// ResetUsage: the totals, and the same by operation and by caller.
type Usage struct {
	Counts
	// Operations holds the counts of each operation by its name, such as
	// "PutItem" or "GetRecords".
	Operations map[string]Counts
	// Callers holds the counts of each caller (see Label) by name.
	Callers map[string]Counts
}

// String lays the usage out as a table, one operation a line, for a test's
// log.
func (u Usage) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\trequests\terrors\titems read\titems written\tchanges\tWRU\tRRU\t")
	line := func(name string, c Counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%g\t\n", name, c.Requests, c.Errors, c.ItemsRead, c.ItemsWritten, c.Changes, c.WriteUnits, c.ReadUnits)
	}
	for _, op := range slices.Sorted(maps.Keys(u.Operations)) {
		line(op, u.Operations[op])
	}
	line("total", u.Counts)
	_ = tw.Flush()
	return b.String()
}

type usageKey struct{ caller, op string }

// Usage returns the accounting of every request since the server started or
// since ResetUsage.
func (s *Server) Usage() Usage {
	return s.usage(func(string) bool { return true })
}

// CallerUsage returns the accounting of the requests of one caller (see
// Label), by operation.
func (s *Server) CallerUsage(caller string) Usage {
	return s.usage(func(c string) bool { return c == caller })
}

func (s *Server) usage(match func(caller string) bool) Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := Usage{Operations: map[string]Counts{}, Callers: map[string]Counts{}}
	for k, c := range s.counts {
		if !match(k.caller) {
			continue
		}
		u.add(c)
		op := u.Operations[k.op]
		op.add(c)
		u.Operations[k.op] = op
		cl := u.Callers[k.caller]
		cl.add(c)
		u.Callers[k.caller] = cl
	}
	return u
}

// ResetUsage sets every count to zero, so that a test can measure one
// phase of its work.
func (s *Server) ResetUsage() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

func (s *Server) count(caller, op string, c Counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := usageKey{caller, op}
	cur := s.counts[k]
	cur.add(c)
	s.counts[k] = cur
}
