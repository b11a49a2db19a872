package matcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapline"
	"tapline/facts"
	"tapline/fraud"
	"tapline/internal/wire"
)

// Config tunes a Matcher. Zero fields take the defaults of NewConfig.
type Config struct {
	Consumer      string        // name the offsets are stored under
	HitsTopic     string        // topic of hits
	EventsTopic   string        // topic of events
	FlushInterval time.Duration // longest time deltas wait before a flush
	FetchMax      int           // messages fetched from a partition at once
	MaxPending    int           // pending fact rows that trigger an early flush
	// MaxPendingBytes bounds the heap the pending rows hold, by
	// facts.Aggregator.PendingBytes' estimate (a conversion with its
	// decision is some 3 KiB, a fact row half of one): a quarter of it
	// flushes early, and past it the workers hold back until a flush
	// lands, as they do past four times MaxPending rows. Default 256 MiB.
	MaxPendingBytes int64
	ClockSkew       time.Duration // how far a hit may be stamped after its install and still match
	// CollectorSkew is how far apart the collectors' clocks may be. A tap
	// the collectors received more than this after they received an
	// install (or an open) came after it and cannot have led to it,
	// whatever the device's clock says (tapUpper). Default 5s.
	CollectorSkew time.Duration
	// DeviceClockBound is how far an install's or open's device time may
	// lie from its receive time before the receive time replaces it
	// (tapline.Event.ClampDeviceClock); 0 keeps every device time.
	DeviceClockBound time.Duration
	ExpireEvery      time.Duration // how often raw rows past their app's retention, and deliveries past DeliveryRetention, are dropped
	AppCacheTTL      time.Duration // how long app and link settings are cached
	FunnelPoll       time.Duration // how often the active funnel versions are loaded

	// DeliveryRetention is how long delivered and dead postback
	// deliveries stay in the log (tapline.DefaultDeliveryRetention);
	// pending ones stay until they are neither. DeliveryExpireBatch is how
	// many one statement deletes (default 1000): an expiry deletes batch
	// after batch, so that no statement holds many rows or runs long.
	DeliveryRetention   time.Duration
	DeliveryExpireBatch int

	// QuietFlush flushes early when no message came for this long since
	// the last flush's: facts are visible tens of milliseconds after the
	// input pauses instead of at the next FlushInterval tick. Early
	// flushes stay at least four QuietFlush apart, so slow steady input
	// flushes at most 1/(4 QuietFlush) times a second rather than once a
	// message (0: FlushInterval/20, which makes five a second).
	QuietFlush time.Duration
	// FloodParams are the tap parameters naming a sub-publisher, for the
	// click-flooding rule (fraud.DefaultFloodParams when nil);
	// FloodSources bounds the tap sources it counts in memory
	// (fraud.DefaultFloodSources when 0).
	FloodParams  []string
	FloodSources int
	ErasurePoll  time.Duration // how often pending erasure requests are looked for
	// OffsetCheck is how long a worker waits for a message before it
	// compares its position with the partition's start and end offsets
	// (a fetch error compares at once, and so does each worker's start):
	// how soon a matcher notices a broker that lost its log
	// (docs/kafka.md, "A wiped or truncated log"). Default 2s.
	OffsetCheck time.Duration
	// Ordered processes the partitions of both topics as one stream in
	// receive-time order (hits first on a tie, then by partition), the
	// workers taking turns: on a pre-filled bus every run decides the same
	// way. For replays that must be deterministic (make bench's accuracy
	// check, tests); it gives up the parallelism of the partitions.
	Ordered bool
}

// NewConfig returns the default configuration.
func NewConfig() Config {
	return Config{
		Consumer:         "matcher",
		HitsTopic:        tapline.TopicHits,
		EventsTopic:      tapline.TopicEvents,
		FlushInterval:    time.Second,
		FetchMax:         500,
		MaxPending:       50_000,
		MaxPendingBytes:  256 << 20,
		ClockSkew:        time.Minute,
		CollectorSkew:    5 * time.Second,
		DeviceClockBound: time.Hour,
		ExpireEvery:      time.Hour,
		AppCacheTTL:      time.Minute,
		FunnelPoll:       time.Second,
		ErasurePoll:      5 * time.Second,
		OffsetCheck:      2 * time.Second,

		DeliveryRetention:   tapline.DefaultDeliveryRetention,
		DeliveryExpireBatch: 1000,
	}
}

// Validate reports the first field that is out of range.
func (c *Config) Validate() error {
	switch {
	case c.Consumer == "":
		return fmt.Errorf("matcher: Consumer is empty")
	case c.HitsTopic == "" || c.EventsTopic == "" || c.HitsTopic == c.EventsTopic:
		return fmt.Errorf("matcher: HitsTopic and EventsTopic must be set and differ")
	case c.FlushInterval <= 0:
		return fmt.Errorf("matcher: FlushInterval must be positive")
	case c.FetchMax <= 0:
		return fmt.Errorf("matcher: FetchMax must be positive")
	case c.MaxPending <= 0:
		return fmt.Errorf("matcher: MaxPending must be positive")
	case c.MaxPendingBytes <= 0:
		return fmt.Errorf("matcher: MaxPendingBytes must be positive")
	case c.ClockSkew < 0:
		return fmt.Errorf("matcher: ClockSkew must not be negative")
	case c.CollectorSkew < 0:
		return fmt.Errorf("matcher: CollectorSkew must not be negative")
	case c.DeviceClockBound < 0:
		return fmt.Errorf("matcher: DeviceClockBound must not be negative")
	case c.QuietFlush < 0:
		return fmt.Errorf("matcher: QuietFlush must not be negative")
	case c.ExpireEvery <= 0 || c.AppCacheTTL <= 0 || c.FunnelPoll <= 0 || c.ErasurePoll <= 0:
		return fmt.Errorf("matcher: ExpireEvery, AppCacheTTL, FunnelPoll and ErasurePoll must be positive")
	case c.DeliveryRetention <= 0 || c.DeliveryExpireBatch <= 0:
		return fmt.Errorf("matcher: DeliveryRetention and DeliveryExpireBatch must be positive")
	case c.OffsetCheck < 0:
		return fmt.Errorf("matcher: OffsetCheck must not be negative")
	case c.FloodSources < 0:
		return fmt.Errorf("matcher: FloodSources must not be negative")
	}
	return nil
}

// Matcher joins events to hits; see the package comment.
type Matcher struct {
	Config   Config
	Bus      tapline.Bus
	Raw      tapline.RawStore
	Facts    tapline.FactStore
	Accounts tapline.AccountService
	// Funnels, when set, has the matcher count the live funnel versions
	// and fix their handoffs (docs/funnels.md).
	Funnels tapline.FunnelStore
	// Erasures, when set, has the matcher perform the pending erasure
	// requests (PerformErasures) every ErasurePoll.
	Erasures tapline.ErasureService
	// Postbacks, when set, has the matcher put the deliveries of the apps'
	// postbacks in the outbox with each flush (docs/postbacks.md).
	Postbacks tapline.PostbackService
	// Group, when set, shares the partitions with the other matchers of a
	// consumer group; when nil this matcher consumes every partition.
	Group  tapline.Group
	Logger *slog.Logger
	// Registry, when set, receives the matcher's metrics.
	Registry prometheus.Registerer
	Now      func() time.Time
	// Datacenters are the hosting ranges of the datacenter fraud rule;
	// nil means the list shipped with tapline (fraud.Shipped).
	Datacenters *fraud.Ranges

	agg  *facts.Aggregator
	apps appCache
	// preload, when set, is the whole app cache, never refreshed (Replay:
	// no account service).
	preload  map[int64]appEntry
	appLocks sync.Map // app id -> *sync.Mutex
	// installLocks are striped by app and installation (lockInstall).
	installLocks [256]sync.Mutex
	// populations: app id -> *fingerprint.Population, what the
	// fingerprint learned of the app's installs in this process.
	populations sync.Map
	metrics     *metrics
	funnels     funnelState
	flood       *fraud.Flood
	hitClock    *hitClock
	order       *orderGate // Config.Ordered
	progress    progress   // what each partition worker waits on (Behind)

	flushMu     sync.Mutex
	lastFlushed []tapline.Offset
	inDoubt     *snapshot // a flush whose outcome is unknown
	// heldRows and heldBytes are the size of the rows a flush took from
	// agg (hold), read without flushMu by the workers' hold-back.
	heldRows, heldBytes atomic.Int64
	generation          tapline.Generation          // the current one, to commit offsets to
	genCancel           context.CancelFunc          // ends the current generation early
	stored              map[tapline.Partition]int64 // offsets as last stored, the From of fenced flushes
	fenced              bool                        // a flush found the offsets moved: stop and let go
	flushNow            chan struct{}
	lastWork            atomic.Int64 // Unix nanoseconds when a worker last committed a batch of messages (QuietFlush)
	aborting            atomic.Bool
	topicLoss           topicLoss // topics the bus reported gone (offsetreset.go)

	cancel    context.CancelFunc
	workers   sync.WaitGroup
	flusher   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New returns a matcher with the given configuration; zero fields of cfg
// take their defaults.
func New(cfg Config, bus tapline.Bus, raw tapline.RawStore, fs tapline.FactStore, accounts tapline.AccountService) *Matcher {
	def := NewConfig()
	cfg.Consumer = cmp.Or(cfg.Consumer, def.Consumer)
	cfg.HitsTopic = cmp.Or(cfg.HitsTopic, def.HitsTopic)
	cfg.EventsTopic = cmp.Or(cfg.EventsTopic, def.EventsTopic)
	cfg.FlushInterval = cmp.Or(cfg.FlushInterval, def.FlushInterval)
	cfg.QuietFlush = cmp.Or(cfg.QuietFlush, max(cfg.FlushInterval/20, time.Millisecond))
	cfg.FetchMax = cmp.Or(cfg.FetchMax, def.FetchMax)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, def.MaxPending)
	cfg.MaxPendingBytes = cmp.Or(cfg.MaxPendingBytes, def.MaxPendingBytes)
	cfg.ClockSkew = cmp.Or(cfg.ClockSkew, def.ClockSkew)
	cfg.CollectorSkew = cmp.Or(cfg.CollectorSkew, def.CollectorSkew)
	cfg.ExpireEvery = cmp.Or(cfg.ExpireEvery, def.ExpireEvery)
	cfg.AppCacheTTL = cmp.Or(cfg.AppCacheTTL, def.AppCacheTTL)
	cfg.FunnelPoll = cmp.Or(cfg.FunnelPoll, def.FunnelPoll)
	cfg.ErasurePoll = cmp.Or(cfg.ErasurePoll, def.ErasurePoll)
	cfg.OffsetCheck = cmp.Or(cfg.OffsetCheck, def.OffsetCheck)
	cfg.DeliveryRetention = cmp.Or(cfg.DeliveryRetention, def.DeliveryRetention)
	cfg.DeliveryExpireBatch = cmp.Or(cfg.DeliveryExpireBatch, def.DeliveryExpireBatch)
	m := &Matcher{
		Config:   cfg,
		Bus:      bus,
		Raw:      raw,
		Facts:    fs,
		Accounts: accounts,
		Logger:   slog.Default(),
		Now:      time.Now,
		agg:      facts.NewAggregator(),
		flushNow: make(chan struct{}, 1),
		flood:    &fraud.Flood{Params: cfg.FloodParams, MaxSources: cfg.FloodSources},
	}
	m.funnels.refresh = make(chan struct{}, 1)
	return m
}

// Open checks the fact store and the topics and starts consuming: with a
// Group, one generation after another, each over the partitions the group
// assigns; without one, every partition of both topics. It returns once the
// workers run.
func (m *Matcher) Open(ctx context.Context) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Bus == nil || m.Raw == nil || m.Facts == nil || m.Accounts == nil && m.preload == nil {
		return fmt.Errorf("matcher: Bus, Raw, Facts and Accounts are required")
	}
	if m.metrics == nil { // an Open that failed (the database unavailable) may be retried
		m.metrics = newMetrics(m.Registry)
		if m.Registry != nil {
			behind := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tapline_matcher_behind_seconds",
				Help: "Age of the oldest bus message a partition worker of this matcher has fetched and not yet processed; 0 when every worker is at the end of its partition (Matcher.Behind)."},
				func() float64 { d, _ := m.Behind(); return d.Seconds() })
			if err := m.Registry.Register(behind); err != nil {
				return fmt.Errorf("register the behind metric: %w", err)
			}
		}
		if _, ok := m.Bus.(tapline.EndOffsetReader); ok && m.Registry != nil {
			if err := m.Registry.Register(newLagCollector(m)); err != nil {
				return fmt.Errorf("register the consumer lag metric: %w", err)
			}
		}
	}
	m.hitClock = newHitClock(alignStall)
	if m.Config.Ordered {
		m.order = newOrderGate(m.Config.HitsTopic, orderStall)
	}
	m.apps = appCache{ttl: m.Config.AppCacheTTL, accounts: m.Accounts, postbacks: m.Postbacks, now: m.Now, entries: map[int64]appEntry{}}
	if m.preload != nil {
		m.apps.entries, m.apps.ttl = m.preload, 1<<62
	}

	if _, err := m.Facts.Offsets(ctx, m.Config.Consumer); err != nil {
		return fmt.Errorf("load offsets of %s: %w", m.Config.Consumer, err)
	}
	var all []tapline.Partition
	for _, topic := range []string{m.Config.HitsTopic, m.Config.EventsTopic} {
		n, err := m.Bus.Partitions(ctx, topic)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for i := range n {
			all = append(all, tapline.Partition{Topic: topic, Partition: i})
		}
	}
	m.funnels.partitions = len(all)
	if m.Funnels != nil {
		if err := m.refreshFunnels(ctx); err != nil {
			return err
		}
	}
	group := m.Group
	if group == nil {
		group = &ownAll{parts: all}
	}

	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.workers.Go(func() { m.generations(runCtx, group) })
	m.flusher.Go(func() { m.flushLoop(runCtx) })
	m.flusher.Go(func() { m.expireLoop(runCtx) })
	m.flusher.Go(func() { m.funnelLoop(runCtx) })
	if m.Erasures != nil {
		m.flusher.Go(func() { m.erasureLoop(runCtx) })
	}
	m.Logger.Info("matcher started", "consumer", m.Config.Consumer, "partitions", len(all), "group", m.Group != nil)
	return nil
}

// generations runs one generation of the group after another until ctx
// is done.
func (m *Matcher) generations(ctx context.Context, group tapline.Group) {
	backoff := newBackoff()
	for ctx.Err() == nil {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.Logger.Warn("join consumer group", "err", err)
			sleep(ctx, backoff.next())
			continue
		}
		backoff.reset()
		done := make(chan struct{})
		gen.Start(func(gctx context.Context) {
			defer close(done)
			gctx, cancel := context.WithCancel(gctx)
			defer cancel()
			stop := context.AfterFunc(ctx, cancel)
			defer stop()
			m.runGeneration(gctx, gen)
		})
		<-done
	}
}

// runGeneration consumes the generation's partitions from the offsets
// stored with the facts until ctx is done, then flushes what it consumed
// and forgets the partitions, so that the next owner starts exactly where
// this one stopped.
func (m *Matcher) runGeneration(ctx context.Context, gen tapline.Generation) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := gen.Assignments()
	var stored []tapline.Offset
	backoff := newBackoff()
	for {
		var err error
		if stored, err = m.Facts.Offsets(ctx, m.Config.Consumer); err == nil {
			break
		}
		m.Logger.Warn("load offsets", "err", err)
		if !sleep(ctx, backoff.next()) {
			return
		}
	}
	start := map[tapline.Partition]int64{}
	for _, o := range stored {
		start[tapline.Partition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	seeded := make([]tapline.Offset, 0, len(parts))
	from := make(map[tapline.Partition]int64, len(parts))
	for _, p := range parts {
		o := tapline.Offset{Topic: p.Topic, Partition: p.Partition, Offset: start[p]}
		m.agg.Seed(o)
		seeded = append(seeded, o)
		from[p] = tapline.NoOffset
		if off, ok := start[p]; ok {
			from[p] = off
		}
	}
	m.flushMu.Lock()
	m.lastFlushed = seeded
	m.stored = from
	m.fenced = false
	m.generation = gen
	m.genCancel = cancel
	m.flushMu.Unlock()
	m.startFunnels(ctx, start, parts)
	for _, p := range parts {
		if p.Topic == m.Config.HitsTopic {
			m.hitClock.own(p.Partition)
		}
		if m.order != nil {
			m.order.own(p)
		}
	}
	m.Logger.Info("matcher generation started", "partitions", len(parts))

	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() { m.consume(ctx, p.Topic, p.Partition, start[p]) })
	}
	wg.Wait()

	m.flushMu.Lock()
	fenced := m.fenced
	m.flushMu.Unlock()
	if !m.aborting.Load() && !fenced {
		// Flush what this generation consumed. If that keeps failing, drop
		// it as a crash would: the next owner replays from the stored
		// offsets, and replays are exact.
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for {
			err := m.Flush(fctx)
			if err == nil {
				break
			}
			m.Logger.Error("flush at the end of a generation", "err", err)
			if !sleep(fctx, 200*time.Millisecond) {
				break
			}
		}
		cancel()
	}
	m.hitClock.reset()
	if m.order != nil {
		m.order.reset()
	}
	m.flushMu.Lock()
	m.agg.Reset()
	m.stopFunnels()
	m.inDoubt = nil
	m.hold(0, 0)
	m.lastFlushed = nil
	m.stored = nil
	m.generation = nil
	m.genCancel = nil
	m.flushMu.Unlock()
}

// ownAll is the group of a matcher that consumes every partition alone: one
// generation that lasts until the matcher stops.
type ownAll struct {
	parts  []tapline.Partition
	joined bool
}

func (g *ownAll) Next(ctx context.Context) (tapline.Generation, error) {
	if g.joined {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	g.joined = true
	return g, nil
}

func (g *ownAll) Close() error                                          { return nil }
func (g *ownAll) Assignments() []tapline.Partition                      { return g.parts }
func (g *ownAll) Start(fn func(context.Context))                        { go fn(context.Background()) }
func (g *ownAll) CommitOffsets(context.Context, []tapline.Offset) error { return nil }

// Close stops the workers, flushes what they consumed and stops the flusher.
// It is safe to call twice.
func (m *Matcher) Close() error {
	m.closeOnce.Do(func() {
		if m.cancel == nil {
			return
		}
		m.cancel()
		m.workers.Wait()
		m.flusher.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Flush(ctx); err != nil {
			m.closeErr = fmt.Errorf("final flush: %w", err)
		}
	})
	return m.closeErr
}

// abort stops the workers without a final flush, as a crash would; tests
// use it.
func (m *Matcher) abort() {
	m.closeOnce.Do(func() {
		m.aborting.Store(true)
		m.cancel()
		m.workers.Wait()
		m.flusher.Wait()
	})
}

// snapshot is one flush's deltas and offsets.
type snapshot struct {
	batch    facts.Batch
	rows     tapline.FlushRows // conversions and cohort activity
	offsets  []tapline.Offset
	handoffs []tapline.FunnelHandoff
}

// hold records the size of the rows a flush took from the aggregator,
// in flight or in doubt, for pending (0, 0: none). Called with flushMu
// held.
func (m *Matcher) hold(rows int, bytes int64) {
	m.heldRows.Store(int64(rows))
	m.heldBytes.Store(bytes)
}

// pending returns the rows the matcher holds unflushed, and the heap they
// hold by facts' estimate: the aggregator's and those of the flush in
// flight or in doubt. Every flush that fails takes the aggregator's rows
// into the one in doubt, so the aggregator's alone would never reach the
// hold-back's bound while PostgreSQL refuses connections at once.
func (m *Matcher) pending() (int, int64) {
	rows, bytes := m.agg.Size()
	return rows + int(m.heldRows.Load()), bytes + m.heldBytes.Load()
}

// Flush writes the pending deltas and offsets now. A flush that fails may
// still have committed (the connection can drop after COMMIT): it is kept in
// doubt, and the next flush first reads the stored offsets to learn whether
// it landed, restoring its deltas only if it did not. Nothing is lost and
// nothing is applied twice.
func (m *Matcher) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	if m.inDoubt != nil {
		stored, err := m.Facts.Offsets(ctx, m.Config.Consumer)
		if err != nil {
			return fmt.Errorf("check an unacknowledged flush: %w", err)
		}
		if covers(stored, m.inDoubt.offsets) {
			m.flushed(m.inDoubt.offsets)
			if len(m.inDoubt.handoffs) > 0 {
				m.refreshSoon()
			}
		} else {
			m.agg.Restore(m.inDoubt.batch, m.inDoubt.rows)
			m.restoreHandoffs(m.inDoubt.handoffs)
		}
		m.inDoubt = nil
		m.hold(0, 0)
	}
	if m.fenced {
		return nil
	}
	// Handoffs first: every handoff taken was switched before the
	// snapshot, so the offsets stored with it are at or past it.
	hs := m.takeHandoffs()
	// (A worker may commit between the sizes and the take: the estimate
	// misses a record or two.)
	n, bytes := m.agg.Size()
	b, rows, offs := m.agg.Take()
	if len(b) == 0 && rows.Empty() && len(hs) == 0 && sameOffsets(offs, m.lastFlushed) {
		return nil
	}
	m.hold(n, bytes)
	for i := range offs {
		if from, ok := m.stored[tapline.Partition{Topic: offs[i].Topic, Partition: offs[i].Partition}]; ok {
			offs[i].Fenced, offs[i].From = true, from
		}
	}
	start := time.Now()
	// The raw rows of every record below offs must be durable before the
	// offsets move past them.
	if err := m.Raw.Sync(ctx); err != nil {
		m.agg.Restore(b, rows)
		m.hold(0, 0)
		m.restoreHandoffs(hs)
		m.metrics.flushErrors.Inc()
		return fmt.Errorf("sync raw store: %w", err)
	}
	if err := m.Facts.ApplyFacts(ctx, m.Config.Consumer, b, offs, tapline.FlushRows{Handoffs: hs, Conversions: rows.Conversions, Activity: rows.Activity, Deliveries: rows.Deliveries}); err != nil {
		m.metrics.flushErrors.Inc()
		if tapline.ErrorCode(err) == tapline.ECONFLICT {
			// Another member owns these partitions now and has stored
			// offsets past ours: drop everything, as a crash would, and
			// end the generation. Nothing was applied.
			m.fenced = true
			m.agg.Reset()
			m.hold(0, 0)
			if m.genCancel != nil {
				m.genCancel()
			}
			m.Logger.Error("flush fenced off: the partitions moved to another matcher; dropping this generation's unflushed work", "err", err)
			return fmt.Errorf("apply %d fact rows: %w", len(b), err)
		}
		m.inDoubt = &snapshot{batch: b, rows: rows, offsets: offs, handoffs: hs} // still held
		return fmt.Errorf("apply %d fact rows: %w", len(b), err)
	}
	m.hold(0, 0)
	m.metrics.flushes.Inc()
	m.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	m.flushed(offs)
	if len(hs) > 0 {
		m.refreshSoon()
	}
	if m.generation != nil {
		// Also on the bus, for lag tools; the offsets that count are the
		// ones just stored with the facts.
		busOffs := make([]tapline.Offset, len(offs))
		for i, o := range offs {
			busOffs[i] = tapline.Offset{Topic: o.Topic, Partition: o.Partition, Offset: busOffset(o.Offset)}
		}
		if err := m.generation.CommitOffsets(ctx, busOffs); err != nil {
			m.Logger.Warn("commit offsets to the bus", "err", err)
		}
	}
	return nil
}

// flushed records offs as stored.
func (m *Matcher) flushed(offs []tapline.Offset) {
	m.lastFlushed = offs
	for _, o := range offs {
		if m.stored != nil {
			m.stored[tapline.Partition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
		}
	}
}

// covers reports whether stored holds every offset of want, equal.
func covers(stored, want []tapline.Offset) bool {
	for _, w := range want {
		if !slices.ContainsFunc(stored, w.Same) {
			return false
		}
	}
	return true
}

func sameOffsets(a, b []tapline.Offset) bool {
	if len(a) != len(b) {
		return false
	}
	cmp := func(x, y tapline.Offset) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return x.Partition - y.Partition
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.EqualFunc(a, b, tapline.Offset.Same)
}

func (m *Matcher) flushLoop(ctx context.Context) {
	t := time.NewTicker(m.Config.FlushInterval)
	defer t.Stop()
	q := max(m.Config.QuietFlush, time.Millisecond)
	quiet := time.NewTicker(max(q/2, time.Millisecond))
	defer quiet.Stop()
	var flushedWork int64 // lastWork as the last flush began
	var flushed time.Time // when the last flush began
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.flushNow:
		case <-quiet.C:
			// Flush early only after a pause: work committed since the
			// last flush, none for QuietFlush, and the last flush four
			// QuietFlush ago.
			w := m.lastWork.Load()
			if w == flushedWork || time.Since(time.Unix(0, w)) < q || time.Since(flushed) < 4*q {
				continue
			}
		}
		flushedWork, flushed = m.lastWork.Load(), time.Now()
		rows, bytes := m.pending()
		m.metrics.pending.Set(float64(rows))
		m.metrics.pendingBytes.Set(float64(bytes))
		if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Error("flush facts", "err", err)
		}
	}
}

func (m *Matcher) expireLoop(ctx context.Context) {
	t := time.NewTicker(m.Config.ExpireEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.expire(ctx)
	}
}

// expire drops the raw rows past their retention of every app: the ones
// this matcher has not seen since it started too, whose rows would
// otherwise outlive their retention. When the app list cannot be read it
// expires the apps it knows. With Postbacks it then drops the deliveries
// past DeliveryRetention.
func (m *Matcher) expire(ctx context.Context) {
	m.expireRaw(ctx)
	if m.Postbacks != nil {
		m.expireDeliveries(ctx)
	}
}

// expireDeliveries deletes the delivered and dead postback deliveries made
// more than DeliveryRetention ago, DeliveryExpireBatch in each statement,
// until a statement finds fewer or ctx ends. The matchers of a group may
// do it at once: each statement skips the rows another holds.
func (m *Matcher) expireDeliveries(ctx context.Context) {
	before := m.Now().Add(-m.Config.DeliveryRetention)
	deleted := 0
	for ctx.Err() == nil {
		n, err := m.Postbacks.ExpireDeliveries(ctx, before, m.Config.DeliveryExpireBatch)
		deleted += n
		m.metrics.deliveriesExpired.Add(float64(n))
		if err != nil {
			if ctx.Err() == nil {
				m.Logger.Error("expire postback deliveries", "before", before, "deleted", deleted, "err", err)
			}
			return
		}
		if n < m.Config.DeliveryExpireBatch {
			break
		}
	}
	if deleted > 0 {
		m.Logger.Info("expired postback deliveries", "before", before, "deleted", deleted)
	}
}

// expireRaw drops the raw rows past their retention of every app.
func (m *Matcher) expireRaw(ctx context.Context) {
	apps, err := m.Accounts.AllApps(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.Logger.Warn("list every app to expire raw rows; expiring the known ones", "err", err)
		apps = m.apps.all()
	}
	for _, app := range apps {
		cutoff := m.Now().Add(-app.Retention)
		if err := m.Raw.DeleteBefore(ctx, app.ID, cutoff); err != nil && ctx.Err() == nil {
			m.Logger.Error("expire raw rows", "app", app.ID, "err", err)
		}
	}
}

// consume runs one partition: fetch, process each message until it
// succeeds, commit its deltas and offset to the aggregator.
func (m *Matcher) consume(ctx context.Context, topic string, partition int, next int64) {
	log := m.Logger.With("topic", topic, "partition", partition)
	pf := m.partition(topic, partition)
	if pf == nil {
		pf = &partFunnels{next: next, from: map[int64]int64{}}
	}
	backoff := newBackoff()
	hits := topic == m.Config.HitsTopic
	waiting := m.progress.join(tapline.Partition{Topic: topic, Partition: partition})
	defer m.progress.leave(tapline.Partition{Topic: topic, Partition: partition}, waiting)
	atEnd := false // whether the last fetch found the end of the partition
	// next is a logical offset (offsetreset.go); the bus sees its bus
	// offset, the rest of the matcher the logical offsets of the messages.
	// Until the position has been compared with the log's start and end
	// (at the start and after a failed fetch) the worker does not fetch:
	// a broker that came back without its log is noticed before its new
	// log can grow past the stored offset.
	checked := false
	lost := m.topicLoss.count(topic) // losses of topic this worker has acted on
	for ctx.Err() == nil {
		if !checked {
			n, err := m.checkPosition(ctx, log, topic, partition, next, &lost)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("check the stored offset against the log, will retry", "err", err)
				if hits {
					m.hitClock.failed(partition)
				}
				// Soon: a broker back without its log must be caught
				// before the new log grows past the stored offset.
				if !sleep(ctx, min(backoff.next(), checkRetry)) {
					return
				}
				continue
			}
			next, checked = n, true
			backoff.reset()
		}
		// Hold back while the fact store cannot keep up, so memory stays
		// bounded when Postgres is down.
		if rows, bytes := m.pending(); rows > 4*m.Config.MaxPending || bytes > m.Config.MaxPendingBytes {
			// Whatever arrives from now on waits (Behind).
			waiting.CompareAndSwap(0, m.Now().UnixNano())
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		fctx, fcancel := context.WithTimeout(ctx, m.Config.OffsetCheck)
		msgs, err := m.fetch(fctx, topic, partition, next, &atEnd)
		idle := err != nil && idleFetch(ctx, fctx, err)
		fcancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !idle {
				log.Warn("fetch", "offset", busOffset(next), "err", err)
				if hits {
					m.hitClock.failed(partition)
				}
			}
			// Nothing came for OffsetCheck, or the fetch failed (say
			// OffsetOutOfRange): the log may have been wiped or
			// truncated under the stored offset.
			if !idle {
				checked, atEnd = false, false
				if !sleep(ctx, backoff.next()) {
					return
				}
				continue
			}
			waiting.Store(0) // nothing came for OffsetCheck: at the end
			n, cerr := m.checkPosition(ctx, log, topic, partition, next, &lost)
			if cerr != nil {
				checked = false
			} else if n != next {
				next, atEnd = n, false
			}
			continue
		}
		backoff.reset()
		epoch := epochOf(next)
		for i := range msgs {
			msgs[i].Offset = logicalOffset(epoch, msgs[i].Offset)
		}
		atEnd = len(msgs) < m.Config.FetchMax
		if hits {
			m.hitClock.fetched(partition)
		}
		for i := range msgs {
			msg := &msgs[i]
			waiting.Store(msg.Time.UnixNano())
			if m.order != nil {
				if err := m.order.wait(ctx, tapline.Partition{Topic: topic, Partition: partition}, msg.Time); err != nil {
					return // ctx done
				}
			} else if !hits {
				waited, err := m.hitClock.wait(ctx, msg.Time)
				if err != nil {
					return // ctx done
				}
				if waited > 0 {
					m.metrics.alignWait.Add(waited.Seconds())
				}
			}
			// The partition's funnel lock is held from here until the
			// record is committed: a funnel switch falls between records.
			vs, err := m.awaitVersions(ctx, pf, msg.Offset)
			if err != nil {
				return // ctx done
			}
			b, rows, err := m.handle(ctx, log, msg, vs)
			if err != nil {
				pf.mu.Unlock()
				return // ctx done
			}
			m.agg.Commit(topic, partition, msg.Offset, b, rows)
			pf.next = msg.Offset + 1
			pf.mu.Unlock()
			next = msg.Offset + 1
			if hits {
				m.hitClock.processed(partition, msg.Time)
			}
			m.metrics.processed.WithLabelValues(topic).Inc()
			m.metrics.lag.Set(m.Now().Sub(msg.Time).Seconds())
		}
		if len(msgs) > 0 {
			m.lastWork.Store(time.Now().UnixNano()) // once a batch: the loop above is the matcher's hot path
		}
		if atEnd {
			waiting.Store(0)
		}
		if hits {
			m.hitClock.batchDone(partition, len(msgs), m.Config.FetchMax)
		}
		if m.order != nil {
			m.order.batchDone(tapline.Partition{Topic: topic, Partition: partition}, len(msgs), m.Config.FetchMax)
		}
		if rows, bytes := m.agg.Size(); rows >= m.Config.MaxPending || bytes >= m.Config.MaxPendingBytes/4 {
			select {
			case m.flushNow <- struct{}{}:
			default:
			}
		}
	}
}

// checkRetry bounds the wait before a failed check of a worker's position
// against its log is tried again.
const checkRetry = 200 * time.Millisecond

// endProbe is how long a fetch that may be at the end of its partition
// waits before the worker says so (fetch).
const endProbe = 20 * time.Millisecond

// fetch fetches the next messages of a partition. A worker others wait
// for (a hits worker, or any in Ordered mode) that does not know itself at
// the end of the partition first fetches for endProbe: finding nothing,
// it is at the end, says so (hitClock, orderGate), sets *atEnd and then
// waits as long as it takes. Otherwise an empty partition would hold the
// events back until it counted as stalled.
func (m *Matcher) fetch(ctx context.Context, topic string, partition int, next int64, atEnd *bool) ([]tapline.Message, error) {
	next = busOffset(next)
	hits := topic == m.Config.HitsTopic
	if *atEnd || (!hits && m.order == nil) {
		return m.Bus.Fetch(ctx, topic, partition, next, m.Config.FetchMax)
	}
	pctx, cancel := context.WithTimeout(ctx, endProbe)
	msgs, err := m.Bus.Fetch(pctx, topic, partition, next, m.Config.FetchMax)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return msgs, err
	}
	*atEnd = true
	if hits {
		m.hitClock.batchDone(partition, 0, m.Config.FetchMax)
	}
	if m.order != nil {
		m.order.batchDone(tapline.Partition{Topic: topic, Partition: partition}, 0, m.Config.FetchMax)
	}
	return m.Bus.Fetch(ctx, topic, partition, next, m.Config.FetchMax)
}

// handle processes msg, retrying transient failures until ctx is done. A
// message that cannot be decoded is logged and skipped with no deltas.
func (m *Matcher) handle(ctx context.Context, log *slog.Logger, msg *tapline.Message, vs []*liveVersion) (facts.Batch, tapline.FlushRows, error) {
	backoff := newBackoff()
	for {
		b, rows, err := m.process(ctx, msg, vs)
		if err == nil {
			return b, rows, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			log.Error("skipping undecodable message", "offset", msg.Offset, "err", err)
			m.metrics.skipped.WithLabelValues(msg.Topic).Inc()
			return facts.Batch{}, tapline.FlushRows{}, nil
		}
		if ctx.Err() != nil {
			return nil, tapline.FlushRows{}, ctx.Err()
		}
		log.Warn("process message, will retry", "offset", msg.Offset, "err", err)
		if msg.Topic == m.Config.HitsTopic {
			m.hitClock.failed(msg.Partition)
		}
		if !sleep(ctx, backoff.next()) {
			return nil, tapline.FlushRows{}, ctx.Err()
		}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// process turns one bus message into fact deltas, updating the raw store;
// vs are the funnel versions live at the message's offset.
func (m *Matcher) process(ctx context.Context, msg *tapline.Message, vs []*liveVersion) (facts.Batch, tapline.FlushRows, error) {
	switch msg.Topic {
	case m.Config.HitsTopic:
		var h tapline.Hit
		if err := wire.DecodeHit(msg.Value, &h); err != nil {
			return nil, tapline.FlushRows{}, &permanentError{fmt.Errorf("decode hit at %s: %w", msg.Position(), err)}
		}
		return m.processHit(ctx, msg, &h, vs)
	case m.Config.EventsTopic:
		var e tapline.Event
		if err := wire.DecodeEvent(msg.Value, &e); err != nil {
			return nil, tapline.FlushRows{}, &permanentError{fmt.Errorf("decode event at %s: %w", msg.Position(), err)}
		}
		if skew := e.ClampDeviceClock(m.Config.DeviceClockBound); skew != 0 {
			dir := "behind"
			if skew < 0 {
				dir = "ahead"
			}
			m.metrics.deviceClock.WithLabelValues(dir).Inc()
			m.Logger.Debug("device clock off: the receive time replaces the device time", "event", e.ID, "kind", e.Kind, "skew", skew)
		}
		return m.processEvent(ctx, msg, &e, vs)
	}
	return nil, tapline.FlushRows{}, &permanentError{fmt.Errorf("message from unknown topic %q", msg.Topic)}
}

// lockApp serialises matching within one app, so that an install and a hit
// consumed at the same time on different partitions always see each other.
func (m *Matcher) lockApp(appID int64) func() {
	v, _ := m.appLocks.LoadOrStore(appID, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 5*time.Second)
	return d
}

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// appCache keeps app settings, with the windows of the app's links and
// its re-engagement links, for a while, serving stale ones when the
// account service fails.
type appCache struct {
	mu        sync.Mutex
	ttl       time.Duration
	accounts  tapline.AccountService
	postbacks tapline.PostbackService // nil: no postbacks
	now       func() time.Time
	entries   map[int64]appEntry
}

type appEntry struct {
	app   *tapline.App
	links *linkWindows // nil: no link has windows of its own
	// reengagement are the ids of the app's re-engagement links; nil
	// when none.
	reengagement map[int64]bool
	// postbacks are the app's enabled postbacks, with the slugs of its
	// links for their macros; nil when none.
	postbacks []*tapline.Postback
	slugs     map[int64]string
	fetched   time.Time
}

func (c *appCache) get(ctx context.Context, id int64) (*tapline.App, error) {
	e, err := c.entry(ctx, id)
	return e.app, err
}

// windows returns the windows of the links of app id that set their own.
func (c *appCache) windows(ctx context.Context, id int64) (*linkWindows, error) {
	e, err := c.entry(ctx, id)
	return e.links, err
}

// reengagement returns the ids of the re-engagement links of app id.
func (c *appCache) reengagement(ctx context.Context, id int64) (map[int64]bool, error) {
	e, err := c.entry(ctx, id)
	return e.reengagement, err
}

// entry returns the cached app id, loading it with its links' windows and
// re-engagement links when missing or older than the TTL.
func (c *appCache) entry(ctx context.Context, id int64) (appEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < c.ttl {
		return e, nil
	}
	app, err := c.accounts.App(ctx, id)
	var links []*tapline.Link
	if err == nil {
		if links, err = c.accounts.LinksByApp(ctx, id); err != nil {
			err = fmt.Errorf("links: %w", err)
		}
	}
	var pbs []*tapline.Postback
	if err == nil && c.postbacks != nil {
		if pbs, err = c.postbacks.Postbacks(ctx, id); err != nil {
			err = fmt.Errorf("postbacks: %w", err)
		}
	}
	if err != nil {
		if ok && tapline.ErrorCode(err) != tapline.ENOTFOUND {
			return e, nil
		}
		return appEntry{}, fmt.Errorf("load app %d: %w", id, err)
	}
	app.SetDefaults()
	e = appEntry{app: app, links: newLinkWindows(links), fetched: c.now()}
	for _, p := range pbs {
		if !p.Disabled {
			e.postbacks = append(e.postbacks, p)
		}
	}
	if len(e.postbacks) > 0 {
		e.slugs = make(map[int64]string, len(links))
		for _, l := range links {
			e.slugs[l.ID] = l.Slug
		}
	}
	for _, l := range links {
		if l.Reengagement {
			if e.reengagement == nil {
				e.reengagement = map[int64]bool{}
			}
			e.reengagement[l.ID] = true
		}
	}
	c.mu.Lock()
	c.entries[id] = e
	c.mu.Unlock()
	return e, nil
}

func (c *appCache) all() []*tapline.App {
	c.mu.Lock()
	defer c.mu.Unlock()
	apps := make([]*tapline.App, 0, len(c.entries))
	for _, e := range c.entries {
		apps = append(apps, e.app)
	}
	return apps
}

// linkWindows are the links of an app that set a click or fingerprint
// window of their own, and the widest of those windows: the matcher
// queries hits over the widest window in force for any link and judges
// each hit by its own link's (tapline.App.LinkWindows). A nil
// *linkWindows has no such link.
type linkWindows struct {
	own                map[int64]*tapline.Link
	click, fingerprint time.Duration // the widest own windows
}

// newLinkWindows keeps the links of links that set a window; nil when
// none does.
func newLinkWindows(links []*tapline.Link) *linkWindows {
	var w *linkWindows
	for _, l := range links {
		if l.ClickWindow <= 0 && l.FingerprintWindow <= 0 {
			continue
		}
		if w == nil {
			w = &linkWindows{own: map[int64]*tapline.Link{}}
		}
		w.own[l.ID] = l
		w.click = max(w.click, l.ClickWindow)
		w.fingerprint = max(w.fingerprint, l.FingerprintWindow)
	}
	return w
}

// of returns the click and fingerprint windows in force for taps on link
// id of app.
func (w *linkWindows) of(app *tapline.App, id int64) (click, fingerprint time.Duration) {
	if w == nil {
		return app.LinkWindows(nil)
	}
	return app.LinkWindows(w.own[id])
}

// widest returns the widest click and fingerprint windows in force for
// any link of app.
func (w *linkWindows) widest(app *tapline.App) (click, fingerprint time.Duration) {
	if w == nil {
		return app.ClickWindow, app.FingerprintWindow
	}
	return max(app.ClickWindow, w.click), max(app.FingerprintWindow, w.fingerprint)
}

// window names the window of kind ("click", "fingerprint") in force for
// taps on link id of app, for a decision: "the 7d click window", or "link
// 12's own 30d click window".
func (w *linkWindows) window(app *tapline.App, id int64, kind string) string {
	click, fp := w.of(app, id)
	d, appD := click, app.ClickWindow
	if kind == "fingerprint" {
		d, appD = fp, app.FingerprintWindow
	}
	var own bool
	if w != nil && w.own[id] != nil {
		l := w.own[id]
		own = (kind == "click" && l.ClickWindow > 0) || (kind == "fingerprint" && l.FingerprintWindow > 0)
	}
	if own {
		return fmt.Sprintf("link %d's own %s %s window (the app's is %s)", id, duration(d), kind, duration(appD))
	}
	return fmt.Sprintf("the %s %s window", duration(d), kind)
}
