// Package emf turns the API's request log lines into CloudWatch Embedded
// Metric Format (EMF) documents, so that a Lambda function publishes the
// same counters as the local server's Prometheus metrics with no API call
// and no extra write: CloudWatch Logs extracts the metrics from the line the
// function writes anyway.
package emf

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/adcount/impression-counter/shared/httpapi"
)

// directive is one entry of the EMF CloudWatchMetrics array: the metrics it
// names are top-level members of the line, aggregated over each dimension
// set.
type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []metric   `json:"Metrics"`
}

type metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Handler wraps a JSON slog.Handler. Records whose message is "request",
// the line httpapi writes per request, gain the members and the _aws block
// that make them EMF documents; every other record passes through as is.
// Attributes must not be in a group, as the API's are not.
type Handler struct {
	next      slog.Handler
	namespace string
}

// NewHandler returns a Handler that writes through next, which must write
// JSON, and files the metrics under namespace.
func NewHandler(next slog.Handler, namespace string) *Handler {
	return &Handler{next: next, namespace: namespace}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), namespace: h.namespace}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), namespace: h.namespace}
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "request" {
		return h.next.Handle(ctx, r)
	}
	var route, outcome, errorKind, storeError string
	var status int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "route":
			route = a.Value.String()
		case "status":
			status = a.Value.Int64()
		case "outcome":
			outcome = a.Value.String()
		case "error_kind":
			errorKind = a.Value.String()
		case "store_error":
			storeError = a.Value.String()
		}
		return true
	})

	directives := []directive{
		{h.namespace, [][]string{{"route", "status_code"}}, []metric{{"requests", "Count"}}},
		{h.namespace, [][]string{{"route"}}, []metric{{"duration_ms", "Milliseconds"}}},
	}
	extra := []slog.Attr{slog.String("status_code", strconv.FormatInt(status, 10)), slog.Int("requests", 1)}
	if route == httpapi.RouteRecordImpression {
		reason := errorKind
		if outcome == "" {
			outcome = "rejected"
		} else {
			reason = "none"
		}
		directives = append(directives, directive{h.namespace,
			[][]string{{"impression_outcome"}, {"impression_outcome", "impression_reason"}},
			[]metric{{"impressions", "Count"}}})
		extra = append(extra, slog.String("impression_outcome", outcome), slog.String("impression_reason", reason), slog.Int("impressions", 1))
	}
	if storeError != "" {
		directives = append(directives, directive{h.namespace, [][]string{{"store_error"}}, []metric{{"store_errors", "Count"}}})
		extra = append(extra, slog.Int("store_errors", 1))
	}
	extra = append(extra, slog.Group("_aws",
		slog.Int64("Timestamp", r.Time.UnixMilli()),
		slog.Any("CloudWatchMetrics", directives)))

	out := r.Clone()
	out.AddAttrs(extra...)
	return h.next.Handle(ctx, out)
}
