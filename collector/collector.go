package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tapline"
	"tapline/fingerprint"
	"tapline/skadnetwork"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultHitQueueSize     = 65536
	DefaultHitBatchSize     = 512
	DefaultHitLinger        = 5 * time.Millisecond
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxBatchEvents   = 100
	DefaultMaxPostbackBytes = 64 << 10
	DefaultStoreTimeout     = 5 * time.Second
	DefaultPublishTimeout   = 5 * time.Second
	DefaultDrainTimeout     = 10 * time.Second
	DefaultLookupTimeout    = 2 * time.Second
	DefaultCacheTTL         = time.Minute
	DefaultNegativeCacheTTL = 10 * time.Second
	DefaultMaxClockSkew     = time.Hour
	DefaultUnhealthyAfter   = 30 * time.Second
	DefaultSnapshotInterval = 30 * time.Second
	DefaultSnapshotEntries  = 50_000
	// The Android SDK reads a timeline answer for at most 5 s before it
	// gives up and asks again: a blocking lookup answers well within that.
	DefaultTimelineWait = 3 * time.Second
	DefaultTimelinePoll = 100 * time.Millisecond
	// Taps per second and burst per address before they are marked
	// "rate-limited" (ten times as many are dropped), and how many
	// addresses are remembered. A carrier NAT address shares many people:
	// a campaign's push can bring it a hundred taps in a minute, which
	// these leave alone.
	DefaultTapRate      = 10.0
	DefaultTapBurst     = 200
	DefaultTapAddresses = 100_000
	// SKAdNetwork postbacks per second and burst per address that are not
	// Apple's or are refused (postbackLimit), and how many addresses are
	// remembered. Apple's devices send a few postbacks per install, each
	// from its own address; a carrier NAT shares many devices, but
	// postbacks whose signature checks out never spend these.
	DefaultSKANRate      = 1.0
	DefaultSKANBurst     = 30
	DefaultSKANAddresses = 10_000
)

// Config holds the collector's settings. New fills zero fields with the
// defaults above.
type Config struct {
	// TrustedProxies are the peers whose X-Forwarded-For is honoured; the
	// client is the right-most address not in one of these prefixes.
	TrustedProxies []netip.Prefix

	// HitQueueSize bounds the in-memory queue of hits waiting for the bus;
	// a hit arriving at a full queue is dropped and counted.
	HitQueueSize int
	// HitBatchSize is the most hits one Publish carries. HitLinger is how
	// long the publisher gathers hits after the first before publishing
	// them together: one synced write of the bus for many taps instead of
	// a few. Nobody waits for a hit's publish (its redirect was answered).
	HitBatchSize int
	HitLinger    time.Duration

	// MaxBodyBytes bounds request bodies (413 above it) and MaxBatchEvents
	// the events of one JSON batch (400 above it).
	MaxBodyBytes   int64
	MaxBatchEvents int
	// MaxPostbackBytes bounds the body of a SKAdNetwork postback (413
	// above it): Apple's are under 2 KiB.
	MaxPostbackBytes int64

	// PublishTimeout bounds the wait for the bus while an SDK waits for
	// its answer (503 with Retry-After past it) and each hit batch publish.
	PublishTimeout time.Duration
	// DrainTimeout bounds how long Close keeps publishing queued hits.
	DrainTimeout time.Duration
	// StoreTimeout bounds the write of a SKAdNetwork postback to the
	// database, the one write a request waits for (503 past it).
	StoreTimeout time.Duration

	// LookupTimeout bounds a database lookup on a cache miss. CacheTTL is
	// how long a cached link, app or account is used before it is
	// refreshed in the background (a stale entry keeps serving while the
	// database is down); NegativeCacheTTL is how long an unknown slug, key
	// or secret is remembered.
	LookupTimeout    time.Duration
	CacheTTL         time.Duration
	NegativeCacheTTL time.Duration

	// SnapshotPath, when set, is the file the collector keeps its link,
	// app and account lookups in across restarts: loaded by Open, written
	// (atomically) every SnapshotInterval when they changed and by Close,
	// at most SnapshotMaxEntries of each lookup, the most recently loaded.
	// A value from the file is looked up in the database on first use and
	// served from the file only while the database cannot answer.
	SnapshotPath       string
	SnapshotInterval   time.Duration
	SnapshotMaxEntries int

	// MaxClockSkew is how far in the future a device time may lie before
	// it is replaced by the receive time.
	MaxClockSkew time.Duration

	// UnhealthyAfter is how long the hit publisher may keep failing before
	// /healthz answers 503.
	UnhealthyAfter time.Duration

	// PrivateMetrics keeps /metrics off Handler: the process serves the
	// Registry on a listener of its own, away from the phones.
	PrivateMetrics bool

	// TapRate and TapBurst bound the taps per second of one address (an
	// IPv6 /64) counted as taps: past them the redirect is still served
	// and the hit is published marked "rate-limited", never credited;
	// past ten times them it is dropped and counted. TapAddresses bounds
	// the addresses remembered (least recently seen forgotten).
	TapRate      float64
	TapBurst     int
	TapAddresses int

	// SKANRate and SKANBurst bound, per address (an IPv6 /64), the
	// SKAdNetwork and AdAttributionKit postbacks a second that are not
	// Apple's (the signature fails) or are refused (400, 401, 403, 404,
	// 413): past them such postbacks are answered 429 with Retry-After,
	// before any lookup or write. A postback whose signature checks out is
	// never refused by the limit. SKANAddresses bounds the addresses
	// remembered (least recently seen forgotten).
	SKANRate      float64
	SKANBurst     int
	SKANAddresses int

	// HintRetryWait is how long the hit of a Chromium tap without the
	// critical client hints waits for the browser's retry with them,
	// which replaces it (see hintHold).
	HintRetryWait time.Duration

	// TimelineWait bounds how long a Tapstream timeline lookup with
	// blocking=true waits for the installation's conversion; it looks
	// again after TimelinePoll, then at doubling intervals up to four
	// times TimelinePoll.
	TimelineWait time.Duration
	TimelinePoll time.Duration

	// HitsTopic and EventsTopic name the bus topics (default "hits" and
	// "events").
	HitsTopic, EventsTopic string

	// BinaryMessages encodes hits and events on the bus in the binary
	// format of package internal/wire instead of JSON: the embedded bus,
	// which only tapline reads. Kafka topics stay JSON, their documented
	// format. The matcher reads either.
	BinaryMessages bool
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.HitQueueSize == 0 {
		c.HitQueueSize = DefaultHitQueueSize
	}
	if c.HitsTopic == "" {
		c.HitsTopic = tapline.TopicHits
	}
	if c.EventsTopic == "" {
		c.EventsTopic = tapline.TopicEvents
	}
	if c.HitBatchSize == 0 {
		c.HitBatchSize = DefaultHitBatchSize
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if c.MaxPostbackBytes == 0 {
		c.MaxPostbackBytes = DefaultMaxPostbackBytes
	}
	if c.TapRate == 0 {
		c.TapRate = DefaultTapRate
	}
	if c.TapBurst == 0 {
		c.TapBurst = DefaultTapBurst
	}
	if c.SnapshotMaxEntries == 0 {
		c.SnapshotMaxEntries = DefaultSnapshotEntries
	}
	if c.TapAddresses == 0 {
		c.TapAddresses = DefaultTapAddresses
	}
	if c.SKANRate == 0 {
		c.SKANRate = DefaultSKANRate
	}
	if c.SKANBurst == 0 {
		c.SKANBurst = DefaultSKANBurst
	}
	if c.SKANAddresses == 0 {
		c.SKANAddresses = DefaultSKANAddresses
	}
	def(&c.HitLinger, DefaultHitLinger)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	def(&c.StoreTimeout, DefaultStoreTimeout)
	def(&c.LookupTimeout, DefaultLookupTimeout)
	def(&c.CacheTTL, DefaultCacheTTL)
	def(&c.NegativeCacheTTL, DefaultNegativeCacheTTL)
	def(&c.MaxClockSkew, DefaultMaxClockSkew)
	def(&c.UnhealthyAfter, DefaultUnhealthyAfter)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.HintRetryWait, DefaultHintRetryWait)
	def(&c.TimelineWait, DefaultTimelineWait)
	def(&c.TimelinePoll, DefaultTimelinePoll)
}

// Validate reports the first bad field of c.
func (c *Config) Validate() error {
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return tapline.Errorf(tapline.EINVALID, "collector config: TrustedProxies holds an invalid prefix %q", p.String())
		}
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"HitQueueSize", int64(c.HitQueueSize)},
		{"HitBatchSize", int64(c.HitBatchSize)},
		{"HitLinger", int64(c.HitLinger)},
		{"MaxBodyBytes", c.MaxBodyBytes},
		{"MaxBatchEvents", int64(c.MaxBatchEvents)},
		{"MaxPostbackBytes", c.MaxPostbackBytes},
		{"StoreTimeout", int64(c.StoreTimeout)},
		{"PublishTimeout", int64(c.PublishTimeout)},
		{"DrainTimeout", int64(c.DrainTimeout)},
		{"LookupTimeout", int64(c.LookupTimeout)},
		{"CacheTTL", int64(c.CacheTTL)},
		{"NegativeCacheTTL", int64(c.NegativeCacheTTL)},
		{"MaxClockSkew", int64(c.MaxClockSkew)},
		{"UnhealthyAfter", int64(c.UnhealthyAfter)},
		{"HintRetryWait", int64(c.HintRetryWait)},
		{"TimelineWait", int64(c.TimelineWait)},
		{"TimelinePoll", int64(c.TimelinePoll)},
		{"TapBurst", int64(c.TapBurst)},
		{"TapAddresses", int64(c.TapAddresses)},
		{"SKANBurst", int64(c.SKANBurst)},
		{"SKANAddresses", int64(c.SKANAddresses)},
		{"SnapshotInterval", int64(c.SnapshotInterval)},
		{"SnapshotMaxEntries", int64(c.SnapshotMaxEntries)},
	}
	if c.TapRate <= 0 {
		return tapline.Errorf(tapline.EINVALID, "collector config: TapRate must be positive, got %g", c.TapRate)
	}
	if c.SKANRate <= 0 {
		return tapline.Errorf(tapline.EINVALID, "collector config: SKANRate must be positive, got %g", c.SKANRate)
	}
	for _, f := range positive {
		if f.v <= 0 {
			return tapline.Errorf(tapline.EINVALID, "collector config: %s must be positive, got %d", f.name, f.v)
		}
	}
	return nil
}

// Collector is the HTTP edge: it serves Handler's routes and produces hits
// and events to Bus. Set the exported fields between New and Open.
type Collector struct {
	Config   Config
	Accounts tapline.AccountService
	Bus      tapline.Bus
	// RawStore, when set, answers the Tapstream SDK's timeline lookups
	// (deferred deep links); only they read it, never a redirect. Without
	// it they answer "nothing found".
	RawStore tapline.RawStore
	// SKAN keeps the SKAdNetwork and AdAttributionKit postbacks, written
	// synchronously, one transaction each; without it their routes answer
	// 503. SKANVerifier checks Apple's signatures: New sets
	// skadnetwork.DefaultVerifier() (Apple's production keys).
	SKAN          tapline.SKANStore
	SKANVerifier  Verifier
	Fingerprinter *fingerprint.Fingerprinter
	Registry      *prometheus.Registry
	Logger        *slog.Logger
	Now           func() time.Time

	m         *metrics
	limit     *tapLimit
	skanLimit *postbackLimit
	// rejectedFull holds, per app id, the UTC day (Unix days) on which the
	// SKANStore said the app keeps its bound of rejected postbacks: its
	// further rejected postbacks of that day are not sent to it.
	rejectedFull sync.Map
	hints        hintHold
	links        *cache[*linkEntry]
	secrets      *cache[*tapline.App]
	keys         *cache[*tapline.App]
	names        *cache[*tapline.Account]
	// bySecret finds an app by its SDK secret alone (timeline lookups),
	// linkIDs a link by its id.
	bySecret *cache[*tapline.App]
	linkIDs  *cache[*tapline.Link]
	// appStoreIDs finds an app by its App Store id (SKAdNetwork
	// postbacks), in decimal.
	appStoreIDs *cache[*tapline.App]

	queue chan *tapline.Hit
	stop  chan struct{} // closed by Close: drain and exit
	done  chan struct{} // closed when the publisher has exited
	// snapDone is closed when the snapshot writer has exited (nil
	// without SnapshotPath).
	snapDone chan struct{}
	closing  atomic.Bool
	failing  atomic.Int64 // unix nanos of the first failure of the current streak, 0 when healthy

	drainCtx    context.Context // cancelled DrainTimeout after Close began
	cancelDrain context.CancelFunc

	openOnce  sync.Once
	closeOnce sync.Once
	warnProxy sync.Once // the missing trusted proxy, said once
	warnNoRaw sync.Once // timeline lookups without a raw store, said once
	opened    atomic.Bool
}

// New returns a collector over accounts and bus with cfg's zero fields set
// to their defaults, a fresh Fingerprinter, Registry and the default logger.
func New(cfg Config, accounts tapline.AccountService, bus tapline.Bus) *Collector {
	cfg.setDefaults()
	c := &Collector{
		Config:        cfg,
		Accounts:      accounts,
		Bus:           bus,
		SKANVerifier:  skadnetwork.DefaultVerifier(),
		Fingerprinter: fingerprint.New(),
		Registry:      prometheus.NewRegistry(),
		Logger:        slog.Default(),
		Now:           time.Now,
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	c.m = newMetrics(c)
	return c
}

// tapVerdict marks h, a tap's hit, "rate-limited" when its address taps
// faster than the configured rate, and reports whether to drop it: far
// faster. Requests already known as no taps (previews from the person's
// own phone among them) do not spend the address's budget.
func (c *Collector) tapVerdict(h *tapline.Hit) (drop bool) {
	c.warnNoProxy(h.IP)
	return c.limitTap(h)
}

// warnNoProxy logs a warning, once, for the first tap or postback from a
// private or loopback peer when no trusted proxy is configured: behind a
// load balancer every request would share its address.
func (c *Collector) warnNoProxy(ip string) {
	if len(c.Config.TrustedProxies) != 0 {
		return
	}
	c.warnProxy.Do(func() {
		if a, err := netip.ParseAddr(ip); err == nil && (a.IsPrivate() || a.IsLoopback()) {
			c.Logger.Warn("requests come from a private or loopback address and no trusted proxy is set: behind a load balancer, CDN or reverse proxy set -trusted-proxies, or every request shares its address (fingerprints, the tap and postback rate limits)", "address", ip)
		}
	})
}

// limitTap applies the tap rate limit to h.
func (c *Collector) limitTap(h *tapline.Hit) (drop bool) {
	switch c.limit.check(h.IP, h.Time) {
	case tapDropped:
		c.m.hitsRateLimited.WithLabelValues("dropped").Inc()
		return true
	case tapMarked:
		c.m.hitsRateLimited.WithLabelValues("marked").Inc()
		h.Bot = tapline.BotRateLimited
	}
	return false
}

// Open validates the config, registers the metrics and starts the hit
// publisher. It must be called once before Handler serves requests.
func (c *Collector) Open(ctx context.Context) error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.Accounts == nil || c.Bus == nil || c.SKANVerifier == nil {
		return tapline.Errorf(tapline.EINVALID, "collector: Accounts, Bus and SKANVerifier are required")
	}
	if c.SKAN == nil {
		c.Logger.Warn("the collector has no SKANStore: SKAdNetwork and AdAttributionKit postbacks are answered 503")
	}
	var err error
	c.openOnce.Do(func() {
		if err = c.m.register(c.Registry); err != nil {
			err = fmt.Errorf("register collector metrics: %w", err)
			return
		}
		c.init()
		if c.Config.SnapshotPath != "" {
			if lerr := c.loadSnapshot(); lerr != nil {
				// Not fatal: the lookups go to the database as without one.
				c.Logger.Warn("collector snapshot ignored", "err", lerr)
			}
			c.snapDone = make(chan struct{})
			// The counts the loop compares with are taken here, before the
			// collector serves: a lookup made before the goroutine first ran
			// would otherwise count as already written.
			go c.snapshotLoop(c.snapshotChanges(), c.snapshotAdditions())
		}
		c.drainCtx, c.cancelDrain = context.WithCancel(context.WithoutCancel(ctx))
		c.opened.Store(true)
		go c.publishHits()
	})
	return err
}

// init builds the queue and caches; Handler calls it too so that a
// collector that was never opened still answers (hits are then dropped).
func (c *Collector) init() {
	if c.queue != nil {
		return
	}
	c.queue = make(chan *tapline.Hit, c.Config.HitQueueSize)
	ttl, neg := c.Config.CacheTTL, c.Config.NegativeCacheTTL
	c.links = newCache(ttl, neg, c.now, c.loadLink)
	c.secrets = newCache(ttl, neg, c.now, c.loadAppBySecret)
	c.keys = newCache(ttl, neg, c.now, c.loadAppBySDKKey)
	c.names = newCache(ttl, neg, c.now, c.loadAccount)
	c.bySecret = newCache(ttl, neg, c.now, c.loadAppBySDKSecret)
	c.linkIDs = newCache(ttl, neg, c.now, c.loadLinkByID)
	c.appStoreIDs = newCache(ttl, neg, c.now, c.loadAppByAppStoreID)
	c.limit = newTapLimit(c.Config.TapRate, c.Config.TapBurst, c.Config.TapAddresses)
	c.skanLimit = newPostbackLimit(c.Config.SKANRate, c.Config.SKANBurst, c.Config.SKANAddresses)
	c.hints.max = c.Config.HitQueueSize
}

// Close stops taking hits and events, publishes the queued hits (for at most
// DrainTimeout) and stops the publisher. It is safe to call twice; it does
// not close the bus.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() {
		c.hints.flush(c.enqueue)
		c.closing.Store(true)
		close(c.stop)
		if c.opened.Load() {
			t := time.AfterFunc(c.Config.DrainTimeout, c.cancelDrain)
			<-c.done
			t.Stop()
		}
		if c.cancelDrain != nil {
			c.cancelDrain()
		}
		if c.snapDone != nil {
			<-c.snapDone
		}
	})
	return nil
}

// Handler returns the router serving every collector route.
func (c *Collector) Handler() http.Handler {
	c.openOnce.Do(func() {}) // a Handler without Open serves but never publishes hits
	if c.queue == nil {
		c.init()
	}
	r := chi.NewRouter()
	r.Use(c.instrument)
	r.Get("/l/{slug}", c.serveLink)
	r.Head("/l/{slug}", c.serveLink)
	r.Get("/{account}/hit/{tracker}.gif", c.servePixel)
	r.Post("/{account}/hit/{tracker}.gif", c.servePixel)
	r.Post("/{account}/event/{event}", c.serveTapstream)
	r.Post("/{account}/event/{event}/", c.serveTapstream)
	r.Get("/{account}/event/{event}", c.serveCookieMatch)
	r.Get("/{account}/event/{event}/", c.serveCookieMatch)
	r.Post("/v1/events", c.serveBatch)
	r.Get("/v1/timelines/lookup", c.serveTimelineLookup)
	r.Get("/v1/timelines/lookup/", c.serveTimelineLookup)
	r.Get("/v1/timelines/summary", c.serveTimelineSummary)
	r.Get("/v1/timelines/summary/", c.serveTimelineSummary)
	r.Post("/.well-known/skadnetwork/report-attribution", c.serveSKANCopy)
	r.Post("/.well-known/skadnetwork/report-attribution/", c.serveSKANCopy)
	r.Post("/.well-known/appattribution/report-attribution", c.serveSKANCopy)
	r.Post("/.well-known/appattribution/report-attribution/", c.serveSKANCopy)
	r.Post(skanForwardPath, c.serveSKANForward)
	r.Get("/{account}/deeplink_query", c.serveDeeplinkQuery)
	r.Get("/{account}/deeplink_query/", c.serveDeeplinkQuery)
	r.Get("/healthz", c.serveHealth)
	if !c.Config.PrivateMetrics {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(c.Registry, promhttp.HandlerOpts{}))
	}
	r.NotFound(c.serveNotFound)
	return r
}

func (c *Collector) now() time.Time { return c.Now() }

// HealthHandler is the readiness probe Handler serves at /healthz, for a
// listener of the process's own.
func (c *Collector) HealthHandler() http.Handler { return http.HandlerFunc(c.serveHealth) }

// serveHealth answers 200 "ok", or 503 while closing or when the hit
// publisher has failed for longer than UnhealthyAfter.
func (c *Collector) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if c.closing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("closing\n"))
		return
	}
	if since := c.failing.Load(); since != 0 && c.now().Sub(time.Unix(0, since)) > c.Config.UnhealthyAfter {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("bus publisher failing\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// enqueue hands h to the publisher without blocking; a full queue or a
// closing collector drops it.
func (c *Collector) enqueue(h *tapline.Hit) {
	if c.closing.Load() {
		c.m.hitsDropped.Inc()
		return
	}
	select {
	case c.queue <- h:
		c.m.hitsQueued.Inc()
		if h.Bot != "" {
			c.m.botHits.WithLabelValues(h.Bot).Inc()
		}
	default:
		c.m.hitsDropped.Inc()
	}
}

// publishHits drains the queue to the bus in batches until Close, then
// publishes what is left until the drain deadline cancels c.drainCtx.
func (c *Collector) publishHits() {
	defer close(c.done)
	batch := make([]*tapline.Hit, 0, c.Config.HitBatchSize)
	for {
		select {
		case h := <-c.queue:
			batch = c.gather(append(batch[:0], h))
			c.publishBatch(batch)
		case <-c.stop:
			for {
				batch = c.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				c.publishBatch(batch)
			}
		}
	}
}

// gather adds to batch the hits queued within HitLinger, up to
// HitBatchSize; Close ends the wait.
func (c *Collector) gather(batch []*tapline.Hit) []*tapline.Hit {
	batch = c.fill(batch)
	if len(batch) >= c.Config.HitBatchSize {
		return batch
	}
	t := time.NewTimer(c.Config.HitLinger)
	defer t.Stop()
	for len(batch) < c.Config.HitBatchSize {
		select {
		case h := <-c.queue:
			batch = append(batch, h)
		case <-t.C:
			return batch
		case <-c.stop:
			return c.fill(batch)
		}
	}
	return batch
}

// fill adds queued hits to batch without waiting, up to HitBatchSize.
func (c *Collector) fill(batch []*tapline.Hit) []*tapline.Hit {
	for len(batch) < c.Config.HitBatchSize {
		select {
		case h := <-c.queue:
			batch = append(batch, h)
		default:
			return batch
		}
	}
	return batch
}

// publishBatch publishes batch, retrying with backoff until it succeeds or
// the drain deadline passes; then the batch is counted as dropped.
func (c *Collector) publishBatch(batch []*tapline.Hit) {
	msgs := make([]tapline.Message, 0, len(batch))
	for _, h := range batch {
		c.Fingerprinter.Hit(h)
		msg, err := HitMessage(c.Config.HitsTopic, h, c.Config.BinaryMessages)
		if err != nil {
			c.Logger.Error("encode hit", "err", err)
			c.m.hitsDropped.Inc()
			continue
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return
	}
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(c.drainCtx, c.Config.PublishTimeout)
		err := c.Bus.Publish(ctx, msgs...)
		cancel()
		if err == nil {
			c.failing.Store(0)
			c.m.hitsPublished.Add(float64(len(msgs)))
			return
		}
		c.m.publishErrors.WithLabelValues(c.Config.HitsTopic).Inc()
		c.failing.CompareAndSwap(0, c.now().UnixNano())
		c.Logger.Warn("publish hits", "hits", len(msgs), "err", err)
		select {
		case <-time.After(backoff):
		case <-c.drainCtx.Done():
			c.m.hitsDropped.Add(float64(len(msgs)))
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// errClosing answers SDK requests that arrive during Close.
var errClosing = tapline.Errorf(tapline.EUNAVAILABLE, "The collector is shutting down; retry later.")

// publishEvents publishes msgs for an SDK request, bounded by PublishTimeout.
func (c *Collector) publishEvents(ctx context.Context, msgs []tapline.Message) error {
	if c.closing.Load() {
		return errClosing
	}
	ctx, cancel := context.WithTimeout(ctx, c.Config.PublishTimeout)
	defer cancel()
	if err := c.Bus.Publish(ctx, msgs...); err != nil {
		c.m.publishErrors.WithLabelValues(c.Config.EventsTopic).Inc()
		c.Logger.WarnContext(ctx, "publish events", "events", len(msgs), "err", err)
		if errors.Is(err, tapline.ErrStorageFull) {
			c.m.storageFull.Inc()
			return tapline.ErrStorageFull
		}
		return tapline.Errorf(tapline.EUNAVAILABLE, "The event could not be stored now; retry later.")
	}
	return nil
}

// isDomain reports whether err carries one of codes.
func isDomain(err error, codes ...string) bool {
	var e *tapline.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, code := range codes {
		if e.Code == code {
			return true
		}
	}
	return false
}
