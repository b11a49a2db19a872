// Package kafka implements tapline.Bus and tapline.Group on Apache Kafka with the
// github.com/segmentio/kafka-go client.
//
// Publish goes through one shared kafka-go Writer that batches across
// concurrent callers, partitions by the murmur2 hash of the message key (the
// same partitioner the Java client and librdkafka's murmur2 use, so other
// producers put equal keys on the same partitions) and waits for the
// configured acknowledgements before returning. Topics are created
// explicitly, with the configured partition count, the first time they are
// used; broker-side auto-creation is never relied on. Fetch keeps one
// kafka-go Reader per topic and partition and only seeks it when the caller
// asks for an offset other than the one after the last message it returned.
//
// Group shares the partitions of the bus topics among the matchers through
// a Kafka consumer group (kafka-go's ConsumerGroup): it manages membership,
// assignments and offset commits only, and the partitions are read with
// Bus.Fetch. The offsets that count live with the facts in PostgreSQL; the
// ones committed to Kafka are for lag tools. docs/kafka.md describes the
// topics, the group and its timeouts.
//
// This is the only package of tapline that imports kafka-go; its exported
// API speaks tapline types only.
package kafka
