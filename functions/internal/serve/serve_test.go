package serve_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
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
		// Every function serves the admin routes, so none starts open.
		{"IngestWithoutAdminKey", serve.Ingest, map[string]string{"STORE": "memory"}, "ADMIN_API_KEYS"},
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
