package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassifySingle(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		code uint16
		body string
		want outcome
	}{
		// The reply since bots are filtered names the outcome.
		{"Counted", 200, `{"message":"Impression saved successfully","counted":true,"outcome":"counted"}`, counted},
		{"Duplicate", 200, `{"message":"Duplicate impression ignored","counted":false,"outcome":"duplicate"}`, duplicate},
		{"Filtered", 200, `{"message":"Filtered","counted":false,"outcome":"filtered"}`, filtered},
		// A service before filtering says only the flag.
		{"CountedFlagOnly", 200, `{"message":"Impression saved successfully","counted":true}`, counted},
		{"DuplicateFlagOnly", 200, `{"message":"Duplicate impression ignored","counted":false}`, duplicate},
		// A 2xx must say which; a missing flag is a contract violation.
		{"NoFlag", 200, `{"message":"ok"}`, unreadable},
		{"NotJSON", 200, `ok`, unreadable},
		// The flag and the outcome must agree, and name a recorded outcome.
		{"FlagContradictsOutcome", 200, `{"counted":true,"outcome":"duplicate"}`, unreadable},
		{"FilteredButCounted", 200, `{"counted":true,"outcome":"filtered"}`, unreadable},
		{"RejectedWith200", 200, `{"counted":false,"outcome":"rejected"}`, unreadable},
		{"UnknownOutcome", 200, `{"counted":false,"outcome":"maybe"}`, unreadable},
		// 4xx: validated and refused before anything was recorded.
		{"BadRequest", 400, `{"error":"user_id: required"}`, rejected},
		{"NotStarted", 409, `{"error":"campaign has not started yet"}`, rejected},
		// No reply at all, or a server error: it may have been recorded.
		{"NoReply", 0, ``, uncertain},
		{"Unavailable", 503, `{"error":"the store is unavailable"}`, uncertain},
		{"Internal", 500, `{"error":"internal error"}`, uncertain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, classifySingle(tc.code, []byte(tc.body)))
		})
	}
}

func TestClassifyPixel(t *testing.T) {
	t.Parallel()
	h := func(vs ...string) http.Header { return http.Header{outcomeHeader: vs} }
	cases := []struct {
		name   string
		code   uint16
		header http.Header
		want   outcome
	}{
		// The header carries the outcome; the body is always the image.
		{"Counted", 200, h("counted"), counted},
		{"Duplicate", 200, h("duplicate"), duplicate},
		{"Filtered", 200, h("filtered"), filtered},
		// A 200 that does not say what happened breaks the contract.
		{"NoHeader", 200, http.Header{}, unreadable},
		{"UnknownOutcome", 200, h("maybe"), unreadable},
		{"RejectedWith200", 200, h("rejected"), unreadable},
		{"TwoOutcomes", 200, h("counted", "duplicate"), unreadable},
		// The single route's status for a bad or unknown impression.
		{"NotFound", 404, h("rejected"), rejected},
		{"Invalid", 400, h("rejected"), rejected},
		// The store failed, or no answer came: it may have been recorded.
		{"Unavailable", 503, h("unavailable"), uncertain},
		{"NoReply", 0, nil, uncertain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, classifyPixel(tc.code, tc.header))
		})
	}
}

// batchReply is a batch reply as the API encodes it, for the outcomes
// given by their API names.
func batchReply(names ...string) []byte {
	var sum batchSummary
	results := make([]string, len(names))
	for i, n := range names {
		switch n {
		case "counted":
			sum.Counted++
		case "duplicate":
			sum.Duplicates++
		case "filtered":
			sum.Filtered++
		case "rejected":
			sum.Rejected++
			results[i] = `{"outcome":"rejected","status":404,"code":"not_found","error":"campaign not found"}`
			continue
		}
		results[i] = `{"outcome":"` + n + `"}`
	}
	return fmt.Appendf(nil, `{"summary":{"counted":%d,"duplicates":%d,"filtered":%d,"rejected":%d},"results":[%s]}`+"\n",
		sum.Counted, sum.Duplicates, sum.Filtered, sum.Rejected, strings.Join(results, ","))
}

func TestParseBatchReply(t *testing.T) {
	t.Parallel()
	all := []outcome{counted, duplicate, filtered, rejected}
	cases := []struct {
		name string
		body string
		n    int
		want []outcome // nil: the reply breaks the contract
		err  string
	}{
		// The API's reply, one result per item, in order.
		{"AllOutcomes", string(batchReply("counted", "duplicate", "filtered", "rejected")), 4, all, ""},
		// White space, fields in another order, fields the harness does
		// not need: all read by the grammar, not by position.
		{"Reordered", ` { "results" : [ {"status":200, "outcome" : "counted"} ] , "extra":[1,-2.5e3,true,null,{"a":"b"}],
			"summary" : {"rejected":0,"filtered":0,"duplicates":0,"counted":1} } `, 1, []outcome{counted}, ""},
		// An error text that quotes what an outcome looks like is a
		// string, not a field.
		{"QuotedOutcomeInError", `{"summary":{"counted":0,"duplicates":0,"filtered":0,"rejected":1},"results":[{"outcome":"rejected","error":"{\"outcome\":\"counted\"}"}]}`, 1, []outcome{rejected}, ""},
		// Escapes in a name or a value are decoded before they are compared.
		{"EscapedNames", `{"summ\u0061ry":{"counted":1,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"co\u0075nted"}]}`, 1, []outcome{counted}, ""},
		// Fewer or more results than items sent.
		{"TooFewResults", string(batchReply("counted")), 2, nil, "1 results for 2 impressions"},
		{"TooManyResults", string(batchReply("counted", "counted")), 1, nil, "2 results for 1 impressions"},
		// The summary must agree with the results it sums.
		{"SummaryDisagrees", `{"summary":{"counted":2,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"counted"},{"outcome":"duplicate"}]}`, 2, nil, "the summary says"},
		{"NoSummary", `{"results":[{"outcome":"counted"}]}`, 1, nil, "no summary"},
		{"SummaryLacksFiltered", `{"summary":{"counted":1,"duplicates":0,"rejected":0},"results":[{"outcome":"counted"}]}`, 1, nil, "lacks one of"},
		{"FractionalCount", `{"summary":{"counted":1.0,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"counted"}]}`, 1, nil, "not a count"},
		// Every item names a known outcome, once.
		{"NoOutcome", `{"summary":{"counted":0,"duplicates":0,"filtered":0,"rejected":0},"results":[{"status":200}]}`, 1, nil, "has no outcome"},
		{"UnknownOutcome", `{"summary":{"counted":0,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"lost"}]}`, 1, nil, `unknown outcome "lost"`},
		{"TwoOutcomes", `{"summary":{"counted":1,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"counted","outcome":"counted"}]}`, 1, nil, "two outcomes"},
		{"NoResults", `{"summary":{"counted":0,"duplicates":0,"filtered":0,"rejected":0}}`, 1, nil, "no results"},
		// Not JSON, or not all of it.
		{"Truncated", string(batchReply("counted", "counted"))[:60], 2, nil, "batch reply"},
		{"Trailing", string(batchReply("counted")) + "{}", 1, nil, "data after the reply"},
		{"NotJSON", `<html>502 Bad Gateway</html>`, 1, nil, "want '{'"},
		{"BadNumber", `{"x":01,"summary":{"counted":1,"duplicates":0,"filtered":0,"rejected":0},"results":[{"outcome":"counted"}]}`, 1, nil, "want , or }"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := make([]outcome, tc.n)
			err := parseBatchReply([]byte(tc.body), out)
			if tc.want == nil {
				require.ErrorIs(t, err, errBatchReply)
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, out)
		})
	}
}
