package kafka

import (
	"context"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"tapline"
)

var _ tapline.EndOffsetReader = (*Bus)(nil)

// EndOffsets asks the partitions' leaders for the high watermark of every
// partition of topic (the offset the next message will get), creating the
// topic when it does not exist. Every call reaches the brokers, so it also
// tells whether they answer: EUNAVAILABLE when they do not.
func (b *Bus) EndOffsets(ctx context.Context, topic string) ([]int64, error) {
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	reqs := make([]kafkago.OffsetRequest, n)
	for i := range reqs {
		reqs[i] = kafkago.LastOffsetOf(i)
	}
	res, err := b.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, translate(ctx, "end offsets of "+topic, err)
	}
	ends := make([]int64, n)
	got := make([]bool, n)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, translate(ctx, fmt.Sprintf("end offset of %s/%d", topic, p.Partition), p.Error)
		}
		if p.Partition < 0 || p.Partition >= n {
			continue
		}
		ends[p.Partition], got[p.Partition] = p.LastOffset, true
	}
	for i, ok := range got {
		if !ok {
			return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Kafka did not report the end offset of %s/%d.", topic, i)
		}
	}
	return ends, nil
}
