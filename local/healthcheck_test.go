package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHealthcheck runs the healthcheck subcommand, as a container's
// HEALTHCHECK does, against the real server.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{}, nil)
	u, err := url.Parse(base)
	require.NoError(t, err)
	port := u.Port()

	cases := []struct {
		name    string
		args    []string
		port    string
		wantOut string
		wantErr string
	}{
		{name: "ready by default", port: port, wantOut: "GET http://127.0.0.1:" + port + "/readyz: 200 OK\n"},
		{name: "ready", args: []string{"/readyz"}, port: port, wantOut: "/readyz: 200 OK\n"},
		{name: "live", args: []string{"/healthz"}, port: port, wantOut: "/healthz: 200 OK\n"},
		{name: "another route", args: []string{"/metrics"}, port: port, wantErr: `unexpected arguments ["/metrics"]`},
		{name: "two routes", args: []string{"/readyz", "/healthz"}, port: port, wantErr: "unexpected arguments"},
		{name: "a free port is no port to ask", port: "0", wantErr: "PORT=0"},
		{name: "a bad port", port: "http", wantErr: "PORT must be a port number"},
		{name: "nobody listening", port: closedPort(t), wantErr: "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			getenv := func(k string) string {
				if k == "PORT" {
					return tc.port
				}
				return ""
			}
			err := run(context.Background(), append([]string{"healthcheck"}, tc.args...), getenv, &out)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Empty(t, out.String())
				return
			}
			require.NoError(t, err)
			assert.True(t, strings.HasSuffix(out.String(), tc.wantOut), "got %q", out.String())
		})
	}
}

// TestHealthcheckReportsNotReady: a server that answers /readyz with 503
// fails the check, and the error carries the reason it gave. A stand-in
// plays the server: the real one answers 503 only while its store is out
// of reach, which the tests of /readyz itself cover.
func TestHealthcheckReportsNotReady(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/readyz", r.URL.Path)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"store unavailable"}`))
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)

	var out strings.Builder
	err = run(context.Background(), []string{"healthcheck"}, func(k string) string {
		if k == "PORT" {
			return port
		}
		return ""
	}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503 Service Unavailable")
	assert.Contains(t, err.Error(), "store unavailable")
	assert.Empty(t, out.String())
}

// closedPort is a port on 127.0.0.1 that nothing listens on: one the
// kernel handed out and that was closed again.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	return port
}
