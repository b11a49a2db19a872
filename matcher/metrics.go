package matcher

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	processed      *prometheus.CounterVec
	duplicates     *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	conversions    *prometheus.CounterVec
	reattributions *prometheus.CounterVec
	fraud          *prometheus.CounterVec
	reengagements  *prometheus.CounterVec
	reinstalls     *prometheus.CounterVec
	flushes        prometheus.Counter
	flushErrors    prometheus.Counter
	flushSeconds   prometheus.Histogram
	pending        prometheus.Gauge
	pendingBytes   prometheus.Gauge
	lag            prometheus.Gauge
	funnelChanges  prometheus.Counter
	funnelWaits    prometheus.Counter
	alignWait      prometheus.Counter
	deviceClock    *prometheus.CounterVec
	offsetResets   *prometheus.CounterVec
	offsetLost     *prometheus.CounterVec
	// deliveriesExpired counts the postback deliveries past their
	// retention this matcher deleted.
	deliveriesExpired prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_messages_total", Help: "Bus messages processed, by topic.",
		}, []string{"topic"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_duplicates_total", Help: "Resent hits and events dropped as duplicates, by topic.",
		}, []string{"topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_skipped_total", Help: "Messages skipped because they could not be decoded or name an unknown app, by topic.",
		}, []string{"topic"}),
		conversions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_installs_total", Help: "Installs matched, by match method (organic included).",
		}, []string{"method"}),
		reattributions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_reattributions_total", Help: "Installs re-attributed to a late hit, by new match method.",
		}, []string{"method"}),
		fraud: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_fraud_total", Help: "Fraud signals found on the taps installs were credited to or refused, by signal and action (flag, reject).",
		}, []string{"signal", "action"}),
		reengagements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_reengagements_total", Help: "Opens credited to a tap on a re-engagement link, by match method.",
		}, []string{"method"}),
		reinstalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_reinstalls_total", Help: "Installs found to be reinstalls, by the identifier that told (advertising_id, vendor_id, install_id).",
		}, []string{"by"}),
		deviceClock: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_device_clock_clamped_total",
			Help: "Installs and opens whose device time lay more than the device clock bound from their receive time, which replaced it, by direction of the device clock (ahead, behind).",
		}, []string{"direction"}),
		offsetResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_offset_resets_total",
			Help: "Times a partition's stored offset lay outside its log and the matcher moved it to the log's start, by topic and reason (past_end: the log was wiped or recreated; recreated: the bus reported the topic gone and created it anew; before_start: retention deleted unconsumed messages).",
		}, []string{"topic", "reason"}),
		offsetLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapline_matcher_offset_reset_lost_messages_total",
			Help: "Messages deleted from a log before the matcher consumed them (an offset reset with reason before_start), by topic.",
		}, []string{"topic"}),
		flushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_flushes_total", Help: "Fact flushes committed.",
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_flush_errors_total", Help: "Fact flushes that failed and were retried.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tapline_matcher_flush_seconds", Help: "Time to apply one flush to the fact store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tapline_matcher_pending_fact_rows", Help: "Fact rows, conversions and deliveries waiting for a flush (those of a failed flush too), when a flush began.",
		}),
		pendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tapline_matcher_pending_bytes", Help: "Estimated heap of the fact rows, conversions and deliveries waiting for the next flush, when a flush began (bounded by -matcher-max-pending-mb).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tapline_matcher_lag_seconds", Help: "Age of the last processed bus message when it was processed: the bus lag.",
		}),
		funnelChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_funnel_changes_total", Help: "Changes of an installation's outcome in a live funnel version.",
		}),
		funnelWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_funnel_handoff_waits_total", Help: "Times a partition waited for a funnel version's handoff to complete.",
		}),
		deliveriesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_postback_deliveries_expired_total", Help: "Delivered and dead postback deliveries deleted from the log past the delivery retention.",
		}),
		alignWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tapline_matcher_event_wait_seconds_total", Help: "Time event workers waited for the hits workers to catch up with the events' receive times (a backlog is matched in the order it was received).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.processed, m.duplicates, m.skipped, m.conversions, m.reattributions, m.fraud, m.reengagements, m.reinstalls,
			m.flushes, m.flushErrors, m.flushSeconds, m.pending, m.pendingBytes, m.lag, m.funnelChanges, m.funnelWaits, m.alignWait, m.deviceClock, m.offsetResets, m.offsetLost,
			m.deliveriesExpired)
	}
	return m
}
