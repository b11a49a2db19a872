package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"tapline"
	"tapline/loadgen"
)

// Results is everything a run measured; it is written as JSON.
type Results struct {
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Config  Config    `json:"config"`

	Redirect []RedirectRow       `json:"redirect"`
	Ingest   []IngestRow         `json:"ingest"`
	Matcher  MatcherRow          `json:"matcher"`
	Replay   *loadgen.PlayResult `json:"accuracy_replay,omitempty"`
	Accuracy []AccuracyRow       `json:"accuracy"`
	Curves   []Curve             `json:"accuracy_curves,omitempty"`
	// AccuracyCheck is the deterministic replay compared with the
	// baseline file (check.go).
	AccuracyCheck *AccuracyCheck     `json:"accuracy_check,omitempty"`
	Throughput    []ThroughputRow    `json:"throughput"`
	Funnel        *FunnelResult      `json:"funnel,omitempty"`
	Dashboard     *DashboardResult   `json:"dashboard,omitempty"`
	Peaks         []RSS              `json:"peak_rss"`
	Ratios        map[string]float64 `json:"ratios"`
	Errors        []string           `json:"errors,omitempty"`
	// FunnelMismatch is set when tapline, PostgreSQL and DuckDB counted
	// the funnel differently: bin/bench then exits non-zero.
	FunnelMismatch bool `json:"funnel_mismatch,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// RedirectRow is one target of the redirect scenario.
type RedirectRow struct {
	Target  string          `json:"target"`
	Summary loadgen.Summary `json:"summary"`
	// CPUPerRequest is the target's CPU time (user and system, all its
	// processes, background work included) over the run divided by the
	// redirects answered.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns,omitempty"`
	Dropped       int64         `json:"hits_dropped,omitempty"`
	Unavailable   string        `json:"unavailable,omitempty"`
}

// IngestRow is one protocol of the SDK ingest scenario.
type IngestRow struct {
	Target           string  `json:"target"`
	Protocol         string  `json:"protocol"`
	EventsPerRequest int     `json:"events_per_request"`
	EventsPerSec     float64 `json:"events_per_second"`
	// CPUPerEvent is the target's CPU time over the run divided by the
	// events accepted.
	CPUPerEvent time.Duration   `json:"cpu_per_event_ns,omitempty"`
	Summary     loadgen.Summary `json:"summary"`
}

// MatcherRow holds the matcher's drain rate and end-to-end latency.
type MatcherRow struct {
	DrainMessages int     `json:"drain_messages"`
	DrainSeconds  float64 `json:"drain_seconds"`
	DrainPerSec   float64 `json:"drain_per_second"`
	// NullMessages, NullPerSec and NullCPUPerMessage: the same bus read
	// and decoded by a consumer that does nothing else, in the bench
	// process (the drain's floor).
	NullMessages      int           `json:"null_consumer_messages,omitempty"`
	NullPerSec        float64       `json:"null_consumer_per_second,omitempty"`
	NullCPUPerMessage time.Duration `json:"null_consumer_cpu_per_message_ns,omitempty"`
	// DrainCPUPerMessage is tapline's CPU time over the drain divided by
	// the messages drained.
	DrainCPUPerMessage time.Duration `json:"drain_cpu_per_message_ns,omitempty"`
	Probes             int           `json:"probes"`
	E2EP50             time.Duration `json:"tap_to_facts_p50_ns"`
	E2EP99             time.Duration `json:"tap_to_facts_p99_ns"`
	// The same drain with LiveFunnels live funnels.
	LiveFunnels       int           `json:"live_funnels,omitempty"`
	LiveDrainMessages int           `json:"live_funnels_drain_messages,omitempty"`
	LiveDrainSeconds  float64       `json:"live_funnels_drain_seconds,omitempty"`
	LiveDrainPerSec   float64       `json:"live_funnels_drain_per_second,omitempty"`
	LiveDrainCPU      time.Duration `json:"live_funnels_drain_cpu_per_message_ns,omitempty"`
}

// AccuracyRow scores one attribution method on one population.
type AccuracyRow struct {
	Population string           `json:"population"`
	Method     string           `json:"method"`
	Threshold  float64          `json:"fingerprint_min_score,omitempty"` // tapline's, in force
	Accuracy   loadgen.Accuracy `json:"accuracy"`
}

// Curve is tapline's precision and recall over the fingerprint threshold
// on one population.
type Curve struct {
	Population string               `json:"population"`
	Points     []loadgen.CurvePoint `json:"points"`
}

// ThroughputRow is one replay of the throughput workload.
type ThroughputRow struct {
	Target  string  `json:"target"`
	Scale   int     `json:"scale"`
	Actions int     `json:"actions"`
	Seconds float64 `json:"seconds"` // until the facts are complete
	// AcceptSeconds is how long the replay itself took (tapline answers
	// before matching; the baseline matches inside the request).
	AcceptSeconds float64 `json:"accept_seconds,omitempty"`
	PerSec        float64 `json:"actions_per_second"`
	PeakKB        int64   `json:"peak_rss_kb"`
}

// RSS is the peak resident memory of one process.
type RSS struct {
	Process string `json:"process"`
	PeakKB  int64  `json:"peak_rss_kb"`
}

// MarshalJSON leaves the starter functions out of the config.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain struct {
		Seed        uint64   `json:"seed"`
		Workers     int      `json:"workers"`
		HammerFor   string   `json:"hammer_for"`
		Accuracy    int      `json:"accuracy_devices"`
		Compression float64  `json:"compression"`
		Period      string   `json:"period"`
		GrowthBase  int      `json:"growth_base_devices"`
		Growth      []int    `json:"growth"`
		Baseline    []int    `json:"baseline"`
		Drain       int      `json:"drain_devices"`
		LiveFunnels int      `json:"live_funnels"`
		FunnelRows  int      `json:"funnel_rows"`
		FunnelGrow  int      `json:"funnel_growth"`
		DashLinks   int      `json:"dashboard_links"`
		DashDays    int      `json:"dashboard_days"`
		Only        []string `json:"only,omitempty"`
		Nginx       string   `json:"nginx"`
	}
	return json.Marshal(plain{c.Seed, c.Workers, c.HammerFor.String(), c.Accuracy, c.Compression, c.Period.String(),
		c.GrowthBase, c.Growth, c.Baseline, c.Drain, c.LiveFunnels, c.FunnelRows, c.FunnelGrowth, c.DashboardLinks, c.DashboardDays, c.Only, c.NginxBin})
}

func (r *Results) finish() {
	r.Ratios = map[string]float64{}
	rate := func(target string) float64 {
		for _, row := range r.Redirect {
			if row.Target == target && row.Unavailable == "" {
				return row.Summary.Rate
			}
		}
		return 0
	}
	if t, n := rate("tapline"), rate(NginxTarget); t > 0 && n > 0 {
		r.Ratios["redirect_tapline_over_nginx"] = t / n
	}
	if g, n := rate(Go302Target), rate(NginxTarget); g > 0 && n > 0 {
		r.Ratios["redirect_go302_over_nginx"] = g / n
	}
	if t, g := rate("tapline"), rate(Go302Target); t > 0 && g > 0 {
		r.Ratios["redirect_tapline_over_go302"] = t / g
	}
	if c, n := rate(CollectorTarget), rate(NginxTarget); c > 0 && n > 0 {
		r.Ratios["redirect_collector_over_nginx"] = c / n
	}
	form := func(target string) float64 {
		for _, row := range r.Ingest {
			if row.Target == target && row.Protocol == "tapstream form" {
				return row.EventsPerSec
			}
		}
		return 0
	}
	if t, n := form("tapline"), rate(NginxTarget); t > 0 && n > 0 {
		r.Ratios["ingest_form_tapline_over_nginx"] = t / n
	}
	if c, n := form(CollectorTarget), rate(NginxTarget); c > 0 && n > 0 {
		r.Ratios["ingest_form_collector_over_nginx"] = c / n
	}
	for _, a := range r.Throughput {
		if a.Target != "tapline" {
			continue
		}
		for _, b := range r.Throughput {
			if b.Target == "tapstream1" && b.Scale == a.Scale && b.PerSec > 0 {
				r.Ratios[fmt.Sprintf("throughput_tapline_over_tapstream1_%dx", a.Scale)] = a.PerSec / b.PerSec
			}
		}
	}
	if m := r.Matcher; m.NullPerSec > 0 && m.DrainPerSec > 0 {
		r.Ratios["drain_over_null_consumer"] = m.DrainPerSec / m.NullPerSec
	}
	if m := r.Matcher; m.LiveDrainPerSec > 0 && m.DrainPerSec > 0 {
		r.Ratios["drain_live_funnels_over_none"] = m.LiveDrainPerSec / m.DrainPerSec
	}
	if f := r.Funnel; f != nil && len(f.Tapline) > 0 {
		t := f.Tapline[len(f.Tapline)-1].Seconds
		if q := f.Postgres.QuerySeconds; q > 0 {
			r.Ratios["funnel_tapline_over_postgres"] = q / t
		}
		if q := f.DuckDB.QuerySeconds; q > 0 {
			r.Ratios["funnel_tapline_over_duckdb_query"] = q / t
			r.Ratios["funnel_tapline_over_duckdb_load_and_query"] = (q + f.DuckDB.LoadSeconds) / t
		}
	}
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// WriteTable prints the results as one plain-text table.
func (r *Results) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "tapline benchmark %s on %s, %d cores, %d MB, Linux %s, %s\n\n", r.Time.Format(time.RFC3339),
		r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMB, r.Machine.Kernel, r.Machine.Go)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	if len(r.Redirect) > 0 {
		p("REDIRECT GET /l/{slug}\trequests/s\tp50\tp99\tnote")
	}
	for _, row := range r.Redirect {
		if row.Unavailable != "" {
			p("  %s\t-\t-\t-\t%s", row.Target, row.Unavailable)
			continue
		}
		note := fmt.Sprintf("%d errors", row.Summary.Errors)
		if row.Dropped > 0 {
			note += fmt.Sprintf(", %d hits dropped", row.Dropped)
		}
		if row.CPUPerRequest > 0 {
			note += ", " + cpuMicros(row.CPUPerRequest) + " CPU/request"
		}
		p("  %s\t%.0f\t%s\t%s\t%s", row.Target, row.Summary.Rate, ms(row.Summary.P50), ms(row.Summary.P99), note)
	}
	if v, ok := r.Ratios["redirect_tapline_over_nginx"]; ok {
		p("  tapline / nginx\t%.2fx\t\t\ttarget >= 0.6x: %s", v, metOrMissed(v >= 0.6))
	}
	if v, ok := r.Ratios["redirect_go302_over_nginx"]; ok {
		p("  bare Go / nginx\t%.2fx\t\t\tthe floor of a redirect served by Go", v)
	}
	if v, ok := r.Ratios["redirect_tapline_over_go302"]; ok {
		p("  tapline / bare Go\t%.2fx\t\t\t", v)
	}
	if v, ok := r.Ratios["redirect_collector_over_nginx"]; ok {
		p("  collector alone / nginx\t%.2fx\t\t\tthe redirect without matching; tapline / collector alone is what matching on the same cores costs", v)
	}
	if len(r.Ingest) > 0 {
		p("SDK INGEST (durable)\tevents/s\tp50\tp99\trequests/s, CPU/event")
	}
	for _, row := range r.Ingest {
		cpu := ""
		if row.CPUPerEvent > 0 {
			cpu = ", " + cpuMicros(row.CPUPerEvent)
		}
		p("  %s %s\t%.0f\t%s\t%s\t%.0f%s", row.Target, row.Protocol, row.EventsPerSec, ms(row.Summary.P50), ms(row.Summary.P99), row.Summary.Rate, cpu)
	}
	if v, ok := r.Ratios["ingest_form_tapline_over_nginx"]; ok {
		p("  tapline form / nginx redirect\t%.2fx\t\t\ttarget >= 0.4x: %s", v, metOrMissed(v >= 0.4))
	}
	if v, ok := r.Ratios["ingest_form_collector_over_nginx"]; ok {
		p("  collector alone form / nginx redirect\t%.2fx\t\t\tthe event without matching", v)
	}
	if r.Matcher.DrainMessages > 0 || r.Matcher.Probes > 0 {
		p("MATCHER\t\t\t\t")
	}
	if r.Matcher.NullMessages > 0 {
		p("  null consumer (read, decode)\t%.0f msg/s\t%d messages\t\t%s CPU/message", r.Matcher.NullPerSec, r.Matcher.NullMessages, cpuMicros(r.Matcher.NullCPUPerMessage))
	}
	if r.Matcher.DrainMessages > 0 {
		null := ""
		if x := r.Ratios["drain_over_null_consumer"]; x > 0 {
			null = fmt.Sprintf(", %.2fx the null consumer (target >= 0.3x: %s)", x, metOrMissed(x >= 0.3))
		}
		p("  drain pre-filled bus\t%.0f msg/s\t%d messages\t%.1f s\t%s CPU/message%s", r.Matcher.DrainPerSec, r.Matcher.DrainMessages, r.Matcher.DrainSeconds,
			cpuMicros(r.Matcher.DrainCPUPerMessage), null)
	}
	if r.Matcher.LiveDrainMessages > 0 {
		p("  drain with %d live funnels\t%.0f msg/s\t%d messages\t%.1f s\t%.2fx of none, %s CPU/message", r.Matcher.LiveFunnels, r.Matcher.LiveDrainPerSec,
			r.Matcher.LiveDrainMessages, r.Matcher.LiveDrainSeconds, r.Ratios["drain_live_funnels_over_none"], cpuMicros(r.Matcher.LiveDrainCPU))
	}
	if r.Matcher.Probes > 0 {
		p("  tap to conversion in facts\tp50 %s\tp99 %s\t%d probes\t", ms(r.Matcher.E2EP50), ms(r.Matcher.E2EP99), r.Matcher.Probes)
	}
	r.writeAccuracy(p)
	if len(r.Throughput) > 0 {
		p("THROUGHPUT (replay until facts complete)\tactions/s\tseconds\tactions\tpeak RSS, answered/s")
	}
	for _, t := range r.Throughput {
		accepted := ""
		if t.AcceptSeconds > 0 {
			accepted = fmt.Sprintf(", %.0f/s", float64(t.Actions)/t.AcceptSeconds)
		}
		p("  %s %dx\t%.0f\t%.1f\t%d\t%d MB%s", t.Target, t.Scale, t.PerSec, t.Seconds, t.Actions, t.PeakKB/1024, accepted)
	}
	for _, k := range sortedKeys(r.Ratios) {
		if strings.HasPrefix(k, "throughput_") {
			p("  %s\t%.2fx\t\t\t", strings.TrimPrefix(k, "throughput_"), r.Ratios[k])
		}
	}
	r.writeFunnel(p)
	if d := r.Dashboard; d != nil && len(d.Rows) > 0 {
		p("DASHBOARD (%s links, %d days, %s fact rows)\tp50\tp99\tmax\ttarget p99 < %d ms", formatThousands(d.Links), d.Days, formatThousands(d.FactRows), DashboardTarget.Milliseconds())
		for _, row := range d.Rows {
			verdict := "met"
			if row.P99Ms >= float64(DashboardTarget.Milliseconds()) {
				verdict = "MISSED"
			}
			p("  %s\t%.1f ms\t%.1f ms\t%.1f ms\t%s (%d requests, %d KB)", row.Name, row.P50Ms, row.P99Ms, row.MaxMs, verdict, row.Requests, row.Bytes/1024)
		}
	}
	p("PEAK RSS\t\t\t\t")
	for _, x := range r.Peaks {
		p("  %s\t%d MB\t\t\t", x.Process, x.PeakKB/1024)
	}
	for _, e := range r.Errors {
		p("ERROR\t%s\t\t\t", e)
	}
	tw.Flush()
}

// writeFunnel prints the FUNNEL rows.
func (r *Results) writeFunnel(p func(format string, args ...any)) {
	f := r.Funnel
	if f == nil || len(f.Tapline) == 0 {
		return
	}
	d := f.Data
	p("FUNNEL BACKFILL (5 steps, exclusion, by link)\traw rows/s\tseconds\traw rows\tpeak RSS, CPU per raw row")
	for _, t := range f.Tapline {
		p("  %s %dx\t%.0f\t%.1f\t%d\t%d MB, %.1f µs", t.Via, t.Scale, t.PerSec, t.Seconds, t.RawRows, t.PeakKB/1024, cpuPerRow(t.CPUSeconds, t.RawRows))
	}
	pg, dk := f.Postgres, f.DuckDB
	if pg.QuerySeconds > 0 {
		p("  postgresql window query\t%.0f\t%.1f\t%d\tload %.1f s, %.1f µs", pg.PerSec, pg.QuerySeconds, pg.RawRows, pg.LoadSeconds, cpuPerRow(pg.CPUSeconds, pg.RawRows))
	}
	if dk.QuerySeconds > 0 {
		p("  duckdb query\t%.0f\t%.1f\t%d\t%.1f µs", dk.PerSec, dk.QuerySeconds, dk.RawRows, cpuPerRow(dk.CPUSeconds, dk.RawRows))
		p("  duckdb load + query\t%.0f\t%.1f\t%d\t", float64(dk.RawRows)/(dk.LoadSeconds+dk.QuerySeconds), dk.LoadSeconds+dk.QuerySeconds, dk.RawRows)
	}
	for _, k := range []struct{ key, label, target string }{
		{"funnel_tapline_over_postgres", "tapline / postgresql", "target >= 2x"},
		{"funnel_tapline_over_duckdb_query", "tapline / duckdb query", "target >= 0.3x"},
		{"funnel_tapline_over_duckdb_load_and_query", "tapline / duckdb load + query", ""},
	} {
		if v, ok := r.Ratios[k.key]; ok {
			verdict := ""
			if k.target != "" {
				verdict = "met"
				if (k.key == "funnel_tapline_over_postgres" && v < 2) || (k.key == "funnel_tapline_over_duckdb_query" && v < 0.3) {
					verdict = "MISSED"
				}
				verdict = k.target + ": " + verdict
			}
			p("  %s\t%.2fx\t\t\t%s", k.label, v, verdict)
		}
	}
	if g := f.Growth; g != nil {
		verdict := "PASS"
		if !g.Pass {
			verdict = "FAIL"
		}
		p("  growth: %.2fx rows in\t%.2fx time\t\t\tbound %.2fx: %s", g.RowsRatio, g.TimeRatio, g.Bound, verdict)
		if g.RSSBound > 0 {
			verdict = "flat"
			if !g.RSSFlat {
				verdict = "GROWS"
			}
			p("  peak RSS at %.2fx rows\t%.2fx\t\t\tbound %.2fx: %s", g.RowsRatio, g.RSSRatio, g.RSSBound, verdict)
		}
	}
	result := "identical (tapline = postgresql = duckdb)"
	if !f.Identical {
		result = "DIFFERENT: " + f.Mismatch
	}
	p("  results\t%d rows\t%d entered\t\t%s", f.ResultRows, f.Installations, result)
	p("  data: %d events, %d hits, %d conversions of %d installations over %d days (max %d events); stored in %.0f s", d.Events, d.Hits, d.Conversions,
		d.Installations, funnelDays, d.MaxEvents, f.PrepareSeconds)
}

// metOrMissed is a target's verdict.
func metOrMissed(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func cpuPerRow(cpu float64, rows int) float64 {
	if rows == 0 {
		return 0
	}
	return cpu / float64(rows) * 1e6
}

func sortedKeys(m map[string]float64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:")), "%d", &kb)
		m.MemoryMB = kb / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// metric reads one counter from a Prometheus text endpoint, 0 when absent.
func metric(base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var total float64
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name) && (len(line) > len(name) && (line[len(name)] == ' ' || line[len(name)] == '{')) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeAccuracy prints the accuracy tables: per population, each method's
// precision, recall and organic misattribution overall and over the
// fingerprint-only installs, the precision of each match method and the
// recall of each signal class; then tapline's curve over the threshold.
func (r *Results) writeAccuracy(p func(string, ...any)) {
	pop := ""
	for _, a := range r.Accuracy {
		x := a.Accuracy
		if a.Population != pop {
			pop = a.Population
			p("ACCURACY %s (%d installs: %d tap-driven, %d organic; %d of those no rule can credit)\tprecision\trecall\torganic misattributed\tfingerprint-only P / R / organic",
				pop, x.Installs, x.Caused, x.Organic, x.Unreachable)
		}
		name := a.Method
		if a.Method == "tapline" {
			name = fmt.Sprintf("tapline (min score %g)", a.Threshold)
		}
		fp := loadgen.Accuracy{}
		if x.FingerprintOnly != nil {
			fp = *x.FingerprintOnly
		}
		p("  %s\t%.3f\t%.3f\t%.3f\t%.3f / %.3f / %.3f", name, x.Precision, x.Recall, x.OrganicMisattribution, fp.Precision, fp.Recall, fp.OrganicMisattribution)
		if a.Method != "tapline" {
			continue
		}
		for _, m := range []tapline.MatchMethod{tapline.MethodReferrer, tapline.MethodAdID, tapline.MethodFingerprint} {
			ms, cs := x.ByMethod[m], x.ByClass[classOf(m)]
			p("    by %s\tprecision %.3f\trecall %.3f\t%d credited, %d right\t%d tap-driven installs of the class", m, ms.Precision, cs.Recall, ms.Attributed, ms.Correct, cs.Caused)
		}
	}
	if ck := r.AccuracyCheck; ck != nil {
		p("ACCURACY CHECK (deterministic replay, %d messages matched in %.1f s)\tprecision\trecall\torganic misattributed\tbaseline", ck.Messages, ck.Seconds)
		for _, name := range slices.Sorted(maps.Keys(ck.Populations)) {
			x := ck.Populations[name]
			p("  %s: %d installs, %d credited, %d right (answers %.12s)\t%.4f\t%.4f\t%.4f\t%s", name, x.Installs, x.Attributed, x.Correct, ck.Answers[name], x.Precision, x.Recall, x.OrganicMisattribution, ck.Baseline)
		}
		for _, ch := range ck.Changes {
			p("  CHANGED %s", ch)
		}
		if wi := ck.WhatIf; wi != nil {
			p("WHAT-IF %s: %s (%d installs replayed twice in %.1f s)\tprecision\trecall\torganic misattributed\tmoved, replay check", wi.Population, wi.Tried, wi.Installs, wi.Seconds)
			p("  today's rules, replayed\t%.4f\t%.4f\t%.4f\t%d of %d as stored", wi.Today.Precision, wi.Today.Recall, wi.Today.OrganicMisattribution, wi.StoredSame, wi.Stored)
			p("  rules tried\t%.4f\t%.4f\t%.4f\t%d installs move", wi.Hypothetical.Precision, wi.Hypothetical.Recall, wi.Hypothetical.OrganicMisattribution, wi.Moved)
		}
	}
	for _, c := range r.Curves {
		p("CURVE %s: tapline over fingerprint_min_score\tprecision\trecall\torganic misattributed\tfingerprint-only P / R", c.Population)
		for _, pt := range c.Points {
			x := pt.Accuracy
			fp := loadgen.Accuracy{}
			if x.FingerprintOnly != nil {
				fp = *x.FingerprintOnly
			}
			p("  %g\t%.3f\t%.3f\t%.3f\t%.3f / %.3f", pt.Threshold, x.Precision, x.Recall, x.OrganicMisattribution, fp.Precision, fp.Recall)
		}
	}
}

// classOf names the signal class whose installs a method finds.
func classOf(m tapline.MatchMethod) string {
	switch m {
	case tapline.MethodReferrer:
		return loadgen.ClassReferrer
	case tapline.MethodAdID:
		return loadgen.ClassAdID
	}
	return loadgen.ClassFingerprint
}

// cpuMicros shows a CPU time per record in microseconds: "41.2 µs".
func cpuMicros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}
