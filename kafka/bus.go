package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"tapline"
)

// Defaults applied by NewBus and by Open to zero-valued fields.
const (
	DefaultPartitions        = 8
	DefaultReplicationFactor = 1
	DefaultBatchTimeout      = 5 * time.Millisecond
	DefaultFetchMaxWait      = 500 * time.Millisecond
	DefaultDialTimeout       = 5 * time.Second
)

// moreWait bounds how long Fetch waits for each further message that the
// broker already reported as available after the first one was returned.
const moreWait = 50 * time.Millisecond

// Acks says how many replicas must acknowledge a write before Publish
// returns. Fire-and-forget is deliberately not offered: the Bus contract
// says Publish returns once the messages are durable.
type Acks int

// The acknowledgement levels. The zero value waits for all in-sync replicas.
const (
	AcksAll    Acks = iota // every in-sync replica (Kafka acks=-1)
	AcksLeader             // the partition leader only (Kafka acks=1)
)

// Bus implements tapline.Bus on Kafka. Set the exported fields before Open
// and do not change them afterwards.
type Bus struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// NumPartitions is the partition count of topics the bus creates (the
	// field cannot be called Partitions: that is the tapline.Bus method).
	NumPartitions int
	// ReplicationFactor is the replication factor of topics the bus creates.
	ReplicationFactor int
	// BatchTimeout is how long the producer lingers to fill a batch before
	// sending it; Publish latency is at least this.
	BatchTimeout time.Duration
	// RequiredAcks is how many replicas must acknowledge a write.
	RequiredAcks Acks
	// FetchMaxWait is how long the broker holds an idle fetch; it also
	// bounds how long Close waits for readers to stop.
	FetchMaxWait time.Duration
	// DialTimeout bounds each connection attempt.
	DialTimeout time.Duration
	// Logger receives the client's warnings; slog.Default() when nil.
	Logger *slog.Logger

	addr      net.Addr
	transport *kafkago.Transport
	client    *kafkago.Client
	writer    *kafkago.Writer
	dialer    *kafkago.Dialer
	logger    *slog.Logger

	mu      sync.Mutex
	opened  bool
	closed  bool
	parts   map[string]int
	readers map[topicPartition]*partitionReader
}

var _ tapline.Bus = (*Bus)(nil)

type topicPartition struct {
	topic     string
	partition int
}

// partitionReader is the cached reader of one partition. sem serialises the
// Fetch calls that use it; seeks counts how often Fetch had to move it.
type partitionReader struct {
	sem    chan struct{}
	reader *kafkago.Reader
	seeks  atomic.Int64
}

// NewBus returns a bus on the given brokers with default settings.
func NewBus(brokers ...string) *Bus {
	return &Bus{
		Brokers:           brokers,
		NumPartitions:     DefaultPartitions,
		ReplicationFactor: DefaultReplicationFactor,
		BatchTimeout:      DefaultBatchTimeout,
		RequiredAcks:      AcksAll,
		FetchMaxWait:      DefaultFetchMaxWait,
		DialTimeout:       DefaultDialTimeout,
	}
}

// Validate reports every bad field, after zero values have been given their
// defaults.
func (b *Bus) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, tapline.Errorf(tapline.EINVALID, "kafka bus: "+format, args...))
	}
	if len(b.Brokers) == 0 {
		bad("Brokers is empty")
	}
	for _, s := range b.Brokers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("Brokers: %q is not host:port", s)
		}
	}
	if b.NumPartitions < 0 {
		bad("NumPartitions is %d, want > 0", b.NumPartitions)
	}
	if b.ReplicationFactor < 0 {
		bad("ReplicationFactor is %d, want > 0", b.ReplicationFactor)
	}
	if b.BatchTimeout < 0 {
		bad("BatchTimeout is %s, want >= 0", b.BatchTimeout)
	}
	if b.RequiredAcks != AcksAll && b.RequiredAcks != AcksLeader {
		bad("RequiredAcks is %d, want AcksAll or AcksLeader", b.RequiredAcks)
	}
	if b.FetchMaxWait < 0 {
		bad("FetchMaxWait is %s, want > 0", b.FetchMaxWait)
	}
	if b.DialTimeout < 0 {
		bad("DialTimeout is %s, want > 0", b.DialTimeout)
	}
	return errors.Join(errs...)
}

func (b *Bus) setDefaults() {
	if b.NumPartitions == 0 {
		b.NumPartitions = DefaultPartitions
	}
	if b.ReplicationFactor == 0 {
		b.ReplicationFactor = DefaultReplicationFactor
	}
	if b.BatchTimeout == 0 {
		b.BatchTimeout = DefaultBatchTimeout
	}
	if b.FetchMaxWait == 0 {
		b.FetchMaxWait = DefaultFetchMaxWait
	}
	if b.DialTimeout == 0 {
		b.DialTimeout = DefaultDialTimeout
	}
}

// Open validates the configuration, connects to the cluster and reads its
// metadata. It returns EINVALID for a bad configuration and EUNAVAILABLE when
// no broker answers.
func (b *Bus) Open(ctx context.Context) error {
	b.setDefaults()
	if err := b.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened {
		return errors.New("open kafka bus: already opened")
	}

	b.logger = b.Logger
	if b.logger == nil {
		b.logger = slog.Default()
	}
	b.logger = b.logger.With("component", "kafka")
	b.addr = kafkago.TCP(b.Brokers...)
	b.transport = &kafkago.Transport{
		Dial:        (&net.Dialer{Timeout: b.DialTimeout}).DialContext,
		DialTimeout: b.DialTimeout,
		ClientID:    "tapline",
	}
	b.client = &kafkago.Client{Addr: b.addr, Transport: b.transport}
	b.dialer = &kafkago.Dialer{Timeout: b.DialTimeout, ClientID: "tapline", DualStack: true}
	acks := kafkago.RequireAll
	if b.RequiredAcks == AcksLeader {
		acks = kafkago.RequireOne
	}
	b.writer = &kafkago.Writer{
		Addr:      b.addr,
		Transport: b.transport,
		// Murmur2 rather than kafka.Hash (FNV-1a): it is the default
		// partitioner of the Java client, so keys land where other
		// producers would put them.
		Balancer:               kafkago.Murmur2Balancer{},
		BatchTimeout:           b.BatchTimeout,
		RequiredAcks:           acks,
		AllowAutoTopicCreation: false,
		// A few quick retries ride out a leader move; past them Publish
		// reports EUNAVAILABLE and the caller publishes again. kafka-go's
		// ten attempts with up to 1 s backoff would also hold Close for
		// seconds when the brokers are gone.
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		ErrorLogger:     printf(b.logger, slog.LevelWarn),
	}
	b.parts = make(map[string]int)
	b.readers = make(map[topicPartition]*partitionReader)

	md, err := b.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}})
	if err != nil {
		b.transport.CloseIdleConnections()
		return translate(ctx, fmt.Sprintf("open kafka bus on %v", b.Brokers), err)
	}
	if len(md.Brokers) == 0 {
		b.transport.CloseIdleConnections()
		return tapline.Errorf(tapline.EUNAVAILABLE, "kafka cluster on %v reports no brokers", b.Brokers)
	}
	if b.ReplicationFactor > len(md.Brokers) {
		b.logger.Warn("replication factor exceeds broker count; topic creation will fail",
			"replication_factor", b.ReplicationFactor, "brokers", len(md.Brokers))
	}
	b.opened = true
	return nil
}

// Close flushes pending writes and stops every reader. It is safe to call
// twice.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed || !b.opened {
		b.closed = true
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	readers := b.readers
	b.readers = nil
	b.mu.Unlock()

	var errs []error
	if err := b.writer.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close kafka writer: %w", err))
	}
	// Readers stop once their in-flight fetch returns, within FetchMaxWait;
	// close them together so Close takes that long once, not per reader.
	var wg sync.WaitGroup
	var emu sync.Mutex
	for tp, pr := range readers {
		wg.Go(func() {
			if err := pr.reader.Close(); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("close kafka reader %s/%d: %w", tp.topic, tp.partition, err))
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	b.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

func (b *Bus) checkOpen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.opened {
		return errors.New("kafka bus is not open")
	}
	if b.closed {
		return errors.New("kafka bus is closed")
	}
	return nil
}

// Publish writes msgs and returns once the brokers have acknowledged all of
// them. Topics that do not exist yet are created first. Messages without a
// Time get the current time.
func (b *Bus) Publish(ctx context.Context, msgs ...tapline.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := b.checkOpen(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	now := time.Now()
	out := make([]kafkago.Message, len(msgs))
	seen := make(map[string]bool, 2)
	for i, m := range msgs {
		if !seen[m.Topic] {
			seen[m.Topic] = true
			if _, err := b.Partitions(ctx, m.Topic); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		t := m.Time
		if t.IsZero() {
			t = now
		}
		out[i] = kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: t}
	}
	if err := b.writer.WriteMessages(ctx, out...); err != nil {
		if cerr := b.checkOpen(); cerr != nil {
			return fmt.Errorf("publish: %w", cerr)
		}
		if errors.Is(err, kafkago.UnknownTopicOrPartition) {
			// The brokers lost the topic (a broker that came back
			// without its log): the next Publish creates it again.
			for topic := range seen {
				b.forget(topic)
			}
		}
		return translate(ctx, fmt.Sprintf("publish %d messages", len(msgs)), err)
	}
	return nil
}

// Partitions returns the partition count of topic, creating the topic with
// the configured partition count and replication factor when it does not
// exist. Counts are cached for the life of the bus.
func (b *Bus) Partitions(ctx context.Context, topic string) (int, error) {
	if topic == "" {
		return 0, tapline.Errorf(tapline.EINVALID, "kafka bus: empty topic name")
	}
	if err := b.checkOpen(); err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	b.mu.Lock()
	n, ok := b.parts[topic]
	b.mu.Unlock()
	if ok {
		return n, nil
	}

	n, err := b.lookup(ctx, topic)
	if errors.Is(err, kafkago.UnknownTopicOrPartition) {
		n, err = b.create(ctx, topic)
	}
	if err != nil {
		return 0, translate(ctx, "partitions of "+topic, err)
	}
	b.mu.Lock()
	b.parts[topic] = n
	b.mu.Unlock()
	return n, nil
}

// lookup reads the partition count of topic from the transport's metadata
// cache, which is also what the writer balances over.
func (b *Bus) lookup(ctx context.Context, topic string) (int, error) {
	md, err := b.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, t.Error
		}
		if len(t.Partitions) == 0 {
			return 0, kafkago.LeaderNotAvailable
		}
		return len(t.Partitions), nil
	}
	return 0, kafkago.UnknownTopicOrPartition
}

// create creates topic and waits until the metadata cache shows it. A topic
// another client created meanwhile is fine.
func (b *Bus) create(ctx context.Context, topic string) (int, error) {
	res, err := b.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{
			Topic:             topic,
			NumPartitions:     b.NumPartitions,
			ReplicationFactor: b.ReplicationFactor,
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("create topic: %w", err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic: %w", err)
	}
	b.logger.Debug("topic ready", "topic", topic, "partitions", b.NumPartitions)
	// The transport refreshes its cache after a successful create; a topic
	// that already existed shows up at the next periodic refresh.
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		n, err := b.lookup(ctx, topic)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) && !errors.Is(err, kafkago.LeaderNotAvailable) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Fetch returns up to max messages of one partition from offset on. It
// blocks until at least one message is there or ctx is done, then returns the
// first message and whichever further ones the broker already had. An offset
// before the oldest retained message starts at the oldest.
func (b *Bus) Fetch(ctx context.Context, topic string, partition int, offset int64, max int) ([]tapline.Message, error) {
	if max <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "kafka bus: fetch max is %d, want > 0", max)
	}
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if partition < 0 || partition >= n {
		return nil, tapline.Errorf(tapline.EINVALID, "kafka bus: topic %s has no partition %d (it has %d)", topic, partition, n)
	}
	pr, err := b.reader(topic, partition)
	if err != nil {
		return nil, fmt.Errorf("fetch %s/%d: %w", topic, partition, err)
	}
	select {
	case pr.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch %s/%d: %w", topic, partition, ctx.Err())
	}
	defer func() { <-pr.sem }()

	if offset < 0 {
		offset = kafkago.FirstOffset
	}
	// The reader's offset is the one after the last message it returned, so
	// a consumer reading on does not restart the reader's fetch loop.
	if pr.reader.Offset() != offset {
		if err := pr.reader.SetOffset(offset); err != nil {
			return nil, b.fetchError(ctx, topic, partition, err)
		}
		pr.seeks.Add(1)
	}

	m, err := pr.reader.ReadMessage(ctx)
	if err != nil {
		return nil, b.fetchError(ctx, topic, partition, err)
	}
	out := make([]tapline.Message, 1, min(max, 64))
	out[0] = fromKafka(m)
	// Lag is how many messages the broker held past this one when it
	// answered the fetch; take those without waiting for more to arrive.
	for len(out) < max && pr.reader.Lag() > 0 {
		rctx, cancel := context.WithTimeout(ctx, moreWait)
		m, err := pr.reader.ReadMessage(rctx)
		cancel()
		if err != nil {
			break
		}
		out = append(out, fromKafka(m))
	}
	return out, nil
}

func (b *Bus) fetchError(ctx context.Context, topic string, partition int, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetch %s/%d: %w", topic, partition, ctx.Err())
	}
	if cerr := b.checkOpen(); cerr != nil {
		return fmt.Errorf("fetch %s/%d: %w", topic, partition, cerr)
	}
	return translate(ctx, fmt.Sprintf("fetch %s/%d", topic, partition), err)
}

// reader returns the cached reader of one partition, making it on first use.
func (b *Bus) reader(topic string, partition int) (*partitionReader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("kafka bus is closed")
	}
	key := topicPartition{topic, partition}
	if pr := b.readers[key]; pr != nil {
		return pr, nil
	}
	pr := &partitionReader{
		sem: make(chan struct{}, 1),
		reader: kafkago.NewReader(kafkago.ReaderConfig{
			Brokers:         b.Brokers,
			Topic:           topic,
			Partition:       partition,
			Dialer:          b.dialer,
			MinBytes:        1,
			MaxBytes:        4 << 20,
			MaxWait:         b.FetchMaxWait,
			ReadLagInterval: -1,
			ReadBackoffMin:  10 * time.Millisecond,
			ReadBackoffMax:  250 * time.Millisecond,
			// Warnings such as "reading past the last offset" are the
			// normal state of a caught-up consumer: debug level.
			ErrorLogger: printf(b.logger.With("topic", topic, "partition", partition), slog.LevelDebug),
		}),
	}
	b.readers[key] = pr
	return pr, nil
}

func fromKafka(m kafkago.Message) tapline.Message {
	return tapline.Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Time:      m.Time,
	}
}

// printf adapts slog to kafka-go's printf-style logger.
func printf(l *slog.Logger, level slog.Level) kafkago.Logger {
	return kafkago.LoggerFunc(func(format string, args ...any) {
		if l.Enabled(context.Background(), level) {
			l.Log(context.Background(), level, fmt.Sprintf(format, args...))
		}
	})
}
