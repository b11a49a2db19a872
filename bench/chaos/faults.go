package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tapline/loadgen"
)

// FaultRow is one injected fault and what it showed.
type FaultRow struct {
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	At     time.Duration `json:"at_ns"`  // since the campaign started
	For    time.Duration `json:"for_ns"` // how long the fault lasted
	Showed string        `json:"showed"`
	OK     bool          `json:"ok"`
	// Known marks a fault whose failure is expected until another branch
	// lands (a process started while PostgreSQL is down; the matcher's
	// clock offset): it is reported and does not fail the verdict.
	Known bool `json:"known,omitempty"`
}

// Fault kinds.
const (
	KillMatcher   = "kill -9 matcher"
	KillCollector = "kill -9 collector"
	KillAllInOne  = "kill -9 all-in-one"
	BrokerDown    = "broker down"
	BrokerKill    = "broker kill -9"
	BrokerWipe    = "broker restart, state lost"
	PGStop        = "postgres stopped"
	PGKill        = "postgres kill -9"
	PGStart       = "start while postgres down"
	DiskFull      = "disk full"
	Overload      = "overload 5x + slowloris"
	DeviceClock   = "device clock skew"
	MatcherClock  = "matcher clock +5m"
)

// slowlorisTimeout is the header read timeout the harness asks the
// collectors for when they have -http-read-header-timeout; without the
// flag the server's fixed 10 s applies.
const slowlorisTimeout = 4 * time.Second

// defaultReadHeaderTimeout is internal/node's http.Server ReadHeaderTimeout.
const defaultReadHeaderTimeout = 10 * time.Second

type fault struct {
	kind, target string
	run          func(ctx context.Context) FaultRow
}

// FaultNames maps the names Config.Only takes to fault kinds.
var FaultNames = map[string]string{
	"kill-matcher": KillMatcher, "kill-collector": KillCollector, "kill-all-in-one": KillAllInOne,
	"broker-down": BrokerDown, "broker-kill": BrokerKill, "broker-wipe": BrokerWipe, "pg-stop": PGStop, "pg-kill": PGKill, "pg-start": PGStart,
	"disk-full": DiskFull, "overload": Overload, "device-clock": DeviceClock, "matcher-clock": MatcherClock,
}

// schedule lists the campaign's faults in a seeded order.
func (c *campaign) schedule() []fault {
	var fs []fault
	add := func(kind, target string, run func(ctx context.Context) FaultRow) {
		fs = append(fs, fault{kind, target, run})
	}
	for i := range c.cfg.Kills {
		m := c.kafka.matchers[i%len(c.kafka.matchers)]
		add(KillMatcher, m.name, func(ctx context.Context) FaultRow { return c.kill(ctx, c.kafka, m) })
		col := c.kafka.collectors[i%len(c.kafka.collectors)]
		add(KillCollector, col.name, func(ctx context.Context) FaultRow { return c.kill(ctx, c.kafka, col) })
		all := c.solo.collectors[0]
		add(KillAllInOne, all.name, func(ctx context.Context) FaultRow { return c.kill(ctx, c.solo, all) })
	}
	add(BrokerDown, "kfakebroker", func(ctx context.Context) FaultRow { return c.brokerDown(ctx, c.cfg.Outage) })
	add(BrokerKill, "kfakebroker", func(ctx context.Context) FaultRow { return c.brokerDown(ctx, 0) })
	if slices.Contains(c.cfg.Only, "broker-wipe") {
		// Only on request: acknowledged messages the matcher had not
		// consumed are lost with the wiped log (docs/kafka.md), so the
		// exact counts fail.
		add(BrokerWipe, "kfakebroker", func(ctx context.Context) FaultRow { return c.brokerWipe(ctx) })
	}
	add(PGStop, "postgres", func(ctx context.Context) FaultRow { return c.pgDown(ctx, false) })
	pgKills := 2
	if c.cfg.Short {
		pgKills = 1
	}
	for range pgKills {
		add(PGKill, "postgres", func(ctx context.Context) FaultRow { return c.pgDown(ctx, true) })
	}
	add(PGStart, c.kafka.matchers[0].name, func(ctx context.Context) FaultRow { return c.pgStart(ctx) })
	add(DiskFull, "all-in-one data dir", func(ctx context.Context) FaultRow { return c.diskFull(ctx) })
	add(Overload, c.kafka.collectors[0].name, func(ctx context.Context) FaultRow { return c.overload(ctx) })
	add(DeviceClock, "SDK +3h", func(ctx context.Context) FaultRow { return c.deviceClock(ctx, 3*time.Hour) })
	add(DeviceClock, "SDK -3h", func(ctx context.Context) FaultRow { return c.deviceClock(ctx, -3*time.Hour) })
	add(MatcherClock, c.kafka.matchers[0].name, func(ctx context.Context) FaultRow { return c.matcherClock(ctx) })
	if len(c.cfg.Only) > 0 {
		fs = slices.DeleteFunc(fs, func(f fault) bool {
			for _, n := range c.cfg.Only {
				if FaultNames[n] == f.kind {
					return false
				}
			}
			return true
		})
	}
	r := rand.New(rand.NewPCG(c.cfg.Seed, 0xfa017))
	r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	return fs
}

func (c *campaign) row(kind, target string, t0 time.Time) FaultRow {
	return FaultRow{Kind: kind, Target: target, At: t0.Sub(c.start).Round(time.Second), For: time.Since(t0).Round(100 * time.Millisecond)}
}

func during(w window) string {
	return fmt.Sprintf("events 2xx %d, 503 %d, other failures %d; redirects %d (failed %d), p99 %s",
		w.EventAcks, w.Event503, w.EventErrs, w.Redirects, w.TapErrs, w.RedirectP99.Round(100*time.Microsecond))
}

// kill kills p with SIGKILL while the load runs (the matcher and the
// all-in-one flush often, so a kill lands mid-flush) and starts it again.
func (c *campaign) kill(ctx context.Context, t *topology, p *proc) FaultRow {
	t0 := time.Now()
	kind := KillMatcher
	if slices.Contains(t.collectors, p) {
		kind = KillCollector
		if t == c.solo {
			kind = KillAllInOne
		}
	}
	var before map[string]float64
	if kind != KillMatcher {
		var err error
		if before, err = scrape(ctx, p.metrics); err != nil {
			c.log.Warn("chaos: scrape before kill", "proc", p.name, "err", err)
		}
	}
	r := c.row(kind, p.name, t0)
	if err := p.kill9(); err != nil {
		r.Showed = err.Error()
		return r
	}
	if kind != KillMatcher {
		c.noteLoss(t, p, before)
	}
	killed := time.Now()
	err := p.start(ctx, 0)
	c.incarnation(t, p)
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	if err != nil {
		r.Showed = fmt.Sprintf("restart failed: %v", err)
		return r
	}
	w := t.series.window(t0, time.Now())
	r.Showed = fmt.Sprintf("restarted in %s; %s", time.Since(killed).Round(10*time.Millisecond), during(w))
	r.OK = true
	return r
}

// noteLoss accounts for collector p, dead (killed, or exited on its
// own): m is its last scrape, from just before a kill or from the
// once-a-second watch. The redirects it answered in this incarnation (all
// answered by now, since it is dead) minus the hits it had published or
// dropped by then are the most its death can have lost.
func (c *campaign) noteLoss(t *topology, p *proc, m map[string]float64) {
	if m == nil {
		c.mu.Lock()
		m = c.lastScrape[p]
		c.mu.Unlock()
	}
	t.taps.mu.Lock()
	answered := t.taps.perURL[p.url]
	t.taps.mu.Unlock()
	c.mu.Lock()
	answered -= c.redirects[p.url]
	delete(c.lastScrape, p)
	c.mu.Unlock()
	published := int64(m["tapline_collector_hits_published_total"])
	dropped := int64(m["tapline_collector_hits_dropped_total"])
	t.ledger.mu.Lock()
	t.ledger.lostBound += max(0, answered-published-dropped)
	t.ledger.dropped += dropped
	t.ledger.mu.Unlock()
}

// incarnation notes that collector p started anew: its redirects count
// from here.
func (c *campaign) incarnation(t *topology, p *proc) {
	t.taps.mu.Lock()
	n := t.taps.perURL[p.url]
	t.taps.mu.Unlock()
	c.mu.Lock()
	c.redirects[p.url] = n
	c.mu.Unlock()
}

// brokerDown kills the broker with SIGKILL and starts it again on the same
// port and data directory after down: the collectors spool meanwhile and
// replay the spool in order afterwards.
func (c *campaign) brokerDown(ctx context.Context, down time.Duration) FaultRow {
	t0 := time.Now()
	kind := BrokerDown
	if down == 0 {
		kind = BrokerKill
	}
	r := c.row(kind, "kfakebroker", t0)
	c.kafka.spoolPeak.Store(0)
	if err := c.broker.kill9(); err != nil {
		r.Showed = err.Error()
		return r
	}
	sleep(ctx, down)
	if err := c.startBroker(ctx); err != nil {
		r.Showed = fmt.Sprintf("restart failed: %v", err)
		return r
	}
	back := time.Now()
	w := c.kafka.series.window(t0, back)
	// The spools drain.
	drained := time.Duration(-1)
	for time.Since(back) < 3*time.Minute && ctx.Err() == nil {
		depth := int64(0)
		for _, p := range c.kafka.collectors {
			if m, err := scrape(ctx, p.metrics); err == nil {
				depth += int64(m["tapline_collector_spooled_messages"])
			} else {
				depth = -1
				break
			}
		}
		if depth == 0 {
			drained = time.Since(back)
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	r.For = back.Sub(t0).Round(100 * time.Millisecond)
	peak := c.kafka.spoolPeak.Load()
	r.Showed = fmt.Sprintf("spool peak %d messages, drained %s after restart; %s", peak, drained.Round(100*time.Millisecond), during(w))
	r.OK = drained >= 0 && w.Redirects > 0 && (down < 2*time.Second || (w.EventAcks > 0 && peak > 0))
	return r
}

// brokerWipe kills the broker, deletes its data directory and starts it
// again empty: topics are created anew and offsets start at 0, below the
// ones the matcher stored with its facts.
func (c *campaign) brokerWipe(ctx context.Context) FaultRow {
	t0 := time.Now()
	r := c.row(BrokerWipe, "kfakebroker", t0)
	if err := c.broker.kill9(); err != nil {
		r.Showed = err.Error()
		return r
	}
	if err := os.RemoveAll(c.brokerDir); err != nil {
		r.Showed = err.Error()
		return r
	}
	if err := c.startBroker(ctx); err != nil {
		r.Showed = fmt.Sprintf("restart failed: %v", err)
		return r
	}
	// The matchers must notice that their stored offsets lie past the new
	// logs' ends and start them again from 0
	// (tapline_matcher_offset_resets_total); the totals show that nothing
	// was skipped or counted twice.
	resets := func() float64 {
		var n float64
		for _, m := range c.kafka.matchers {
			if v, err := scrape(ctx, m.metrics); err == nil {
				n += v["tapline_matcher_offset_resets_total"]
			}
		}
		return n
	}
	before := resets()
	deadline := time.Now().Add(30 * time.Second)
	after := before
	for time.Now().Before(deadline) && after == before {
		sleep(ctx, time.Second)
		after = resets()
	}
	sleep(ctx, 5*time.Second)
	after = resets()
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	r.OK = after > before
	r.Showed = fmt.Sprintf("empty broker; %.0f partition offsets reset by the matchers; %s", after-before, during(c.kafka.series.window(t0, time.Now())))
	return r
}

// pgDown stops PostgreSQL (fast shutdown) or kills its postmaster with
// SIGKILL, keeps it down for the outage (a few seconds after a kill: the
// crash and its recovery are the fault) and starts it again.
func (c *campaign) pgDown(ctx context.Context, kill bool) FaultRow {
	t0 := time.Now()
	kind, down := PGStop, c.cfg.Outage
	if kill {
		kind, down = PGKill, min(c.cfg.Outage, 5*time.Second)
	}
	r := c.row(kind, "postgres", t0)
	var err error
	if kill {
		err = c.pg.kill()
	} else {
		err = c.pg.stop()
	}
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	sleep(ctx, down)
	if err := c.pg.start(ctx); err != nil {
		r.Showed = fmt.Sprintf("postgres did not start again: %v", err)
		return r
	}
	back := time.Now()
	wk, ws := c.kafka.series.window(t0, back), c.solo.series.window(t0, back)
	r.For = back.Sub(t0).Round(100 * time.Millisecond)
	// Every process must have lived through it.
	var dead []string
	for _, p := range c.processes() {
		if !p.alive() {
			dead = append(dead, p.name)
			if t := c.topologyOf(p); slices.Contains(t.collectors, p) {
				c.noteLoss(t, p, nil)
			}
			if err := p.start(ctx, 0); err != nil {
				c.log.Warn("chaos: restart after postgres outage", "proc", p.name, "err", err)
			}
			c.incarnation(c.topologyOf(p), p)
		}
	}
	r.Showed = fmt.Sprintf("kafka: %s | all-in-one: %s", during(wk), during(ws))
	if len(dead) > 0 {
		r.Showed += fmt.Sprintf(" | EXITED: %v (restarted)", dead)
	}
	r.OK = len(dead) == 0 && wk.Redirects > 0 && ws.Redirects > 0
	return r
}

func (c *campaign) topologyOf(p *proc) *topology {
	if slices.Contains(c.solo.collectors, p) {
		return c.solo
	}
	return c.kafka
}

// pgStart stops PostgreSQL, kills the matcher and starts it while
// PostgreSQL is down, then starts PostgreSQL: the matcher should wait for
// it and come up. Until the branch that makes it do so merges, it exits;
// the row is then marked known and the matcher is started again after.
func (c *campaign) pgStart(ctx context.Context) FaultRow {
	t0 := time.Now()
	m := c.kafka.matchers[0]
	r := c.row(PGStart, m.name, t0)
	r.Known = true
	if err := c.pg.stop(); err != nil {
		r.Showed = err.Error()
		return r
	}
	_ = m.kill9()
	if err := m.spawn(); err != nil {
		r.Showed = err.Error()
		return r
	}
	sleep(ctx, min(c.cfg.Outage, 5*time.Second))
	exitedEarly := !m.alive()
	if err := c.pg.start(ctx); err != nil {
		r.Showed = fmt.Sprintf("postgres did not start again: %v", err)
		return r
	}
	var err error
	if !exitedEarly {
		err = m.waitReady(ctx, 60*time.Second)
	}
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	switch {
	case exitedEarly || err != nil:
		r.Showed = fmt.Sprintf("the matcher did not survive its start without PostgreSQL (%v); started again once PostgreSQL was back (known: the pg-down branch makes it wait)", m.exitErr())
		if m.alive() {
			_ = m.kill9()
		}
		if err := m.start(ctx, 0); err != nil {
			r.Showed += fmt.Sprintf("; restart failed: %v", err)
		}
	default:
		r.OK = true
		r.Showed = fmt.Sprintf("the matcher started while PostgreSQL was down and was ready %s after", time.Since(t0).Round(100*time.Millisecond))
	}
	return r
}

// diskFull fills the all-in-one's data filesystem (the tmpfs the harness
// mounted) with a ballast file, keeps it full, and frees it.
func (c *campaign) diskFull(ctx context.Context) FaultRow {
	t0 := time.Now()
	r := c.row(DiskFull, "all-in-one data dir", t0)
	// The product's handling of a full disk is another branch's work:
	// the row reports what happened and the totals' check (nothing
	// acknowledged lost, no corrupt store) still decides the verdict.
	r.Known = true
	if !c.tmpfs {
		r.Showed = "skipped: no tmpfs could be mounted (mount needs root)"
		r.Known = true
		return r
	}
	ballast := filepath.Join(c.soloDir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	// Reserve all but a little of the free space at once, then write the
	// rest until the filesystem says it is full.
	var st syscall.Statfs_t
	var filled int64
	if err := syscall.Statfs(c.soloDir, &st); err == nil {
		if free := int64(st.Bavail)*st.Bsize - 4<<20; free > 0 && syscall.Fallocate(int(f.Fd()), 0, 0, free) == nil {
			filled = free
			_, _ = f.Seek(free, io.SeekStart)
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Write(buf)
		filled += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				r.Showed = fmt.Sprintf("fill: %v", err)
			}
			break
		}
	}
	f.Close()
	full := time.Now()
	sleep(ctx, max(c.cfg.Outage/2, 3*time.Second))
	wFull := c.solo.series.window(full, time.Now())
	alive := c.solo.collectors[0].alive()
	if err := os.Remove(ballast); err != nil {
		r.Showed = fmt.Sprintf("free the ballast: %v", err)
		return r
	}
	freed := time.Now()
	p := c.solo.collectors[0]
	restarted := ""
	if !p.alive() {
		c.noteLoss(c.solo, p, nil)
		restarted = fmt.Sprintf(" | the all-in-one EXITED (%v); restarted", p.exitErr())
		if err := p.start(ctx, 0); err != nil {
			restarted += fmt.Sprintf(" but failed: %v", err)
		}
		c.incarnation(c.solo, p)
	}
	// Recovery: SDK events acknowledged again.
	var recovered time.Duration = -1
	for time.Since(freed) < time.Minute && ctx.Err() == nil {
		sleep(ctx, 500*time.Millisecond)
		if at := c.solo.series.firstAckAfter(freed); !at.IsZero() {
			recovered = max(at.Sub(freed), 0)
			break
		}
	}
	r.For = freed.Sub(t0).Round(100 * time.Millisecond)
	r.Showed = fmt.Sprintf("ballast %d MiB; while full: %s; events acknowledged again %s after space returned%s",
		filled>>20, during(wFull), recovered.Round(time.Second), restarted)
	r.OK = alive && wFull.Redirects > 0 && recovered >= 0 && wFull.EventErrs == 0
	return r
}

// deviceClock sends the installations begun for a while with device clocks
// off by skew.
func (c *campaign) deviceClock(ctx context.Context, skew time.Duration) FaultRow {
	t0 := time.Now()
	r := c.row(DeviceClock, fmt.Sprintf("SDK %+v", skew), t0)
	before := c.kafka.ev.skewed.Load() + c.solo.ev.skewed.Load()
	rej := c.kafka.ev.rejected.Load() + c.solo.ev.rejected.Load()
	for _, t := range []*topology{c.kafka, c.solo} {
		t.ev.skew.Store(int64(skew))
	}
	sleep(ctx, max(c.cfg.Outage/4, 3*time.Second))
	for _, t := range []*topology{c.kafka, c.solo} {
		t.ev.skew.Store(0)
	}
	n := c.kafka.ev.skewed.Load() + c.solo.ev.skewed.Load() - before
	rejected := c.kafka.ev.rejected.Load() + c.solo.ev.rejected.Load() - rej
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	r.Showed = fmt.Sprintf("%d events with the device clock %+v; %d rejected (counted in the totals' check)", n, skew, rejected)
	r.OK = n > 0 && rejected == 0
	return r
}

// matcherClock runs the matcher with its host clock 5 minutes ahead for a
// while, when the binaries have -clock-offset.
//
// HOOK: the -clock-offset flag comes from another branch. Until it lands
// the fault is reported as skipped (known); once the binaries list the
// flag, this restarts the matcher with it and the totals' check covers it.
func (c *campaign) matcherClock(ctx context.Context) FaultRow {
	t0 := time.Now()
	m := c.kafka.matchers[0]
	r := c.row(MatcherClock, m.name, t0)
	if !c.flags["clock-offset"] {
		r.Known = true
		r.Showed = "skipped: the binaries have no -clock-offset flag yet (hook in bench/chaos/faults.go matcherClock)"
		return r
	}
	args := m.args
	_ = m.stop()
	m.args = append(slices.Clone(args), "-clock-offset", c.cfg.MatcherSkew.String())
	err := m.start(ctx, 0)
	if err == nil {
		sleep(ctx, max(c.cfg.Outage/4, 3*time.Second))
		_ = m.stop()
	}
	m.args = args
	if err2 := m.start(ctx, 0); err == nil {
		err = err2
	}
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	r.OK = true
	r.Showed = fmt.Sprintf("matcher ran with -clock-offset %s; %s", c.cfg.MatcherSkew, during(c.kafka.series.window(t0, time.Now())))
	return r
}

// overload offers redirects to one collector at five times its measured
// capacity, open loop, while dozens of slowloris connections dribble
// request headers into the other: redirects must keep answering, the
// slow connections must be cut by the header timeout, memory must stay
// bounded and the goroutines return to their count before.
func (c *campaign) overload(ctx context.Context) FaultRow {
	t0 := time.Now()
	target, other := c.kafka.collectors[0], c.kafka.collectors[1]
	r := c.row(Overload, target.name, t0)
	before, err := scrape(ctx, target.metrics)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	// Capacity: a short closed-loop measure with the bench's method.
	h := &loadgen.Hammer{Workers: 16, Duration: 2 * time.Second}
	taps := c.kafka.taps
	capacity := h.Run(ctx, func(worker, seq int) *http.Request {
		taps.offered.Add(1)
		return taps.request(target.url)
	}, func(resp *http.Response) bool {
		ok := resp.StatusCode == http.StatusFound
		taps.count(target.url, ok)
		return ok
	})
	rate := 5 * capacity.Rate
	// Slowloris on the other collector, meanwhile.
	limit := defaultReadHeaderTimeout
	if c.flags["http-read-header-timeout"] {
		limit = slowlorisTimeout
	}
	var cuts []time.Duration
	var cutMu sync.Mutex
	var slow sync.WaitGroup
	const slowConns = 40
	for range slowConns {
		slow.Go(func() {
			d := slowloris(ctx, other.url[len("http://"):], limit+10*time.Second)
			cutMu.Lock()
			cuts = append(cuts, d)
			cutMu.Unlock()
		})
	}
	// Open loop at rate, bounded in flight.
	client := loadgen.NewClient(512)
	client.Timeout = 10 * time.Second
	sem := make(chan struct{}, 2048)
	var sent, ok, failed, shed atomic.Int64
	var latMu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	for time.Since(start) < c.cfg.Overload && ctx.Err() == nil {
		<-tick.C
		// What is due so far, whatever ticks a busy machine dropped.
		due := int64(rate*time.Since(start).Seconds()) - sent.Load() - shed.Load()
		for ; due > 0; due-- {
			select {
			case sem <- struct{}{}:
			default:
				shed.Add(1) // the client's own bound: not offered
				continue
			}
			sent.Add(1)
			wg.Go(func() {
				defer func() { <-sem }()
				d, good := c.kafka.taps.tapAt(ctx, client, target.url)
				if good {
					ok.Add(1)
					latMu.Lock()
					lat = append(lat, d)
					latMu.Unlock()
				} else {
					failed.Add(1)
				}
			})
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	client.CloseIdleConnections()
	slow.Wait()
	slices.Sort(lat)
	p99 := loadgen.Percentile(lat, 0.99)
	// Goroutines settle back.
	g0 := before["go_goroutines"]
	var g1 float64
	for i := 0; i < 30 && ctx.Err() == nil; i++ {
		if m, err := scrape(ctx, target.metrics); err == nil {
			g1 = m["go_goroutines"]
			if g1 <= g0+20 {
				break
			}
		}
		sleep(ctx, 500*time.Millisecond)
	}
	cutMin, cutMax := slices.Min(cuts), slices.Max(cuts)
	slowOK := cutMin >= limit-time.Second && cutMax <= limit+5*time.Second
	rss := map[string]int64{}
	for _, p := range c.processes() {
		rss[p.name] = p.peakRSS() >> 10
	}
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	success := float64(ok.Load()) / float64(max(sent.Load(), 1))
	r.Showed = fmt.Sprintf("capacity %.0f/s, 5x target %.0f/s, attempted %.0f/s, sent %.0f/s (%d sent, %d not: 2048 already in flight); redirected %.1f%%, p99 %s; "+
		"goroutines %.0f before, %.0f after; %d slowloris connections cut after %s..%s (limit %s); peak RSS MiB %v",
		capacity.Rate, rate, float64(sent.Load()+shed.Load())/elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), sent.Load(), shed.Load(), 100*success, p99.Round(time.Millisecond),
		g0, g1, len(cuts), cutMin.Round(100*time.Millisecond), cutMax.Round(100*time.Millisecond), limit, rss)
	r.OK = success > 0.5 && g1 <= g0+20 && slowOK
	return r
}

// slowloris opens a connection to addr and sends a request's headers a
// byte a second; it returns how long the server kept the connection open
// (giving up at most).
func slowloris(ctx context.Context, addr string, most time.Duration) time.Duration {
	start := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	if _, err := io.WriteString(conn, "GET /l/chaos-spring HTTP/1.1\r\nHost: chaos\r\nX-Slow: "); err != nil {
		return time.Since(start)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Since(start) < most {
		select {
		case <-closed:
			return time.Since(start)
		case <-ctx.Done():
			return time.Since(start)
		case <-t.C:
			if _, err := conn.Write([]byte("a")); err != nil {
				return time.Since(start)
			}
		}
	}
	return time.Since(start)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
