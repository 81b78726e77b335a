// Package lambdaproxy serves an http.Handler on AWS Lambda behind API
// Gateway. It is the one place that knows how API Gateway events become
// HTTP requests, so every function serves the API exactly as the local
// server does.
//
// It wraps github.com/awslabs/aws-lambda-go-api-proxy's httpadapter: payload
// format 2.0 (HTTP API) by default, 1.0 (REST API, or an HTTP API set to
// 1.0) when asked.
package lambdaproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/adcount/impression-counter/shared/httpapi"
)

// Payload is an API Gateway payload format version.
type Payload string

// The payload formats a function can receive.
const (
	// PayloadV2 is what an HTTP API sends by default, and the default here.
	PayloadV2 Payload = "2.0"
	// PayloadV1 is what a REST API sends, and an HTTP API set to 1.0.
	PayloadV1 Payload = "1.0"
)

// PayloadEnv names the environment variable a function reads, once at
// start, to choose its payload format: "2.0" (or unset) or "1.0". It must
// match how the API invokes the function; an event of the other format is
// refused rather than misread.
const PayloadEnv = "LAMBDA_PAYLOAD_VERSION"

// ParsePayload reads a payload format version as PayloadEnv holds it. An
// empty string is PayloadV2.
func ParsePayload(s string) (Payload, error) {
	switch p := Payload(s); p {
	case "":
		return PayloadV2, nil
	case PayloadV2, PayloadV1:
		return p, nil
	default:
		return "", fmt.Errorf("lambdaproxy: %s must be %q or %q, got %q", PayloadEnv, PayloadV2, PayloadV1, s)
	}
}

// Start serves h on Lambda with the payload format p and does not return
// while the function runs. It returns an error only for an unknown p. If the
// Lambda Runtime API is missing or goes away, aws-lambda-go ends the process
// itself, which makes Lambda start a fresh instance.
func Start(h http.Handler, p Payload) error {
	switch p {
	case PayloadV2:
		lambda.Start(NewV2(h))
	case PayloadV1:
		lambda.Start(NewV1(h))
	default:
		return fmt.Errorf("lambdaproxy: unknown payload format %q", p)
	}
	return errors.New("lambdaproxy: the Lambda runtime loop returned")
}

// HandlerV2 answers one payload format 2.0 event.
type HandlerV2 func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// HandlerV1 answers one payload format 1.0 event.
type HandlerV1 func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

// NewV2 returns the Lambda handler that serves h to an HTTP API with payload
// format 2.0. Tests call it in-process; Start hands it to Lambda.
//
// A routed request's path is rebuilt from its route and decoded path
// parameters, because an HTTP API hands the raw path over already decoded:
// an ID holding "/", "?" or "%" would otherwise reach another route, or none.
func NewV2(h http.Handler) HandlerV2 {
	adapter := httpadapter.NewV2(h)
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		if ev.RequestContext.HTTP.Method == "" {
			return events.APIGatewayV2HTTPResponse{}, wrongPayload(PayloadV2)
		}
		_, template, _ := strings.Cut(ev.RouteKey, " ")
		if path, ok := routedPath(template, ev.PathParameters); ok {
			ev.RawPath = path
		}
		ev.Headers = withRequestID(ev.Headers, ev.RequestContext.RequestID)
		return adapter.ProxyWithContext(ctx, ev)
	}
}

// NewV1 returns the Lambda handler that serves h to a REST API, or to an
// HTTP API with payload format 1.0. Like NewV2 it rebuilds a routed path
// from the resource and its decoded path parameters.
func NewV1(h http.Handler) HandlerV1 {
	adapter := httpadapter.New(h)
	return func(ctx context.Context, ev events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		if ev.HTTPMethod == "" {
			return events.APIGatewayProxyResponse{}, wrongPayload(PayloadV1)
		}
		if path, ok := routedPath(ev.Resource, ev.PathParameters); ok {
			ev.Path = path
		}
		withRequestIDV1(&ev)
		return adapter.ProxyWithContext(ctx, ev)
	}
}

// withRequestID returns headers with API Gateway's request ID as the
// X-Request-Id header, unless the client sent one, so that the handler logs
// and echoes the ID that API Gateway's own access logs carry.
func withRequestID(headers map[string]string, id string) map[string]string {
	if id == "" || hasKey(headers, httpapi.RequestIDHeader) {
		return headers
	}
	out := make(map[string]string, len(headers)+1)
	maps.Copy(out, headers)
	out[httpapi.RequestIDHeader] = id
	return out
}

// withRequestIDV1 does what withRequestID does for a payload 1.0 event, whose
// adapter reads only the multi-value headers when the event has them.
func withRequestIDV1(ev *events.APIGatewayProxyRequest) {
	id := ev.RequestContext.RequestID
	if ev.MultiValueHeaders == nil {
		ev.Headers = withRequestID(ev.Headers, id)
		return
	}
	if id == "" || hasKey(ev.MultiValueHeaders, httpapi.RequestIDHeader) {
		return
	}
	multi := make(map[string][]string, len(ev.MultiValueHeaders)+1)
	maps.Copy(multi, ev.MultiValueHeaders)
	multi[httpapi.RequestIDHeader] = []string{id}
	ev.MultiValueHeaders = multi
}

// hasKey reports whether m has key in any letter case, as header names are.
func hasKey[V any](m map[string]V, key string) bool {
	for k := range m {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// wrongPayload is the error for an event without the HTTP method where the
// configured payload format keeps it: the API sends the other format. The
// invocation fails, and API Gateway answers 500, rather than a POST being
// served as a GET.
func wrongPayload(want Payload) error {
	return fmt.Errorf("lambdaproxy: the event has no HTTP method for payload format %s; check %s against the API's payload format", want, PayloadEnv)
}

// routedPath fills the route template, such as /api/v1/campaigns/{id}, with
// the decoded path parameters, each escaped, and reports whether it could.
// A greedy parameter ({proxy+}) keeps its slashes. Without a template
// parameter, or with one missing, the event's own path stands.
func routedPath(template string, params map[string]string) (string, bool) {
	if !strings.HasPrefix(template, "/") || !strings.Contains(template, "{") {
		return "", false
	}
	segments := strings.Split(template, "/")
	for i, seg := range segments {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		if name, ok = strings.CutSuffix(name, "}"); !ok {
			return "", false
		}
		greedy := strings.HasSuffix(name, "+")
		value, ok := params[strings.TrimSuffix(name, "+")]
		if !ok {
			return "", false
		}
		if !greedy {
			segments[i] = url.PathEscape(value)
			continue
		}
		parts := strings.Split(value, "/")
		for j, part := range parts {
			parts[j] = url.PathEscape(part)
		}
		segments[i] = strings.Join(parts, "/")
	}
	return strings.Join(segments, "/"), true
}
