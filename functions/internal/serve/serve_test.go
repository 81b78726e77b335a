package serve_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/httpapi"
)

func TestRunRefusesToStart(t *testing.T) {
	t.Parallel()
	env := map[string]string{"STORE": "memory", "ADMIN_API_KEYS": "serve-admin-key-0123456789"}
	cases := []struct {
		name    string
		fn      serve.Function
		env     map[string]string
		mention string
	}{
		// A main naming a function the template does not deploy, such as
		// one planned but not built yet, is a mistake to report at start.
		{"UnknownFunction", serve.Function("aggregate"), env, `unknown function "aggregate"`},
		// The function name is checked before the settings, so the error
		// is about the function, not whatever setting is also wrong.
		{"UnknownFunctionBeforeSettings", serve.Function(""), map[string]string{"DEDUP_TTL": "soon"}, `unknown function ""`},
		// The admin function serves campaigns and stats, so it never
		// starts open. (Ingest serves no admin route and needs no key.)
		{"AdminWithoutAdminKey", serve.Admin, map[string]string{"STORE": "memory"}, "ADMIN_API_KEYS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := serve.Run(context.Background(), tc.fn, func(k string) string { return tc.env[k] }, io.Discard)
			require.ErrorContains(t, err, tc.mention)
		})
	}
}

// TestFunctionsServeOneAccessClassEach: each function serves exactly one
// access class of the API, and together they serve both.
func TestFunctionsServeOneAccessClassEach(t *testing.T) {
	t.Parallel()
	assert.Equal(t, httpapi.Ingest, serve.Ingest.Access())
	assert.Equal(t, httpapi.Admin, serve.Admin.Access())
	// A function not yet given a class serves nothing, never admin routes.
	assert.Equal(t, httpapi.Access(0), serve.Function("aggregate").Access())
}
