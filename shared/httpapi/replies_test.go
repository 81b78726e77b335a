package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/gif"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// TestImpressionRepliesAreTheirJSON: the replies encoded by hand are byte
// for byte what json.Marshal makes of them, newline included.
func TestImpressionRepliesAreTheirJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		reply []byte
		want  impressionResponse
	}{
		{"Counted", countedReply, impressionResponse{Message: "Impression saved successfully", Counted: true, Outcome: "counted"}},
		{"Duplicate", duplicateReply, impressionResponse{Message: "Duplicate impression ignored: this campaign, user and ad were already counted within the dedup window", Counted: false, Outcome: "duplicate"}},
		{"Filtered", filteredReply, impressionResponse{Message: "Impression filtered as invalid traffic: the User-Agent is a known bot or crawler, so it is not counted", Counted: false, Outcome: "filtered"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body, err := json.Marshal(tc.want)
			require.NoError(t, err)
			assert.Equal(t, string(append(body, '\n')), string(tc.reply))
		})
	}
}

// TestBatchReplyIsItsJSON: the batch reply written by hand is byte for
// byte json.Marshal of the same batchResponse, for every outcome and for
// error messages that JSON must escape.
func TestBatchReplyIsItsJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		items []batchItem
	}{
		// Every outcome, and a rejection for each per-item error kind.
		{"EveryOutcome", []batchItem{
			{outcome: adcount.Counted},
			{outcome: adcount.Duplicate},
			{outcome: adcount.Filtered},
			{err: fmt.Errorf("store: %w", adcount.ErrNotFound)},
			{err: fmt.Errorf("store: %w", adcount.ErrNotStarted)},
			{err: fmt.Errorf("store: %w", adcount.ErrPaused)},
			{err: fmt.Errorf("store: %w", adcount.ErrEnded)},
			{err: &adcount.FieldError{Field: "user_id", Message: "must be at most 256 bytes, got 300"}},
			{err: badRequest("request body must be a JSON object, got string")},
		}},
		// Messages can carry what a client sent, such as a field name in
		// the wrong case: quotes, HTML, control characters, non-ASCII and
		// invalid UTF-8 are escaped as json.Marshal escapes them.
		{"EscapedMessages", []batchItem{
			{err: &adcount.FieldError{Field: `uſer_id`, Message: "field names are case-sensitive; did you mean user_id?"}},
			{err: badRequest("quote \" backslash \\ <script>&amp; tab\t nul\x00 line\u2028 bad\xff")},
		}},
		// A single item, and the summary's zero counts.
		{"One", []batchItem{{outcome: adcount.Counted}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, n := encodeBatchReply(tc.items)
			want := batchResponse{Results: []batchResult{}}
			for _, it := range tc.items {
				if it.err != nil {
					p := classify(it.err)
					want.Summary.Rejected++
					want.Results = append(want.Results, batchResult{Outcome: "rejected", Status: p.status, Code: p.code(), Error: p.message})
					continue
				}
				switch it.outcome {
				case adcount.Counted:
					want.Summary.Counted++
				case adcount.Duplicate:
					want.Summary.Duplicates++
				case adcount.Filtered:
					want.Summary.Filtered++
				}
				want.Results = append(want.Results, batchResult{Outcome: it.outcome.String()})
			}
			body, err := json.Marshal(want)
			require.NoError(t, err)
			assert.Equal(t, string(append(body, '\n')), string(got))
			assert.Equal(t, want.Summary.Counted, n.Counted)
			assert.Equal(t, want.Summary.Duplicates, n.Duplicate)
			assert.Equal(t, want.Summary.Filtered, n.Filtered)
			assert.Equal(t, len(tc.items), n.Total())
		})
	}
}

// FuzzAppendMarshaledString: any string is written as json.Marshal writes it.
func FuzzAppendMarshaledString(f *testing.F) {
	for _, s := range []string{"", "campaign not found", "<&>", "\"\\", "\x00\x1f\x7f", "é\u2028\u2029", "\xff\xfe", "uſer_id"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMarshaledString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q: got %s, want %s", s, got[1:], want)
		}
	})
}

// TestPixelIsATransparentGIF: the pixel decodes as a 1x1 GIF whose one
// pixel is fully transparent.
func TestPixelIsATransparentGIF(t *testing.T) {
	t.Parallel()
	img, err := gif.Decode(bytes.NewReader(pixelGIF))
	require.NoError(t, err)
	assert.Equal(t, 1, img.Bounds().Dx())
	assert.Equal(t, 1, img.Bounds().Dy())
	_, _, _, alpha := img.At(img.Bounds().Min.X, img.Bounds().Min.Y).RGBA()
	assert.Zero(t, alpha, "transparent")
	assert.Len(t, pixelGIF, 43)
}

// TestBatchStoreFaultPerItemFailsTheBatch: the store contract allows only
// an item's own errors per item; a store that reports its failure on an
// item fails the whole batch, which the client retries safely, rather
// than an item that may have been recorded being reported as refused.
func TestBatchStoreFaultPerItemFailsTheBatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		err   error
		whole bool
	}{
		// The item's own faults stay the item's.
		{"NotFound", adcount.ErrNotFound, false},
		{"NotStarted", adcount.ErrNotStarted, false},
		{"Paused", adcount.ErrPaused, false},
		{"Ended", adcount.ErrEnded, false},
		{"Invalid", &adcount.FieldError{Field: "ad_id", Message: "is required and must be a non-empty string"}, false},
		// The store's faults, and the client's hang-up, are the batch's.
		{"Unavailable", adcount.ErrUnavailable, true},
		{"Canceled", context.Canceled, true},
		{"Unknown", errors.New("bug"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			items := []batchItem{{}, {}}
			err := mergeResults(items, []adcount.Result{{Outcome: adcount.Counted}, {Err: tc.err}})
			if tc.whole {
				assert.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, adcount.Counted, items[0].outcome)
			assert.ErrorIs(t, items[1].err, tc.err)
			assert.Less(t, classify(items[1].err).status, http.StatusInternalServerError)
		})
	}
	// An outcome no store answers is a fault too.
	assert.Error(t, mergeResults([]batchItem{{}}, []adcount.Result{{}}))
}
