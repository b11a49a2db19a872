// Package kafka implements tapline.Bus on Apache Kafka with the
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
// This is the only package of tapline that imports kafka-go; its exported
// API speaks tapline types only.
package kafka
