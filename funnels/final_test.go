package funnels_test

import (
	"encoding/json"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// TestOutcomesFinalBeforeExpiry: an installation's counted outcome whose
// entry is about to leave the raw store is not evaluated again; a later
// record leaves it as it is, while a young installation's still counts.
func TestOutcomesFinalBeforeExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	e := newEnv(t, "funnelfinal")
	f := e.create(tapline.FunnelDefinition{Name: "final", Steps: []tapline.FunnelStep{
		{Kind: tapline.StepInstall}, {Kind: tapline.StepEvent, Event: "open"}, {Kind: tapline.StepEvent, Event: "purchase"}}})
	fp := fingerprint.New()
	now := time.Now().UTC()
	event := func(id, install, name string, at time.Time) tapline.Message {
		ev := &tapline.Event{ID: id, AppID: e.app.ID, Name: name, Kind: tapline.KindCustom, Time: at, ReceivedAt: at,
			InstallID: install, IP: "192.0.2.7", Device: tapline.Device{Platform: tapline.PlatformIOS}, Protocol: "v1"}
		if name == "install" {
			ev.Kind = tapline.KindInstall
		}
		fp.Event(ev)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return tapline.Message{Topic: tapline.TopicEvents, Key: fingerprint.BusKey(e.app.ID, ev.Fingerprint), Value: b, Time: at}
	}
	steps := func() [3]int64 {
		var n [3]int64
		for k, v := range e.results(f.VersionID) {
			n[k.Step-1] += v.Count
		}
		return n
	}

	e.startMatcher()
	e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	e.backfill(f.VersionID)
	for _, d := range []string{"x", "z"} {
		e.publish([]tapline.Message{
			event(d+"-install", d, "install", now.Add(-2*time.Hour)),
			event(d+"-open", d, "open", now.Add(-time.Hour)),
		})
	}
	e.drain()
	e.stopMatcher()
	if got := steps(); got != [3]int64{2, 2, 0} {
		t.Fatalf("after installs and opens: %v", got)
	}

	// 55 days on, x's entry is within a click window of expiring: its
	// purchase no longer counts.
	later := e.newMatcherAt(now.Add(55 * 24 * time.Hour))
	e.publish([]tapline.Message{event("x-buy", "x", "purchase", now.Add(-30*time.Minute))})
	e.drain()
	if err := later.Close(); err != nil {
		t.Fatal(err)
	}
	if got := steps(); got != [3]int64{2, 2, 0} {
		t.Fatalf("a purchase of a final outcome counted: %v", got)
	}

	// Back to now: z's purchase counts.
	e.startMatcher()
	e.publish([]tapline.Message{event("z-buy", "z", "purchase", now.Add(-20*time.Minute))})
	e.drain()
	e.stopMatcher()
	if got := steps(); got != [3]int64{2, 2, 1} {
		t.Fatalf("after z's purchase: %v", got)
	}
}
