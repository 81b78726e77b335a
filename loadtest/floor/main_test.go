package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFloorDecodesAndAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want int
	}{
		// The impression body the service takes: decoded, answered 200.
		{"Impression", `{"campaign_id":"c","user_id":"u","ad_id":"a"}`, http.StatusOK},
		// The floor still decodes, so a body that does not decode fails.
		{"Malformed", `{"campaign_id":`, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			handler(rec, httptest.NewRequest(http.MethodPost, "/api/v1/impressions", strings.NewReader(tc.body)))
			assert.Equal(t, tc.want, rec.Code)
			if tc.want == http.StatusOK {
				assert.Equal(t, string(reply), rec.Body.String())
			}
		})
	}
}
