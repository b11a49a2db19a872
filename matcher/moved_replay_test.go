package matcher

import (
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

// A second install event of one installation (the SDK kept its install
// id), counted under the installation's attribution, then moved by a
// re-attribution, then replayed (its own deltas lost in a crash, the
// move's kept): it must count where it was first counted, as countEvent
// does for other events, not under the current attribution.
// TestSecondInstallEventReplayAfterMove: a second install event of one
// installation, replayed after a re-attribution moved it, counts once.
func TestSecondInstallEventReplayAfterMove(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const idfa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
	withIDFA := func(e *tapline.Event) { iphone(e); e.Device.IDFA = idfa }
	all := facts.Batch{}
	all.Merge(h.hit("h1", 1, t0, ipA, safariUA))
	all.Merge(h.install("e1", t0.Add(time.Hour), ipA, withIDFA))
	second := &tapline.Event{ID: "e1b", AppID: appID, Name: "install", Kind: tapline.KindInstall, Time: t0.Add(2 * time.Hour),
		ReceivedAt: t0.Add(2 * time.Hour), InstallID: "inst-e1", IP: ipA}
	withIDFA(second)
	h.fp.Event(second)
	secondMsg := h.msg(tapline.TopicEvents, second, t0.Add(2*time.Hour))
	_ = h.run(secondMsg) // its deltas are lost in a crash

	late := &tapline.Hit{ID: "h2", Time: t0.Add(30 * time.Minute), AppID: appID, LinkID: 2, IP: ipB, UserAgent: safariUA, AdID: idfa}
	h.fp.Hit(late)
	all.Merge(h.run(h.msg(tapline.TopicHits, late, t0.Add(3*time.Hour))))
	if c := h.conversion("e1"); c.LinkID != 2 {
		t.Fatalf("not re-attributed: link %d", c.LinkID)
	}
	all.Merge(h.run(secondMsg)) // the replay
	got := byLink(all)
	if got["events/1"] != 0 || got["events/2"] != 2 {
		t.Errorf("events by link %v, want events/2: 2 and nothing under link 1", got)
	}
}

// An event with revenue consumed before its install (no conversion yet:
// counted organic, without cohort revenue) of an install matched organic,
// then re-attributed by a late tap: the move takes cohort revenue from the
// organic cohort that never got it.
// TestEventBeforeInstallNotMoved: an event counted before its install was
// matched stays organic when the install is re-attributed; no fact goes
// negative.
func TestEventBeforeInstallNotMoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const idfa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
	withIDFA := func(e *tapline.Event) { iphone(e); e.Device.IDFA = idfa }
	all := facts.Batch{}
	p := &tapline.Event{ID: "p0", AppID: appID, Name: "purchase", Kind: tapline.KindPurchase, Time: t0.Add(90 * time.Minute),
		ReceivedAt: t0.Add(90 * time.Minute), InstallID: "inst-e1", IP: ipA, Revenue: &tapline.Revenue{Micros: 1_000_000, Currency: "EUR"}}
	withIDFA(p)
	p.Revenue = &tapline.Revenue{Micros: 1_000_000, Currency: "EUR"}
	h.fp.Event(p)
	all.Merge(h.run(h.msg(tapline.TopicEvents, p, t0.Add(90*time.Minute))))
	all.Merge(h.install("e1", t0.Add(time.Hour), ipA, withIDFA))
	if c := h.conversion("e1"); c.Method != tapline.MethodOrganic {
		t.Fatalf("install %s, want organic", c.Method)
	}
	late := &tapline.Hit{ID: "h2", Time: t0.Add(30 * time.Minute), AppID: appID, LinkID: 2, IP: ipB, UserAgent: safariUA, AdID: idfa}
	h.fp.Hit(late)
	all.Merge(h.run(h.msg(tapline.TopicHits, late, t0.Add(3*time.Hour))))
	got := byLink(all)
	for k, v := range got {
		if v < 0 {
			t.Errorf("fact %s is %d (negative); facts by link %v", k, v, got)
		}
	}
}
