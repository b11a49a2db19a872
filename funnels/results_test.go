package funnels

import (
	"math"
	"testing"
	"time"

	"tapline"
)

func TestQuantile(t *testing.T) {
	hist := make([]int64, len(tapline.FunnelBuckets))
	sums := make([]int64, len(tapline.FunnelBuckets))
	if got := Quantile(hist, sums, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	// One time of 3 s: the median is that time.
	hist[0], sums[0] = 1, 3
	if got := Quantile(hist, sums, 0.5); got != 3 {
		t.Errorf("median of one 3 s time: %v", got)
	}
	// 10 times in [0, 10) averaging 5 s and 10 in [60, 120) averaging 90 s:
	// the median is the top of the first bucket, p90 between 90 and 120.
	hist[0], sums[0] = 10, 50
	hist[3], sums[3] = 10, 900
	if got := Quantile(hist, sums, 0.5); got != 10 {
		t.Errorf("median: %v, want 10", got)
	}
	if got := Quantile(hist, sums, 0.9); got <= 90 || got >= 120 {
		t.Errorf("p90: %v, want between 90 and 120", got)
	}
	// The last bucket stops at its mean.
	clear(hist)
	clear(sums)
	last := len(hist) - 1
	hist[last], sums[last] = 2, 2*(70*86400)
	if got := Quantile(hist, sums, 1); math.Abs(got-70*86400) > 1e-6 {
		t.Errorf("last bucket: %v", got)
	}
}

func TestResults(t *testing.T) {
	f := &tapline.Funnel{FunnelDefinition: tapline.FunnelDefinition{Name: "f",
		Steps:     []tapline.FunnelStep{{Kind: tapline.StepInstall}, {Kind: tapline.StepEvent, Event: "open"}, {Kind: tapline.StepEvent, Event: "buy"}},
		Breakdown: tapline.FunnelBreakdown{Kind: tapline.BreakdownPlatform}}}
	rows := []tapline.FunnelRow{
		{Day: "2026-11-01", Breakdown: "ios", Step: 1, Count: 6},
		{Day: "2026-11-01", Breakdown: "android", Step: 1, Count: 4},
		{Day: "2026-11-02", Breakdown: "ios", Step: 1, Count: 2},
		{Day: "2026-11-01", Breakdown: "ios", Step: 2, Bucket: 1, Count: 3, Sum: 45},
		{Day: "2026-11-01", Breakdown: "android", Step: 2, Bucket: 1, Count: 1, Sum: 20},
		{Day: "2026-11-01", Breakdown: "ios", Step: 3, Bucket: 8, Count: 1, Sum: 4000},
		{Day: "2026-11-01", Breakdown: "ios", Step: 9, Count: 100}, // not a step: ignored
	}
	days, _, _, err := Days(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), time.UTC, 10)
	if err != nil {
		t.Fatal(err)
	}
	res := Results(f, rows, days)
	if c := [3]int64{res.Steps[0].Count, res.Steps[1].Count, res.Steps[2].Count}; c != [3]int64{12, 4, 1} {
		t.Fatalf("counts %v", c)
	}
	if st := res.Steps[1]; st.DropOff != 8 || math.Abs(st.Conversion-4.0/12) > 1e-9 || *st.MeanSeconds != 65.0/4 {
		t.Errorf("step 2: %+v", st)
	}
	if st := res.Steps[2]; math.Abs(st.TotalConversion-1.0/12) > 1e-9 || *st.MedianSeconds != 4000 {
		t.Errorf("step 3: %+v median %v", st, *st.MedianSeconds)
	}
	if len(res.Breakdown) != 2 || res.Breakdown[0].Value != "ios" || res.Breakdown[0].Steps[0] != 8 || res.Breakdown[1].Steps[1] != 1 {
		t.Errorf("breakdown %+v", res.Breakdown)
	}
	if len(res.Days) != 2 || res.Days[1].Day != "2026-11-02" || res.Days[1].Steps[0] != 2 || res.Days[1].Steps[1] != 0 {
		t.Errorf("days %+v", res.Days)
	}
}
