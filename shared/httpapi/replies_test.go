package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		{"Counted", countedReply, impressionResponse{Message: "Impression saved successfully", Counted: true}},
		{"Duplicate", duplicateReply, impressionResponse{Message: "Duplicate impression ignored: this campaign, user and ad were already counted within the dedup window", Counted: false}},
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
