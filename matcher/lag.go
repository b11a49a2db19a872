package matcher

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapline"
)

// PartitionLag is how far the consumer's stored position in one partition
// is behind the partition's end.
type PartitionLag struct {
	Topic     string
	Partition int
	End       int64 // the offset the next message published gets
	Stored    int64 // the next bus offset to read, as stored with the facts (without its log epoch); 0 when none is
	Lag       int64 // End - Stored, never below 0
}

// lagScrapeTimeout bounds the fact store and bus calls of one scrape of
// the lag gauge.
const lagScrapeTimeout = 2 * time.Second

// Lag returns the consumer lag of every partition of the hits and events
// topics: the messages published but not yet stored as consumed with the
// facts (Config.Consumer's offsets). Messages consumed but not yet flushed
// count, so the lag of a busy matcher moves in steps of a flush. Every
// matcher of a consumer group reports the whole group's lag. It needs a
// bus that implements tapline.EndOffsetReader, and works before Open.
func (m *Matcher) Lag(ctx context.Context) ([]PartitionLag, error) {
	ends, ok := m.Bus.(tapline.EndOffsetReader)
	if !ok {
		return nil, fmt.Errorf("consumer lag: the bus (%T) cannot tell its end offsets", m.Bus)
	}
	stored, err := m.Facts.Offsets(ctx, m.Config.Consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	at := make(map[tapline.Partition]int64, len(stored))
	for _, o := range stored {
		at[tapline.Partition{Topic: o.Topic, Partition: o.Partition}] = busOffset(o.Offset)
	}
	var out []PartitionLag
	for _, topic := range []string{m.Config.HitsTopic, m.Config.EventsTopic} {
		es, err := ends.EndOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("consumer lag: %w", err)
		}
		for i, end := range es {
			p := tapline.Partition{Topic: topic, Partition: i}
			l := PartitionLag{Topic: topic, Partition: i, End: end, Stored: at[p]}
			l.Lag = max(end-l.Stored, 0)
			out = append(out, l)
		}
	}
	return out, nil
}

// lagCollector is the gauge tapline_matcher_consumer_lag_messages, read
// from the bus and the fact store at each scrape.
type lagCollector struct {
	m    *Matcher
	desc *prometheus.Desc
}

func newLagCollector(m *Matcher) *lagCollector {
	return &lagCollector{m: m, desc: prometheus.NewDesc("tapline_matcher_consumer_lag_messages",
		"Messages published to a partition and not yet stored as consumed with the facts: the partition's end offset minus the consumer group's stored offset.",
		[]string{"topic", "partition"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reports nothing, and logs why, when the bus or the fact store
// does not answer in time: a scrape of the other metrics still succeeds.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), lagScrapeTimeout)
	defer cancel()
	lags, err := c.m.Lag(ctx)
	if err != nil {
		c.m.Logger.Warn("consumer lag metric", "err", err)
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(l.Lag), l.Topic, strconv.Itoa(l.Partition))
	}
}
