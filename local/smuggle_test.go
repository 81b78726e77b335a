package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChunkedRequestClosesItsConnection sends, on one connection, a request
// that carries both Content-Length and a chunked body, then a second request
// behind it. A proxy that framed the first by its Content-Length would take
// part of it for the second: request smuggling. RFC 9112 asks the server to
// close the connection after such a request, so the request behind it is
// never served on that connection.
func TestChunkedRequestClosesItsConnection(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))

	body := `{"campaign_id":"no-such","user_id":"u","ad_id":"a"}`
	_, err = fmt.Fprintf(conn, "POST /api/v1/impressions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"%x\r\n%s\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", len(body), body)
	require.NoError(t, err)

	r := bufio.NewReader(conn)
	first, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, first.Body)
	require.NoError(t, err)
	require.NoError(t, first.Body.Close())
	assert.Equal(t, http.StatusNotFound, first.StatusCode, "the chunked body was read as the request's body")
	assert.True(t, first.Close, "the answer says the connection closes")
	// The server closes the connection: reading ends at EOF, with no
	// answer to the request behind (an open connection would instead
	// answer it, or hold the read until the deadline).
	rest, err := io.ReadAll(r)
	require.NoError(t, err, "the server closes the connection")
	assert.Empty(t, string(rest), "nothing is served after the chunked request on its connection")
}
