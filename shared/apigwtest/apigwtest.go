// Package apigwtest builds the events API Gateway sends to a Lambda function
// from plain HTTP requests, so that a test can send one request to the local
// server and, unchanged, to a function, in-process or under the Lambda
// runtime emulator.
//
// It routes as an HTTP API does: a request that matches a route carries its
// route key and decoded path parameters; any other request arrives as if
// through a $default route.
package apigwtest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Request is one HTTP request as a client sends it.
type Request struct {
	Method string
	// Target is the escaped path as on the wire, with an optional ?query.
	Target string
	Header http.Header
	Body   string
	// Base64 marks the body as API Gateway sends a binary media type:
	// base64-encoded, with isBase64Encoded set.
	Base64 bool
}

// Gateway routes requests to events over a fixed set of routes.
type Gateway struct {
	mux *http.ServeMux
}

// RouteKey is the API Gateway route key, as SAM's template writes it, of a
// ServeMux pattern: the same text, but for a greedy path variable, which
// ServeMux writes {name...} and API Gateway {name+}.
func RouteKey(pattern string) string { return strings.ReplaceAll(pattern, "...}", "+}") }

// Pattern is the ServeMux pattern of an API Gateway route key: RouteKey
// undone.
func Pattern(routeKey string) string { return strings.ReplaceAll(routeKey, "+}", "...}") }

// NewGateway returns a gateway with routes in ServeMux pattern syntax, such
// as "GET /api/v1/campaigns/{id}", which is also SAM's route key syntax
// but for a greedy variable (see RouteKey): the events carry route keys
// and resources as API Gateway writes them.
func NewGateway(routes []string) *Gateway {
	mux := http.NewServeMux()
	for _, route := range routes {
		mux.Handle(route, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	}
	return &Gateway{mux: mux}
}

// route finds the route key, the route's path template and the decoded path
// parameters of u; an unrouted request goes to $default.
func (g *Gateway) route(method string, u *url.URL) (key, template string, params map[string]string) {
	r := &http.Request{Method: method, URL: u, Host: "gateway"}
	if _, pattern := g.mux.Handler(r); pattern != "" {
		key = RouteKey(pattern)
		_, template, _ = strings.Cut(key, " ")
		return key, template, pathParams(template, u)
	}
	return "$default", "", nil
}

// pathParams reads the {name} segments of template from u's path; a
// greedy {name+}, the last, takes the rest of the path, slashes and all.
func pathParams(template string, u *url.URL) map[string]string {
	params := map[string]string{}
	names := strings.Split(template, "/")
	values := strings.Split(u.EscapedPath(), "/")
	for i, seg := range names {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok || i >= len(values) {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		raw := values[i]
		if greedy, ok := strings.CutSuffix(name, "+"); ok {
			name, raw = greedy, strings.Join(values[i:], "/")
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			v = raw
		}
		params[name] = v
	}
	if len(params) == 0 {
		return nil
	}
	return params
}

func (r Request) url() *url.URL {
	u, err := url.ParseRequestURI(r.Target)
	if err != nil {
		// A target no client could send still reaches the function
		// unparsed, as the gateway would pass it.
		return &url.URL{Path: r.Target, RawPath: r.Target}
	}
	return u
}

func (r Request) body() string {
	if r.Base64 {
		return base64.StdEncoding.EncodeToString([]byte(r.Body))
	}
	return r.Body
}

// V2 is the payload format 2.0 event of r. As an HTTP API does, it hands
// the path over decoded, and joins repeated headers with commas under
// lower-case names.
func (g *Gateway) V2(r Request) events.APIGatewayV2HTTPRequest {
	u := r.url()
	key, _, params := g.route(r.Method, u)
	headers := map[string]string{}
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return events.APIGatewayV2HTTPRequest{
		Version:         "2.0",
		RouteKey:        key,
		RawPath:         u.Path,
		RawQueryString:  u.RawQuery,
		Headers:         headers,
		PathParameters:  params,
		Body:            r.body(),
		IsBase64Encoded: r.Base64,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   key,
			AccountID:  "123456789012",
			Stage:      "$default",
			RequestID:  "apigwtest-request",
			APIID:      "apigwtest",
			DomainName: "apigwtest.execute-api.us-east-1.amazonaws.com",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      u.Path,
				Protocol:  "HTTP/1.1",
				SourceIP:  "127.0.0.1",
				UserAgent: r.Header.Get("User-Agent"),
			},
		},
	}
}

// V1 is the payload format 1.0 event of r, as a REST API sends it: the path
// still escaped, the resource template beside it, and an unrouted request
// as if through a /{proxy+} resource.
func (g *Gateway) V1(r Request) events.APIGatewayProxyRequest {
	u := r.url()
	_, resource, params := g.route(r.Method, u)
	if resource == "" {
		resource = "/{proxy+}"
		params = map[string]string{"proxy": strings.TrimPrefix(u.Path, "/")}
	}
	headers := map[string]string{}
	for name, values := range r.Header {
		headers[name] = values[len(values)-1]
	}
	var query map[string]string
	var multiQuery map[string][]string
	if q := u.Query(); len(q) > 0 {
		query, multiQuery = map[string]string{}, q
		for name, values := range q {
			query[name] = values[len(values)-1]
		}
	}
	return events.APIGatewayProxyRequest{
		Resource:                        resource,
		Path:                            u.EscapedPath(),
		HTTPMethod:                      r.Method,
		Headers:                         headers,
		MultiValueHeaders:               r.Header,
		QueryStringParameters:           query,
		MultiValueQueryStringParameters: multiQuery,
		PathParameters:                  params,
		Body:                            r.body(),
		IsBase64Encoded:                 r.Base64,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID:    "123456789012",
			ResourcePath: resource,
			Stage:        "prod",
			RequestID:    "apigwtest-request",
			APIID:        "apigwtest",
			DomainName:   "apigwtest.execute-api.us-east-1.amazonaws.com",
			HTTPMethod:   r.Method,
			Path:         "/prod" + u.EscapedPath(),
			Identity:     events.APIGatewayRequestIdentity{SourceIP: "127.0.0.1"},
		},
	}
}

// Response is what a client receives for an API Gateway proxy response.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// FromV2 is the response a client gets for a payload format 2.0 response.
// A base64-encoded body is decoded, as API Gateway does; one that does not
// decode is an error.
func FromV2(resp events.APIGatewayV2HTTPResponse) (Response, error) {
	header := http.Header{}
	for name, value := range resp.Headers {
		header[http.CanonicalHeaderKey(name)] = []string{value}
	}
	return newResponse(resp.StatusCode, header, resp.Body, resp.IsBase64Encoded)
}

// FromV1 is the response a client gets for a payload format 1.0 response.
func FromV1(resp events.APIGatewayProxyResponse) (Response, error) {
	header := http.Header{}
	for name, value := range resp.Headers {
		header.Set(name, value)
	}
	for name, values := range resp.MultiValueHeaders {
		header[http.CanonicalHeaderKey(name)] = values
	}
	return newResponse(resp.StatusCode, header, resp.Body, resp.IsBase64Encoded)
}

func newResponse(status int, header http.Header, body string, isBase64 bool) (Response, error) {
	if isBase64 {
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return Response{}, fmt.Errorf("apigwtest: response body is not base64: %w", err)
		}
		body = string(raw)
	}
	return Response{Status: status, Header: header, Body: body}, nil
}
