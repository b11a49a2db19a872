package soak

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits are the verdict's bounds. DefaultLimits gives the ones `make
// soak` uses.
type Limits struct {
	// RSSPerHour is the most resident memory may be projected to grow in
	// an hour, as a share of its mean over the judged window (0.10: 10%).
	RSSPerHour float64
	// RSSNoiseKB is the fitted rise across the judged window below which
	// memory counts as flat whatever its slope (GC and caches move it by
	// this much in a short run).
	RSSNoiseKB float64
	// HeapPerHour and HeapNoiseBytes are the same for the Go heap in use
	// (go_memstats_heap_inuse_bytes), the leak signal: the Go objects
	// tapline keeps. The share is of the heap's mean over the window.
	HeapPerHour, HeapNoiseBytes float64
	// RSSMarginBytes is what resident memory may hold beyond what the
	// configuration bounds (the pebble block caches' capacity, two
	// memtables a store and the most the Go runtime held from the system):
	// the binary's code and data, C libraries, and the C allocator's
	// overhead and fragmentation around pebble's caches.
	RSSMarginBytes float64
	// GoroutinesPerHour and FilesPerHour are the most goroutines and
	// open descriptors other than pebble's table files may be projected
	// to grow in an hour; GoroutineNoise and FileNoise the fitted rise
	// that counts as flat.
	GoroutinesPerHour, GoroutineNoise float64
	FilesPerHour, FileNoise           float64
	// LagSeconds is how many seconds of load the matcher's lag may grow
	// by across the judged window.
	LagSeconds float64
	// StoreRatio is the most a store's bytes per accepted record in the
	// last third may exceed the first third's (1.5: by half); LevelOff the
	// most the last third's growth may be of the first third's for a
	// store whose expiry reclaims space during the run (0.25: a quarter).
	StoreRatio, LevelOff float64
}

// DefaultLimits returns the bounds `make soak` judges by.
func DefaultLimits() Limits {
	return Limits{
		RSSPerHour: 0.10, RSSNoiseKB: 16 << 10,
		HeapPerHour: 0.10, HeapNoiseBytes: 16 << 20,
		RSSMarginBytes:    64 << 20,
		GoroutinesPerHour: 20, GoroutineNoise: 5,
		FilesPerHour: 20, FileNoise: 5,
		LagSeconds: 10,
		StoreRatio: 1.5, LevelOff: 0.25,
	}
}

// Check is one rule applied to one series.
type Check struct {
	Metric string `json:"metric"`
	Rule   string `json:"rule"`
	// Judged is false when the series is too short (or, for expiry, no
	// row was old enough yet) to apply the rule; such a check passes.
	Judged bool   `json:"judged"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

func (c Check) String() string {
	state := "pass"
	switch {
	case !c.Judged:
		state = "not judged"
	case !c.Pass:
		state = "FAIL"
	}
	return fmt.Sprintf("%-12s %-10s %s (%s)", c.Metric, state, c.Detail, c.Rule)
}

// Verdict is the outcome of every check.
type Verdict struct {
	Checks []Check `json:"checks"`
	Pass   bool    `json:"pass"`
}

func (v Verdict) String() string {
	var b strings.Builder
	for _, c := range v.Checks {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	judged := 0
	for _, c := range v.Checks {
		if c.Judged {
			judged++
		}
	}
	outcome := "pass"
	if !v.Pass {
		outcome = "FAIL"
	}
	fmt.Fprintf(&b, "verdict: %s (%d of %d rules judged)\n", outcome, judged, len(v.Checks))
	return b.String()
}

// minJudged is the fewest samples a window must hold to fit a line.
const minJudged = 4

// JudgeBounded applies the rule for a quantity that must stay bounded
// (memory, goroutines, open files, lag): it fits a least-squares line to
// the last half of the samples (t in seconds since the start) and fails
// when both the projected growth per hour exceeds perHour and the fitted
// rise across that half exceeds noise. A flat series, one that levels off
// in the first half, or a sawtooth (GC) passes; a steady climb fails.
func JudgeBounded(metric string, t, v []float64, perHour, noise float64) Check {
	c := Check{Metric: metric, Rule: fmt.Sprintf("least-squares slope over the last half: fail if > %.4g/h and the fitted rise > %.4g", perHour, noise)}
	n := min(len(t), len(v))
	lo := n / 2
	if n-lo < minJudged {
		c.Pass, c.Detail = true, fmt.Sprintf("%d samples in the last half, want at least %d", n-lo, minJudged)
		return c
	}
	slope := fitSlope(t[lo:n], v[lo:n])
	rise := slope * (t[n-1] - t[lo])
	hourly := slope * 3600
	c.Judged = true
	c.Pass = !(hourly > perHour && rise > noise)
	c.Detail = fmt.Sprintf("slope %.4g/h, fitted rise %.4g over the last %s", hourly, rise, secs(t[n-1]-t[lo]))
	return c
}

// JudgeStore applies the rule for a store's size on disk. records[i] is
// how many records had been accepted at sample i, bytes[i] the store's
// size. The store's growth per record in the last third must not exceed
// ratio times the first third's (growth out of proportion to the load
// fails); with levelOff > 0, used for a store whose expiry reclaims space
// during the run, its growth in the last third must also be at most
// levelOff times the first third's.
func JudgeStore(metric, unit string, records, bytes []float64, ratio, levelOff float64) Check {
	c := Check{Metric: metric, Rule: fmt.Sprintf("%s per record, last third <= %.3gx the first third's", unit, ratio)}
	if levelOff > 0 {
		c.Rule += fmt.Sprintf("; growth in the last third <= %.3gx the first third's", levelOff)
	}
	n := min(len(records), len(bytes))
	if n < 3*2 {
		c.Pass, c.Detail = true, fmt.Sprintf("%d samples, want at least 6", n)
		return c
	}
	a, b := n/3, n-1-n/3 // the first third is [0,a], the last [b,n-1]
	firstGrow, lastGrow := bytes[a]-bytes[0], bytes[n-1]-bytes[b]
	firstRec, lastRec := records[a]-records[0], records[n-1]-records[b]
	if firstRec <= 0 || lastRec <= 0 {
		c.Pass, c.Detail = true, "no records accepted in the first or last third"
		return c
	}
	firstPer, lastPer := firstGrow/firstRec, lastGrow/lastRec
	c.Judged = true
	c.Pass = lastPer <= ratio*math.Max(firstPer, 0) || lastPer <= 0
	c.Detail = fmt.Sprintf("%.4g %s/record in the first third, %.4g in the last", firstPer, unit, lastPer)
	if levelOff > 0 {
		ok := lastGrow <= levelOff*math.Max(firstGrow, 0)
		c.Pass = c.Pass && ok
		c.Detail += fmt.Sprintf("; grew %.4g then %.4g %s", firstGrow, lastGrow, unit)
	}
	return c
}

// JudgeExpiry applies the rule for the raw store's expiry: every probed
// installation older than its app's retention (plus one expiry pass)
// must have lost its raw rows, and the probe must see the rows of young
// ones (else it is blind and proves nothing). It is not judged until an
// old installation was probed.
func JudgeExpiry(samples []Sample) Check {
	c := Check{Metric: "expiry", Rule: "no raw rows visible for installs past retention; young installs' rows visible"}
	var oldP, oldV, newP, newV int
	for _, s := range samples {
		oldP += s.OldProbed
		oldV += s.OldVisible
		newP += s.NewProbed
		newV += s.NewVisible
	}
	c.Detail = fmt.Sprintf("%d of %d old installs still had raw rows, %d of %d young ones had them", oldV, oldP, newV, newP)
	if oldP == 0 {
		c.Pass = true
		c.Detail = "no installation was past retention when probed; " + c.Detail
		return c
	}
	c.Judged = true
	c.Pass = oldV == 0 && newV > 0
	return c
}

// JudgeRSSBound applies the rule that resident memory stays below what
// the configuration bounds: at every sample, RSS must be at most the
// pebble block caches' capacity, plus two memtables of each store, plus
// the most the Go runtime held from the system in the run
// (go_memstats_sys_bytes, whose growth is the heap rule's to judge), plus
// margin. Caches filling up to their capacity pass; memory outside both
// pebble's caches and the Go runtime growing past the margin fails.
func JudgeRSSBound(samples []Sample, margin float64) Check {
	c := Check{Metric: "rss_bound", Rule: fmt.Sprintf("every sample: RSS <= block cache capacity + 2 memtables a store + peak Go sys + %s", mib(margin))}
	if !sampledMemory(samples) {
		c.Pass, c.Detail = true, "Go and pebble memory not sampled"
		return c
	}
	var goSys float64
	for _, s := range samples {
		goSys = max(goSys, float64(s.GoSys))
	}
	worst, at := math.Inf(-1), 0
	var bound float64
	for i, s := range samples {
		b := float64(s.CacheCapacity) + 2*float64(s.MemTableSize) + goSys + margin
		if over := float64(s.RSSKB)*1024 - b; over > worst {
			worst, at, bound = over, i, b
		}
	}
	s := samples[at]
	c.Judged = true
	c.Pass = worst <= 0
	c.Detail = fmt.Sprintf("closest at %s: RSS %s, bound %s = caches %s + memtables %s + Go sys %s + margin %s",
		secs(s.Elapsed), mib(float64(s.RSSKB)*1024), mib(bound), mib(float64(s.CacheCapacity)), mib(2*float64(s.MemTableSize)), mib(goSys), mib(margin))
	return c
}

// sampledMemory tells whether the samples hold the Go and pebble memory
// columns (the soak's first CSV files do not).
func sampledMemory(samples []Sample) bool {
	for _, s := range samples {
		if s.GoSys > 0 {
			return true
		}
	}
	return false
}

// Judge applies every rule to a run's samples. busLevelOff tells whether
// the embedded bus's retention elapsed early enough for its size to level
// off in the run (the raw store's expiry hides rows at once but frees
// disk a whole week-wide bucket at a time, so its size is never held to
// levelling off).
func Judge(samples []Sample, lim Limits, rate float64, busLevelOff bool) Verdict {
	n := len(samples)
	t := make([]float64, n)
	col := func(f func(Sample) float64) []float64 {
		out := make([]float64, n)
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	for i, s := range samples {
		t[i] = s.Elapsed
	}
	halfMean := func(v []float64) float64 {
		mean := 0.0
		for _, x := range v[n/2:] {
			mean += x / float64(n-n/2)
		}
		return mean
	}
	measured := sampledMemory(samples)
	unsampled := func(metric string) Check {
		return Check{Metric: metric, Rule: "needs the Go, pebble and descriptor columns", Pass: true, Detail: "not sampled"}
	}
	recs := col(func(s Sample) float64 { return s.Published })
	var v Verdict
	if measured {
		heap := col(func(s Sample) float64 { return float64(s.HeapInuse) })
		// Resident memory that neither pebble's caches nor the Go
		// runtime account for.
		other := col(func(s Sample) float64 { return float64(s.RSSKB) - float64(s.GoSys+s.CacheBytes+s.MemTableBytes)/1024 })
		tables := col(func(s Sample) float64 { return float64(s.TableFiles) })
		others := col(func(s Sample) float64 { return float64(s.OpenFiles - s.TableFiles) })
		v.Checks = append(v.Checks,
			JudgeBounded("heap_inuse", t, heap, lim.HeapPerHour*halfMean(heap), lim.HeapNoiseBytes),
			JudgeRSSBound(samples, lim.RSSMarginBytes),
			JudgeBounded("rss_other_kb", t, other, lim.RSSPerHour*halfMean(other), lim.RSSNoiseKB),
			JudgeBounded("goroutines", t, col(func(s Sample) float64 { return float64(s.Goroutines) }), lim.GoroutinesPerHour, lim.GoroutineNoise),
			JudgeStore("table_files", "files", recs, tables, lim.StoreRatio, 0),
			JudgeBounded("other_files", t, others, lim.FilesPerHour, lim.FileNoise),
		)
	} else {
		v.Checks = append(v.Checks, unsampled("heap_inuse"), unsampled("rss_bound"), unsampled("rss_other_kb"),
			JudgeBounded("goroutines", t, col(func(s Sample) float64 { return float64(s.Goroutines) }), lim.GoroutinesPerHour, lim.GoroutineNoise),
			unsampled("table_files"), unsampled("other_files"))
	}
	v.Checks = append(v.Checks,
		JudgeBounded("lag_messages", t, col(func(s Sample) float64 { return s.LagMessages }), 0, lim.LagSeconds*rate),
	)
	busLevel := 0.0
	if busLevelOff {
		busLevel = lim.LevelOff
	}
	v.Checks = append(v.Checks,
		JudgeStore("bus_bytes", "bytes", recs, col(func(s Sample) float64 { return float64(s.BusBytes) }), lim.StoreRatio, busLevel),
		JudgeStore("raw_bytes", "bytes", recs, col(func(s Sample) float64 { return float64(s.RawBytes) }), lim.StoreRatio, 0),
		JudgeStore("pg_bytes", "bytes", recs, col(func(s Sample) float64 { return float64(s.FactBytes + s.ConversionBytes) }), lim.StoreRatio, 0),
		JudgeExpiry(samples),
	)
	v.Pass = true
	for _, c := range v.Checks {
		v.Pass = v.Pass && c.Pass
	}
	return v
}

func mib(bytes float64) string {
	return fmt.Sprintf("%.1f MiB", bytes/(1<<20))
}

// fitSlope returns the least-squares slope of v over t.
func fitSlope(t, v []float64) float64 {
	n := float64(len(t))
	var st, sv float64
	for i := range t {
		st += t[i]
		sv += v[i]
	}
	mt, mv := st/n, sv/n
	var num, den float64
	for i := range t {
		num += (t[i] - mt) * (v[i] - mv)
		den += (t[i] - mt) * (t[i] - mt)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
