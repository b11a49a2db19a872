package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline/internal/faults"
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
	// Known marks a fault that could not be injected here (the disk-full
	// fault without root, which it needs to mount a tmpfs): it is
	// reported and does not fail the verdict.
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
	Overload      = "overload 5x + slow clients"
	DeviceClock   = "device clock skew"
	MatcherClock  = "matcher clock skew"
)

// The HTTP timeouts the harness gives every process
// (-http-read-header-timeout, -http-read-timeout): short, so that the
// overload fault's slow clients are cut within internal/faults.Wait.
const (
	httpReadHeaderTimeout = 3 * time.Second
	httpReadTimeout       = 6 * time.Second
)

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
	add(PGStart, c.kafka.matchers[0].name+", "+c.kafka.collectors[len(c.kafka.collectors)-1].name, func(ctx context.Context) FaultRow { return c.pgStart(ctx) })
	add(DiskFull, "all-in-one data dir", func(ctx context.Context) FaultRow { return c.diskFull(ctx) })
	add(Overload, c.kafka.collectors[0].name, func(ctx context.Context) FaultRow { return c.overload(ctx) })
	add(DeviceClock, "SDK +3h", func(ctx context.Context) FaultRow { return c.deviceClock(ctx, 3*time.Hour) })
	add(DeviceClock, "SDK -3h", func(ctx context.Context) FaultRow { return c.deviceClock(ctx, -3*time.Hour) })
	for _, skew := range []time.Duration{c.cfg.MatcherSkew, -c.cfg.MatcherSkew} {
		add(MatcherClock, fmt.Sprintf("%s %+v", c.kafka.matchers[0].name, skew), func(ctx context.Context) FaultRow { return c.matcherClock(ctx, skew) })
	}
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

// pgStart stops the Kafka topology's last collector (SIGTERM: it writes
// its snapshot of links and apps) and its matcher, stops PostgreSQL, and
// starts both while it is down. The collector must answer SDK events and
// redirects 2xx/302 from its snapshot, the matcher must stay up (its
// /livez answering 200), and once PostgreSQL is back the matcher must
// count again; the totals' check then wants every event counted.
func (c *campaign) pgStart(ctx context.Context) FaultRow {
	t0 := time.Now()
	t := c.kafka
	m, col := t.matchers[0], t.collectors[len(t.collectors)-1]
	r := c.row(PGStart, m.name+", "+col.name, t0)
	fail := func(format string, args ...any) FaultRow {
		r.For = time.Since(t0).Round(100 * time.Millisecond)
		r.Showed = fmt.Sprintf(format, args...)
		return r
	}
	last, err := scrape(ctx, col.metrics)
	if err != nil {
		return fail("%v", err)
	}
	if err := col.stop(); err != nil {
		return fail("stop %s: %v", col.name, err)
	}
	c.noteLoss(t, col, last)
	if err := m.stop(); err != nil {
		return fail("stop %s: %v", m.name, err)
	}
	if err := c.pg.stop(); err != nil {
		return fail("stop postgres: %v", err)
	}
	host := strings.TrimPrefix(col.url, "http://")
	acks0 := t.ev.ackedAt(host)
	t.taps.mu.Lock()
	redirects0 := t.taps.perURL[col.url]
	t.taps.mu.Unlock()
	down := time.Now()
	mErr := m.spawn()
	colErr := col.start(ctx, 30*time.Second)
	c.incarnation(t, col)
	sleep(ctx, max(min(c.cfg.Outage/2, 20*time.Second), 5*time.Second))
	live := liveness(ctx, m.url+"/livez")
	mAlive, colAlive := m.alive(), col.alive()
	acks := t.ev.ackedAt(host) - acks0
	t.taps.mu.Lock()
	redirects := t.taps.perURL[col.url] - redirects0
	t.taps.mu.Unlock()
	outage := time.Since(down)
	if err := c.pg.start(ctx); err != nil {
		return fail("postgres did not start again: %v", err)
	}
	back := time.Now()
	r.For = back.Sub(t0).Round(100 * time.Millisecond)
	// Counting resumes: fact_events grows after PostgreSQL is back.
	counting := time.Duration(-1)
	if n0, err := c.factEvents(ctx, t); err == nil {
		for time.Since(back) < 90*time.Second && ctx.Err() == nil {
			sleep(ctx, 500*time.Millisecond)
			if n, err := c.factEvents(ctx, t); err == nil && n > n0 {
				counting = time.Since(back)
				break
			}
		}
	}
	// Whatever died is started again for the rest of the campaign.
	var exited []string
	for _, p := range []*proc{m, col} {
		if !p.alive() {
			exited = append(exited, fmt.Sprintf("%s (%v)", p.name, p.exitErr()))
			if p == col {
				c.noteLoss(t, col, nil)
			}
			if err := p.start(ctx, 0); err != nil {
				c.log.Warn("chaos: restart after the start without postgres", "proc", p.name, "err", err)
			}
			if p == col {
				c.incarnation(t, col)
			}
		}
	}
	r.Showed = fmt.Sprintf("started without PostgreSQL for %s: %s answered %d events 2xx and %d redirects; %s /livez %s; counting again %s after PostgreSQL returned",
		outage.Round(100*time.Millisecond), col.name, acks, redirects, m.name, live, counting.Round(100*time.Millisecond))
	switch {
	case mErr != nil || colErr != nil:
		r.Showed += fmt.Sprintf(" | START FAILED: %v %v", mErr, colErr)
	case len(exited) > 0:
		r.Showed += fmt.Sprintf(" | EXITED: %v (restarted)", exited)
	}
	r.OK = mErr == nil && colErr == nil && mAlive && colAlive && live == "200" && acks > 0 && redirects > 0 && counting >= 0 && len(exited) == 0
	return r
}

// liveness returns the status of a GET of url as text, or the error.
func liveness(ctx context.Context, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// diskFull fills the all-in-one's data filesystem (the tmpfs the harness
// mounted) with a ballast file until less than half its store's reserve
// (-min-free-disk-mb) is free, keeps it so, and frees it. While full, SDK
// events must be answered 503 with Retry-After and nothing else, taps
// still redirected, the process alive; after, events must be
// acknowledged again, and the totals' check wants every acknowledged
// event counted.
func (c *campaign) diskFull(ctx context.Context) FaultRow {
	t0 := time.Now()
	r := c.row(DiskFull, "all-in-one data dir", t0)
	if !c.tmpfs {
		r.Showed = "skipped: no tmpfs could be mounted (mount needs root)"
		r.Known = true
		return r
	}
	p := c.solo.collectors[0]
	m0, err := scrape(ctx, p.metrics)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	reserve := int64(c.diskReserveMB()) << 20
	ballast := filepath.Join(c.soloDir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.soloDir, &st); err != nil {
		f.Close()
		r.Showed = fmt.Sprintf("statfs: %v", err)
		return r
	}
	size := int64(st.Bavail)*st.Bsize - reserve/2
	if size > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			f.Close()
			r.Showed = fmt.Sprintf("fallocate %d MiB: %v", size>>20, err)
			return r
		}
	}
	f.Close()
	_ = syscall.Statfs(c.soloDir, &st)
	free := int64(st.Bavail) * st.Bsize
	full := time.Now()
	sleep(ctx, max(c.cfg.Outage/2, 3*time.Second))
	wFull := c.solo.series.window(full, time.Now())
	alive := p.alive()
	var storageFull float64 = -1
	if m1, err := scrape(ctx, p.metrics); err == nil {
		storageFull = m1["tapline_collector_storage_full_total"] - m0["tapline_collector_storage_full_total"]
	}
	if err := os.Remove(ballast); err != nil {
		r.Showed = fmt.Sprintf("free the ballast: %v", err)
		return r
	}
	freed := time.Now()
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
	r.Showed = fmt.Sprintf("ballast %d MiB left %d MiB free (reserve %d MiB); while full: %d SDK answers 503 (%d with Retry-After; storage_full_total +%.0f), %s; events acknowledged again %s after space returned%s",
		size>>20, free>>20, reserve>>20, wFull.Event503, wFull.Event503RetryAfter, storageFull, during(wFull), recovered.Round(100*time.Millisecond), restarted)
	r.OK = alive && free < reserve && wFull.Event503 > 0 && wFull.Event503RetryAfter == wFull.Event503 && wFull.EventErrs == 0 &&
		wFull.Redirects > 0 && wFull.TapErrs == 0 && recovered >= 0
	return r
}

// diskReserveMB is the -min-free-disk-mb the harness gives the all-in-one.
func (c *campaign) diskReserveMB() int {
	if c.cfg.Short {
		return 128
	}
	return 256
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

// matcherClock restarts the matcher with -clock-offset skew for a
// stretch, then without: it must stay up and keep counting meanwhile,
// and the totals' check wants the counts exact.
func (c *campaign) matcherClock(ctx context.Context, skew time.Duration) FaultRow {
	t0 := time.Now()
	m := c.kafka.matchers[0]
	r := c.row(MatcherClock, fmt.Sprintf("%s %+v", m.name, skew), t0)
	args := m.args
	_ = m.stop()
	m.args = append(slices.Clone(args), "-clock-offset", skew.String())
	err := m.start(ctx, 0)
	var counted int64 = -1
	alive := false
	if err == nil {
		n0, err0 := c.factEvents(ctx, c.kafka)
		sleep(ctx, max(c.cfg.Outage/4, 3*time.Second))
		n1, err1 := c.factEvents(ctx, c.kafka)
		if err0 == nil && err1 == nil {
			counted = n1 - n0
		}
		alive = m.alive()
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
	r.OK = alive && counted > 0
	r.Showed = fmt.Sprintf("matcher ran with -clock-offset %s and counted %d events meanwhile (alive: %v); %s", skew, counted, alive,
		during(c.kafka.series.window(t0, time.Now())))
	return r
}

// factEvents returns the events fact_events counts for the topology's app.
func (c *campaign) factEvents(ctx context.Context, t *topology) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, t.dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", t.name, err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(count), 0)::bigint FROM fact_events WHERE app_id = $1`, t.app.ID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count fact_events of %s: %w", t.name, err)
	}
	return n, nil
}

// overload offers redirects to one collector at five times its measured
// capacity, open loop, while slow clients attack the other: slowloris
// connections dribbling request headers and slow-body posts dribbling a
// form. Redirects must keep answering, every slow connection must be cut
// by its timeout, and the collector's goroutines must return to their
// count before.
func (c *campaign) overload(ctx context.Context) FaultRow {
	t0 := time.Now()
	target, other := c.kafka.collectors[0], c.kafka.collectors[1]
	r := c.row(Overload, target.name, t0)
	// Capacity: a short closed-loop measure with the bench's method.
	h := &loadgen.Hammer{Workers: 16, Duration: 2 * time.Second, Client: loadgen.NewClient(16)}
	taps := c.kafka.taps
	capacity := h.Run(ctx, func(worker, seq int) *http.Request {
		taps.offered.Add(1)
		return taps.request(target.url)
	}, func(resp *http.Response) bool {
		ok := resp.StatusCode == http.StatusFound
		taps.count(target.url, ok)
		return ok
	})
	h.Client.CloseIdleConnections()
	// The goroutines to come back to: counted after the capacity measure,
	// which has started whatever a collector starts once under load (its
	// bus writer's per-partition goroutines), and with its connections
	// closed.
	sleep(ctx, 500*time.Millisecond)
	before, err := scrape(ctx, target.metrics)
	if err != nil {
		r.Showed = err.Error()
		return r
	}
	// The slow clients on the other collector, meanwhile.
	addr := strings.TrimPrefix(other.url, "http://")
	form := []byte(fmt.Sprintf("secret=%s&%s", c.kafka.app.SDKSecret, strings.Repeat("x=slow&", 40)))
	var cutMu sync.Mutex
	var headerCuts, bodyCuts []time.Duration
	var slowErrs []string
	var slow sync.WaitGroup
	const slowConns = 40
	for i := range 2 * slowConns {
		slow.Go(func() {
			var d time.Duration
			var err error
			if i%2 == 0 {
				d, err = faults.SlowHeaders(ctx, addr, "/l/chaos-spring", time.Second)
			} else {
				d, err = faults.SlowBody(ctx, addr, "/"+accountName+"/event/ios-"+appName+"-open/", form, time.Second)
			}
			cutMu.Lock()
			defer cutMu.Unlock()
			if err != nil {
				slowErrs = append(slowErrs, err.Error())
				return
			}
			if i%2 == 0 {
				headerCuts = append(headerCuts, d)
			} else {
				bodyCuts = append(bodyCuts, d)
			}
		})
	}
	// Open loop at five times the capacity.
	client := loadgen.NewClient(c.cfg.OverloadInFlight)
	client.Timeout = 10 * time.Second
	ol := &loadgen.OpenLoop{Rate: 5 * capacity.Rate, Duration: c.cfg.Overload, MaxInFlight: c.cfg.OverloadInFlight}
	res := ol.Run(ctx, func(ctx context.Context) (bool, bool) { return taps.tapAt(ctx, client, target.url) })
	client.CloseIdleConnections()
	slow.Wait()
	// Goroutines settle back once idle.
	g0 := before["go_goroutines"]
	var g1 float64
	for i := 0; i < 40 && ctx.Err() == nil; i++ {
		if m, err := scrape(ctx, target.metrics); err == nil {
			g1 = m["go_goroutines"]
			if g1 <= g0+goroutineSlack {
				break
			}
		}
		sleep(ctx, 500*time.Millisecond)
	}
	headerOK := cutsWithin(headerCuts, slowConns, httpReadHeaderTimeout)
	bodyOK := cutsWithin(bodyCuts, slowConns, httpReadTimeout)
	rss := map[string]int64{}
	for _, p := range append(c.processes(), c.broker) {
		rss[p.name] = p.peakRSS() >> 10
	}
	r.For = time.Since(t0).Round(100 * time.Millisecond)
	share := float64(res.OK) / float64(max(res.Sent, 1))
	okRate := float64(res.OK) / max(res.Offered.Seconds(), 1e-9)
	alive := target.alive() && liveness(ctx, target.health) == "200"
	r.Showed = fmt.Sprintf("capacity %.0f/s, 5x offer %.0f/s for %s: %s (at most %d in flight); redirected %.1f%% of sent, %.0f%% of capacity; alive %v; "+
		"goroutines %.0f before, %.0f after; slowloris %s (-http-read-header-timeout %s); slow body %s (-http-read-timeout %s)%s; peak RSS MiB %v",
		capacity.Rate, ol.Rate, c.cfg.Overload, res, c.cfg.OverloadInFlight, 100*share, 100*okRate/max(capacity.Rate, 1), alive, g0, g1,
		cutRange(headerCuts, slowConns), httpReadHeaderTimeout, cutRange(bodyCuts, slowConns), httpReadTimeout, errSample(slowErrs), rss)
	// Past capacity an open loop's answers wait and time out; what must
	// hold is that the collector keeps redirecting at a good part of its
	// capacity (a quarter, on a machine shared with the load), stays up
	// and healthy, and gives its goroutines back.
	r.OK = res.Sent > 0 && okRate >= capacity.Rate/4 && alive && g1 <= g0+goroutineSlack && headerOK && bodyOK && len(slowErrs) == 0
	return r
}

// goroutineSlack is how many more goroutines than before the overload a
// collector may have once idle after it.
const goroutineSlack = 20

// cutsWithin reports whether all n slow connections were cut, none
// before limit (the client's clock starts before its dial, so before the
// server's; 100 ms are left for timer slack) and none later than limit
// plus 5 s (a loaded machine).
func cutsWithin(cuts []time.Duration, n int, limit time.Duration) bool {
	return len(cuts) == n && slices.Min(cuts) >= limit-100*time.Millisecond && slices.Max(cuts) <= limit+5*time.Second
}

func cutRange(cuts []time.Duration, n int) string {
	if len(cuts) == 0 {
		return fmt.Sprintf("0 of %d connections cut", n)
	}
	return fmt.Sprintf("%d of %d connections cut after %s..%s", len(cuts), n,
		slices.Min(cuts).Round(100*time.Millisecond), slices.Max(cuts).Round(100*time.Millisecond))
}

func errSample(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d slow clients failed, e.g. %s", len(errs), errs[0])
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
