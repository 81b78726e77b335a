//go:build linux

package functions_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/web"
)

// TestDashboardUnderEmulator: the built admin bootstrap, with its admin
// key set, serves the embedded dashboard through both payload formats
// without a key: the page at /dashboard with its module script, and every
// file it loads byte for byte, in the type a browser runs. The files are
// text, and each crosses API Gateway as text: valid UTF-8, never base64,
// which a REST API would hand to the browser still encoded unless the
// file's type were a binary media type.
func TestDashboardUnderEmulator(t *testing.T) {
	t.Parallel()
	gw := apigwtest.NewGateway(httpapi.Routes())
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		t.Run("Payload"+string(p), func(t *testing.T) {
			t.Parallel()
			f := startFunction(t, serve.Admin, lambdaproxy.PayloadEnv+"="+string(p))

			page := f.call(t, gw, p, apigwtest.Request{Method: "GET", Target: "/dashboard"})
			require.Equal(t, http.StatusOK, page.Status, page.Body)
			assert.Equal(t, "text/html; charset=utf-8", page.Header.Get("Content-Type"))
			assert.Contains(t, page.Body, `<script type="module" src="dashboard/app.js"></script>`)
			assert.Contains(t, page.Header.Get("Content-Security-Policy"), "default-src 'self'")
			assert.Equal(t, "nosniff", page.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "no-cache", page.Header.Get("Cache-Control"))

			files := 0
			require.NoError(t, fs.WalkDir(web.Dashboard(), ".", func(name string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				files++
				want, err := fs.ReadFile(web.Dashboard(), name)
				require.NoError(t, err)
				require.True(t, utf8.Valid(want), "%s is text", name)
				target := "/dashboard/" + name
				if name == "index.html" {
					target = "/dashboard"
				}
				req := apigwtest.Request{Method: "GET", Target: target}
				status, encoded := rawResponse(t, f, gw, p, req)
				require.Equal(t, http.StatusOK, status, target)
				assert.False(t, encoded, "%s crosses the gateway as text", target)
				r := f.call(t, gw, p, req)
				assert.Equal(t, string(want), r.Body, "%s byte for byte", target)
				switch path.Ext(name) {
				case ".js":
					assert.Equal(t, "text/javascript; charset=utf-8", r.Header.Get("Content-Type"), target)
				case ".css":
					assert.Equal(t, "text/css; charset=utf-8", r.Header.Get("Content-Type"), target)
				}
				return nil
			}))
			assert.GreaterOrEqual(t, files, 4, "the page, its script, its style sheet and the chart library")

			missing := f.call(t, gw, p, apigwtest.Request{Method: "GET", Target: "/dashboard/no-such-file.js"})
			assert.Equal(t, http.StatusNotFound, missing.Status)
			assert.Contains(t, missing.jsonBody(t)["error"], "no route")
		})
	}
}

// rawResponse sends r to f as API Gateway would and returns the
// function's status and whether it marked the body base64, before any
// gateway decodes it.
func rawResponse(t *testing.T, f *function, gw *apigwtest.Gateway, p lambdaproxy.Payload, r apigwtest.Request) (int, bool) {
	t.Helper()
	if p == lambdaproxy.PayloadV1 {
		code, body := f.invoke(t, gw.V1(r))
		require.Equal(t, http.StatusOK, code, "invocation failed: %s", body)
		var ev events.APIGatewayProxyResponse
		require.NoError(t, json.Unmarshal(body, &ev), "%s", body)
		return ev.StatusCode, ev.IsBase64Encoded
	}
	code, body := f.invoke(t, gw.V2(r))
	require.Equal(t, http.StatusOK, code, "invocation failed: %s", body)
	var ev events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(body, &ev), "%s", body)
	return ev.StatusCode, ev.IsBase64Encoded
}
