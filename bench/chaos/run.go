package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/loadgen"
	"tapline/pebble"
)

// Result is what a campaign found; Run prints it and WriteJSON saves it.
type Result struct {
	Seed     uint64           `json:"seed"`
	Short    bool             `json:"short"`
	Start    time.Time        `json:"start"`
	Elapsed  time.Duration    `json:"elapsed_ns"`
	Faults   []FaultRow       `json:"faults"`
	Totals   []Totals         `json:"totals"`
	PeakRSS  map[string]int64 `json:"peak_rss_kib"`
	Failures []string         `json:"failures"`
	Verdict  string           `json:"verdict"` // PASS or FAIL
}

// Totals compares one topology's fact tables and stored conversions with
// the truth of its acknowledged requests.
type Totals struct {
	Topology        string `json:"topology"`
	EventsOffered   int64  `json:"events_offered"`
	EventsAcked     int64  `json:"events_acknowledged"`
	EventsRejected  int64  `json:"events_rejected"`
	EventsCounted   int64  `json:"events_counted"`
	Resends         int64  `json:"resends"`
	Installs        int64  `json:"installs_acknowledged"`
	InstallsCounted int64  `json:"installs_counted"`
	Conversions     int64  `json:"conversions_stored"`
	ConvInstalls    int64  `json:"conversions_distinct_installs"`
	Revenue         int64  `json:"revenue_micros_acknowledged"`
	RevenueCounted  int64  `json:"revenue_micros_counted"`
	HitsOffered     int64  `json:"hits_offered"`
	Redirected      int64  `json:"hits_redirected"`
	HitsCounted     int64  `json:"hits_counted"`
	HitsDropped     int64  `json:"hits_dropped_and_counted"`
	KillLossBound   int64  `json:"hits_kill_loss_bound"`
	// HitStore names the raw store whose hits were read after the
	// processes stopped; HitsStored, HitIDs and HitTaps are its hit rows,
	// their distinct hit ids and their distinct tap numbers (lg_tap).
	// fact_hits must count exactly HitIDs hits: none twice, none stored
	// and left out.
	HitStore   string `json:"hit_store"`
	HitsStored int64  `json:"hits_stored"`
	HitIDs     int64  `json:"hit_ids_distinct"`
	HitTaps    int64  `json:"hit_taps_distinct"`
	// Unexplained is redirected - counted - dropped: the hits neither
	// counted nor dropped-and-counted; at most KillLossBound, which is 0
	// when no collector of the topology was killed. It may be negative by
	// at most the failed taps (offered - redirected): a tap whose answer
	// was lost may still have been counted.
	Unexplained int64 `json:"hits_unexplained"`
	// DrainRate is how fast the events were counted after the load when
	// they were not all counted at once, per second.
	DrainRate  float64  `json:"drain_rate,omitempty"`
	Mismatches []string `json:"mismatches,omitempty"`
	OK         bool     `json:"ok"`
}

func (c *campaign) run(ctx context.Context) (*Result, error) {
	c.start = time.Now()
	res := &Result{Seed: c.cfg.Seed, Short: c.cfg.Short, Start: c.start.UTC(), PeakRSS: map[string]int64{}}
	w, err := loadgen.Generate(loadgen.NewConfig(c.cfg.Seed, 3000))
	if err != nil {
		return nil, fmt.Errorf("generate devices: %w", err)
	}
	var devices []*loadgen.Device
	var ips []string
	for _, in := range w.Installs {
		devices = append(devices, w.Devices[in.Device])
		ips = append(ips, in.IP)
	}
	share := map[*topology]int64{c.kafka: c.cfg.Events * 7 / 10, c.solo: c.cfg.Events - c.cfg.Events*7/10}
	for _, t := range []*topology{c.kafka, c.solo} {
		t.series.start = c.start
		t.ev = &eventDriver{topo: t, seed: c.cfg.Seed, devices: devices, ips: ips, client: loadgen.NewClient(16), series: t.series,
			Limit: share[t], Workers: 12, FormShare: 0.05, want: newTruth(),
			Rate: float64(share[t]) / (0.85 * c.cfg.Duration.Seconds())}
		t.taps = &tapDriver{topo: t, w: w, client: loadgen.NewClient(16), series: t.series, Rate: c.cfg.TapRate, perURL: map[string]int64{}}
		for _, p := range t.collectors {
			c.incarnation(t, p)
		}
	}
	// The load runs until stop, resends until the hard deadline.
	hard, cancelHard := context.WithTimeout(ctx, c.cfg.Duration+c.cfg.Drain)
	defer cancelHard()
	stop := make(chan struct{})
	var load sync.WaitGroup
	for _, t := range []*topology{c.kafka, c.solo} {
		t.ev.faulting.Store(true)
		load.Go(func() { t.ev.run(hard, stop) })
		load.Go(func() { t.taps.run(hard, stop) })
	}
	scrapeDone := make(chan struct{})
	var scraper sync.WaitGroup
	scraper.Go(func() { c.watch(ctx, scrapeDone) })

	sleep(ctx, 2*c.cfg.Gap)
	for _, f := range c.schedule() {
		if ctx.Err() != nil {
			break
		}
		c.log.Info("chaos: fault", "kind", f.kind, "target", f.target, "at", time.Since(c.start).Round(time.Second))
		row := f.run(ctx)
		c.log.Info("chaos: fault done", "kind", row.Kind, "ok", row.OK, "showed", row.Showed)
		c.faults = append(c.faults, row)
		sleep(ctx, c.cfg.Gap)
	}
	c.kafka.ev.faulting.Store(false)
	c.solo.ev.faulting.Store(false)
	for ctx.Err() == nil && time.Since(c.start) < c.cfg.Duration &&
		(c.kafka.ev.offered.Load() < c.kafka.ev.Limit || c.solo.ev.offered.Load() < c.solo.ev.Limit) {
		sleep(ctx, time.Second)
	}
	close(stop)
	load.Wait()
	c.log.Info("chaos: load done; waiting for the facts", "elapsed", time.Since(c.start).Round(time.Second))
	// Both topologies drain at once.
	res.Totals = make([]Totals, 2)
	var verifying sync.WaitGroup
	for i, t := range []*topology{c.kafka, c.solo} {
		verifying.Go(func() { res.Totals[i] = c.verify(ctx, t) })
	}
	verifying.Wait()
	for i, t := range []*topology{c.kafka, c.solo} {
		c.checkHitIDs(ctx, t, &res.Totals[i])
	}
	close(scrapeDone)
	scraper.Wait()
	for _, p := range append(c.processes(), c.broker) {
		res.PeakRSS[p.name] = p.peakRSS()
	}
	res.Faults = c.faults
	for _, f := range c.faults {
		if !f.OK && !f.Known {
			res.Failures = append(res.Failures, fmt.Sprintf("fault %s on %s at %s: %s", f.Kind, f.Target, f.At, f.Showed))
		}
	}
	for _, t := range res.Totals {
		for _, m := range t.Mismatches {
			res.Failures = append(res.Failures, t.Topology+": "+m)
		}
	}
	res.Verdict = "PASS"
	if len(res.Failures) > 0 {
		res.Verdict = "FAIL"
	}
	res.Elapsed = time.Since(c.start)
	res.Print(c.out)
	return res, nil
}

// watch scrapes the collectors every second: the spool depth's peak and
// the processes' peak memory.
func (c *campaign) watch(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var depth int64
		for _, p := range append(slices.Clone(c.kafka.collectors), c.solo.collectors...) {
			if !p.alive() {
				continue
			}
			m, err := scrape(ctx, p.metrics)
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.lastScrape[p] = m
			c.mu.Unlock()
			depth += int64(m["tapline_collector_spooled_messages"])
		}
		for {
			old := c.kafka.spoolPeak.Load()
			if depth <= old || c.kafka.spoolPeak.CompareAndSwap(old, depth) {
				break
			}
		}
		for _, p := range c.processes() {
			p.notePeak()
		}
	}
}

// verify waits for the topology's facts to catch up and compares them
// with the truth.
func (c *campaign) verify(ctx context.Context, t *topology) Totals {
	tot := Totals{Topology: t.name, EventsOffered: t.ev.offered.Load(), EventsAcked: t.ev.acked.Load(),
		EventsRejected: t.ev.rejected.Load(), Resends: t.ev.resends.Load(),
		HitsOffered: t.taps.offered.Load(), Redirected: t.taps.redirected.Load()}
	bad := func(format string, args ...any) {
		tot.Mismatches = append(tot.Mismatches, fmt.Sprintf(format, args...))
	}
	if n := tot.EventsOffered - tot.EventsAcked - tot.EventsRejected; n != 0 {
		bad("%d offered events never acknowledged", n)
	}
	if tot.EventsRejected > 0 {
		bad("%d events rejected, e.g. %v", tot.EventsRejected, t.ev.rejects)
	}
	// Final hit figures of the running collectors.
	t.ledger.mu.Lock()
	dropped, lost := t.ledger.dropped, t.ledger.lostBound
	t.ledger.mu.Unlock()
	for _, p := range t.collectors {
		if m, err := scrape(ctx, p.metrics); err == nil {
			dropped += int64(m["tapline_collector_hits_dropped_total"])
		} else {
			bad("scrape %s: %v", p.name, err)
		}
	}
	tot.HitsDropped, tot.KillLossBound = dropped, lost
	var want int64
	for _, n := range t.ev.want.Events {
		want += n
	}
	conn, err := c.connect(ctx, t)
	if err != nil {
		bad("%v", err)
		return tot
	}
	defer conn.Close(context.Background())
	sum := func(q string) int64 {
		var n int64
		if err := conn.QueryRow(ctx, q, t.app.ID).Scan(&n); err != nil {
			bad("%s: %v", q, err)
		}
		return n
	}
	// Wait until the events are all counted, then until the hits stop
	// moving.
	// The matcher may lag far behind the collectors' acknowledgements: wait
	// up to Drain, and while the count still moves.
	deadline := time.Now().Add(c.cfg.Drain)
	last, moved, prevCount := time.Now(), time.Now(), int64(-1)
	began, first := time.Now(), int64(-1)
	for {
		tot.EventsCounted = sum(`SELECT coalesce(sum(count), 0)::bigint FROM fact_events WHERE app_id = $1`)
		if first < 0 {
			first = tot.EventsCounted
		}
		if tot.EventsCounted != prevCount {
			prevCount, moved = tot.EventsCounted, time.Now()
		}
		if tot.EventsCounted >= want || time.Now().After(deadline) || time.Since(moved) > time.Minute || ctx.Err() != nil {
			break
		}
		if time.Since(last) > 10*time.Second {
			c.log.Info("chaos: waiting for facts", "topology", t.name, "counted", tot.EventsCounted, "want", want)
			last = time.Now()
		}
		sleep(ctx, 500*time.Millisecond)
	}
	if d := time.Since(began); tot.EventsCounted < want && d > 0 {
		tot.DrainRate = float64(tot.EventsCounted-first) / d.Seconds()
		if time.Since(moved) < 10*time.Second {
			bad("not drained: %d of %d acknowledged events counted %s after the load, still rising at %.0f/s (the matcher lags; no loss shown)",
				tot.EventsCounted, want, d.Round(time.Second), tot.DrainRate)
		}
	}
	// The hits: until every redirect not dropped or lost to a kill is
	// counted, or the count has not moved for 15 s.
	prev, since := int64(-1), time.Now()
	for time.Now().Before(deadline.Add(time.Minute)) && ctx.Err() == nil {
		tot.HitsCounted = sum(`SELECT coalesce(sum(count), 0)::bigint FROM fact_hits WHERE app_id = $1`)
		if tot.HitsCounted >= tot.Redirected-tot.HitsDropped-tot.KillLossBound {
			sleep(ctx, 2*time.Second) // anything counted twice shows up meanwhile
			tot.HitsCounted = sum(`SELECT coalesce(sum(count), 0)::bigint FROM fact_hits WHERE app_id = $1`)
			break
		}
		if tot.HitsCounted != prev {
			prev, since = tot.HitsCounted, time.Now()
		} else if time.Since(since) > 15*time.Second {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	tot.EventsCounted = sum(`SELECT coalesce(sum(count), 0)::bigint FROM fact_events WHERE app_id = $1`)
	if tot.EventsCounted != want {
		bad("fact_events counts %d events, %d acknowledged", tot.EventsCounted, want)
	}
	// Per day and event name.
	got := map[string]int64{}
	rows, err := conn.Query(ctx, `SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' ' || event_name, sum(count)::bigint
		FROM fact_events WHERE app_id = $1 GROUP BY 1`, t.app.ID)
	if err == nil {
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err == nil {
				got[k] = n
			}
		}
		rows.Close()
	}
	compare(bad, "fact_events", got, t.ev.want.Events)
	got = map[string]int64{}
	rows, err = conn.Query(ctx, `SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD'), sum(count)::bigint
		FROM fact_installs WHERE app_id = $1 GROUP BY 1`, t.app.ID)
	if err == nil {
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err == nil {
				got[k] = n
				tot.InstallsCounted += n
			}
		}
		rows.Close()
	}
	compare(bad, "fact_installs", got, t.ev.want.Installs)
	for _, n := range t.ev.want.Installs {
		tot.Installs += n
	}
	gotN, gotSum := map[string]int64{}, map[string]int64{}
	rows, err = conn.Query(ctx, `SELECT currency, sum(count)::bigint, sum(sum)::bigint FROM fact_revenue WHERE app_id = $1 GROUP BY 1`, t.app.ID)
	if err == nil {
		for rows.Next() {
			var k string
			var n, s int64
			if err := rows.Scan(&k, &n, &s); err == nil {
				gotN[k], gotSum[k] = n, s
				tot.RevenueCounted += s
			}
		}
		rows.Close()
	}
	compare(bad, "fact_revenue purchases", gotN, t.ev.want.Purchases)
	compare(bad, "fact_revenue micros", gotSum, t.ev.want.Revenue)
	for _, s := range t.ev.want.Revenue {
		tot.Revenue += s
	}
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT install_id) FROM conversions WHERE app_id = $1`, t.app.ID).
		Scan(&tot.Conversions, &tot.ConvInstalls); err != nil {
		bad("conversions: %v", err)
	}
	if tot.Conversions != tot.Installs || tot.ConvInstalls != tot.Installs {
		bad("%d conversions stored for %d distinct installs; %d installs acknowledged", tot.Conversions, tot.ConvInstalls, tot.Installs)
	}
	if n := sum(`SELECT coalesce(sum(count), 0)::bigint FROM fact_reinstalls WHERE app_id = $1`); n != 0 {
		bad("fact_reinstalls counts %d reinstalls; every installation is new", n)
	}
	tot.Unexplained = tot.Redirected - tot.HitsCounted - tot.HitsDropped
	// A tap whose answer the client never got (its collector killed
	// after it queued the hit, a timeout under overload) may still count:
	// counted can pass redirected by at most the failed taps, never
	// offered, since no tap is sent twice.
	failed := tot.HitsOffered - tot.Redirected
	if tot.HitsCounted > tot.HitsOffered {
		bad("%d hits counted, only %d offered: counted twice", tot.HitsCounted, tot.HitsOffered)
	}
	if tot.Unexplained < -failed || tot.Unexplained > tot.KillLossBound {
		bad("%d redirected hits neither counted nor dropped; the kills can explain at most %d (and %d failed taps a negative figure)", tot.Unexplained, tot.KillLossBound, failed)
	}
	tot.OK = len(tot.Mismatches) == 0
	return tot
}

// checkHitIDs stops the processes that own the topology's embedded raw
// store, reads every hit it holds and compares the distinct hit ids with
// what fact_hits counted. With Cassandra the check is left out (noted).
func (c *campaign) checkHitIDs(ctx context.Context, t *topology, tot *Totals) {
	bad := func(format string, args ...any) {
		tot.Mismatches = append(tot.Mismatches, fmt.Sprintf(format, args...))
		tot.OK = false
	}
	if t == c.kafka && c.cfg.CassandraHosts != "" {
		tot.HitStore = "cassandra (not read)"
		return
	}
	var dirs []string
	owners := t.matchers
	for _, p := range owners {
		dirs = append(dirs, filepath.Join(c.workDir, p.name, "raw"))
	}
	if t == c.solo {
		dirs = []string{filepath.Join(c.soloDir, "data", "raw")}
	}
	for _, p := range owners {
		p.notePeak()
		if err := p.stop(); err != nil {
			bad("stop %s to read its raw store: %v", p.name, err)
			return
		}
	}
	ids, taps := map[string]bool{}, map[string]bool{}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(c.workDir, dir)
		tot.HitStore = strings.TrimSpace(tot.HitStore + " " + rel)
		s := pebble.NewRawStore(dir)
		s.Logger = slog.New(slog.DiscardHandler)
		if err := s.Open(); err != nil {
			bad("open raw store %s: %v", dir, err)
			return
		}
		err := s.ScanHitRows(ctx, t.app.ID, c.start.Add(-48*time.Hour), time.Now().Add(48*time.Hour), tapline.RowPos{}, func(h *tapline.Hit) error {
			tot.HitsStored++
			ids[h.ID] = true
			taps[h.Params[loadgen.TapParam]] = true
			return nil
		})
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			bad("read the hits of %s: %v", dir, err)
			return
		}
	}
	tot.HitIDs, tot.HitTaps = int64(len(ids)), int64(len(taps))
	if tot.HitsStored != tot.HitIDs {
		bad("raw store holds %d hit rows for %d distinct hit ids", tot.HitsStored, tot.HitIDs)
	}
	if tot.HitTaps != tot.HitIDs {
		bad("raw store holds %d distinct hit ids for %d distinct taps (lg_tap): a tap stored twice", tot.HitIDs, tot.HitTaps)
	}
	if tot.HitsCounted != tot.HitIDs {
		bad("fact_hits counts %d hits, the raw store holds %d distinct hit ids", tot.HitsCounted, tot.HitIDs)
	}
}

func compare(bad func(string, ...any), what string, got, want map[string]int64) {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var ks []string
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	n := 0
	for _, k := range ks {
		if got[k] != want[k] {
			if n < 8 {
				bad("%s[%s]: counted %d, acknowledged %d", what, k, got[k], want[k])
			}
			n++
		}
	}
	if n > 8 {
		bad("%s: %d more keys differ", what, n-8)
	}
}

// connect opens a connection to the topology's database, retrying while
// PostgreSQL comes back from a fault.
func (c *campaign) connect(ctx context.Context, t *topology) (*pgx.Conn, error) {
	var err error
	for range 60 {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, t.dbURL); err == nil {
			return conn, nil
		}
		sleep(ctx, time.Second)
	}
	return nil, fmt.Errorf("connect to %s: %w", t.name, err)
}

// Print writes the fault table, the totals and the verdict.
func (r *Result) Print(out io.Writer) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "FAULT\tTARGET\tAT\tFOR\tOK\tWHAT IT SHOWED\n")
	for _, f := range r.Faults {
		ok := "yes"
		switch {
		case !f.OK && f.Known:
			ok = "known"
		case !f.OK:
			ok = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Target, f.At, f.For, ok, f.Showed)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "TOPOLOGY\tEV OFFERED\tEV ACKED\tEV REJECTED\tEV COUNTED\tRESENDS\tINSTALLS\tCONVERSIONS\tHITS OFFERED\tREDIRECTED\tCOUNTED\tDROPPED+COUNTED\tKILL LOSS <=\tUNEXPLAINED\tOK\t\n")
	var acked int64
	for _, t := range r.Totals {
		acked += t.EventsAcked
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t\n", t.Topology, t.EventsOffered, t.EventsAcked,
			t.EventsRejected, t.EventsCounted, t.Resends, t.InstallsCounted, t.Installs, t.Conversions, t.HitsOffered, t.Redirected,
			t.HitsCounted, t.HitsDropped, t.KillLossBound, t.Unexplained, t.OK)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, t := range r.Totals {
		fmt.Fprintf(out, "%s: raw store %s holds %d hit rows, %d distinct hit ids, %d distinct taps; fact_hits counts %d\n",
			t.Topology, t.HitStore, t.HitsStored, t.HitIDs, t.HitTaps, t.HitsCounted)
	}
	var names []string
	for n := range r.PeakRSS {
		names = append(names, n)
	}
	slices.Sort(names)
	var rss []string
	for _, n := range names {
		rss = append(rss, fmt.Sprintf("%s %d MiB", n, r.PeakRSS[n]>>10))
	}
	fmt.Fprintf(out, "\n%d faults, %d events acknowledged in %s; peak RSS: %s\n", len(r.Faults), acked, r.Elapsed.Round(time.Second), strings.Join(rss, ", "))
	for _, f := range r.Failures {
		fmt.Fprintf(out, "FAILURE: %s\n", f)
	}
	fmt.Fprintf(out, "VERDICT %s\n", r.Verdict)
}

// WriteJSON writes the result to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
