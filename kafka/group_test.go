package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"tapline"
	"tapline/bustest"
)

// groupCluster starts a kfake cluster for t alone, accepting session
// timeouts far below Kafka's 6 s minimum so that membership tests take
// seconds.
func groupCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// fastConfig is a group configuration with short timeouts for kfake.
func fastConfig(brokers []string, group string, topics ...string) GroupConfig {
	return GroupConfig{
		Brokers:           brokers,
		GroupID:           group,
		Topics:            topics,
		SessionTimeout:    time.Second,
		RebalanceTimeout:  3 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		JoinBackoff:       100 * time.Millisecond,
		Timeout:           3 * time.Second,
		Logger:            quiet,
	}
}

// makeTopics creates n topics of parts partitions each through a Bus, as
// the matcher does before joining, and returns them with every partition.
func makeTopics(t *testing.T, brokers []string, n, parts int) ([]string, []tapline.Partition) {
	t.Helper()
	b := mustOpen(t, brokers, func(b *Bus) { b.NumPartitions = parts })
	var topics []string
	var all []tapline.Partition
	for i := range n {
		topic := fmt.Sprintf("%s-%d", bustest.Topic(t), i)
		got, err := b.Partitions(t.Context(), topic)
		if err != nil {
			t.Fatalf("Partitions(%s): %v", topic, err)
		}
		if got != parts {
			t.Fatalf("Partitions(%s) = %d, want %d", topic, got, parts)
		}
		topics = append(topics, topic)
		for p := range parts {
			all = append(all, tapline.Partition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(all, comparePartitions)
	return topics, all
}

func comparePartitions(a, b tapline.Partition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

func mustOpenGroup(t *testing.T, g *Group) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := g.Open(ctx); err != nil {
		t.Fatalf("Open group: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close group: %v", err)
		}
	})
}

// member runs a group member the way the matcher does: one generation after
// another, each held until it ends.
type member struct {
	name string
	g    *Group
	done chan struct{}

	mu    sync.Mutex
	gen   *Generation // the running generation, nil between generations
	ended int         // how many generations have ended
}

func startMember(t *testing.T, name string, cfg GroupConfig, opts ...func(*Group)) *member {
	t.Helper()
	g := NewGroup(cfg)
	for _, o := range opts {
		o(g)
	}
	mustOpenGroup(t, g)
	m := &member{name: name, g: g, done: make(chan struct{})}
	go m.run(t.Context())
	t.Cleanup(m.close)
	return m
}

func (m *member) run(ctx context.Context) {
	defer close(m.done)
	for {
		gen, err := m.g.Next(ctx)
		if errors.Is(err, ErrGroupClosed) || ctx.Err() != nil {
			return
		}
		if err != nil {
			// A member cut off the cluster lands here until it is closed.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ended := make(chan struct{})
		m.mu.Lock()
		m.gen = gen.(*Generation)
		m.mu.Unlock()
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			m.mu.Lock()
			m.gen = nil
			m.ended++
			m.mu.Unlock()
			close(ended)
		})
		<-ended
	}
}

// close leaves the group and waits for the member's loop to stop.
func (m *member) close() {
	m.g.Close()
	<-m.done
}

// state returns the member's running generation and generations ended.
func (m *member) state() (*Generation, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, m.ended
}

// waitBalanced waits until every one of members runs the same generation,
// each owns at least one partition, and together they own want with no
// partition twice. It returns those generations.
func waitBalanced(t *testing.T, members []*member, want []tapline.Partition, within time.Duration) []*Generation {
	t.Helper()
	gens, last, ok := settle(members, want, within)
	if !ok {
		t.Fatalf("members did not settle within %s:\ngot  %s\nwant %d partitions %v, each once", within, last, len(want), want)
	}
	return gens
}

// settle is waitBalanced without the failure: ok reports whether members
// settled within, last describes what they ran when they did not.
func settle(members []*member, want []tapline.Partition, within time.Duration) (gens []*Generation, last string, ok bool) {
	deadline := time.Now().Add(within)
	for {
		gens := make([]*Generation, len(members))
		var all []tapline.Partition
		ok := true
		var b strings.Builder
		for i, m := range members {
			gen, _ := m.state()
			gens[i] = gen
			if gen == nil {
				ok = false
				fmt.Fprintf(&b, "%s: between generations; ", m.name)
				continue
			}
			parts := gen.Assignments()
			fmt.Fprintf(&b, "%s: generation %d, %d partitions %v; ", m.name, gen.ID(), len(parts), parts)
			if len(parts) == 0 || gens[0] == nil || gen.ID() != gens[0].ID() {
				ok = false
			}
			all = append(all, parts...)
		}
		if ok {
			slices.SortFunc(all, comparePartitions)
			if slices.Equal(all, want) {
				return gens, "", true
			}
		}
		last = b.String()
		if time.Now().After(deadline) {
			return nil, last, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGroup_OneMemberGetsAll(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, all := makeTopics(t, brokers, 2, 8)
	g := NewGroup(fastConfig(brokers, "one-"+bustest.Topic(t), topics...))
	mustOpenGroup(t, g)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	gen, err := g.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if got := gen.Assignments(); !slices.Equal(got, all) {
		t.Errorf("Assignments =\n%v\nwant (sorted)\n%v", got, all)
	}
	// Assignments hands out a copy.
	gen.Assignments()[0].Partition = 99
	if got := gen.Assignments()[0]; got != all[0] {
		t.Errorf("Assignments()[0] after changing a returned slice = %v, want %v", got, all[0])
	}
}

func TestGroup_Membership(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, all := makeTopics(t, brokers, 2, 8)
	testMembership(t, fastConfig(brokers, "members-"+bustest.Topic(t), topics...), all, 20*time.Second)
}

// testMembership checks that members share all partitions with no overlap
// as they join and leave.
func testMembership(t *testing.T, cfg GroupConfig, all []tapline.Partition, within time.Duration) {
	a := startMember(t, "a", cfg)
	b := startMember(t, "b", cfg)
	gens := waitBalanced(t, []*member{a, b}, all, within)
	t.Logf("two members: a has %v, b has %v", gens[0].Assignments(), gens[1].Assignments())

	before := gens[0].ID()
	_, endedBefore := a.state()
	b.close()
	gens = waitBalanced(t, []*member{a}, all, within)
	if gens[0].ID() <= before {
		t.Errorf("after b left, a runs generation %d, want one after %d", gens[0].ID(), before)
	}
	if _, ended := a.state(); ended <= endedBefore {
		t.Errorf("after b left, a's ended generations = %d, want more than %d", ended, endedBefore)
	}

	c := startMember(t, "c", cfg)
	gens = waitBalanced(t, []*member{a, c}, all, within)
	t.Logf("after c joined: a has %v, c has %v", gens[0].Assignments(), gens[1].Assignments())

	d := startMember(t, "d", cfg)
	waitBalanced(t, []*member{a, c, d}, all, within)
}

// cutter dials like net.Dialer until cut, then closes every connection it
// made and refuses new ones: a member that died without leaving.
type cutter struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutter) cutOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for _, conn := range c.conns {
		conn.Close()
	}
}

func TestGroup_MemberDies(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, all := makeTopics(t, brokers, 2, 8)
	cfg := fastConfig(brokers, "dies-"+bustest.Topic(t), topics...)
	cut := &cutter{}
	a := startMember(t, "a", cfg)
	dead := startMember(t, "dead", cfg, func(g *Group) { g.dial = cut.dial })
	waitBalanced(t, []*member{a, dead}, all, 20*time.Second)

	// The dead member cannot send LeaveGroup: the coordinator notices only
	// when its session times out.
	cut.cutOff()
	waitBalanced(t, []*member{a}, all, 20*time.Second)
}

func TestGroup_CommitOffsets(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, _ := makeTopics(t, brokers, 2, 4)
	cfg := fastConfig(brokers, "commit-"+bustest.Topic(t), topics...)
	ctx, g, gen := joinedGroup(t, cfg)
	commit := []tapline.Offset{
		{Topic: topics[0], Partition: 0, Offset: 17},
		{Topic: topics[0], Partition: 3, Offset: 1},
		{Topic: topics[1], Partition: 2, Offset: 123456789},
	}
	if err := gen.CommitOffsets(ctx, commit); err != nil {
		t.Fatalf("CommitOffsets: %v", err)
	}
	if err := gen.CommitOffsets(ctx, nil); err != nil {
		t.Errorf("CommitOffsets(nil): %v", err)
	}

	bad := []struct {
		name   string
		offset tapline.Offset
	}{
		{"negative offset", tapline.Offset{Topic: topics[0], Partition: 1, Offset: -1}},
		{"negative partition", tapline.Offset{Topic: topics[0], Partition: -1, Offset: 5}},
		{"no topic", tapline.Offset{Partition: 1, Offset: 5}},
	}
	for _, tt := range bad {
		err := gen.CommitOffsets(ctx, []tapline.Offset{tt.offset})
		if got := tapline.ErrorCode(err); got != tapline.EINVALID {
			t.Errorf("%s: CommitOffsets(%v): code %q (%v), want %q", tt.name, tt.offset, got, err, tapline.EINVALID)
		}
	}
	cancelled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := gen.CommitOffsets(cancelled, commit); !errors.Is(err, context.Canceled) {
		t.Errorf("CommitOffsets with a cancelled context = %v, want context.Canceled", err)
	}

	// What lag tools see.
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
	res, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{
		GroupID: cfg.GroupID,
		Topics:  map[string][]int{topics[0]: {0, 1, 2, 3}, topics[1]: {0, 1, 2, 3}},
	})
	if err != nil || res.Error != nil {
		t.Fatalf("OffsetFetch: %v %v", err, res.Error)
	}
	want := map[tapline.Partition]int64{}
	for _, o := range commit {
		want[tapline.Partition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	for topic, parts := range res.Topics {
		for _, p := range parts {
			key := tapline.Partition{Topic: topic, Partition: p.Partition}
			w, ok := want[key]
			if !ok {
				w = -1 // nothing committed
			}
			if p.CommittedOffset != w {
				t.Errorf("committed offset of %v = %d, want %d", key, p.CommittedOffset, w)
			}
		}
	}

	// What the next member of the group is handed.
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	g2 := NewGroup(cfg)
	mustOpenGroup(t, g2)
	gen2, err := g2.Next(ctx)
	if err != nil {
		t.Fatalf("Next after rejoining: %v", err)
	}
	for topic, as := range gen2.(*Generation).gen.Assignments {
		for _, a := range as {
			key := tapline.Partition{Topic: topic, Partition: a.ID}
			if w, ok := want[key]; ok && a.Offset != w {
				t.Errorf("a new generation starts %v at %d, want the committed %d", key, a.Offset, w)
			}
		}
	}
}

func TestGroup_NextAndClose(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, _ := makeTopics(t, brokers, 1, 2)
	g := NewGroup(fastConfig(brokers, "next-"+bustest.Topic(t), topics...))
	mustOpenGroup(t, g)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.Next(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context = %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := g.Next(ctx); err != nil {
		t.Fatalf("Next: %v", err)
	}
	// The generation runs on, so the next one never comes: Next waits for
	// the context.
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := g.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next while the generation runs = %v, want context.DeadlineExceeded", err)
	}

	for i := range 2 {
		if err := g.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	_, err := g.Next(ctx)
	if !errors.Is(err, ErrGroupClosed) || tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("Next after Close = %v (code %q), want ErrGroupClosed with code %q", err, tapline.ErrorCode(err), tapline.EUNAVAILABLE)
	}
	if err := NewGroup(GroupConfig{}).Close(); err != nil {
		t.Errorf("Close of a group never opened: %v", err)
	}
}

func TestGroup_CloseEndsGeneration(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, _ := makeTopics(t, brokers, 1, 2)
	g := NewGroup(fastConfig(brokers, "close-"+bustest.Topic(t), topics...))
	mustOpenGroup(t, g)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	gen, err := g.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	flushed := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		<-gctx.Done()
		close(flushed) // the matcher flushes its facts here
	})
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returns only after the generation's functions have returned.
	select {
	case <-flushed:
	default:
		t.Error("Close returned before the generation's function did")
	}
}

func TestGroup_Unavailable(t *testing.T) {
	t.Parallel()
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		g := NewGroup(fastConfig([]string{addr}, "g", "t"))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		err = g.Open(ctx)
		if got := tapline.ErrorCode(err); got != tapline.EUNAVAILABLE {
			t.Errorf("Open with nothing listening: code %q (%v), want %q", got, err, tapline.EUNAVAILABLE)
		}
		if err := g.Close(); err != nil {
			t.Errorf("Close after a failed Open: %v", err)
		}
	})
	t.Run("next", func(t *testing.T) {
		t.Parallel()
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatalf("start kfake cluster: %v", err)
		}
		defer c.Close()
		topics, _ := makeTopics(t, c.ListenAddrs(), 1, 2)
		g := NewGroup(fastConfig(c.ListenAddrs(), "g", topics...))
		mustOpenGroup(t, g)
		c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		// The member may have joined before the cluster stopped; that
		// generation ends as soon as the function started on it returns.
		var gen tapline.Generation
		for range 3 {
			if gen, err = g.Next(ctx); err != nil {
				break
			}
			gen.Start(func(context.Context) {})
		}
		if got := tapline.ErrorCode(err); got != tapline.EUNAVAILABLE || ctx.Err() != nil {
			t.Errorf("Next on a stopped cluster: code %q (%v), want %q before the deadline", got, err, tapline.EUNAVAILABLE)
		}
	})
}

func TestGroup_MissingTopic(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, _ := makeTopics(t, brokers, 1, 2)
	missing := bustest.Topic(t) + "-missing"
	g := NewGroup(fastConfig(brokers, "g", topics[0], missing))
	err := g.Open(t.Context())
	if got := tapline.ErrorCode(err); got != tapline.ENOTFOUND {
		t.Fatalf("Open with a missing topic: code %q (%v), want %q", got, err, tapline.ENOTFOUND)
	}
	if !strings.Contains(tapline.ErrorMessage(err), missing) {
		t.Errorf("error %q does not name the missing topic %s", tapline.ErrorMessage(err), missing)
	}
}

func TestGroupConfig_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		set   func(*GroupConfig)
		field string // "" when valid
	}{
		{"valid", func(*GroupConfig) {}, ""},
		{"defaults", func(c *GroupConfig) { c.SessionTimeout, c.HeartbeatInterval, c.RebalanceTimeout = 0, 0, 0 }, ""},
		{"no brokers", func(c *GroupConfig) { c.Brokers = nil }, "Brokers"},
		{"broker without port", func(c *GroupConfig) { c.Brokers = []string{"kafka"} }, "Brokers"},
		{"no group", func(c *GroupConfig) { c.GroupID = "" }, "GroupID"},
		{"no topics", func(c *GroupConfig) { c.Topics = nil }, "Topics"},
		{"empty topic", func(c *GroupConfig) { c.Topics = []string{"hits", ""} }, "Topics"},
		{"topic twice", func(c *GroupConfig) { c.Topics = []string{"hits", "hits"} }, "Topics"},
		{"negative session", func(c *GroupConfig) { c.SessionTimeout = -time.Second }, "SessionTimeout"},
		{"negative rebalance", func(c *GroupConfig) { c.RebalanceTimeout = -time.Second }, "RebalanceTimeout"},
		{"heartbeat too slow", func(c *GroupConfig) { c.HeartbeatInterval = 2 * c.SessionTimeout }, "HeartbeatInterval"},
		{"negative backoff", func(c *GroupConfig) { c.JoinBackoff = -1 }, "JoinBackoff"},
		{"instance", func(c *GroupConfig) { c.InstanceID = "host-1:/var/lib/tapline" }, ""},
		{"instance with newline", func(c *GroupConfig) { c.InstanceID = "host-1\n" }, "InstanceID"},
		{"instance too long", func(c *GroupConfig) { c.InstanceID = strings.Repeat("x", maxInstanceID+1) }, "InstanceID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig([]string{"127.0.0.1:9092"}, "g", "hits", "events")
			tt.set(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if got := tapline.ErrorCode(err); got != tapline.EINVALID {
				t.Fatalf("Validate: code %q (%v), want %q", got, err, tapline.EINVALID)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate error %q does not name %s", err, tt.field)
			}
			if err := NewGroup(cfg).Open(t.Context()); tapline.ErrorCode(err) != tapline.EINVALID {
				t.Errorf("Open with a bad config = %v, want code %q", err, tapline.EINVALID)
			}
		})
	}
}

func TestGroup_RealKafka(t *testing.T) {
	env := os.Getenv("TAPLINE_KAFKA_BROKERS")
	if env == "" {
		t.Skip("TAPLINE_KAFKA_BROKERS not set: skipping the group membership test against real Kafka")
	}
	t.Parallel()
	brokers := strings.Split(env, ",")
	topics, all := makeTopics(t, brokers, 2, 8)
	cfg := GroupConfig{
		Brokers: brokers,
		GroupID: "members-" + bustest.Topic(t),
		Topics:  topics,
		// Kafka's group.min.session.timeout.ms is 6 s by default.
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		JoinBackoff:       500 * time.Millisecond,
		Logger:            quiet,
	}
	testMembership(t, cfg, all, 60*time.Second)
}

func TestGroup_CommitAtGenerationEnd(t *testing.T) {
	t.Parallel()
	brokers := groupCluster(t)
	topics, _ := makeTopics(t, brokers, 1, 4)
	cfg := fastConfig(brokers, "end-"+bustest.Topic(t), topics...)
	ctx, _, gen := joinedGroup(t, cfg)
	// The matcher flushes and commits after its generation has ended, as
	// the group rebalances around a newcomer.
	committed := make(chan error, 1)
	gen.Start(func(gctx context.Context) {
		<-gctx.Done()
		committed <- gen.CommitOffsets(ctx, []tapline.Offset{{Topic: topics[0], Partition: 0, Offset: 5}})
	})
	startMember(t, "newcomer", cfg)
	select {
	case err := <-committed:
		// The coordinator waits for this member to rejoin, which it does
		// only after the function returns, so the generation is still
		// current and Kafka accepts its commit.
		if err != nil {
			t.Errorf("CommitOffsets as the generation ends = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("the generation did not end when a member joined")
	}
}

// joinedGroup opens a group member with cfg and waits for its first
// generation; the context bounds the test's further calls.
func joinedGroup(t *testing.T, cfg GroupConfig) (context.Context, *Group, tapline.Generation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	g := NewGroup(cfg)
	mustOpenGroup(t, g)
	gen, err := g.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ctx, g, gen
}

// TestGroup_RestartRemovesPredecessors kills a member twice in a row, the
// second time possibly while it waits in JoinGroup, and starts it again
// with the same InstanceID: the restarted member removes its dead
// predecessors at Open, so the partitions are shared by the two live
// members long before the dead ones' session timeout. Without an
// InstanceID the dead members keep their place (and, after a rebalance,
// partitions) until that timeout.
func TestGroup_RestartRemovesPredecessors(t *testing.T) {
	t.Parallel()
	const session = 20 * time.Second
	for _, tc := range []struct {
		name     string
		instance string
		settles  bool // whether the live members share every partition within 5 s
	}{
		{name: "same instance", instance: "host-1:/var/lib/tapline", settles: true},
		// The control: the scenario does hold the partitions up.
		{name: "no instance", instance: "", settles: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := groupCluster(t)
			topics, all := makeTopics(t, brokers, 2, 8)
			cfg := fastConfig(brokers, "restart-"+bustest.Topic(t), topics...)
			cfg.SessionTimeout, cfg.RebalanceTimeout = session, session
			other := cfg
			other.InstanceID = "host-2:/var/lib/tapline" // a live member of another instance: never removed
			mine := cfg
			mine.InstanceID = tc.instance

			a := startMember(t, "a", other)
			cut1 := &cutter{}
			dead1 := startMember(t, "dead-1", mine, func(g *Group) { g.dial = cut1.dial })
			waitBalanced(t, []*member{a, dead1}, all, 20*time.Second)
			cut1.cutOff() // killed: no LeaveGroup

			cut2 := &cutter{}
			startMember(t, "dead-2", mine, func(g *Group) { g.dial = cut2.dial })
			time.Sleep(200 * time.Millisecond) // its JoinGroup is on its way or waiting
			cut2.cutOff()

			start := time.Now()
			restarted := startMember(t, "restarted", mine)
			_, last, ok := settle([]*member{a, restarted}, all, 5*time.Second)
			switch {
			case ok && !tc.settles:
				t.Errorf("without an InstanceID the live members settled after %s, want the dead members (session timeout %s) to hold partitions",
					time.Since(start).Round(time.Millisecond), session)
			case !ok && tc.settles:
				t.Errorf("the live members did not share every partition within 5 s of the restart (session timeout %s):\ngot %s", session, last)
			case ok:
				t.Logf("the live members shared every partition %s after the restart", time.Since(start).Round(time.Millisecond))
			default:
				t.Logf("5 s after the restart: %s", last)
			}
		})
	}
}
