package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	kafkago "github.com/segmentio/kafka-go"

	"tapline"
)

// Defaults of GroupConfig, applied by NewGroup and Open to zero-valued
// fields. See docs/kafka.md for what they mean for rebalances.
const (
	// DefaultSessionTimeout is how long the coordinator waits without a
	// heartbeat before it declares a member dead and rebalances. It bounds
	// how long the partitions of a crashed matcher stay unread.
	DefaultSessionTimeout = 30 * time.Second
	// DefaultRebalanceTimeout is how long the coordinator waits, once a
	// rebalance starts, for every member to rejoin. Members rejoin only
	// after the functions started on their generation have returned (the
	// matcher flushes its facts first), so it bounds that flush too.
	DefaultRebalanceTimeout = 60 * time.Second
	// DefaultHeartbeatInterval is how often a member tells the coordinator
	// it is alive; a member learns of a rebalance at its next heartbeat.
	DefaultHeartbeatInterval = 3 * time.Second
	// DefaultJoinBackoff is how long a member waits before joining again
	// after a failed attempt.
	DefaultJoinBackoff = 2 * time.Second
	// DefaultGroupTimeout bounds each request to the group coordinator
	// (a join may take RebalanceTimeout on top of it).
	DefaultGroupTimeout = 5 * time.Second
)

// GroupConfig configures a Group. Zero durations take the defaults above.
type GroupConfig struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// GroupID names the consumer group, e.g. "tapline-matcher". Required.
	GroupID string
	// Topics are the topics whose partitions the members share. Required;
	// they must exist before Open (Bus.Partitions creates them).
	Topics []string
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before it removes a member; it must lie within the brokers'
	// group.min.session.timeout.ms and group.max.session.timeout.ms
	// (6 s and 30 min by default on Kafka).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance; a member that takes longer is dropped.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often a member heartbeats; it must be
	// shorter than SessionTimeout (a third of it or less is usual).
	HeartbeatInterval time.Duration
	// JoinBackoff is the pause before joining again after a failed join.
	JoinBackoff time.Duration
	// InstanceID names this member across restarts, e.g. host and data
	// directory; it becomes part of the client id the coordinator records
	// for the member. When set, Open first removes from the group every
	// member whose client id carries the same InstanceID: those an earlier
	// process left when it was killed before it could send LeaveGroup.
	// Without it the coordinator keeps such a member until its session
	// times out, and a rebalance meanwhile hands it partitions nobody
	// reads (docs/kafka.md, "Restarts"). Two live processes must not share
	// an InstanceID: the second to start would end the first's membership
	// (it rejoins, at the cost of a rebalance). Empty: no removal.
	InstanceID string
	// Timeout bounds each request to the coordinator and each dial.
	Timeout time.Duration
	// Logger receives the client's messages; slog.Default() when nil.
	Logger *slog.Logger
}

// withDefaults returns c with zero durations replaced by the defaults.
func (c GroupConfig) withDefaults() GroupConfig {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.JoinBackoff == 0 {
		c.JoinBackoff = DefaultJoinBackoff
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultGroupTimeout
	}
	return c
}

// Validate reports every bad field as EINVALID errors, treating zero
// durations as their defaults.
func (c *GroupConfig) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, tapline.Errorf(tapline.EINVALID, "kafka group: "+format, args...))
	}
	if len(d.Brokers) == 0 {
		bad("Brokers is empty")
	}
	for _, s := range d.Brokers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("Brokers: %q is not host:port", s)
		}
	}
	if d.GroupID == "" {
		bad("GroupID is empty")
	}
	if len(d.Topics) == 0 {
		bad("Topics is empty")
	}
	seen := make(map[string]bool, len(d.Topics))
	for _, t := range d.Topics {
		if t == "" {
			bad("Topics has an empty name")
		} else if seen[t] {
			bad("Topics lists %q twice", t)
		}
		seen[t] = true
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"SessionTimeout", d.SessionTimeout},
		{"RebalanceTimeout", d.RebalanceTimeout},
		{"HeartbeatInterval", d.HeartbeatInterval},
		{"JoinBackoff", d.JoinBackoff},
		{"Timeout", d.Timeout},
	} {
		if f.v < time.Millisecond || f.v > 24*time.Hour {
			bad("%s is %s, want 1ms..24h", f.name, f.v)
		}
	}
	if strings.ContainsFunc(d.InstanceID, unicode.IsControl) || len(d.InstanceID) > maxInstanceID {
		bad("InstanceID %q has a control character or is longer than %d bytes", d.InstanceID, maxInstanceID)
	}
	if d.HeartbeatInterval >= d.SessionTimeout {
		bad("HeartbeatInterval %s is not shorter than SessionTimeout %s", d.HeartbeatInterval, d.SessionTimeout)
	}
	return errors.Join(errs...)
}

// Group implements tapline.Group on a Kafka consumer group through
// kafka-go's ConsumerGroup. It only manages membership, assignments and
// commits; the partitions are read with Bus.Fetch.
type Group struct {
	cfg    GroupConfig
	logger *slog.Logger
	// dial, when set, replaces the network dialer (tests use it to cut a
	// member off the cluster).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	cg     *kafkago.ConsumerGroup
	closed bool
}

var _ tapline.Group = (*Group)(nil)

// NewGroup returns a group with cfg, zero durations set to their defaults.
// Call Open before Next.
func NewGroup(cfg GroupConfig) *Group {
	return &Group{cfg: cfg.withDefaults()}
}

// Open validates the configuration, checks that the brokers answer and that
// every topic exists, and starts joining the group in the background. It
// returns EINVALID for a bad configuration, EUNAVAILABLE when no broker
// answers and ENOTFOUND for a missing topic.
func (g *Group) Open(ctx context.Context) error {
	if err := g.cfg.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("open kafka group: closed")
	}
	if g.cg != nil {
		return errors.New("open kafka group: already opened")
	}
	g.logger = g.cfg.Logger
	if g.logger == nil {
		g.logger = slog.Default()
	}
	g.logger = g.logger.With("component", "kafka-group", "group", g.cfg.GroupID)

	dial := g.dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: g.cfg.Timeout}).DialContext
	}
	if err := g.checkTopics(ctx, dial); err != nil {
		return err
	}
	if g.cfg.InstanceID != "" {
		if err := g.removePredecessors(ctx, dial); err != nil {
			// Not fatal: the coordinator drops them at their session
			// timeout, as it would without an InstanceID.
			g.logger.Warn("remove the group members of earlier processes of this instance", "instance", g.cfg.InstanceID, "err", err)
		}
	}

	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                g.cfg.GroupID,
		Brokers:           g.cfg.Brokers,
		Topics:            g.cfg.Topics,
		Dialer:            &kafkago.Dialer{Timeout: g.cfg.Timeout, ClientID: g.cfg.clientID(), DialFunc: dial},
		SessionTimeout:    g.cfg.SessionTimeout,
		RebalanceTimeout:  g.cfg.RebalanceTimeout,
		HeartbeatInterval: g.cfg.HeartbeatInterval,
		JoinGroupBackoff:  g.cfg.JoinBackoff,
		Timeout:           g.cfg.Timeout,
		GroupBalancers:    []kafkago.GroupBalancer{copartitioned{}},
		// Offsets are the matcher's (in Postgres); the committed ones
		// are only for lag tools, so where a new group would start does
		// not matter.
		StartOffset: kafkago.FirstOffset,
		Logger:      printf(g.logger, slog.LevelDebug),
		// Failed joins are routine during rebalances.
		ErrorLogger: printf(g.logger, slog.LevelInfo),
	})
	if err != nil {
		return tapline.Errorf(tapline.EINVALID, "kafka group: %v", err)
	}
	g.cg = cg
	return nil
}

// checkTopics asks the cluster for the metadata of the group's topics.
// kafka-go assigns nothing for a topic that does not exist and would not
// notice it appear, so a missing topic is an error here.
func (g *Group) checkTopics(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error)) error {
	transport := &kafkago.Transport{Dial: dial, DialTimeout: g.cfg.Timeout, ClientID: "tapline"}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(g.cfg.Brokers...), Transport: transport}
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: g.cfg.Topics})
	if err != nil {
		return translate(ctx, fmt.Sprintf("open kafka group on %v", g.cfg.Brokers), err)
	}
	found := make(map[string]bool, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			found[t.Name] = true
		}
	}
	for _, t := range g.cfg.Topics {
		if !found[t] {
			return tapline.Errorf(tapline.ENOTFOUND, "kafka group: topic %s does not exist; create it first", t)
		}
	}
	return nil
}

// maxInstanceID bounds GroupConfig.InstanceID; Kafka client ids are
// short strings.
const maxInstanceID = 1000

// clientID is the client id of the group's connections: "tapline", then
// the InstanceID when there is one.
func (c GroupConfig) clientID() string {
	if c.InstanceID == "" {
		return "tapline"
	}
	return "tapline/" + c.InstanceID
}

// removePredecessors removes from the group the members whose client id
// is this instance's: members of earlier processes of this instance that
// ended without leaving. The group has no member of this process yet.
func (g *Group) removePredecessors(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error)) error {
	transport := &kafkago.Transport{Dial: dial, DialTimeout: g.cfg.Timeout, ClientID: "tapline"}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(g.cfg.Brokers...), Transport: transport, Timeout: g.cfg.Timeout}
	desc, err := client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{g.cfg.GroupID}})
	if err != nil {
		return fmt.Errorf("describe group: %w", err)
	}
	want := g.cfg.clientID()
	var stale []kafkago.LeaveGroupRequestMember
	for _, d := range desc.Groups {
		if d.Error != nil {
			return fmt.Errorf("describe group: %w", d.Error)
		}
		for _, m := range d.Members {
			if m.ClientID == want {
				stale = append(stale, kafkago.LeaveGroupRequestMember{ID: m.MemberID})
			}
		}
	}
	if len(stale) == 0 {
		return nil
	}
	res, err := client.LeaveGroup(ctx, &kafkago.LeaveGroupRequest{GroupID: g.cfg.GroupID, Members: stale})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("remove %d members: %w", len(stale), err)
	}
	var errs []error
	for _, m := range res.Members {
		// A member that timed out meanwhile is gone already.
		if m.Error != nil && !errors.Is(m.Error, kafkago.UnknownMemberId) {
			errs = append(errs, fmt.Errorf("remove member %s: %w", m.ID, m.Error))
		}
	}
	g.logger.Info("removed the group members of earlier processes of this instance", "instance", g.cfg.InstanceID, "members", len(stale))
	return errors.Join(errs...)
}

// Next blocks until this member has joined the next generation, and returns
// it. Rebalances that fail because the group moved on meanwhile are retried
// here. It returns ctx's error when ctx is done, EUNAVAILABLE when the
// cluster cannot be reached (the group keeps trying: call Next again) and an
// EUNAVAILABLE error wrapping ErrGroupClosed after Close.
func (g *Group) Next(ctx context.Context) (tapline.Generation, error) {
	g.mu.Lock()
	cg, closed := g.cg, g.closed
	g.mu.Unlock()
	if cg == nil && !closed {
		return nil, errors.New("next kafka generation: group is not open")
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("next kafka generation: %w", err)
		}
		if closed {
			return nil, errClosed()
		}
		gen, err := cg.Next(ctx)
		switch {
		case err == nil:
			return newGeneration(gen), nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("next kafka generation: %w", ctx.Err())
		case errors.Is(err, kafkago.ErrGroupClosed):
			return nil, errClosed()
		case rejoinable(err):
			g.logger.Debug("rejoining the group", "err", err)
			continue
		}
		return nil, translate(ctx, "next kafka generation", err)
	}
}

// ErrGroupClosed is in the chain of the error Next returns after Close.
var ErrGroupClosed = errors.New("kafka group is closed")

func errClosed() error {
	return fmt.Errorf("next kafka generation: %w: %w",
		tapline.Errorf(tapline.EUNAVAILABLE, "The consumer group is closed."), ErrGroupClosed)
}

// rejoinable reports whether a failed join is part of the normal churn of a
// rebalance, after which kafka-go simply joins again.
func rejoinable(err error) bool {
	for _, e := range []kafkago.Error{
		kafkago.RebalanceInProgress,
		kafkago.IllegalGeneration,
		kafkago.UnknownMemberId,
		kafkago.NotCoordinatorForGroup,
		kafkago.GroupCoordinatorNotAvailable,
		kafkago.GroupLoadInProgress,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Close ends the current generation, waits for the functions started on it
// to return (so it must not be called from one of them), and leaves the
// group so that the others rebalance at once rather than after the session
// timeout. It is safe to call twice.
func (g *Group) Close() error {
	g.mu.Lock()
	cg := g.cg
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	if cg == nil {
		return nil
	}
	if err := cg.Close(); err != nil {
		return fmt.Errorf("close kafka group: %w", err)
	}
	return nil
}

// Generation implements tapline.Generation on a kafka-go generation.
type Generation struct {
	gen   *kafkago.Generation
	parts []tapline.Partition
}

var _ tapline.Generation = (*Generation)(nil)

func newGeneration(gen *kafkago.Generation) *Generation {
	g := &Generation{gen: gen}
	for topic, as := range gen.Assignments {
		for _, a := range as {
			g.parts = append(g.parts, tapline.Partition{Topic: topic, Partition: a.ID})
		}
	}
	slices.SortFunc(g.parts, func(a, b tapline.Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return g
}

// ID returns the generation id the coordinator gave this generation.
func (g *Generation) ID() int { return int(g.gen.ID) }

// MemberID returns the id the coordinator gave this member.
func (g *Generation) MemberID() string { return g.gen.MemberID }

// Assignments returns the partitions this member owns in this generation,
// sorted by topic and partition. It may be empty when the group has more
// members than partitions.
func (g *Generation) Assignments() []tapline.Partition {
	return slices.Clone(g.parts)
}

// Start runs fn in a goroutine with a context that is done when the
// generation ends: at a rebalance, when the member loses the coordinator, at
// Close, or when any function started on this generation returns. The
// context's Err is then kafka-go's ErrGenerationEnded; it carries no values
// and no deadline.
func (g *Generation) Start(fn func(ctx context.Context)) {
	g.gen.Start(fn)
}

// CommitOffsets commits offsets (each the next offset to read) to the group
// coordinator, for lag tools such as kafka-consumer-groups.sh. kafka-go's
// commit takes no context: if ctx is done first, CommitOffsets returns ctx's
// error and the request finishes in the background, bounded by
// GroupConfig.Timeout. A commit refused because the group is rebalancing
// returns EUNAVAILABLE; the next generation commits again. Negative offsets
// are EINVALID.
func (g *Generation) CommitOffsets(ctx context.Context, offsets []tapline.Offset) error {
	if len(offsets) == 0 {
		return nil
	}
	m := make(map[string]map[int]int64)
	for _, o := range offsets {
		if o.Offset < 0 || o.Partition < 0 || o.Topic == "" {
			return tapline.Errorf(tapline.EINVALID, "kafka group: cannot commit offset %d of %q partition %d", o.Offset, o.Topic, o.Partition)
		}
		if m[o.Topic] == nil {
			m[o.Topic] = make(map[int]int64)
		}
		m[o.Topic][o.Partition] = o.Offset
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit kafka offsets: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.gen.CommitOffsets(m) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("commit kafka offsets: %w", ctx.Err())
	}
	if err != nil && rejoinable(err) {
		return fmt.Errorf("commit kafka offsets: %w: %w",
			tapline.Errorf(tapline.EUNAVAILABLE, "The consumer group is rebalancing; retry later."), err)
	}
	return translate(ctx, "commit kafka offsets", err)
}

// copartitioned assigns each member the same range of partition numbers in
// every topic, so that the hits and the events of one fingerprint, which
// share a partition number, are matched by one member. kafka-go's range
// balancer means to do this but keeps partitions in metadata order, which
// brokers do not promise to sort.
type copartitioned struct{}

func (copartitioned) ProtocolName() string { return "tapline-copartitioned" }

func (copartitioned) UserData() ([]byte, error) { return nil, nil }

func (copartitioned) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := kafkago.GroupMemberAssignments{}
	byTopic := map[string][]kafkago.GroupMember{}
	for _, m := range members {
		out[m.ID] = map[string][]int{}
		for _, t := range m.Topics {
			byTopic[t] = append(byTopic[t], m)
		}
	}
	ids := map[string][]int{}
	for _, p := range partitions {
		ids[p.Topic] = append(ids[p.Topic], p.ID)
	}
	for topic, ms := range byTopic {
		slices.SortFunc(ms, func(a, b kafkago.GroupMember) int { return strings.Compare(a.ID, b.ID) })
		parts := ids[topic]
		slices.Sort(parts)
		for i, m := range ms {
			lo, hi := i*len(parts)/len(ms), (i+1)*len(parts)/len(ms)
			out[m.ID][topic] = append(out[m.ID][topic], parts[lo:hi]...)
		}
	}
	return out
}
