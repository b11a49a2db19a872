package collector

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collector's Prometheus collectors.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	queueDepth      prometheus.GaugeFunc
	hitsQueued      prometheus.Counter
	botHits         *prometheus.CounterVec
	hitsRateLimited *prometheus.CounterVec
	hintRetries     prometheus.Counter
	hitsDropped     prometheus.Counter
	hitsPublished   prometheus.Counter
	publishErrors   *prometheus.CounterVec
	storageFull     prometheus.Counter
	eventsAccepted  *prometheus.CounterVec
	eventsRejected  *prometheus.CounterVec
	timelineLookups *prometheus.CounterVec
	skanPostbacks   *prometheus.CounterVec
	// skanRejectedUnstored counts rejected postbacks not stored: their
	// app kept its day's bound of rejected ones.
	skanRejectedUnstored *prometheus.CounterVec
}

func newMetrics(c *Collector) *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tapline_collector_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tapline_collector_hit_queue_depth",
			Help: "Hits waiting in memory for the bus.",
		}, func() float64 { return float64(len(c.queue)) }),
		hitsQueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_collector_hits_queued_total",
			Help: "Hits handed to the in-memory queue.",
		}),
		botHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_bot_hits_total",
			Help: "Requests for links and pixels that were answered and queued but are no taps, by reason: head, prefetch, rate-limited, or the link previewer's or crawler's name (a fixed list).",
		}, []string{"reason"}),
		hitsRateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_hits_rate_limited_total",
			Help: "Taps from an address over TapRate: marked (published as no taps) or dropped (over ten times the rate); every one got its redirect.",
		}, []string{"outcome"}),
		hintRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_collector_hint_retries_total",
			Help: "Taps a browser sent twice for the critical client hints, recorded once (the retry's hit replaced the first's).",
		}),
		hitsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_collector_hits_dropped_total",
			Help: "Hits dropped because the queue was full, the collector was closing or the bus stayed down past the drain deadline.",
		}),
		hitsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_collector_hits_published_total",
			Help: "Hits published to the bus.",
		}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_publish_errors_total",
			Help: "Failed bus publishes by topic.",
		}, []string{"topic"}),
		storageFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_collector_storage_full_total",
			Help: "SDK requests answered 503 because the bus or spool refused the write: its disk was below the free-space reserve.",
		}),
		eventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_events_accepted_total",
			Help: "Events published to the bus by protocol (tapstream, v1).",
		}, []string{"protocol"}),
		eventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_events_rejected_total",
			Help: "Events refused as invalid by protocol (tapstream, v1).",
		}, []string{"protocol"}),
		timelineLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_timeline_lookups_total",
			Help: "Tapstream SDK timeline lookups answered, by endpoint (lookup, summary) and outcome (attributed, organic, not_found).",
		}, []string{"endpoint", "outcome"}),
		skanPostbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_skan_postbacks_total",
			Help: "SKAdNetwork and AdAttributionKit postbacks by how they came (developer, network) and outcome: verified, rejected or duplicate when stored, rejected_unstored when rejected and not stored (the app's daily bound), else the error code (invalid, not_found, unauthorized, forbidden, too_large, rate_limited, unavailable).",
		}, []string{"via", "outcome"}),
		skanRejectedUnstored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_collector_skan_rejected_unstored_total",
			Help: "SKAdNetwork and AdAttributionKit postbacks rejected (the signature does not check out) and not stored, because their app already keeps its bound of rejected postbacks of the UTC day; by how they came (developer, network).",
		}, []string{"via"}),
	}
}

func (m *metrics) register(reg *prometheus.Registry) error {
	for _, col := range []prometheus.Collector{m.requests, m.duration, m.queueDepth, m.hitsQueued, m.botHits, m.hitsRateLimited, m.hintRetries,
		m.hitsDropped, m.hitsPublished, m.publishErrors, m.storageFull, m.eventsAccepted, m.eventsRejected, m.timelineLookups, m.skanPostbacks,
		m.skanRejectedUnstored} {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// instrument counts requests and their latency by chi route pattern.
func (c *Collector) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			if p := rctx.RoutePattern(); p != "" {
				route = p
			}
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		c.m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		c.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
