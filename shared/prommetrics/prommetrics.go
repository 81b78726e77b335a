// Package prommetrics exposes what the API observes as Prometheus metrics,
// for the local server's GET /metrics.
package prommetrics

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/adcount/impression-counter/shared/httpapi"
)

// StoreSizes is implemented by stores that can report their size cheaply,
// such as the in-memory store. Its values are read at scrape time.
type StoreSizes interface {
	DedupEntries() int
	CampaignCount() int
}

// Metrics is an httpapi.Sink that keeps Prometheus collectors on a registry
// of its own. It is safe for concurrent use.
type Metrics struct {
	registry    *prometheus.Registry
	impressions *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
}

var _ httpapi.Sink = (*Metrics)(nil)

// New returns the metrics, with gauges of live dedup keys and campaigns when
// sizes is not nil, and the Go runtime and process collectors.
func New(sizes StoreSizes) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		impressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adcount_impressions_total",
			Help: "Impressions by outcome (counted, duplicate, filtered, rejected) and, for rejected ones, reason; a batch adds each of its impressions.",
		}, []string{"outcome", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adcount_http_requests_total",
			Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "adcount_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adcount_store_errors_total",
			Help: "Store failures by kind (unavailable, timeout, internal).",
		}, []string{"kind"}),
	}
	m.registry.MustRegister(m.impressions, m.requests, m.latency, m.storeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if sizes != nil {
		m.registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "adcount_dedup_keys",
				Help: "Dedup keys held in memory: the live ones and expired ones not yet reclaimed.",
			}, func() float64 { return float64(sizes.DedupEntries()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "adcount_campaigns",
				Help: "Campaigns in the store.",
			}, func() float64 { return float64(sizes.CampaignCount()) }),
		)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// CountDroppedLogLines publishes dropped, read at scrape time, as
// adcount_log_lines_dropped_total: the log lines a full log buffer dropped
// rather than block requests. Call it once, before serving; a second call
// returns the registry's error.
func (m *Metrics) CountDroppedLogLines(dropped func() uint64) error {
	return m.registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "adcount_log_lines_dropped_total",
		Help: "Log lines dropped because the log output did not keep up; alert on any increase.",
	}, func() float64 { return float64(dropped()) }))
}

// Observe implements httpapi.Sink: one request, its latency, its
// impressions by outcome, and a store failure by kind.
func (m *Metrics) Observe(_ context.Context, rec httpapi.Record) {
	m.requests.WithLabelValues(rec.Route, strconv.Itoa(rec.Status)).Inc()
	m.latency.WithLabelValues(rec.Route).Observe(rec.Duration.Seconds())
	if n := rec.Impressions.Counted; n > 0 {
		m.impressions.WithLabelValues("counted", "").Add(float64(n))
	}
	if n := rec.Impressions.Duplicate; n > 0 {
		m.impressions.WithLabelValues("duplicate", "").Add(float64(n))
	}
	if n := rec.Impressions.Filtered; n > 0 {
		m.impressions.WithLabelValues("filtered", "").Add(float64(n))
	}
	for _, r := range rec.Impressions.Rejected {
		m.impressions.WithLabelValues("rejected", r.Reason).Add(float64(r.Count))
	}
	if rec.StoreError {
		m.storeErrors.WithLabelValues(rec.ErrorKind).Inc()
	}
}
