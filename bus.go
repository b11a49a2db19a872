package tapline

import (
	"context"
	"fmt"
	"time"
)

// Default topic names.
const (
	TopicHits   = "hits"
	TopicEvents = "events"
)

// Message is one record on the bus. Publish ignores Partition and Offset,
// and keeps Time when the caller set it (the collector sets the hit's or the
// event's receive time) or sets it to the publish time; Fetch fills in all
// of them.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte // the fingerprint key: equal keys share a partition
	Value     []byte // a Hit or an Event: JSON, or the binary format of package internal/wire
	Time      time.Time
}

// Position returns "topic/partition/offset", the message's place on the bus.
func (m *Message) Position() string {
	return fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
}

// Bus carries hits and events from the collector to the matcher. It is
// durable and partitioned by message key: messages with equal keys land on
// one partition and are fetched in the order they were published. Delivery is
// at least once; the consumer tracks its own offsets.
type Bus interface {
	// Publish writes msgs and returns once all of them are durable. An
	// error means some may not be; the caller may publish them again.
	// EUNAVAILABLE when the bus cannot take them now.
	Publish(ctx context.Context, msgs ...Message) error

	// Partitions returns the number of partitions of topic, creating the
	// topic when it does not exist.
	Partitions(ctx context.Context, topic string) (int, error)

	// Fetch returns up to max messages of one partition starting at offset,
	// in offset order. It blocks until at least one is available or ctx is
	// done (then it returns ctx's error). An offset past the end waits; an
	// offset before the oldest kept message starts at the oldest.
	Fetch(ctx context.Context, topic string, partition int, offset int64, max int) ([]Message, error)

	// Close releases the bus; it is safe to call twice.
	Close() error
}

// Partition names one partition of a topic.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

// Group shares the partitions of some topics among the members of a
// consumer group, each partition owned by one member at a time. The matcher
// runs one generation after another: Next waits until this member has joined
// the next generation.
type Group interface {
	// Next blocks until the member joins the next generation or ctx is
	// done. It must not be called again before every function started on
	// the previous generation has returned.
	Next(ctx context.Context) (Generation, error)
	// Close leaves the group; it is safe to call twice.
	Close() error
}

// Generation is one assignment of partitions to this member. It ends when
// the group rebalances (a member joins, leaves or dies) or the group closes.
type Generation interface {
	// Assignments returns the partitions this member owns in this
	// generation.
	Assignments() []Partition
	// Start runs fn in a goroutine with a context that is cancelled when
	// the generation ends; fn must return promptly then, after finishing
	// its work on the partitions (the matcher flushes its facts).
	Start(fn func(ctx context.Context))
	// CommitOffsets records offsets with the bus as well (for lag tools);
	// the matcher's own offsets live with the facts.
	CommitOffsets(ctx context.Context, offsets []Offset) error
}

// EndOffsetReader is implemented by a Bus that can tell where the
// partitions of a topic end, which the matcher's consumer lag and health
// check need (pebble.Bus and kafka.Bus implement it).
type EndOffsetReader interface {
	// EndOffsets returns, for each partition of topic in order, the
	// offset the next message published to it will get. It creates the
	// topic when it does not exist, as Partitions does. It fails on a
	// closed bus, with EUNAVAILABLE when the bus cannot be reached, and
	// with ENOTFOUND when the topic the bus knew is gone (a broker that
	// lost its log); the next call creates it again.
	EndOffsets(ctx context.Context, topic string) ([]int64, error)
}

// StartOffsetReader is implemented by a Bus that can tell where the
// partitions of a topic start, which the matcher needs to tell a log that
// lost messages (retention, a broker that lost its log) from one that did
// not (pebble.Bus and kafka.Bus implement it).
type StartOffsetReader interface {
	// StartOffsets returns, for each partition of topic in order, the
	// offset of the oldest message kept (the end offset when none is). It
	// creates the topic when it does not exist and fails as EndOffsets
	// does.
	StartOffsets(ctx context.Context, topic string) ([]int64, error)
}
