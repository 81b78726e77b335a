// Package emf publishes the API's request records as CloudWatch Embedded
// Metric Format (EMF) documents, so that a Lambda function publishes the
// same counters as the local server's Prometheus metrics with no API call
// and no extra write: each request's one log line is also its metrics
// document, and CloudWatch Logs extracts the metrics from it.
package emf

import (
	"context"
	"log/slog"
	"strconv"
	"time"

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

// Sink is an httpapi.Sink that writes one line per request through a JSON
// slog.Handler: the request's log line with the members and the _aws block
// that make it an EMF document. Give it to httpapi.WithRequestLog, so that
// it replaces the plain request line and there is still one write per
// request.
//
// The metrics never depend on the log level. When the handler's level
// hides the request line (LOG_LEVEL=warn or error for a request that did
// not fail with a 5xx), the line is still written, with the message
// "metrics" and only what the metrics need: route, status_code, the
// impression outcome and reason, store_error and the metric values, but
// not the log-only fields (request_id, method, status, error_kind, err),
// which that level asked to leave out.
type Sink struct {
	handler   slog.Handler
	namespace string
}

var _ httpapi.Sink = (*Sink)(nil)

// NewSink returns a Sink that writes through handler, which must write
// JSON, and files the metrics under namespace.
func NewSink(handler slog.Handler, namespace string) *Sink {
	return &Sink{handler: handler, namespace: namespace}
}

// Observe implements httpapi.Sink.
func (s *Sink) Observe(ctx context.Context, rec httpapi.Record) {
	now := time.Now()
	level := rec.Level()
	var attrs []slog.Attr
	msg := "request"
	if s.handler.Enabled(ctx, level) {
		attrs = rec.AppendLogAttrs(make([]slog.Attr, 0, 20))
	} else {
		msg = "metrics"
		attrs = make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("route", rec.Route),
			slog.Float64("duration_ms", float64(rec.Duration.Microseconds())/1000))
		if rec.StoreError {
			attrs = append(attrs, slog.String("store_error", rec.ErrorKind))
		}
	}

	directives := []directive{
		{s.namespace, [][]string{{"route", "status_code"}}, []metric{{"requests", "Count"}}},
		{s.namespace, [][]string{{"route"}}, []metric{{"duration_ms", "Milliseconds"}}},
	}
	attrs = append(attrs, slog.String("status_code", strconv.Itoa(rec.Status)), slog.Int("requests", 1))
	attrs, directives = s.impressions(rec.Impressions, attrs, directives)
	if rec.StoreError {
		directives = append(directives, directive{s.namespace, [][]string{{"store_error"}}, []metric{{"store_errors", "Count"}}})
		attrs = append(attrs, slog.Int("store_errors", 1))
	}
	attrs = append(attrs, slog.Group("_aws",
		slog.Int64("Timestamp", now.UnixMilli()),
		slog.Any("CloudWatchMetrics", directives)))

	r := slog.NewRecord(now, level, msg, 0)
	r.AddAttrs(attrs...)
	// Straight to the handler, whatever its level: the document carries
	// the metrics. A failed write has nowhere better to be reported.
	_ = s.handler.Handle(ctx, r)
}

// impressions adds the impression metrics. When every impression of the
// request had one outcome, as for every single-impression request, they
// are the metric impressions by impression_outcome and by it and
// impression_reason (the error kind of a rejection, "none" otherwise).
// Dimensions hold one value per document, so a batch with mixed outcomes
// is counted instead as impressions_counted, impressions_duplicate,
// impressions_filtered and impressions_rejected by route.
func (s *Sink) impressions(n httpapi.Impressions, attrs []slog.Attr, directives []directive) ([]slog.Attr, []directive) {
	type group struct {
		outcome, reason string
		count           int
	}
	var groups []group
	if n.Counted > 0 {
		groups = append(groups, group{"counted", "none", n.Counted})
	}
	if n.Duplicate > 0 {
		groups = append(groups, group{"duplicate", "none", n.Duplicate})
	}
	if n.Filtered > 0 {
		groups = append(groups, group{"filtered", "none", n.Filtered})
	}
	rejected := 0
	for _, r := range n.Rejected {
		if r.Count > 0 {
			groups = append(groups, group{"rejected", r.Reason, r.Count})
			rejected += r.Count
		}
	}
	switch len(groups) {
	case 0:
		return attrs, directives
	case 1:
		g := groups[0]
		directives = append(directives, directive{s.namespace,
			[][]string{{"impression_outcome"}, {"impression_outcome", "impression_reason"}},
			[]metric{{"impressions", "Count"}}})
		attrs = append(attrs, slog.String("impression_outcome", g.outcome), slog.String("impression_reason", g.reason), slog.Int("impressions", g.count))
		return attrs, directives
	}
	directives = append(directives, directive{s.namespace, [][]string{{"route"}},
		[]metric{{"impressions_counted", "Count"}, {"impressions_duplicate", "Count"}, {"impressions_filtered", "Count"}, {"impressions_rejected", "Count"}}})
	attrs = append(attrs, slog.Int("impressions_counted", n.Counted), slog.Int("impressions_duplicate", n.Duplicate),
		slog.Int("impressions_filtered", n.Filtered), slog.Int("impressions_rejected", rejected))
	return attrs, directives
}
