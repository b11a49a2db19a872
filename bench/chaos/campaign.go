package chaos

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/loadgen"
	"tapline/postgres"
)

// Config sets up a campaign. Zero fields take the defaults of Defaults or,
// with Short, ShortDefaults.
type Config struct {
	BinDir  string // collector, matcher, tapline and kfakebroker binaries
	WorkDir string // logs, data directories, the PostgreSQL cluster; a new temporary directory when empty
	Seed    uint64
	Short   bool // the 60-second campaign of `make test`

	Duration    time.Duration // load is offered for at most this long
	Events      int64         // events offered in all (70% to the Kafka topology, 30% to the all-in-one)
	TapRate     float64       // taps per second per topology
	Outage      time.Duration // how long the broker and PostgreSQL stay down
	Overload    time.Duration // how long the 5x redirect overload lasts
	Kills       int           // kill -9 faults of each process kind
	Gap         time.Duration // pause between faults
	Drain       time.Duration // how long the facts may take to catch up after the load
	MatcherSkew time.Duration // the matcher host clock's offset in its clock faults (once ahead, once behind)
	// OverloadInFlight bounds the overload's requests in flight (and so
	// its connections): a request due while this many wait for their
	// answer is counted as not sent.
	OverloadInFlight int

	// Only, when set, keeps the faults of these names (FaultNames) only.
	Only []string

	CassandraHosts string // run the Kafka topology's raw store on Cassandra (its matchers then scale out)
	// Profile has each matcher (and the all-in-one) write a CPU profile of
	// each of its runs into the work directory: <name>-<start>.cpu.pprof.
	Profile bool
	PGBin   string // directory of initdb and postgres; found when empty
	Logger  *slog.Logger
}

// Defaults returns the default campaign: at least 1,000,000 acknowledged
// events and 21 faults in under 15 minutes on a two-core machine.
func Defaults() Config {
	return Config{Seed: 1, Duration: 10 * time.Minute, Events: 1_050_000, TapRate: 150, Outage: 60 * time.Second,
		Overload: 30 * time.Second, Kills: 3, Gap: 4 * time.Second, Drain: 3 * time.Minute, MatcherSkew: 5 * time.Minute,
		OverloadInFlight: 12_000}
}

// ShortDefaults returns the campaign `make test` runs: about a minute of
// load with each fault kind once, outages of a few seconds.
func ShortDefaults() Config {
	return Config{Seed: 1, Short: true, Duration: 60 * time.Second, Events: 20_000, TapRate: 60, Outage: 5 * time.Second,
		Overload: 5 * time.Second, Kills: 1, Gap: time.Second, Drain: 90 * time.Second, MatcherSkew: 5 * time.Minute,
		OverloadInFlight: 12_000}
}

func (c *Config) fill() {
	d := Defaults()
	if c.Short {
		d = ShortDefaults()
	}
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.Events <= 0 {
		c.Events = d.Events
	}
	if c.TapRate <= 0 {
		c.TapRate = d.TapRate
	}
	if c.Outage <= 0 {
		c.Outage = d.Outage
	}
	if c.Overload <= 0 {
		c.Overload = d.Overload
	}
	if c.Kills <= 0 {
		c.Kills = d.Kills
	}
	if c.Gap <= 0 {
		c.Gap = d.Gap
	}
	if c.Drain <= 0 {
		c.Drain = d.Drain
	}
	if c.MatcherSkew == 0 {
		c.MatcherSkew = d.MatcherSkew
	}
	if c.MatcherSkew < 0 {
		c.MatcherSkew = -c.MatcherSkew
	}
	if c.OverloadInFlight <= 0 {
		c.OverloadInFlight = d.OverloadInFlight
	}
	for _, n := range c.Only {
		if FaultNames[n] == "" {
			c.Logger = cmp.Or(c.Logger, slog.Default())
			c.Logger.Warn("chaos: unknown fault name in Only", "name", n)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

const (
	accountName = "chaos"
	appName     = "chaosapp"
)

// topology is one deployment under test: the separate processes on the
// Kafka-protocol broker, or the all-in-one on its embedded bus. Each has a
// database of its own in the harness's cluster.
type topology struct {
	name       string
	dbURL      string
	app        *tapline.App
	links      []string
	collectors []*proc // where SDKs and taps go
	matchers   []*proc // the processes that write the facts (the all-in-one is both)
	series     *series
	ev         *eventDriver
	taps       *tapDriver
	ledger     hitLedger
	spoolPeak  atomic.Int64 // highest summed spool depth since the last reset
}

func (t *topology) collectorURLs() []string {
	out := make([]string, len(t.collectors))
	for i, p := range t.collectors {
		out[i] = p.url
	}
	return out
}

func (t *topology) target(base string) loadgen.Target {
	return loadgen.Target{BaseURL: base, Account: accountName, Secret: t.app.SDKSecret, SDKKey: t.app.SDKKey, AppName: appName}
}

// hitLedger accounts for the hits of killed collector incarnations.
type hitLedger struct {
	mu sync.Mutex
	// lostBound sums, over collector kills, the redirects the incarnation
	// answered minus the hits it had published or dropped at its last
	// scrape: an upper bound of the hits the kill lost.
	lostBound int64
	// dropped sums tapline_collector_hits_dropped_total over finished
	// incarnations.
	dropped int64
}

// campaign is one run.
type campaign struct {
	cfg       Config
	log       *slog.Logger
	out       io.Writer
	start     time.Time
	workDir   string
	pg        *pgCluster
	broker    *proc
	brokerDir string
	kafka     *topology
	solo      *topology
	soloDir   string
	tmpfs     bool // the all-in-one's data directory is a tmpfs the harness mounted
	faults    []FaultRow
	mu        sync.Mutex
	redirects map[string]int64 // per collector URL at its incarnation's start
	// lastScrape is each collector's /metrics at the watch's last visit.
	lastScrape map[*proc]map[string]float64
}

// Run runs a campaign, prints its tables to out and returns its result.
// The error is for a campaign that could not run; a run that found lost
// or doubled events returns a Result whose Verdict is FAIL.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	cfg.fill()
	c := &campaign{cfg: cfg, log: cfg.Logger, out: out, redirects: map[string]int64{}, lastScrape: map[*proc]map[string]float64{}}
	defer c.close()
	if err := c.setUp(ctx); err != nil {
		return nil, err
	}
	return c.run(ctx)
}

func (c *campaign) setUp(ctx context.Context) error {
	var err error
	c.start = time.Now()
	c.workDir = c.cfg.WorkDir
	if c.workDir == "" {
		if c.workDir, err = os.MkdirTemp("", "tapline-chaos-"); err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
	}
	if err := os.MkdirAll(c.workDir, 0o755); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	_ = os.Chmod(c.workDir, 0o755)
	for _, b := range []string{"collector", "matcher", "tapline", "kfakebroker"} {
		if _, err := os.Stat(filepath.Join(c.cfg.BinDir, b)); err != nil {
			return fmt.Errorf("binary %s: %w (build them: go build -o %s ./cmd/... ./bench/cmd/kfakebroker)", b, err, c.cfg.BinDir)
		}
	}
	bin, err := pgBinDir(c.cfg.PGBin)
	if err != nil {
		return err
	}
	if c.pg, err = newPGCluster(ctx, bin, c.workDir); err != nil {
		return err
	}
	if err := c.pg.start(ctx); err != nil {
		return err
	}
	c.kafka = &topology{name: "kafka", series: &series{}}
	c.solo = &topology{name: "all-in-one", series: &series{}}
	for _, t := range []*topology{c.kafka, c.solo} {
		db := "chaos_" + strings.ReplaceAll(t.name, "-", "_")
		if err := c.seed(ctx, t, db); err != nil {
			return err
		}
	}
	// The broker.
	baddr, err := freeAddr()
	if err != nil {
		return err
	}
	c.brokerDir = filepath.Join(c.workDir, "kfake")
	c.broker = &proc{name: "kfakebroker", bin: filepath.Join(c.cfg.BinDir, "kfakebroker"), dir: c.workDir, url: baddr,
		args: []string{"-addr", baddr, "-data-dir", c.brokerDir, "-partitions", "8"}}
	if err := c.startBroker(ctx); err != nil {
		return err
	}
	common := func(t *topology) []string {
		a := []string{"-database-url", t.dbURL, "-migrate=false", "-log-level", "warn", "-trusted-proxies", "127.0.0.1/32",
			"-tap-rate", "1000000", "-tap-burst", "1000000",
			"-http-read-header-timeout", httpReadHeaderTimeout.String(), "-http-read-timeout", httpReadTimeout.String()}
		return a
	}
	kafkaArgs := []string{"-kafka-brokers", baddr}
	if c.cfg.CassandraHosts != "" {
		c.log.Info("chaos: the Kafka topology's raw store is Cassandra", "hosts", c.cfg.CassandraHosts, "keyspace", c.keyspace())
		kafkaArgs = append(kafkaArgs, "-cassandra-hosts", c.cfg.CassandraHosts, "-cassandra-keyspace", c.keyspace())
	}
	for i := range 2 {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		// As in docker-compose.yml: /metrics on a listener of its own.
		maddr, err := freeAddr()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("collector-%d", i+1)
		p := &proc{name: name, bin: filepath.Join(c.cfg.BinDir, "collector"), dir: c.workDir, url: "http://" + addr,
			health: "http://" + addr + "/healthz", metrics: "http://" + maddr + "/metrics",
			args: append(append(common(c.kafka), kafkaArgs...), "-data-dir", filepath.Join(c.workDir, name), "-collector-addr", addr, "-metrics-addr", maddr)}
		c.kafka.collectors = append(c.kafka.collectors, p)
	}
	matchers := 1
	if c.cfg.CassandraHosts != "" {
		matchers = 2 // a shared raw store lets matchers split the partitions
	}
	for i := range matchers {
		maddr, err := freeAddr()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("matcher-%d", i+1)
		p := &proc{name: name, bin: filepath.Join(c.cfg.BinDir, "matcher"), dir: c.workDir, url: "http://" + maddr,
			health: "http://" + maddr + "/healthz", metrics: "http://" + maddr + "/metrics",
			args: append(append(common(c.kafka), kafkaArgs...), "-data-dir", filepath.Join(c.workDir, name), "-metrics-addr", maddr)}
		p.profile = c.cfg.Profile
		c.kafka.matchers = append(c.kafka.matchers, p)
	}
	// The all-in-one, its data directory on a small filesystem of its own
	// for the disk-full fault.
	c.soloDir = filepath.Join(c.workDir, "all-in-one")
	if err := os.MkdirAll(c.soloDir, 0o755); err != nil {
		return err
	}
	size := "2g" // room for the default campaign's all-in-one data; filled in seconds
	if c.cfg.Short {
		size = "384m"
	}
	if err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", c.soloDir).Run(); err == nil {
		c.tmpfs = true
	} else {
		c.log.Warn("chaos: cannot mount a tmpfs for the all-in-one's data directory; the disk-full fault will be skipped", "err", err)
	}
	saddr, err := freeAddr()
	if err != nil {
		return err
	}
	daddr, err := freeAddr()
	if err != nil {
		return err
	}
	all := &proc{name: "tapline-all", bin: filepath.Join(c.cfg.BinDir, "tapline"), dir: c.workDir, url: "http://" + saddr,
		health: "http://" + saddr + "/healthz", metrics: "http://" + saddr + "/metrics",
		args: append([]string{"run"}, append(common(c.solo), "-data-dir", filepath.Join(c.soloDir, "data"), "-collector-addr", saddr, "-dashboard-addr", daddr,
			"-min-free-disk-mb", strconv.Itoa(c.diskReserveMB()))...)}
	all.profile = c.cfg.Profile
	c.solo.collectors = []*proc{all}
	c.solo.matchers = []*proc{all}
	for _, p := range c.processes() {
		if err := p.start(ctx, 0); err != nil {
			return err
		}
	}
	return nil
}

// keyspace names the Cassandra keyspace of this run: new for every run, so
// that no row of an earlier campaign with the same seed makes this one's
// events look like duplicates.
func (c *campaign) keyspace() string {
	return fmt.Sprintf("chaos_%d_%d", c.cfg.Seed, c.start.Unix())
}

// processes lists the tapline processes (not the broker).
func (c *campaign) processes() []*proc {
	var out []*proc
	out = append(out, c.kafka.collectors...)
	out = append(out, c.kafka.matchers...)
	out = append(out, c.solo.collectors...)
	return out
}

// startBroker starts the broker and waits until its port accepts.
func (c *campaign) startBroker(ctx context.Context) error {
	if err := c.broker.spawn(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.broker.url, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if !c.broker.alive() {
			return fmt.Errorf("kfakebroker exited at start: %v (log %s)", c.broker.exitErr(), filepath.Join(c.workDir, "kfakebroker.log"))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kfakebroker did not listen on %s within 30 s", c.broker.url)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// seed creates database db with the campaign's account, app and links.
func (c *campaign) seed(ctx context.Context, t *topology, db string) error {
	admin, err := pgx.Connect(ctx, c.pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the chaos cluster: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	t.dbURL = c.pg.URL(db)
	pdb := postgres.NewDB(t.dbURL)
	pdb.Logger = slog.New(slog.DiscardHandler)
	if err := pdb.Open(ctx); err != nil {
		return fmt.Errorf("open %s: %w", db, err)
	}
	defer pdb.Close()
	if err := pdb.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", db, err)
	}
	accts := postgres.NewAccountService(pdb)
	a := &tapline.Account{Name: accountName}
	if err := accts.CreateAccount(ctx, a, &tapline.User{Email: "chaos@example.com"}, "chaos-password-0123"); err != nil {
		return fmt.Errorf("create account in %s: %w", db, err)
	}
	t.app = &tapline.App{AccountID: a.ID, Name: appName, SDKSecret: "secret-chaos-0123456789", SDKKey: "key-chaos-0123456789abcd",
		IOSURL: "https://apps.apple.com/app/id1234567890", AndroidURL: "https://play.google.com/store/apps/details?id=com.example.loadgen",
		WebURL: "https://example.com/"}
	if err := accts.CreateApp(ctx, t.app); err != nil {
		return fmt.Errorf("create app in %s: %w", db, err)
	}
	t.links = []string{"chaos-spring", "chaos-social", "chaos-search", "chaos-video"}
	for _, l := range t.links {
		if err := accts.CreateLink(ctx, &tapline.Link{AppID: t.app.ID, Slug: l, Name: l}); err != nil {
			return fmt.Errorf("create link %s in %s: %w", l, db, err)
		}
	}
	return nil
}

func (c *campaign) close() {
	for _, p := range c.processes() {
		if p != nil {
			_ = p.stop()
		}
	}
	if c.broker != nil {
		_ = c.broker.kill9()
	}
	if c.pg != nil {
		if err := c.pg.stop(); err != nil {
			c.log.Warn("chaos: stop postgres", "err", err)
		}
	}
	if c.tmpfs {
		if err := exec.Command("umount", "-l", c.soloDir).Run(); err != nil {
			c.log.Warn("chaos: unmount the all-in-one's tmpfs", "dir", c.soloDir, "err", err)
		}
	}
	if c.cfg.WorkDir == "" && c.workDir != "" {
		_ = os.RemoveAll(c.workDir)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
