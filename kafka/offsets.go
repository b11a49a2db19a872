package kafka

import (
	"context"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"tapline"
)

var (
	_ tapline.EndOffsetReader   = (*Bus)(nil)
	_ tapline.StartOffsetReader = (*Bus)(nil)
)

// EndOffsets asks the partitions' leaders for the high watermark of every
// partition of topic (the offset the next message will get), creating the
// topic when it does not exist. Every call reaches the brokers, so it also
// tells whether they answer: EUNAVAILABLE when they do not.
func (b *Bus) EndOffsets(ctx context.Context, topic string) ([]int64, error) {
	offs, err := b.listOffsets(ctx, topic, false)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	return offs, nil
}

// StartOffsets asks the partitions' leaders for the log start offset of
// every partition of topic (the offset of the oldest message kept), creating
// the topic when it does not exist; EUNAVAILABLE when the brokers do not
// answer.
func (b *Bus) StartOffsets(ctx context.Context, topic string) ([]int64, error) {
	offs, err := b.listOffsets(ctx, topic, true)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	return offs, nil
}

// listOffsets asks for the start (first) or end offset of every partition
// of topic. A topic
// the brokers no longer know (a broker that lost its log) is forgotten, so
// that the next call creates it again.
func (b *Bus) listOffsets(ctx context.Context, topic string, first bool) ([]int64, error) {
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafkago.OffsetRequest, n)
	for i := range reqs {
		reqs[i] = kafkago.LastOffsetOf(i)
		if first {
			reqs[i] = kafkago.FirstOffsetOf(i)
		}
	}
	res, err := b.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, translate(ctx, "list offsets of "+topic, err)
	}
	offs := make([]int64, n)
	got := make([]bool, n)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			if errors.Is(p.Error, kafkago.UnknownTopicOrPartition) {
				// The brokers lost the topic: say so (the matcher treats
				// the topic created next as a new log) and create it at
				// the next call.
				b.forget(topic)
				return nil, fmt.Errorf("offset of %s/%d: %w: %w", topic, p.Partition,
					tapline.Errorf(tapline.ENOTFOUND, "The message bus has no topic %s.", topic), p.Error)
			}
			return nil, translate(ctx, fmt.Sprintf("offset of %s/%d", topic, p.Partition), p.Error)
		}
		if p.Partition < 0 || p.Partition >= n {
			continue
		}
		offs[p.Partition], got[p.Partition] = p.LastOffset, true
		if first {
			offs[p.Partition] = p.FirstOffset
		}
	}
	for i, ok := range got {
		if !ok {
			return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Kafka did not report the offset of %s/%d.", topic, i)
		}
	}
	return offs, nil
}

// forget drops the cached partition count of topic: the next Partitions
// looks the topic up again and creates it when the brokers no longer have
// it.
func (b *Bus) forget(topic string) {
	b.mu.Lock()
	delete(b.parts, topic)
	b.mu.Unlock()
}
