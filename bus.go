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

// Message is one record on the bus. Publish ignores Partition and Offset;
// Fetch fills them in.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte // the fingerprint key: equal keys share a partition
	Value     []byte // JSON of a Hit or an Event
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
