package soak

import (
	"bytes"
	"fmt"
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
			c := JudgeStore("s", "bytes", r, b, DefaultLimits().StoreRatio, tt.levelOff)
			if !c.Judged || c.Pass != tt.wantPass {
				t.Errorf("judged %v pass %v, want judged, pass %v (%s)", c.Judged, c.Pass, tt.wantPass, c.Detail)
			}
		})
	}
	if c := JudgeStore("s", "bytes", []float64{0, 1, 2}, []float64{0, 1, 2}, 1.5, 0); c.Judged || !c.Pass {
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

// run returns a synthetic 31-minute run, a sample a minute, at 5,000
// records a second: a steady process whose pebble caches and memtables
// are full from the start, with mod applied to each sample (m is the
// minute).
func run(mod func(m float64, s *Sample)) []Sample {
	const mb = 1 << 20
	var out []Sample
	for i := range 31 {
		m := float64(i)
		s := Sample{Elapsed: m * 60, Goroutines: 90, OpenFiles: 70, Sockets: 45,
			BusBytes: int64(200 * 300_000 * m), RawBytes: int64(300 * 300_000 * m), FactBytes: 1 << 20, ConversionBytes: int64(50 * 300_000 * m),
			Published: 300_000 * m, LagMessages: 50, OldProbed: 20 * min(i, 1), NewProbed: 20, NewVisible: 20,
			HeapInuse: 100 * mb, GoSys: 180 * mb, CacheCapacity: 160 * mb, CacheBytes: 160 * mb, MemTableSize: 64 * mb, MemTableBytes: 64 * mb}
		if mod != nil {
			mod(m, &s)
		}
		// Resident: what the Go runtime holds, pebble's caches and 40 MiB
		// of code and C libraries (unless mod set it).
		if s.RSSKB == 0 {
			s.RSSKB = (s.GoSys + s.CacheBytes + s.MemTableBytes + 40*mb) >> 10
		}
		out = append(out, s)
	}
	return out
}

// failed returns the metrics of the checks that failed.
func failed(v Verdict) []string {
	var out []string
	for _, c := range v.Checks {
		if !c.Pass {
			out = append(out, c.Metric)
		}
	}
	return out
}

// TestJudge checks that Judge applies every rule to the right column:
// a steady run passes with every rule judged, and each kind of leak fails
// it on its own rule alone.
func TestJudge(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name string
		mod  func(m float64, s *Sample)
		want []string // the checks that fail
	}{
		{"steady", nil, nil},
		{"goroutine leak", func(m float64, s *Sample) { s.Goroutines = 90 + int(m) }, []string{"goroutines"}},
		// The block caches fill slowly, still rising over the last half:
		// resident memory climbs 130 MiB in the run, up to its bound.
		{"caches filling up to the bound", func(m float64, s *Sample) {
			s.CacheBytes = int64(160 * mb * (1 - math.Exp(-m/12)))
			s.MemTableBytes = int64(64 * mb * math.Min(m/20, 1))
		}, nil},
		// The Go heap grows 2 MiB a minute (Go sys with it) while
		// resident memory stays well below its bound.
		{"heap leak under the RSS bound", func(m float64, s *Sample) {
			s.HeapInuse = int64(100*mb + 2*mb*m)
			s.GoSys = int64(180*mb + 2*mb*m)
			s.CacheBytes = 40 * mb
		}, []string{"heap_inuse"}},
		// Memory that neither pebble nor the Go runtime accounts for (a C
		// allocation leak) grows 4 MiB a minute past the margin.
		{"memory outside pebble and Go", func(m float64, s *Sample) {
			s.RSSKB = (s.GoSys + s.CacheBytes + s.MemTableBytes + 40*mb + int64(4*mb*m)) >> 10
		}, []string{"rss_bound", "rss_other_kb"}},
		// Table files grow in number with the stores' data, in steps
		// as compactions merge them.
		{"table files growing with the data", func(m float64, s *Sample) {
			s.TableFiles = 3 * int(m) / 2 * 2
			s.OpenFiles = 70 + s.TableFiles
		}, nil},
		// One socket more a minute: 60 an hour.
		{"socket leak", func(m float64, s *Sample) {
			s.TableFiles = 3 * int(m)
			s.Sockets = 45 + int(m)
			s.OpenFiles = 70 + s.TableFiles + int(m)
		}, []string{"other_files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(run(tt.mod), DefaultLimits(), 5000, false)
			judged := 0
			for _, c := range v.Checks {
				if c.Judged {
					judged++
				}
			}
			if got := failed(v); !reflect.DeepEqual(got, tt.want) || v.Pass != (len(tt.want) == 0) {
				t.Errorf("pass %v, failed %v, want failed %v:\n%s", v.Pass, got, tt.want, v)
			}
			if len(v.Checks) != 11 || judged != 11 {
				t.Errorf("%d checks, %d judged, want 11 and all judged:\n%s", len(v.Checks), judged, v)
			}
			if len(tt.want) > 0 && !strings.Contains(v.String(), "verdict: FAIL") {
				t.Errorf("verdict text without its outcome:\n%s", v)
			}
		})
	}
}

// TestJudgeUnsampled checks that a run sampled before the memory and
// descriptor columns existed leaves those rules not judged.
func TestJudgeUnsampled(t *testing.T) {
	v := Judge(run(func(_ float64, s *Sample) {
		*s = Sample{Elapsed: s.Elapsed, RSSKB: 300 << 10, Goroutines: 90, OpenFiles: 70, Published: s.Published, BusBytes: s.BusBytes,
			RawBytes: s.RawBytes, ConversionBytes: s.ConversionBytes, OldProbed: s.OldProbed, NewProbed: 20, NewVisible: 20}
	}), DefaultLimits(), 5000, false)
	for _, c := range v.Checks {
		switch c.Metric {
		case "heap_inuse", "rss_bound", "rss_other_kb", "table_files", "other_files":
			if c.Judged || !c.Pass {
				t.Errorf("%s: judged %v pass %v, want not judged", c.Metric, c.Judged, c.Pass)
			}
		default:
			if !c.Judged {
				t.Errorf("%s not judged", c.Metric)
			}
		}
	}
}

// TestJudgeRSSBound checks the bound's arithmetic: RSS exactly at
// caches, memtables, peak Go sys and margin passes; a MiB more fails.
func TestJudgeRSSBound(t *testing.T) {
	const mb = 1 << 20
	samples := []Sample{
		{GoSys: 200 * mb, CacheCapacity: 160 * mb, MemTableSize: 64 * mb, RSSKB: 100 << 10},
		{GoSys: 150 * mb, CacheCapacity: 160 * mb, MemTableSize: 64 * mb, RSSKB: (160 + 128 + 200 + 64) << 10},
	}
	if c := JudgeRSSBound(samples, 64*mb); !c.Judged || !c.Pass {
		t.Errorf("at the bound: judged %v pass %v (%s)", c.Judged, c.Pass, c.Detail)
	}
	samples[1].RSSKB += 1 << 10
	if c := JudgeRSSBound(samples, 64*mb); !c.Judged || c.Pass {
		t.Errorf("a MiB over the bound: judged %v pass %v (%s)", c.Judged, c.Pass, c.Detail)
	}
}

// TestCSVRoundTrip writes samples and reads them back.
func TestCSVRoundTrip(t *testing.T) {
	want := []Sample{
		{At: time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC), Elapsed: 0, RSSKB: 70000, Goroutines: 55, OpenFiles: 32, LagSource: "counters"},
		{At: time.Date(2026, 12, 3, 7, 1, 0, 0, time.UTC), Elapsed: 60.25, RSSKB: 160000, Goroutines: 85, OpenFiles: 70,
			BusBytes: 1 << 30, RawBytes: 2 << 30, FactBytes: 5 << 20, ConversionBytes: 9 << 20, Published: 300000, Consumed: 299950,
			LagMessages: 50, LagSource: "gauge", LagSeconds: 0.5, Sent: 300100, Failed: 2, Scheduled: 300000, PastRetention: 120000,
			OldProbed: 20, OldVisible: 1, NewProbed: 19, NewVisible: 19,
			TableFiles: 12, Sockets: 40, HeapInuse: 90 << 20, GoSys: 150 << 20, CacheBytes: 50 << 20, CacheCapacity: 160 << 20,
			MemTableBytes: 40 << 20, MemTableSize: 64 << 20, RSSAnonKB: 150000, RSSFileKB: 10000},
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
	// A file of the soak's first version: its 22 columns, the rest zero.
	var old bytes.Buffer
	fmt.Fprintln(&old, strings.Join(csvHeader[:oldColumns], ","))
	fmt.Fprintln(&old, strings.Join(want[1].record()[:oldColumns], ","))
	got, err = ReadCSV(&old)
	if err != nil {
		t.Fatal(err)
	}
	wantOld := want[1]
	wantOld.TableFiles, wantOld.Sockets, wantOld.HeapInuse, wantOld.GoSys = 0, 0, 0, 0
	wantOld.CacheBytes, wantOld.CacheCapacity, wantOld.MemTableBytes, wantOld.MemTableSize = 0, 0, 0, 0
	wantOld.RSSAnonKB, wantOld.RSSFileKB = 0, 0
	if len(got) != 1 || !reflect.DeepEqual(got[0], wantOld) {
		t.Errorf("old file read back\n%+v\nwant\n%+v", got, wantOld)
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
		case strings.HasPrefix(l, "memory: VmRSS (MiB)"):
			rss = strings.Join(strings.Fields(l)[3:], " ")
		case strings.HasPrefix(l, "goroutines: go_goroutines (count)"):
			gor = strings.Join(strings.Fields(l)[3:], " ")
		}
	}
	if rss != "100 200 300" || gor != "50 80 90" {
		t.Errorf("rss %q, goroutines %q, want start end peak 100 200 300 and 50 80 90:\n%s", rss, gor, s)
	}
}
