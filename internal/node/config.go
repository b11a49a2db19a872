package node

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"tapline"
	"tapline/collector"
	"tapline/fraud"
	"tapline/pebble"
)

// BackfillRawCacheMB bounds the raw store's block cache in a process that
// only backfills funnels ("tapline funnels backfill"): its scans read each
// block once, so a bigger cache would only fill with blocks never read
// again, and the process's memory would grow with the data it scans.
const BackfillRawCacheMB = 32

// BackfillMemTableMB bounds the raw store's memtables in such a process:
// it writes only the funnel states of the installations it scans.
const BackfillMemTableMB = 4

// Config holds every setting of a tapline process. Each field has a flag and
// a TAPLINE_* environment variable named after it (flag -collector-addr,
// variable TAPLINE_COLLECTOR_ADDR); a flag given on the command line wins
// over the environment.
type Config struct {
	Target        string        // which components run: all, collector, matcher or dashboard
	DatabaseURL   string        // PostgreSQL URL; DATABASE_URL is read too
	DataDir       string        // embedded bus and raw store, generated secrets
	CollectorAddr string        // listen address of the collector
	DashboardAddr string        // listen address of the dashboard
	PublicURL     string        // collector base URL as users reach it
	AdminToken    string        // admin API bearer token; generated into DataDir when empty
	SessionKey    string        // dashboard cookie key; generated into DataDir when empty
	Partitions    int           // partitions per topic of the embedded bus
	RawCacheMB    int           // block cache of the embedded raw store, MiB
	MemTableMB    int           // memtable size of the embedded bus and raw store, MiB (each keeps up to two)
	BusRetention  time.Duration // how long the embedded bus keeps messages
	TrustedProxy  string        // comma-separated CIDRs whose X-Forwarded-For is trusted
	SecureCookies bool          // Secure flag on dashboard cookies (serve it over HTTPS)
	Demo          bool          // seed the demo account, app and link on start
	Migrate       bool          // apply database migrations on start
	LogLevel      string        // debug, info, warn or error
	ShutdownGrace time.Duration // how long SIGTERM waits for requests in flight
	CPUProfile    string        // file to write a CPU profile of the process's whole run to (go tool pprof)
	DebugAddr     string        // listen address of /debug/pprof/ (Go's profiler); off when empty
	// MinFreeDiskMB is the free space, in MiB, of the data directory's
	// filesystem (and the spool's) below which the embedded bus, raw
	// store and spool refuse writes (SDK events answer 503) instead of
	// letting pebble end the process on a full disk; 0 turns the check off.
	MinFreeDiskMB int

	// Scale-out: with KafkaBrokers the bus is Kafka (else the embedded
	// one), with CassandraHosts the raw store is Cassandra (else the
	// embedded one).
	KafkaBrokers         string // comma-separated host:port
	GroupID              string // the matchers' consumer group
	GroupInstanceID      string // this matcher across restarts (default <host>:<absolute data dir>)
	HitsTopic            string
	EventsTopic          string
	SpoolDir             string // the collector's disk spool while Kafka is down (default <data-dir>/spool)
	SpoolMaxBytes        int64
	CassandraHosts       string // comma-separated
	CassandraKeyspace    string
	CassandraConsistency string
	CassandraLocalDC     string
	CassandraReplication int
	// MetricsAddr is the operator's listener: /metrics, /healthz and
	// /livez, for the network a Prometheus and the probes reach, not the
	// one phones and browsers do. Set, the public listeners of the
	// collector and the dashboard serve no /metrics. A matcher-only
	// process always has one: DefaultMatcherMetricsAddr when empty.
	// Empty in the other targets, /metrics stays on the public listeners
	// (loopback by default).
	MetricsAddr string

	MatcherClockSkew time.Duration // how far a hit may be stamped after its install and still match
	// MatcherCollectorSkew is how far apart the collectors' clocks may be:
	// a tap received more than this after an install cannot have led to it.
	MatcherCollectorSkew time.Duration
	MatcherOrdered       bool // process the bus as one stream in receive-time order (deterministic replays)
	// MatcherExpireEvery is how often a matcher drops the raw rows past
	// their app's retention (the soak runs it every minute).
	MatcherExpireEvery time.Duration
	// MatcherOffsetCheck is how long a matcher's partition worker waits
	// for a message before it compares its position with the log's start
	// and end (matcher.Config.OffsetCheck).
	MatcherOffsetCheck time.Duration
	// MatcherMaxPendingMB bounds the heap a matcher's unflushed rows hold
	// (matcher.Config.MaxPendingBytes), in MiB.
	MatcherMaxPendingMB int
	// ClockOffset shifts this process's clock (the collector's receive
	// and hit times, the matcher's clock): a fault-testing aid that runs a
	// process as if its host clock were off by this much.
	ClockOffset time.Duration

	// FraudDatacenters is a datacenter range list ("tapline datacenters
	// -refresh -out FILE") the matcher loads instead of the shipped one;
	// FraudFloodParams are the comma-separated tap parameters naming a
	// sub-publisher for the click-flooding rule ("" means
	// fraud.DefaultFloodParams).
	FraudDatacenters string
	FraudFloodParams string

	// TapRate and TapBurst bound one address's taps per second counted as
	// taps (collector.Config); 0 means the collector's defaults.
	TapRate    float64
	TapBurst   int
	FunnelPoll time.Duration // how often a matcher loads the active funnel versions

	// Funnel backfills run by a matcher (all-in-one or scale-out).
	BackfillWorkers int // parallel range scans; 0 means the number of CPUs
	// NoPostbackSender keeps a matcher process from sending the outbox's
	// postbacks (another process sends them); they are still written.
	NoPostbackSender bool
	// PostbacksAllowPrivate lets postbacks and webhooks call private and
	// loopback addresses (an ad network or endpoint on the same network);
	// by default only public ones are called.
	PostbacksAllowPrivate bool
	// PostbackLease is how long a sender holds the deliveries it claimed
	// (a sender that dies leaves them this long); PostbackRetryMin is the
	// first retry's wait, doubled after each failure up to an hour.
	PostbackLease    time.Duration
	PostbackRetryMin time.Duration
	// PostbackRetention is how long delivered and dead postback
	// deliveries stay in the delivery log; the matchers delete older ones
	// every MatcherExpireEvery (pending ones stay until they are neither).
	PostbackRetention time.Duration
	BackfillRate      float64 // raw rows per second per process; 0 means no bound

	// SKANDevelopmentKeys makes the collector trust Apple's
	// AdAttributionKit development keys besides the production one:
	// postbacks from development builds and developer settings verify
	// (and count). Off in production, as Apple asks.
	SKANDevelopmentKeys bool
	// SKANRate and SKANBurst bound, per client address, the SKAdNetwork
	// postbacks a second that are not Apple's or are refused (past them
	// 429); SKANMaxRejected bounds the rejected postbacks an app keeps a
	// UTC day. 0 means the defaults (collector.DefaultSKANRate,
	// collector.DefaultSKANBurst, tapline.DefaultSKANMaxRejected).
	SKANRate        float64
	SKANBurst       int
	SKANMaxRejected int

	// Timeouts of every HTTP listener (collector, dashboard, metrics,
	// debug): how long a client may take to send a request's headers, to
	// send the whole request, and how long the server may take to write
	// the answer (not the export's or the profiler's, which stream); how
	// long an idle keep-alive connection stays open.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	// HealthMaxLag is the most messages a matcher's consumer group may be
	// behind, summed over the partitions, before its /healthz fails.
	HealthMaxLag int64
	// HealthMaxBehind is the longest a message may wait in a matcher,
	// fetched and not processed, before its /healthz fails.
	HealthMaxBehind time.Duration
}

// minFreeBytes is MinFreeDiskMB for the pebble stores: bytes, or -1 for
// no check.
// groupInstanceID returns GroupInstanceID, or by default the host name and
// the absolute data directory: a restarted matcher keeps its data
// directory, and two live processes cannot share one (the embedded raw
// store locks it).
func (c *Config) groupInstanceID() string {
	if c.GroupInstanceID != "" {
		return c.GroupInstanceID
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		dir = c.DataDir
	}
	return host + ":" + dir
}

func (c *Config) minFreeBytes() int64 {
	if c.MinFreeDiskMB == 0 {
		return -1
	}
	return int64(c.MinFreeDiskMB) << 20
}

// now is the process's clock: the system clock shifted by ClockOffset.
func (c *Config) now() func() time.Time {
	if c.ClockOffset == 0 {
		return time.Now
	}
	off := c.ClockOffset
	return func() time.Time { return time.Now().Add(off) }
}

// Targets: the components a process runs.
const (
	TargetAll       = "all"
	TargetCollector = "collector"
	TargetMatcher   = "matcher"
	TargetDashboard = "dashboard"
)

func (c *Config) runs(component string) bool { return c.Target == TargetAll || c.Target == component }

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// DefaultMatcherMetricsAddr is the operator's listener of a matcher-only
// process when -metrics-addr is empty: it has no other.
const DefaultMatcherMetricsAddr = "127.0.0.1:9090"

// metricsAddr is the operator's listen address, empty for none.
func (c *Config) metricsAddr() string {
	if c.MetricsAddr == "" && c.Target == TargetMatcher {
		return DefaultMatcherMetricsAddr
	}
	return c.MetricsAddr
}

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{
		DataDir:       ".data",
		CollectorAddr: "127.0.0.1:8080",
		DashboardAddr: "127.0.0.1:8081",
		Partitions:    8,
		RawCacheMB:    pebble.DefaultRawCacheSize >> 20,
		MemTableMB:    pebble.DefaultMemTableSize >> 20,
		BusRetention:  7 * 24 * time.Hour,
		Migrate:       true,
		LogLevel:      "info",
		ShutdownGrace: 10 * time.Second,
		MinFreeDiskMB: pebble.DefaultMinFreeBytes >> 20,

		Target:               TargetAll,
		GroupID:              "tapline-matcher",
		HitsTopic:            "hits",
		EventsTopic:          "events",
		SpoolMaxBytes:        1 << 30,
		CassandraKeyspace:    "tapline",
		CassandraConsistency: "LOCAL_QUORUM",
		CassandraReplication: 1,
		MatcherClockSkew:     time.Minute,
		MatcherCollectorSkew: 5 * time.Second,
		FunnelPoll:           time.Second,

		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       30 * time.Second,
		HTTPWriteTimeout:      30 * time.Second,
		HTTPIdleTimeout:       2 * time.Minute,
		HealthMaxLag:          1_000_000,
		HealthMaxBehind:       10 * time.Minute,
		MatcherExpireEvery:    time.Hour,
		MatcherOffsetCheck:    2 * time.Second,
		MatcherMaxPendingMB:   256,
		PostbackRetention:     tapline.DefaultDeliveryRetention,
	}
}

// RegisterFlags defines a flag for every field on fs, with the field's
// current value (from the environment when set) as its default.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		c.DatabaseURL = v
	}
	str := func(p *string, name, usage string) {
		*p = envString(name, *p)
		fs.StringVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	str(&c.Target, "target", "components to run: all, collector, matcher or dashboard")
	str(&c.DatabaseURL, "database-url", "PostgreSQL URL; DATABASE_URL is read too")
	str(&c.DataDir, "data-dir", "directory of the embedded bus, raw store and generated secrets")
	str(&c.CollectorAddr, "collector-addr", "collector listen address")
	str(&c.DashboardAddr, "dashboard-addr", "dashboard listen address")
	str(&c.PublicURL, "public-url", "collector base URL as phones reach it (default http://<collector-addr>)")
	str(&c.AdminToken, "admin-token", "admin API bearer token (generated into the data dir when empty)")
	str(&c.SessionKey, "session-key", "dashboard session cookie key, 32+ bytes (generated into the data dir when empty)")
	str(&c.TrustedProxy, "trusted-proxies", "comma-separated CIDRs whose X-Forwarded-For is honoured (collector: the hit's address; dashboard: the login throttle's network)")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
	str(&c.DebugAddr, "debug-addr", "listen address of /debug/pprof/, Go's profiling endpoints (off when empty; keep it private)")
	str(&c.CPUProfile, "cpu-profile", "write a CPU profile of the whole run, until shutdown, to this file (go tool pprof)")
	str(&c.KafkaBrokers, "kafka-brokers", "comma-separated Kafka brokers: use Kafka as the bus")
	str(&c.GroupID, "group-id", "consumer group of the matchers")
	str(&c.GroupInstanceID, "group-instance-id", "names this matcher across restarts; at start it removes the group members an earlier process of the same name left when it was killed, instead of waiting for their session timeout. Unique per live matcher (default <host>:<absolute data dir>)")
	str(&c.HitsTopic, "hits-topic", "bus topic of hits")
	str(&c.EventsTopic, "events-topic", "bus topic of events")
	str(&c.SpoolDir, "spool-dir", "collector disk spool while Kafka is unreachable (default <data-dir>/spool)")
	str(&c.CassandraHosts, "cassandra-hosts", "comma-separated Cassandra hosts: use Cassandra as the raw store")
	str(&c.CassandraKeyspace, "cassandra-keyspace", "Cassandra keyspace")
	str(&c.CassandraConsistency, "cassandra-consistency", "Cassandra consistency level")
	str(&c.CassandraLocalDC, "cassandra-local-dc", "Cassandra local data centre (DC-aware routing)")
	str(&c.MetricsAddr, "metrics-addr", "private listen address of /metrics, /healthz and /livez; when set, the collector's and dashboard's public listeners serve no /metrics (a matcher-only process defaults to "+DefaultMatcherMetricsAddr+")")
	str(&c.FraudDatacenters, "fraud-datacenters", "datacenter range list the matcher loads instead of the shipped one (written by: tapline datacenters -refresh -out FILE)")
	str(&c.FraudFloodParams, "fraud-flood-params", "comma-separated tap parameters naming a sub-publisher for the click-flooding rule (default "+strings.Join(fraud.DefaultFloodParams, ",")+")")
	c.SpoolMaxBytes = int64(envInt(envName("spool-max-bytes"), int(c.SpoolMaxBytes)))
	fs.Int64Var(&c.SpoolMaxBytes, "spool-max-bytes", c.SpoolMaxBytes, "bound on the collector's disk spool (env TAPLINE_SPOOL_MAX_BYTES)")
	c.CassandraReplication = envInt(envName("cassandra-replication"), c.CassandraReplication)
	fs.IntVar(&c.CassandraReplication, "cassandra-replication", c.CassandraReplication, "replication factor when creating the keyspace (env TAPLINE_CASSANDRA_REPLICATION)")

	c.Partitions = envInt(envName("partitions"), c.Partitions)
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partitions per topic of the embedded bus (env TAPLINE_PARTITIONS)")
	c.RawCacheMB = envInt(envName("raw-cache-mb"), c.RawCacheMB)
	fs.IntVar(&c.RawCacheMB, "raw-cache-mb", c.RawCacheMB, "block cache of the embedded raw store in MiB; a funnel backfill process uses at most "+strconv.Itoa(BackfillRawCacheMB)+" (env TAPLINE_RAW_CACHE_MB)")
	c.MinFreeDiskMB = envInt(envName("min-free-disk-mb"), c.MinFreeDiskMB)
	fs.IntVar(&c.MinFreeDiskMB, "min-free-disk-mb", c.MinFreeDiskMB, "free space in MiB of the data directory's filesystem below which the embedded bus, raw store and spool refuse writes: SDK events answer 503 and hits wait in the collector's queue, instead of pebble ending the process on a full disk; 0 turns the check off (env TAPLINE_MIN_FREE_DISK_MB)")
	c.MatcherMaxPendingMB = envInt(envName("matcher-max-pending-mb"), c.MatcherMaxPendingMB)
	fs.IntVar(&c.MatcherMaxPendingMB, "matcher-max-pending-mb", c.MatcherMaxPendingMB, "heap in MiB a matcher's unflushed fact rows, conversions and deliveries may hold (estimated) before it stops fetching until a flush lands, as while PostgreSQL is down; a quarter of it flushes early (env TAPLINE_MATCHER_MAX_PENDING_MB)")
	c.MemTableMB = envInt(envName("memtable-mb"), c.MemTableMB)
	fs.IntVar(&c.MemTableMB, "memtable-mb", c.MemTableMB, "memtable size of the embedded bus and raw store in MiB; each keeps up to two, and smaller ones cost compaction CPU (env TAPLINE_MEMTABLE_MB)")
	dur := func(p *time.Duration, name, usage string) {
		*p = envDuration(envName(name), *p)
		fs.DurationVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	dur(&c.BusRetention, "bus-retention", "how long the embedded bus keeps messages")
	dur(&c.ShutdownGrace, "shutdown-grace", "how long shutdown waits for requests in flight")
	dur(&c.MatcherClockSkew, "matcher-clock-skew", "how far a hit may be stamped after its install and still match")
	dur(&c.MatcherCollectorSkew, "matcher-collector-skew", "how far apart the collectors' clocks may be: a tap received more than this after an install was received cannot have led to it")
	dur(&c.ClockOffset, "clock-offset", "shift this process's clock by this much, e.g. 5m or -5m (collector receive and hit times, matcher clock): a fault-testing aid that simulates a host clock that is off")
	dur(&c.FunnelPoll, "matcher-funnel-poll", "how often a matcher loads the active funnel versions")
	dur(&c.HTTPReadHeaderTimeout, "http-read-header-timeout", "how long an HTTP client may take to send a request's headers, on every listener")
	dur(&c.HTTPReadTimeout, "http-read-timeout", "how long an HTTP client may take to send a whole request, body included, on every listener")
	dur(&c.HTTPWriteTimeout, "http-write-timeout", "how long the server may take to write an answer, on every listener (the export and the profiler stream without it)")
	dur(&c.HTTPIdleTimeout, "http-idle-timeout", "how long an idle keep-alive HTTP connection stays open, on every listener")
	c.HealthMaxLag = int64(envInt(envName("health-max-lag"), int(c.HealthMaxLag)))
	fs.Int64Var(&c.HealthMaxLag, "health-max-lag", c.HealthMaxLag, "most messages the matchers' consumer group may be behind, summed over the partitions, before a matcher's /healthz answers 503 (env TAPLINE_HEALTH_MAX_LAG)")
	dur(&c.HealthMaxBehind, "health-max-behind", "longest a bus message may wait in a matcher, fetched and not yet processed, before its /healthz answers 503")
	dur(&c.MatcherExpireEvery, "matcher-expire-every", "how often a matcher drops the raw rows past their app's retention")
	dur(&c.MatcherOffsetCheck, "matcher-offset-check", "how long a partition worker waits for a message before it compares its stored offset with the log's start and end (how soon a broker that lost its log is noticed)")
	c.TapRate = envFloat(envName("tap-rate"), c.TapRate)
	fs.Float64Var(&c.TapRate, "tap-rate", c.TapRate, "taps per second of one address (an IPv6 /64) counted as taps; past it hits are marked rate-limited, past ten times it dropped (default "+strconv.FormatFloat(collector.DefaultTapRate, 'g', -1, 64)+"; env "+envName("tap-rate")+")")
	c.TapBurst = envInt(envName("tap-burst"), c.TapBurst)
	fs.IntVar(&c.TapBurst, "tap-burst", c.TapBurst, "taps of one address in a burst before the tap rate applies (default "+strconv.Itoa(collector.DefaultTapBurst)+"; env "+envName("tap-burst")+")")
	c.SKANRate = envFloat(envName("skan-rate"), c.SKANRate)
	fs.Float64Var(&c.SKANRate, "skan-rate", c.SKANRate, "SKAdNetwork postbacks per second of one address (an IPv6 /64) that are not Apple's or are refused; past it such postbacks are answered 429, those Apple signed never (default "+strconv.FormatFloat(collector.DefaultSKANRate, 'g', -1, 64)+"; env "+envName("skan-rate")+")")
	c.SKANBurst = envInt(envName("skan-burst"), c.SKANBurst)
	fs.IntVar(&c.SKANBurst, "skan-burst", c.SKANBurst, "such postbacks of one address in a burst before -skan-rate applies (default "+strconv.Itoa(collector.DefaultSKANBurst)+"; env "+envName("skan-burst")+")")
	c.SKANMaxRejected = envInt(envName("skan-max-rejected"), c.SKANMaxRejected)
	fs.IntVar(&c.SKANMaxRejected, "skan-max-rejected", c.SKANMaxRejected, "rejected SKAdNetwork postbacks (the signature fails) an app keeps per UTC day; past it they are answered but not stored, and counted in tapline_collector_skan_rejected_unstored_total (default "+strconv.Itoa(tapline.DefaultSKANMaxRejected)+"; env "+envName("skan-max-rejected")+")")
	c.BackfillWorkers = envInt(envName("backfill-workers"), c.BackfillWorkers)
	fs.IntVar(&c.BackfillWorkers, "backfill-workers", c.BackfillWorkers, "funnel backfill range scans in parallel; 0 means the number of CPUs (env TAPLINE_BACKFILL_WORKERS)")
	c.BackfillRate = float64(envInt(envName("backfill-rate"), int(c.BackfillRate)))
	fs.Float64Var(&c.BackfillRate, "backfill-rate", c.BackfillRate, "raw rows per second a funnel backfill reads in this process; 0 means no bound (env TAPLINE_BACKFILL_RATE)")
	boolean := func(p *bool, name, usage string) {
		*p = envBool(envName(name), *p)
		fs.BoolVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	boolean(&c.SecureCookies, "secure-cookies", "set the Secure flag on dashboard cookies")
	boolean(&c.Demo, "demo", "seed the demo account, app and link")
	boolean(&c.Migrate, "migrate", "apply database migrations on start")
	fs.DurationVar(&c.PostbackLease, "postback-lease", c.PostbackLease, "how long a sender holds the postback deliveries it claimed: a sender that dies leaves them this long (default 2m)")
	fs.DurationVar(&c.PostbackRetryMin, "postback-retry-min", c.PostbackRetryMin, "the wait before a failed postback's first retry, doubled after each failure up to an hour (default 10s)")
	dur(&c.PostbackRetention, "postback-retention", "how long delivered and dead postback deliveries stay in the delivery log; the matchers delete older ones every -matcher-expire-every, pending ones never")
	boolean(&c.PostbacksAllowPrivate, "postbacks-allow-private", "let postbacks and webhooks call private and loopback addresses (by default only public ones)")
	boolean(&c.NoPostbackSender, "no-postback-sender", "write postback deliveries to the outbox but leave sending them to other matcher processes")
	boolean(&c.SKANDevelopmentKeys, "skan-development-keys", "trust Apple's AdAttributionKit development keys too, so postbacks of development builds and developer settings verify and count (testing only)")
	boolean(&c.MatcherOrdered, "matcher-ordered", "process the bus as one stream in receive-time order, so that replaying a pre-filled bus decides the same way every run (for tests and benchmarks: it gives up parallelism)")
}

// Validate reports every invalid field, each by its flag name.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if c.DatabaseURL == "" {
		bad("database-url", "required (or set DATABASE_URL)")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("database-url", "must be a postgres:// URL")
	}
	if c.DataDir == "" {
		bad("data-dir", "required")
	}
	if c.PostbackLease < 0 {
		bad("postback-lease", "must not be negative")
	}
	if c.PostbackRetryMin < 0 {
		bad("postback-retry-min", "must not be negative")
	}
	switch c.Target {
	case TargetAll, TargetDashboard, TargetCollector:
		// A collector without Kafka collects onto the embedded bus in
		// -data-dir; a later `tapline run` on that directory matches it.
	case TargetMatcher:
		// Without -cassandra-hosts the raw store is embedded in -data-dir,
		// which one matcher process can use: fine for one matcher.
		if c.KafkaBrokers == "" {
			bad("kafka-brokers", "a separate matcher needs Kafka")
		}
	default:
		bad("target", "want all, collector, matcher or dashboard, got %q", c.Target)
	}
	if c.HitsTopic == "" || c.EventsTopic == "" || c.HitsTopic == c.EventsTopic {
		bad("hits-topic", "the hits and events topics must be set and differ")
	}
	if c.KafkaBrokers != "" && c.GroupID == "" {
		bad("group-id", "required with Kafka")
	}
	if id := c.groupInstanceID(); len(id) > 1000 || strings.ContainsFunc(id, unicode.IsControl) {
		bad("group-instance-id", "%q has a control character or is longer than 1000 bytes", id)
	}
	if c.SpoolMaxBytes < 1<<20 {
		bad("spool-max-bytes", "must be at least 1 MiB")
	}
	if c.CassandraHosts != "" && c.CassandraReplication < 1 {
		bad("cassandra-replication", "must be at least 1")
	}
	for _, a := range []struct{ flag, addr string }{{"collector-addr", c.CollectorAddr}, {"dashboard-addr", c.DashboardAddr}, {"metrics-addr", c.MetricsAddr}} {
		if a.addr == "" && a.flag == "metrics-addr" {
			continue // off (the matcher's default is applied by metricsAddr)
		}
		if _, err := netip.ParseAddrPort(a.addr); err != nil && !strings.HasPrefix(a.addr, ":") {
			bad(a.flag, "want host:port, got %q", a.addr)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public-url", "must be an absolute http(s) URL, got %q", c.PublicURL)
		}
	}
	if c.SessionKey != "" && len(c.SessionKey) < 32 {
		bad("session-key", "must be at least 32 bytes")
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		bad("partitions", "must be 1..1024, got %d", c.Partitions)
	}
	if c.RawCacheMB < 1 || c.RawCacheMB > 1<<20 {
		bad("raw-cache-mb", "must be 1..%d, got %d", 1<<20, c.RawCacheMB)
	}
	if c.MatcherOrdered && c.KafkaBrokers != "" {
		bad("matcher-ordered", "orders one process's partitions of the embedded bus; it cannot be set with -kafka-brokers")
	}
	if c.MemTableMB < 1 || c.MemTableMB > 1<<10 {
		bad("memtable-mb", "must be 1..%d, got %d", 1<<10, c.MemTableMB)
	}
	if c.MatcherMaxPendingMB < 16 {
		bad("matcher-max-pending-mb", "must be at least 16, got %d", c.MatcherMaxPendingMB)
	}
	if c.MatcherOffsetCheck < 100*time.Millisecond {
		bad("matcher-offset-check", "must be at least 100ms, got %s", c.MatcherOffsetCheck)
	}
	if c.MatcherExpireEvery < time.Second {
		bad("matcher-expire-every", "must be at least 1s, got %s", c.MatcherExpireEvery)
	}
	if c.BusRetention < time.Hour {
		bad("bus-retention", "must be at least 1h, got %s", c.BusRetention)
	}
	if _, err := c.trustedProxies(); err != nil {
		bad("trusted-proxies", "%v", err)
	}
	if _, ok := logLevels[c.LogLevel]; !ok {
		bad("log-level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.TapRate < 0 {
		bad("tap-rate", "must not be negative")
	}
	if c.TapBurst < 0 {
		bad("tap-burst", "must not be negative")
	}
	if c.SKANRate < 0 {
		bad("skan-rate", "must not be negative")
	}
	if c.SKANBurst < 0 {
		bad("skan-burst", "must not be negative")
	}
	if c.SKANMaxRejected < 0 {
		bad("skan-max-rejected", "must not be negative")
	}
	if c.PostbackRetention < time.Hour {
		bad("postback-retention", "must be at least 1h, got %s", c.PostbackRetention)
	}
	if c.FraudDatacenters != "" {
		if _, err := os.Stat(c.FraudDatacenters); err != nil {
			bad("fraud-datacenters", "%v", err)
		}
	}
	if c.MatcherClockSkew < 0 {
		bad("matcher-clock-skew", "must not be negative")
	}
	if c.MatcherCollectorSkew <= 0 {
		bad("matcher-collector-skew", "must be positive")
	}
	if c.MinFreeDiskMB < 0 {
		bad("min-free-disk-mb", "must not be negative")
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown-grace", "must be positive")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"http-read-header-timeout", c.HTTPReadHeaderTimeout},
		{"http-read-timeout", c.HTTPReadTimeout},
		{"http-write-timeout", c.HTTPWriteTimeout},
		{"http-idle-timeout", c.HTTPIdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.flag, "must be positive, got %s", d.v)
		}
	}
	if c.HTTPReadTimeout > 0 && c.HTTPReadHeaderTimeout > c.HTTPReadTimeout {
		bad("http-read-header-timeout", "must not exceed -http-read-timeout (%s), got %s", c.HTTPReadTimeout, c.HTTPReadHeaderTimeout)
	}
	if c.HealthMaxLag < 1 {
		bad("health-max-lag", "must be at least 1, got %d", c.HealthMaxLag)
	}
	if c.HealthMaxBehind < time.Second {
		bad("health-max-behind", "must be at least 1s, got %s", c.HealthMaxBehind)
	}
	return errors.Join(errs...)
}

// PublicBase returns the collector's base URL as phones reach it:
// -public-url, else http://<collector-addr>. A running node prefers the
// address it listens on to the latter (a port of 0 is chosen on start).
func (c *Config) PublicBase() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return "http://" + c.CollectorAddr
}

func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for s := range strings.SplitSeq(c.TrustedProxy, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("bad address %q", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("bad CIDR %q", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func envName(flag string) string {
	return "TAPLINE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func envString(flag, def string) string {
	if v, ok := os.LookupEnv(envName(flag)); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	var n int
	if v := os.Getenv(name); v != "" {
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
		return -1 // reported by Validate
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return -1 // reported by Validate
		}
		return f
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return -1 // reported by Validate
		}
		return d
	}
	return def
}

func envBool(name string, def bool) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	return def
}
