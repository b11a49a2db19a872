package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"tapline"
)

func TestProgressText(t *testing.T) {
	t.Parallel()
	v := func(status tapline.FunnelStatus, scanned, estimated int64, covered float64) *tapline.Funnel {
		return &tapline.Funnel{VersionID: 12, Status: status, RowsScanned: scanned, RowsEstimated: estimated, Progress: covered}
	}
	tests := []struct {
		name string
		p    progress
		rate float64
		want string
	}{
		{"pending", progress{f: &tapline.Funnel{Status: tapline.FunnelPending, Handoff: map[tapline.Partition]int64{{Topic: "hits"}: 3}}}, 0,
			"pending: waiting for the matchers to fix its handoff (1 partitions so far)"},
		{"starting", progress{f: v(tapline.FunnelBackfilling, 0, 0, 0)}, 0, "starting: no range scanned yet"},
		{"nothing scanned yet", progress{f: v(tapline.FunnelBackfilling, 0, 0, 0), rangesDone: 3, ranges: 64}, 0, "0% 0 rows, 3 of 64 ranges"},
		{"running", progress{f: v(tapline.FunnelBackfilling, 1204331, 2931817, 0.4108)}, 48210.4,
			"41% 1,204,331 of ~2,930,000 rows, 48,210 rows/s, eta 35s"},
		{"rate unknown", progress{f: v(tapline.FunnelBackfilling, 500, 1000, 0.5)}, 0, "50% 500 of ~1,000 rows, 0 rows/s, eta unknown"},
		{"live", progress{f: v(tapline.FunnelLive, 2930112, 2930112, 1)}, 0, "100% 2,930,112 rows, live"},
		{"cancelled", progress{f: v(tapline.FunnelCancelled, 10, 0, 0)}, 0, "cancelled"},
	}
	for _, tt := range tests {
		if got := progressText(tt.p, tt.rate); got != tt.want {
			t.Errorf("%s: progressText = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRateMeter(t *testing.T) {
	t.Parallel()
	var m rateMeter
	at := time.Unix(1000, 0)
	look := func(secs int, rows int64) progress {
		return progress{f: &tapline.Funnel{RowsScanned: rows}, at: at.Add(time.Duration(secs) * time.Second)}
	}
	m.add(look(0, 0))
	if r := m.rate(); r != 0 {
		t.Fatalf("rate of one look = %v, want 0", r)
	}
	m.add(look(10, 1000))
	if r := m.rate(); r != 100 {
		t.Fatalf("rate = %v, want 100", r)
	}
	// Looks older than the window drop out: the rate follows the recent pace.
	m.add(look(40, 1000+30*10))
	m.add(look(60, 1000+50*10))
	if r := m.rate(); r != 10 {
		t.Fatalf("rate = %v, want 10 over the last window", r)
	}
}

func TestLogViewEvery(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	v := &logView{w: &out, every: 5 * time.Second}
	at := time.Unix(1000, 0)
	for i := range 12 { // a look a second
		f := &tapline.Funnel{VersionID: 7, Status: tapline.FunnelBackfilling, RowsScanned: int64(i * 100), RowsEstimated: 1200, Progress: float64(i) / 12}
		v.show(progress{f: f, at: at.Add(time.Duration(i) * time.Second), ranges: 64})
	}
	v.finish(progress{f: &tapline.Funnel{VersionID: 7, Status: tapline.FunnelLive, RowsScanned: 1200}, at: at.Add(12 * time.Second)})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"backfill version 7: 0% 0 of ~1,200 rows, 0 rows/s, eta unknown",
		"backfill version 7: 41% 500 of ~1,200 rows, 100 rows/s, eta 7s",
		"backfill version 7: 83% 1,000 of ~1,200 rows, 100 rows/s, eta 2s",
		"backfill version 7: 100% 1,200 rows, live",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

func TestBarView(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	v := &barView{w: &out}
	at := time.Unix(1000, 0)
	v.show(progress{f: &tapline.Funnel{VersionID: 7, Status: tapline.FunnelPending}, at: at})
	for i := range 3 {
		f := &tapline.Funnel{VersionID: 7, Status: tapline.FunnelBackfilling, RowsScanned: int64(i * 400), RowsEstimated: 1200, Progress: float64(i) / 3}
		v.show(progress{f: f, at: at.Add(time.Duration(i+1) * time.Second), ranges: 64})
	}
	v.finish(progress{f: &tapline.Funnel{VersionID: 7, Status: tapline.FunnelLive, RowsScanned: 1200}, at: at.Add(5 * time.Second)})
	mustContain(t, "bar", out.String(), "backfill version 7: pending: waiting for the matchers", "version 7: 800 of ~1,200 rows, 400 rows/s, eta 1s",
		"100% [", "version 7: 1,200 rows, live")
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1204331: "1,204,331", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]int64{999: 999, 2931817: 2930000, 1234: 1230, 99950: 100000} {
		if got := approx(n); got != want {
			t.Errorf("approx(%d) = %d, want %d", n, got, want)
		}
	}
	f := func(x float64) *float64 { return &x }
	for _, tt := range []struct {
		in   *float64
		want string
	}{{nil, "-"}, {f(45), "45s"}, {f(90), "1.5m"}, {f(2700), "45.0m"}, {f(5400), "1.5h"}, {f(2 * 86400), "2.0d"}} {
		if got := seconds(tt.in); got != tt.want {
			t.Errorf("seconds(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var b bytes.Buffer
	tb := newTable("A", "NUMBER", "≥ TITLE").alignRight(1)
	tb.add("x", "1,000", "tap ≥ 3")
	tb.add("longer", "5", "")
	tb.write(&b)
	want := "A       NUMBER  ≥ TITLE\nx        1,000  tap ≥ 3\nlonger       5\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
}
