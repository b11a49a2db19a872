package matcher

import (
	"fmt"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

// byLink sums b per table and link (and, for revenue, its micros), the
// zero sums left out.
func byLink(b facts.Batch) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		switch k.Table {
		case tapline.FactEvents, tapline.FactRevenue, tapline.FactCohortRevenue, tapline.FactInstalls, tapline.FactConversions:
		default:
			continue
		}
		key := fmt.Sprintf("%s/%d", k.Table, k.LinkID)
		out[key] += v.Count
		if k.Table == tapline.FactRevenue || k.Table == tapline.FactCohortRevenue {
			out[key+"/sum"] += v.Sum
		}
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// TestReattributionMovesEvents re-attributes an install whose events are
// counted already: its events, revenue and cohort revenue move with it,
// so that every fact table sums per link to what the stored conversion
// implies; replays of the re-attribution and of an event counted before
// it count nothing twice, and an event after it counts under the new link.
func TestReattributionMovesEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const idfa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
	withIDFA := func(e *tapline.Event) { iphone(e); e.Device.IDFA = idfa }
	paid := func(micros int64) eventOpt {
		return func(e *tapline.Event) { withIDFA(e); e.Revenue = &tapline.Revenue{Micros: micros, Currency: "EUR"} }
	}
	all := facts.Batch{}
	all.Merge(h.hit("h1", 1, t0, ipA, safariUA))
	all.Merge(h.install("e1", t0.Add(time.Hour), ipA, withIDFA))
	if c := h.conversion("e1"); c.LinkID != 1 {
		t.Fatalf("install credited to link %d, want 1 by fingerprint", c.LinkID)
	}
	b, _ := h.event("o1", "inst-e1", tapline.KindOpen, t0.Add(2*time.Hour), ipA, withIDFA)
	all.Merge(b)
	purchase := h.msg(tapline.TopicEvents, func() *tapline.Event {
		e := &tapline.Event{ID: "p1", AppID: appID, Name: "purchase", Kind: tapline.KindPurchase, Time: t0.Add(150 * time.Minute),
			ReceivedAt: t0.Add(150 * time.Minute), InstallID: "inst-e1", IP: ipA}
		paid(4_990_000)(e)
		h.fp.Event(e)
		return e
	}(), t0.Add(150*time.Minute))
	all.Merge(h.run(purchase))

	// A late tap with the install's advertising id: a stronger match.
	late := &tapline.Hit{ID: "h2", Time: t0.Add(30 * time.Minute), AppID: appID, LinkID: 2, IP: ipB, UserAgent: safariUA, AdID: idfa}
	h.fp.Hit(late)
	lateMsg := h.msg(tapline.TopicHits, late, t0.Add(3*time.Hour))
	moved := h.run(lateMsg)
	all.Merge(moved)
	c := h.conversion("e1")
	if c.LinkID != 2 || c.Method != tapline.MethodAdID {
		t.Fatalf("after the late tap: link %d by %s, want link 2 by advertising id", c.LinkID, c.Method)
	}
	if ch := c.History[len(c.History)-1]; len(ch.Moved) != 3 {
		t.Fatalf("the re-attribution moved %+v, want the install, the open and the purchase", ch.Moved)
	}
	// After it: an open under link 2 at once.
	b, _ = h.event("o2", "inst-e1", tapline.KindOpen, t0.Add(4*time.Hour), ipA, withIDFA)
	all.Merge(b)

	want := map[string]int64{
		"installs/2": 1, "conversions/2": 1,
		"events/2":  4, // install, two opens, the purchase
		"revenue/2": 1, "revenue/2/sum": 4_990_000,
		"cohort_revenue/2": 1, "cohort_revenue/2/sum": 4_990_000,
	}
	check := func(when string) {
		t.Helper()
		got := byLink(all)
		if len(got) != len(want) {
			t.Errorf("%s: facts by link %v, want %v", when, got, want)
			return
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: facts by link %v, want %v", when, got, want)
				return
			}
		}
	}
	check("after the re-attribution")

	// The re-attribution replayed (its deltas lost in a crash): the same
	// deltas again, which the lost ones are replaced by.
	if again := h.run(lateMsg); !equalBatches(again, moved) {
		t.Errorf("replay of the re-attribution gave %v, want %v", again, moved)
	}
	// The purchase replayed after the re-attribution (its deltas lost,
	// the move's kept): counted where it first was, under link 1, which
	// the move takes it from.
	replayed := h.run(purchase)
	if got := byLink(replayed); got["revenue/1"] != 1 || got["events/1"] != 1 || got["revenue/2"] != 0 {
		t.Errorf("replayed purchase counted %v, want it under link 1 where it first was", got)
	}
}
