package facts

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"tapline"
)

// TestPendingBytesEstimate fills aggregators with rows shaped like the
// matcher's, each built anew, and compares Size's bytes with what the heap
// grew by: the estimate bounds the matcher's memory, so it must be near
// the truth, not merely grow.
func TestPendingBytesEstimate(t *testing.T) {
	const n = 20_000
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		add  func(a *Aggregator, i int)
	}{
		{"fact rows", func(a *Aggregator, i int) {
			b := Batch{}
			b.Add(tapline.FactKey{Table: tapline.FactInstalls, Hour: tapline.HourOf(t0.Add(time.Duration(i) * time.Hour)), AppID: 1, LinkID: int64(i % 7),
				Platform: tapline.PlatformIOS, Source: fmt.Sprintf("network-%d", i%9), Campaign: fmt.Sprintf("campaign-%d", i%13)}, tapline.FactValue{Count: 1})
			a.Commit("events", 0, int64(i), b, tapline.FlushRows{})
		}},
		{"matched conversions", func(a *Aggregator, i int) {
			a.Commit("events", 0, int64(i), nil, tapline.FlushRows{Conversions: []*tapline.Conversion{matched(i, t0)}})
		}},
		{"re-attributed conversions", func(a *Aggregator, i int) {
			c := matched(i, t0)
			from := c.Attribution
			c.Attribution = tapline.Attribution{HitID: fmt.Sprintf("hit-late-%08d", i), LinkID: 9, Method: tapline.MethodAdID, HitTime: t0,
				HitParams: map[string]string{"utm_source": "network-b", "clickid": fmt.Sprintf("b-%d", i)}}
			moved := []tapline.MovedEvent{
				{ID: fmt.Sprintf("open-%08d", i), Name: "open", Kind: tapline.KindOpen, Time: t0},
				{ID: fmt.Sprintf("buy-%08d", i), Name: "purchase", Kind: tapline.KindPurchase, Time: t0, Revenue: &tapline.Revenue{Micros: 4990000, Currency: "EUR"}},
			}
			c.History = append(c.History, tapline.AttributionChange{By: fmt.Sprintf("hits/3/%d", i), From: &from, To: c.Attribution, At: t0, Moved: moved})
			a.Commit("hits", 0, int64(i), nil, tapline.FlushRows{Conversions: []*tapline.Conversion{c}})
		}},
		{"deliveries", func(a *Aggregator, i int) {
			d := &tapline.Delivery{Key: fmt.Sprintf("pb-1|conv-%08d|install", i), AppID: 1, PostbackID: 1, Network: "network-a", Trigger: "install",
				ConversionID: fmt.Sprintf("conv-%08d", i), Method: "GET", URL: fmt.Sprintf("https://postback.example/install?click=%d&event=install-%08d&ts=1764500000", i, i)}
			a.Commit("events", 0, int64(i), nil, tapline.FlushRows{Deliveries: []*tapline.Delivery{d}})
		}},
		{"cohort activity", func(a *Aggregator, i int) {
			act := tapline.CohortActivity{InstallID: fmt.Sprintf("install-%08d", i), Key: tapline.FactKey{Table: tapline.FactCohortActivity, Hour: tapline.HourOf(t0), AppID: 1, DayN: 1 + i%30}}
			a.Commit("events", 0, int64(i), nil, tapline.FlushRows{Activity: []tapline.CohortActivity{act}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			a := NewAggregator()
			for i := range n {
				tc.add(a, i)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			_, est := a.Size()
			runtime.KeepAlive(a)
			heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			ratio := float64(est) / float64(heap)
			t.Logf("%d rows: estimated %d bytes (%d a row), the heap grew %d (%d a row): %.2f", n, est, est/n, heap, heap/n, ratio)
			if ratio < 1/1.6 || ratio > 1.6 {
				t.Errorf("the estimate is %.2f times the heap's growth, want within a factor of 1.6", ratio)
			}
			a.Take()
			if _, got := a.Size(); got != 0 {
				t.Errorf("after Take: %d bytes pending, want 0", got)
			}
		})
	}
}

// matched is a fingerprint-matched conversion as the matcher records it:
// its decision with five candidates and the install's signals.
func matched(i int, t0 time.Time) *tapline.Conversion {
	a := tapline.Attribution{HitID: fmt.Sprintf("hit-%08d", i), LinkID: 3, Method: tapline.MethodFingerprint, HitTime: t0.Add(-time.Hour),
		HitParams: map[string]string{"utm_source": "network-a", "utm_campaign": "winter", "clickid": fmt.Sprintf("a-%d", i)}}
	d := &tapline.Decision{Rule: tapline.RuleFingerprint, Reason: fmt.Sprintf("the best of %d taps from 203.0.113.0/24 scored 0.91, over the app's 0.6", 5+i%3),
		Window: 24 * time.Hour, Score: 0.91, MinScore: 0.6, Considered: 7}
	for _, name := range []string{"address", "platform", "os_version", "model", "language", "timezone"} {
		d.Signals = append(d.Signals, tapline.Signal{Name: name, Install: fmt.Sprintf("%s-of-%d", name, i%50), Hit: fmt.Sprintf("%s-of-%d", name, i%50), Verdict: tapline.VerdictAgree, Weight: 0.1})
	}
	for k := range 5 {
		d.AddCandidate(tapline.Candidate{HitID: fmt.Sprintf("hit-%08d-%d", i, k), LinkID: int64(k), HitTime: t0.Add(-time.Duration(k) * time.Minute),
			Method: tapline.MethodFingerprint, Chosen: k == 0, Score: 0.9 - float64(k)/10, Reason: fmt.Sprintf("scored %.2f, below the chosen tap's 0.91", 0.9-float64(k)/10)})
	}
	return &tapline.Conversion{ID: fmt.Sprintf("conv-%08d", i), AppID: 1, EventID: fmt.Sprintf("install-%08d", i), InstallID: fmt.Sprintf("device-%08d", i),
		InstallTime: t0, Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.0/24|ios|17.4.1|iPhone15,2", Attribution: a,
		History: []tapline.AttributionChange{{By: fmt.Sprintf("events/1/%d", i), To: a, At: t0}}, UpdatedAt: t0, Decision: d}
}
