package soak

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// series returns n samples a minute apart of f(minute).
func series(n int, f func(m float64) float64) (t, v []float64) {
	for i := range n {
		t = append(t, float64(i*60))
		v = append(v, f(float64(i)))
	}
	return t, v
}

// TestJudgeBounded runs the bounded rule (memory, goroutines, open files)
// on synthetic 30-minute series: flat, levelling off, a linear leak, a GC
// sawtooth around a flat mean and one around a leak, and too short a run.
func TestJudgeBounded(t *testing.T) {
	const mib = 1024.0 // KiB
	lim := DefaultLimits()
	rssBound := func(mean float64) float64 { return lim.RSSPerHour * mean }
	tests := []struct {
		name       string
		n          int
		f          func(m float64) float64
		perHour    float64
		noise      float64
		wantJudged bool
		wantPass   bool
	}{
		{"flat", 31, func(float64) float64 { return 300 * mib }, rssBound(300 * mib), lim.RSSNoiseKB, true, true},
		{"levelling", 31, func(m float64) float64 { return 300*mib - 200*mib*math.Exp(-m/3) }, rssBound(300 * mib), lim.RSSNoiseKB, true, true},
		// 2 MiB a minute: 120 MiB an hour on 300, 30 MiB over the last half.
		{"linear leak", 31, func(m float64) float64 { return 270*mib + 2*mib*m }, rssBound(300 * mib), lim.RSSNoiseKB, true, false},
		// GC: the heap climbs 40 MiB over 4 minutes and drops back.
		{"sawtooth GC", 31, func(m float64) float64 { return 280*mib + 10*mib*math.Mod(m, 4) }, rssBound(300 * mib), lim.RSSNoiseKB, true, true},
		{"sawtooth over a leak", 31, func(m float64) float64 { return 250*mib + 10*mib*math.Mod(m, 4) + 2*mib*m }, rssBound(300 * mib), lim.RSSNoiseKB, true, false},
		// Goroutines: one more a minute is 60 an hour and 15 over the half.
		{"goroutine leak", 31, func(m float64) float64 { return 90 + m }, lim.GoroutinesPerHour, lim.GoroutineNoise, true, false},
		{"goroutines jitter", 31, func(m float64) float64 { return 90 + float64(int(m)%3) }, lim.GoroutinesPerHour, lim.GoroutineNoise, true, true},
		// A small steady rise below the noise floor passes.
		{"rise under the noise floor", 31, func(m float64) float64 { return 90 + m/5 }, lim.GoroutinesPerHour, lim.GoroutineNoise, true, true},
		{"too short", 6, func(m float64) float64 { return 90 + 100*m }, lim.GoroutinesPerHour, lim.GoroutineNoise, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, vs := series(tt.n, tt.f)
			c := JudgeBounded("m", ts, vs, tt.perHour, tt.noise)
			if c.Judged != tt.wantJudged || c.Pass != tt.wantPass {
				t.Errorf("judged %v pass %v, want judged %v pass %v (%s)", c.Judged, c.Pass, tt.wantJudged, tt.wantPass, c.Detail)
			}
		})
	}
}

// TestFitSlope checks the least-squares slope on a line and on points
// symmetric around a flat one.
func TestFitSlope(t *testing.T) {
	if got := fitSlope([]float64{0, 1, 2, 3}, []float64{5, 7, 9, 11}); got != 2 {
		t.Errorf("slope of 5+2t: %g, want 2", got)
	}
	if got := fitSlope([]float64{0, 1, 2, 3}, []float64{1, 3, 3, 1}); got != 0 {
		t.Errorf("slope of 1,3,3,1: %g, want 0", got)
	}
	if got := fitSlope([]float64{2, 2, 2}, []float64{1, 5, 9}); got != 0 {
		t.Errorf("slope at one time: %g, want 0", got)
	}
}

// TestJudgeStore runs the store rule: growth in proportion to the load
// passes, growth per record that rises fails, a store that levels off
// once expiry reclaims passes the level-off rule and a linear one fails
// it.
func TestJudgeStore(t *testing.T) {
	recs := func(m float64) float64 { return 300_000 * m } // 5,000 a second
	tests := []struct {
		name     string
		bytes    func(m float64) float64
		levelOff float64
		wantPass bool
	}{
		{"proportional", func(m float64) float64 { return 64<<20 + 200*recs(m) }, 0, true},
		{"compaction steps", func(m float64) float64 { return 64<<20 + 200*recs(math.Floor(m/3)*3) }, 0, true},
		{"per-record cost grows", func(m float64) float64 { return 200 * recs(m) * (1 + m/10) }, 0, false},
		{"levels off under expiry", func(m float64) float64 { return 2e9 * (1 - math.Exp(-m/5)) }, 0.25, true},
		{"linear under expiry", func(m float64) float64 { return 200 * recs(m) }, 0.25, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := series(31, recs)
			_, b := series(31, tt.bytes)
			c := JudgeStore("s", r, b, DefaultLimits().StoreRatio, tt.levelOff)
			if !c.Judged || c.Pass != tt.wantPass {
				t.Errorf("judged %v pass %v, want judged, pass %v (%s)", c.Judged, c.Pass, tt.wantPass, c.Detail)
			}
		})
	}
	if c := JudgeStore("s", []float64{0, 1, 2}, []float64{0, 1, 2}, 1.5, 0); c.Judged || !c.Pass {
		t.Errorf("three samples: judged %v pass %v, want not judged", c.Judged, c.Pass)
	}
}

// TestJudgeExpiry checks the expiry rule: not judged before an old
// installation was probed, failed by an old row still visible or by a
// probe that saw no young rows, passed otherwise.
func TestJudgeExpiry(t *testing.T) {
	tests := []struct {
		name               string
		samples            []Sample
		wantJudged, wantOK bool
	}{
		{"nothing old yet", []Sample{{NewProbed: 20, NewVisible: 20}}, false, true},
		{"expired", []Sample{{NewProbed: 20, NewVisible: 20}, {OldProbed: 20, NewProbed: 20, NewVisible: 20}}, true, true},
		{"an old row still visible", []Sample{{OldProbed: 20, OldVisible: 1, NewProbed: 20, NewVisible: 20}}, true, false},
		{"blind probe", []Sample{{OldProbed: 20, NewProbed: 20}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := JudgeExpiry(tt.samples)
			if c.Judged != tt.wantJudged || c.Pass != tt.wantOK {
				t.Errorf("judged %v pass %v, want judged %v pass %v (%s)", c.Judged, c.Pass, tt.wantJudged, tt.wantOK, c.Detail)
			}
		})
	}
}

// TestJudge checks that Judge applies every rule to the right column:
// a steady run passes, and a goroutine leak fails it on goroutines alone.
func TestJudge(t *testing.T) {
	steady := func(leak float64) []Sample {
		var out []Sample
		for i := range 31 {
			m := float64(i)
			out = append(out, Sample{Elapsed: m * 60, RSSKB: 300 << 10, Goroutines: 90 + int(leak*m), OpenFiles: 70,
				BusBytes: int64(200 * 300_000 * m), RawBytes: int64(300 * 300_000 * m), FactBytes: 1 << 20, ConversionBytes: int64(50 * 300_000 * m),
				Published: 300_000 * m, LagMessages: 50, OldProbed: 20 * min(i, 1), NewProbed: 20, NewVisible: 20})
		}
		return out
	}
	v := Judge(steady(0), DefaultLimits(), 5000, false)
	if !v.Pass || len(v.Checks) != 8 {
		t.Fatalf("steady run: pass %v with %d checks, want pass with 8:\n%s", v.Pass, len(v.Checks), v)
	}
	v = Judge(steady(1), DefaultLimits(), 5000, false)
	var failed []string
	for _, c := range v.Checks {
		if !c.Pass {
			failed = append(failed, c.Metric)
		}
	}
	if v.Pass || !reflect.DeepEqual(failed, []string{"goroutines"}) {
		t.Errorf("goroutine leak: pass %v, failed %v, want only goroutines to fail:\n%s", v.Pass, failed, v)
	}
	if !strings.Contains(v.String(), "verdict: FAIL") {
		t.Errorf("verdict text without its outcome:\n%s", v)
	}
}

// TestCSVRoundTrip writes samples and reads them back.
func TestCSVRoundTrip(t *testing.T) {
	want := []Sample{
		{At: time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC), Elapsed: 0, RSSKB: 70000, Goroutines: 55, OpenFiles: 32, LagSource: "counters"},
		{At: time.Date(2026, 12, 3, 7, 1, 0, 0, time.UTC), Elapsed: 60.25, RSSKB: 160000, Goroutines: 85, OpenFiles: 70,
			BusBytes: 1 << 30, RawBytes: 2 << 30, FactBytes: 5 << 20, ConversionBytes: 9 << 20, Published: 300000, Consumed: 299950,
			LagMessages: 50, LagSource: "gauge", LagSeconds: 0.5, Sent: 300100, Failed: 2, Scheduled: 300000, PastRetention: 120000,
			OldProbed: 20, OldVisible: 1, NewProbed: 19, NewVisible: 19},
	}
	var buf bytes.Buffer
	w, err := NewCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range want {
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	if _, err := ReadCSV(strings.NewReader("a,b\n1,2\n")); err == nil {
		t.Error("a file without the soak's header was read")
	}
}

// TestParseMetrics sums a metric's labelled series and reads gauges.
func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 87
tapline_matcher_messages_total{topic="events"} 1200
tapline_matcher_messages_total{topic="hits"} 800
tapline_collector_request_duration_seconds_bucket{route="/l/{slug}",le="+Inf"} 5
tapline_matcher_lag_seconds 0.25
`
	m, err := parseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 87 || m["tapline_matcher_messages_total"] != 2000 || m["tapline_matcher_lag_seconds"] != 0.25 ||
		m["tapline_collector_request_duration_seconds_bucket"] != 5 {
		t.Errorf("parsed %v", m)
	}
	if _, err := parseMetrics(strings.NewReader("x{a=\"b\" 1\n")); err == nil {
		t.Error("unterminated labels parsed")
	}
}

// TestMixRate checks the capacity of a mix: all taps is the redirect
// rate, and half of each is their harmonic mean.
func TestMixRate(t *testing.T) {
	if got := MixRate(1, 1, 10000, 5000); got != 10000 {
		t.Errorf("all taps: %g, want 10000", got)
	}
	if got := MixRate(0.5, 0.5, 10000, 5000); math.Abs(got-10000.0/3) > 1e-9 {
		t.Errorf("half of a half-and-half mix: %g, want %g", got, 10000.0/3)
	}
}

// TestSummary checks the start, end and peak of a quantity.
func TestSummary(t *testing.T) {
	s := Summary([]Sample{{RSSKB: 100 << 10, Goroutines: 50}, {RSSKB: 300 << 10, Goroutines: 90}, {RSSKB: 200 << 10, Goroutines: 80}})
	var rss, gor string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(l, "resident memory: VmRSS (MiB)"):
			rss = strings.Join(strings.Fields(l)[4:], " ")
		case strings.HasPrefix(l, "goroutines: go_goroutines (count)"):
			gor = strings.Join(strings.Fields(l)[3:], " ")
		}
	}
	if rss != "100 200 300" || gor != "50 80 90" {
		t.Errorf("rss %q, goroutines %q, want start end peak 100 200 300 and 50 80 90:\n%s", rss, gor, s)
	}
}
