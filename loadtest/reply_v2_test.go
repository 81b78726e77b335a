//go:build go1.27

// encoding/json/v2 is in the standard library from Go 1.27 on; go.mod
// still says 1.26, so this constraint sets this file's language version.

package main

import (
	"encoding/json"
	jsonv2 "encoding/json/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// referenceReply is a batch reply as encoding/json/v2 decodes it: the
// reference the hand-written scanner is checked and measured against.
type referenceReply struct {
	Summary *struct {
		Counted    *int64 `json:"counted"`
		Duplicates *int64 `json:"duplicates"`
		Filtered   *int64 `json:"filtered"`
		Rejected   *int64 `json:"rejected"`
	} `json:"summary"`
	Results []struct {
		Outcome string `json:"outcome"`
	} `json:"results"`
}

// referenceParse is parseBatchReply's contract with encoding/json/v2 doing
// the decoding.
func referenceParse(body []byte, out []outcome) error {
	var r referenceReply
	if err := jsonv2.Unmarshal(body, &r); err != nil {
		return err
	}
	if r.Summary == nil || len(r.Results) != len(out) {
		return errBatchReply
	}
	sum := r.Summary
	if sum.Counted == nil || sum.Duplicates == nil || sum.Filtered == nil || sum.Rejected == nil {
		return errBatchReply
	}
	var tally batchSummary
	for i, res := range r.Results {
		switch out[i] = outcomeNamed([]byte(res.Outcome)); out[i] {
		case counted:
			tally.Counted++
		case duplicate:
			tally.Duplicates++
		case filtered:
			tally.Filtered++
		case rejected:
			tally.Rejected++
		default:
			return errBatchReply
		}
	}
	if tally != (batchSummary{*sum.Counted, *sum.Duplicates, *sum.Filtered, *sum.Rejected}) {
		return errBatchReply
	}
	return nil
}

// FuzzParseBatchReply checks the scanner against encoding/json/v2: where
// both read a reply they agree, a reply the reference reads in full is
// read, and whatever the scanner reads is valid JSON.
func FuzzParseBatchReply(f *testing.F) {
	f.Add(batchReply("counted", "duplicate", "filtered", "rejected"), 4)
	f.Add(batchReply("rejected"), 1)
	f.Add([]byte(`{"summary":{"counted":0,"duplicates":0,"filtered":0,"rejected":1},"results":[{"outcome":"rejected","error":"{\"outcome\":\"counted\"} \u00e9"}]}`), 1)
	f.Add([]byte(` {"results":[{"x":[{},[],"\\",-0.5E+2,false]},{"outcome":"counted"}],"summary":{"counted":1,"duplicates":0,"filtered":0,"rejected":0}}`), 2)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		got, want := make([]outcome, n), make([]outcome, n)
		err := parseBatchReply(body, got)
		refErr := referenceParse(body, want)
		if err == nil {
			require.True(t, json.Valid(body), "the scanner read invalid JSON %q", body)
		}
		if err == nil && refErr == nil {
			require.Equal(t, want, got, "%q", body)
		}
		if refErr == nil {
			require.NoError(t, err, "encoding/json/v2 reads %q", body)
		}
	})
}

// BenchmarkParseBatchReply measures reading a reply to a batch of a
// thousand, a fifth of them duplicates and a few rejected, as the
// harness's one result goroutine must hundreds of times a second.
func BenchmarkParseBatchReply(b *testing.B) {
	names := make([]string, maxBatch)
	for i := range names {
		switch {
		case i%5 == 4:
			names[i] = "duplicate"
		case i%100 == 7:
			names[i] = "rejected"
		default:
			names[i] = "counted"
		}
	}
	body := batchReply(names...)
	decoders := []struct {
		name  string
		parse func([]byte, []outcome) error
	}{
		{"Scanner", parseBatchReply},
		{"JSONv2", referenceParse},
		{"JSONv1", func(body []byte, out []outcome) error {
			var r referenceReply
			if err := json.Unmarshal(body, &r); err != nil {
				return err
			}
			for i, res := range r.Results {
				out[i] = outcomeNamed([]byte(res.Outcome))
			}
			return nil
		}},
	}
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			out := make([]outcome, maxBatch)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.parse(body, out); err != nil {
					b.Fatal(err)
				}
			}
			require.Equal(b, maxBatch, len(out))
			require.True(b, slices.Contains(out, rejected))
		})
	}
}
