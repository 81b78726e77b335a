// Package prommetrics exposes what the API observes as Prometheus metrics,
// for the local server's GET /metrics.
package prommetrics

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

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
//
// Observe runs on every request, so it looks up no labels there: a
// collector's WithLabelValues hashes its labels and takes a lock on every
// call. Each series is looked up once, the first time it is needed, and
// kept; a series appears in the output only once it has been used, as
// with WithLabelValues.
type Metrics struct {
	registry    *prometheus.Registry
	impressions *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec

	// byRequest holds each route and status's request counter and the
	// route's latency histogram.
	byRequest series[requestKey, requestSeries]
	// counted, duplicate and filtered are the impression counters of
	// those outcomes; rejected holds one per reason.
	counted, duplicate, filtered func() prometheus.Counter
	rejected                     series[string, prometheus.Counter]
}

type requestKey struct {
	route  string
	status int
}

type requestSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
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
	m.byRequest.make = func(k requestKey) requestSeries {
		return requestSeries{
			requests: m.requests.WithLabelValues(k.route, strconv.Itoa(k.status)),
			latency:  m.latency.WithLabelValues(k.route),
		}
	}
	outcome := func(name string) func() prometheus.Counter {
		return sync.OnceValue(func() prometheus.Counter { return m.impressions.WithLabelValues(name, "") })
	}
	m.counted, m.duplicate, m.filtered = outcome("counted"), outcome("duplicate"), outcome("filtered")
	m.rejected.make = func(reason string) prometheus.Counter { return m.impressions.WithLabelValues("rejected", reason) }
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
	req := m.byRequest.get(requestKey{rec.Route, rec.Status})
	req.requests.Inc()
	req.latency.Observe(rec.Duration.Seconds())
	if n := rec.Impressions.Counted; n > 0 {
		m.counted().Add(float64(n))
	}
	if n := rec.Impressions.Duplicate; n > 0 {
		m.duplicate().Add(float64(n))
	}
	if n := rec.Impressions.Filtered; n > 0 {
		m.filtered().Add(float64(n))
	}
	for _, r := range rec.Impressions.Rejected {
		m.rejected.get(r.Reason).Add(float64(r.Count))
	}
	if rec.StoreError {
		m.storeErrors.WithLabelValues(rec.ErrorKind).Inc()
	}
}

// maxSeries bounds each series cache. The label values are the server's
// own (route patterns, statuses, error kinds), a few dozen in all; past
// the bound, a series is looked up on every use rather than kept.
const maxSeries = 1024

// series keeps the collectors that make returns for each key. A lookup
// is an atomic load and a map read; a new key copies the map, which
// happens a few dozen times in a process's life.
type series[K comparable, V any] struct {
	m    atomic.Pointer[map[K]V]
	mu   sync.Mutex // held while a key is added
	make func(K) V
}

// get returns k's collectors, made on first use.
func (s *series[K, V]) get(k K) V {
	if m := s.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	v := s.make(k)
	m := map[K]V{}
	if old != nil {
		if len(*old) >= maxSeries {
			return v
		}
		m = maps.Clone(*old)
	}
	m[k] = v
	s.m.Store(&m)
	return v
}
