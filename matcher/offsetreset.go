package matcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"tapline"
)

// The offsets the matcher stores with its facts are logical: the bus
// offset in the low epochBits bits and, above them, the partition's log
// epoch, which grows by one each time the matcher finds its stored offset
// past the end of the log (a broker that lost its log numbers the new
// messages from 0 again). Logical offsets keep growing across such a
// reset, so a message's position (Message.Position, the raw store's
// Source) never names two different messages, and a message resent after
// the reset is told from a replay of the original. Epoch 0 offsets equal
// bus offsets: stored offsets from before epochs existed read unchanged.
const epochBits = 40

const busOffsetMask = 1<<epochBits - 1

// busOffset returns the bus offset of a logical offset.
func busOffset(logical int64) int64 { return logical & busOffsetMask }

// epochOf returns the log epoch of a logical offset.
func epochOf(logical int64) int64 { return logical >> epochBits }

// logicalOffset returns the logical offset of bus offset off in epoch.
func logicalOffset(epoch, off int64) int64 { return epoch<<epochBits | off&busOffsetMask }

// Reasons of tapline_matcher_offset_resets_total.
const (
	resetPastEnd     = "past_end"     // the stored offset lay past the log's end: the log was wiped or recreated
	resetBeforeStart = "before_start" // the stored offset lay before the log's start: retention deleted unconsumed messages
	resetRecreated   = "recreated"    // the bus reported the topic gone: the log after it is a new one
)

// topicLoss records the topics the bus reported gone (ENOTFOUND from
// EndOffsets), each with a count the partition workers compare with the
// one they last acted on.
type topicLoss struct {
	mu   sync.Mutex
	seen map[string]int64
}

func (l *topicLoss) lost(topic string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int64{}
	}
	l.seen[topic]++
}

func (l *topicLoss) count(topic string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[topic]
}

// checkPosition compares next, the logical offset a worker is about to
// read from topic/partition, with where the partition's log starts and
// ends now, and returns the logical offset to read from instead:
//
//   - past the end: the log was wiped, truncated or recreated, and the
//     messages in it now are new ones. The worker starts the next epoch at
//     the log's start.
//   - before the start: retention deleted messages never consumed; they
//     are lost. The worker starts at the log's start, same epoch.
//
// Either way it logs a warning, counts the reset and seeds the aggregator
// with the new position, so that the next flush stores it. It returns
// next unchanged when the position is inside the log or the bus cannot
// tell its offsets.
//
// A topic the bus reported gone (to any worker) since this worker's
// last check, *lost, is a new log too: when next lies past its start the
// worker starts the next epoch at its start (reason recreated), even if
// the new log already grew past the stored offset.
func (m *Matcher) checkPosition(ctx context.Context, log *slog.Logger, topic string, partition int, next int64, lost *int64) (int64, error) {
	ends, ok := m.Bus.(tapline.EndOffsetReader)
	if !ok {
		return next, nil
	}
	es, err := ends.EndOffsets(ctx, topic)
	if err != nil {
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			m.topicLoss.lost(topic)
		}
		return next, fmt.Errorf("check the stored offset of %s/%d: %w", topic, partition, err)
	}
	gone := m.topicLoss.count(topic) > *lost
	if partition >= len(es) {
		return next, fmt.Errorf("check the stored offset of %s/%d: the bus reports %d partitions", topic, partition, len(es))
	}
	end, start := es[partition], int64(0)
	if starts, ok := m.Bus.(tapline.StartOffsetReader); ok {
		ss, err := starts.StartOffsets(ctx, topic)
		if err != nil {
			return next, fmt.Errorf("check the stored offset of %s/%d: %w", topic, partition, err)
		}
		if partition < len(ss) {
			start = ss[partition]
		}
	}
	at, epoch := busOffset(next), epochOf(next)
	var reset int64
	*lost = m.topicLoss.count(topic)
	switch {
	case gone && at > start:
		reset = logicalOffset(epoch+1, start)
		log.Warn("the bus lost the topic and created it anew: consuming the new log from its start",
			"stored_offset", at, "end_offset", end, "start_offset", start, "epoch", epoch+1)
		m.metrics.offsetResets.WithLabelValues(topic, resetRecreated).Inc()
	case at > end:
		reset = logicalOffset(epoch+1, start)
		log.Warn("stored offset lies past the end of the log: the log was wiped or recreated; consuming the new log from its start",
			"stored_offset", at, "end_offset", end, "start_offset", start, "epoch", epoch+1)
		m.metrics.offsetResets.WithLabelValues(topic, resetPastEnd).Inc()
	case at < start:
		reset = logicalOffset(epoch, start)
		log.Warn("stored offset lies before the start of the log: retention deleted messages never consumed; they are lost",
			"stored_offset", at, "start_offset", start, "end_offset", end, "lost_messages", start-at)
		m.metrics.offsetResets.WithLabelValues(topic, resetBeforeStart).Inc()
		m.metrics.offsetLost.WithLabelValues(topic).Add(float64(start - at))
	default:
		return next, nil
	}
	m.agg.Seed(tapline.Offset{Topic: topic, Partition: partition, Offset: reset})
	return reset, nil
}

// idleFetch reports whether a fetch that failed with err only waited
// Config.OffsetCheck for a message (fctx's deadline) while the worker's
// ctx is still live.
func idleFetch(ctx, fctx context.Context, err error) bool {
	return ctx.Err() == nil && fctx.Err() != nil && errors.Is(err, context.DeadlineExceeded)
}
