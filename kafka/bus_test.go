package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"tapline"
	"tapline/bustest"
)

// fakeBrokers are the addresses of the in-process kfake cluster that the
// tests of this package share; every test uses its own topics.
var fakeBrokers []string

func TestMain(m *testing.M) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		fmt.Fprintf(os.Stderr, "start kfake cluster: %v\n", err)
		os.Exit(1)
	}
	fakeBrokers = c.ListenAddrs()
	code := m.Run()
	c.Close()
	os.Exit(code)
}

// quiet is a logger for tests: the client's warnings about brokers going
// away are expected in some of them.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// mustOpen opens a bus on brokers, configured by opts, and closes it when t
// ends.
func mustOpen(t testing.TB, brokers []string, opts ...func(*Bus)) *Bus {
	t.Helper()
	b := NewBus(brokers...)
	b.Logger = quiet
	b.FetchMaxWait = 200 * time.Millisecond
	for _, o := range opts {
		o(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open(%v): %v", brokers, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestBus(t *testing.T) {
	t.Parallel()
	bustest.Run(t, func(t *testing.T) tapline.Bus { return mustOpen(t, fakeBrokers) })
}

func TestBus_RealKafka(t *testing.T) {
	env := os.Getenv("TAPLINE_KAFKA_BROKERS")
	if env == "" {
		t.Skip("TAPLINE_KAFKA_BROKERS not set: skipping the bus suite against real Kafka")
	}
	t.Parallel()
	brokers := strings.Split(env, ",")
	bustest.Run(t, func(t *testing.T) tapline.Bus { return mustOpen(t, brokers) })
}

func TestBus_CreatesTopicWithPartitionCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		partitions int
		want       int
	}{
		{"default", 0, DefaultPartitions},
		{"three", 3, 3},
		{"one", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := mustOpen(t, fakeBrokers, func(b *Bus) { b.NumPartitions = tt.partitions })
			topic := bustest.Topic(t)
			ctx := t.Context()
			n, err := b.Partitions(ctx, topic)
			if err != nil {
				t.Fatalf("Partitions: %v", err)
			}
			if n != tt.want {
				t.Errorf("Partitions = %d, want %d", n, tt.want)
			}
			// Ask the cluster directly, past the bus's cache.
			conn, err := kafkago.DialContext(ctx, "tcp", fakeBrokers[0])
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			parts, err := conn.ReadPartitions(topic)
			if err != nil {
				t.Fatalf("ReadPartitions: %v", err)
			}
			if len(parts) != tt.want {
				t.Errorf("cluster reports %d partitions, want %d", len(parts), tt.want)
			}
		})
	}
}

func TestBus_PublishUnreachable(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	b := mustOpen(t, c.ListenAddrs())
	topic := bustest.Topic(t)
	if _, err := b.Partitions(t.Context(), topic); err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	c.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err = b.Publish(ctx, tapline.Message{Topic: topic, Key: []byte("k"), Value: []byte("v")})
	if got := tapline.ErrorCode(err); got != tapline.EUNAVAILABLE {
		t.Fatalf("Publish to a stopped cluster: code %q (%v), want %q", got, err, tapline.EUNAVAILABLE)
	}
	if strings.Contains(tapline.ErrorMessage(err), "127.0.0.1") {
		t.Errorf("public message %q leaks the broker address", tapline.ErrorMessage(err))
	}
}

func TestBus_OpenUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	b := NewBus(addr)
	b.Logger = quiet
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = b.Open(ctx)
	if got := tapline.ErrorCode(err); got != tapline.EUNAVAILABLE {
		t.Fatalf("Open(%s) with nothing listening: code %q (%v), want %q", addr, got, err, tapline.EUNAVAILABLE)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after a failed Open: %v", err)
	}
}

func TestBus_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		set   func(*Bus)
		field string
	}{
		{"no brokers", func(b *Bus) { b.Brokers = nil }, "Brokers"},
		{"broker without port", func(b *Bus) { b.Brokers = []string{"localhost"} }, "Brokers"},
		{"negative partitions", func(b *Bus) { b.NumPartitions = -1 }, "NumPartitions"},
		{"negative replication", func(b *Bus) { b.ReplicationFactor = -2 }, "ReplicationFactor"},
		{"negative linger", func(b *Bus) { b.BatchTimeout = -time.Second }, "BatchTimeout"},
		{"unknown acks", func(b *Bus) { b.RequiredAcks = 7 }, "RequiredAcks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBus("127.0.0.1:9092")
			tt.set(b)
			err := b.Open(t.Context())
			if got := tapline.ErrorCode(err); got != tapline.EINVALID {
				t.Fatalf("Open: code %q (%v), want %q", got, err, tapline.EINVALID)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Open error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestBus_FetchReusesReader(t *testing.T) {
	t.Parallel()
	b := mustOpen(t, fakeBrokers)
	topic := bustest.Topic(t)
	ctx := t.Context()
	var batch []tapline.Message
	for i := range 30 {
		batch = append(batch, tapline.Message{Topic: topic, Key: []byte("one-key"), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := b.Publish(ctx, batch...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	p := kafkago.Murmur2Balancer{}.Balance(kafkago.Message{Key: []byte("one-key")}, 0, 1, 2, 3, 4, 5, 6, 7)

	fetch := func(offset int64, max int) []tapline.Message {
		t.Helper()
		msgs, err := b.Fetch(ctx, topic, p, offset, max)
		if err != nil {
			t.Fatalf("Fetch(%d, %d): %v", offset, max, err)
		}
		if msgs[0].Offset != offset {
			t.Fatalf("Fetch(%d) starts at offset %d", offset, msgs[0].Offset)
		}
		return msgs
	}
	msgs := fetch(0, 4)
	pr, err := b.reader(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := pr.seeks.Load(); got != 1 {
		t.Fatalf("seeks after the first Fetch = %d, want 1", got)
	}
	var got []string
	for offset := int64(0); offset < 30; {
		for _, m := range msgs {
			got = append(got, string(m.Value))
		}
		offset = msgs[len(msgs)-1].Offset + 1
		if offset < 30 {
			msgs = fetch(offset, 4)
		}
	}
	if len(got) != 30 || got[0] != "v0" || got[29] != "v29" {
		t.Errorf("read %v, want v0..v29", got)
	}
	if again, _ := b.reader(topic, p); again != pr {
		t.Error("the partition's reader was replaced")
	}
	if got := pr.seeks.Load(); got != 1 {
		t.Errorf("seeks after reading on = %d, want still 1", got)
	}
	// Going back seeks once and reads from there.
	if m := fetch(10, 1); string(m[0].Value) != "v10" {
		t.Errorf("value at offset 10 = %q, want v10", m[0].Value)
	}
	if got := pr.seeks.Load(); got != 2 {
		t.Errorf("seeks after going back = %d, want 2", got)
	}
}

func TestBus_FetchBeforeOldest(t *testing.T) {
	t.Parallel()
	one := func(b *Bus) { b.NumPartitions = 1 }
	b := mustOpen(t, fakeBrokers, one)
	topic := bustest.Topic(t)
	ctx := t.Context()
	var batch []tapline.Message
	for i := range 10 {
		batch = append(batch, tapline.Message{Topic: topic, Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := b.Publish(ctx, batch...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// Drop offsets 0..4 with another client, as retention would.
	cl, err := kgo.NewClient(kgo.SeedBrokers(fakeBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteRecords: error code %d", code)
	}

	tests := []struct {
		name   string
		offset int64
	}{
		{"zero", 0},
		{"deleted", 3},
		{"negative", -1},
	}
	for _, tt := range tests {
		fresh := mustOpen(t, fakeBrokers, one)
		msgs, err := fresh.Fetch(ctx, topic, 0, tt.offset, 1)
		if err != nil {
			t.Fatalf("%s: Fetch(%d): %v", tt.name, tt.offset, err)
		}
		if msgs[0].Offset != 5 || string(msgs[0].Value) != "v5" {
			t.Errorf("%s: Fetch(%d) = offset %d %q, want the oldest kept, offset 5 \"v5\"", tt.name, tt.offset, msgs[0].Offset, msgs[0].Value)
		}
	}
}

func TestBus_FetchTakesWhatIsAvailable(t *testing.T) {
	t.Parallel()
	b := mustOpen(t, fakeBrokers, func(b *Bus) { b.NumPartitions = 1 })
	topic := bustest.Topic(t)
	var batch []tapline.Message
	for i := range 30 {
		batch = append(batch, tapline.Message{Topic: topic, Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := b.Publish(t.Context(), batch...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// All 30 were acknowledged before the Fetch, so the broker has them:
	// one Fetch returns more than the first, up to max.
	msgs, err := b.Fetch(t.Context(), topic, 0, 0, 20)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(msgs) < 2 || len(msgs) > 20 {
		t.Errorf("Fetch(max 20) with 30 available returned %d messages, want 2..20", len(msgs))
	}
}

func TestBus_FetchBadPartition(t *testing.T) {
	t.Parallel()
	b := mustOpen(t, fakeBrokers, func(b *Bus) { b.NumPartitions = 2 })
	topic := bustest.Topic(t)
	for _, p := range []int{-1, 2, 100} {
		_, err := b.Fetch(t.Context(), topic, p, 0, 10)
		if got := tapline.ErrorCode(err); got != tapline.EINVALID {
			t.Errorf("Fetch(partition %d): code %q (%v), want %q", p, got, err, tapline.EINVALID)
		}
	}
}

func TestBus_UseAfterClose(t *testing.T) {
	t.Parallel()
	b := mustOpen(t, fakeBrokers)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	topic := bustest.Topic(t)
	if err := b.Publish(t.Context(), tapline.Message{Topic: topic, Value: []byte("v")}); err == nil {
		t.Error("Publish after Close succeeded, want an error")
	}
	if _, err := b.Fetch(t.Context(), topic, 0, 0, 1); err == nil {
		t.Error("Fetch after Close succeeded, want an error")
	}
	if _, err := b.Partitions(t.Context(), topic); err == nil {
		t.Error("Partitions after Close succeeded, want an error")
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"retriable kafka error", live, kafkago.NotLeaderForPartition, tapline.EUNAVAILABLE},
		{"wrapped retriable", live, fmt.Errorf("x: %w", kafkago.LeaderNotAvailable), tapline.EUNAVAILABLE},
		{"write errors", live, kafkago.WriteErrors{nil, kafkago.RequestTimedOut}, tapline.EUNAVAILABLE},
		{"refused", live, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, tapline.EUNAVAILABLE},
		{"deadline", live, context.DeadlineExceeded, tapline.EUNAVAILABLE},
		{"unexpected eof", live, io.ErrUnexpectedEOF, tapline.EUNAVAILABLE},
		{"too large", live, kafkago.MessageSizeTooLarge, tapline.ETOOLARGE},
		{"invalid topic", live, kafkago.InvalidTopic, tapline.EINVALID},
		{"not retriable", live, kafkago.TopicAuthorizationFailed, tapline.EINTERNAL},
		{"plain error", live, errors.New("boom"), tapline.EINTERNAL},
		{"caller cancelled", cancelled, context.Canceled, tapline.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := translate(tt.ctx, "op", tt.err)
			if got := tapline.ErrorCode(err); got != tt.want {
				t.Errorf("code of %v = %q, want %q", err, got, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "op: ") {
				t.Errorf("error %q lacks the context prefix", err)
			}
		})
	}
	if err := translate(live, "op", nil); err != nil {
		t.Errorf("translate(nil) = %v, want nil", err)
	}
	if err := translate(cancelled, "op", context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("translate(cancelled) = %v, want it to wrap context.Canceled", err)
	}
}

func BenchmarkPublish(b *testing.B) {
	bus := mustOpen(b, fakeBrokers)
	topic := bustest.Topic(b)
	if _, err := bus.Partitions(b.Context(), topic); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 256)
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		i := 0
		for b.Loop() {
			i++
			if err := bus.Publish(b.Context(), tapline.Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%1000), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := bus.Publish(context.Background(), tapline.Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%1000), Value: value}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
