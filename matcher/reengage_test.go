package matcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

const (
	gaid1    = "38400000-8cf0-11bd-b23e-10b96e40000d"
	gaid2    = "5b3c1e6a-2d4f-4b8e-9a61-7f0c2e9d1a35"
	reengage = int64(100) // a re-engagement link in the harness
)

// reengagementLinks marks links as re-engagement links in the harness's
// app cache.
func (h *harness) reengagementLinks(ids ...int64) {
	e := h.m.apps.entries[appID]
	if e.reengagement == nil {
		e.reengagement = map[int64]bool{}
	}
	for _, id := range ids {
		e.reengagement[id] = true
	}
	h.m.apps.entries[appID] = e
}

// app returns the harness's app, whose settings a test may change.
func (h *harness) app() *tapline.App { return h.m.apps.entries[appID].app }

// rowsOf sums the rows of table in b by "link/method".
func rowsOf(b facts.Batch, table tapline.FactTable) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if k.Table == table && v.Count != 0 {
			out[fmt.Sprintf("%d/%s", k.LinkID, k.Method)] += v.Count
		}
	}
	return out
}

func withGAID(id string) eventOpt { return func(e *tapline.Event) { e.Device.GAID = id } }
func limited(e *tapline.Event)    { e.Device.LimitAdTracking = true }
func hitAdID(id string) hitOpt    { return func(h *tapline.Hit) { h.AdID = id } }

// open processes an open of installation installID.
func (h *harness) open(id, installID string, at time.Time, ip string, opts ...eventOpt) facts.Batch {
	h.t.Helper()
	b, _ := h.event(id, installID, tapline.KindOpen, at, ip, opts...)
	return b
}

func TestReengagementRules(t *testing.T) {
	if testing.Short() {
		// make race runs -short: this table drives the matcher from one
		// goroutine, takes minutes under the race detector, and the plain
		// go test run covers it.
		t.Skip("single-goroutine rule table; skipped with -short (make race), run by go test without -short")
	}
	day := 24 * time.Hour
	installed := t0 // inst-e1: an Android install with gaid1 from ipA
	tests := []struct {
		name  string
		steps func(h *harness) facts.Batch // returns the deltas of the open that counts
		want  map[string]int64             // re-engagements by link/method
	}{
		{"advertising id within the window", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, map[string]int64{"100/advertising_id": 1}},
		{"advertising id outside the window", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(10*day+time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"a normal link", func(h *harness) facts.Batch {
			h.hit("h1", 7, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"an open by an unknown install", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-unknown", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"another advertising id", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid2))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"a limited advertising id is never used", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1), limited)
		}, nil},
		{"a limited device matches by fingerprint", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipA, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1), limited)
		}, map[string]int64{"100/fingerprint": 1}},
		{"fingerprint within its window", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipA, chromeAndUA)
			return h.open("o1", "inst-e1", installed.Add(3*day+2*time.Hour), ipA, android)
		}, map[string]int64{"100/fingerprint": 1}},
		{"fingerprint past the fingerprint window", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipA, chromeAndUA)
			return h.open("o1", "inst-e1", installed.Add(4*day+time.Hour), ipA, android)
		}, nil},
		{"fingerprint of an incompatible device", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipA, safariUA)
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android)
		}, nil},
		{"a tap before the install led to the install", func(h *harness) facts.Batch {
			// The tap is the install's, on a fresh app whose install
			// follows it; its first open is no re-engagement.
			h.hit("h0", reengage, installed.Add(10*day), ipB, chromeAndUA, hitAdID(gaid2))
			h.install("e2", installed.Add(10*day+time.Minute), ipB, android, withGAID(gaid2))
			return h.open("o1", "inst-e2", installed.Add(10*day+2*time.Minute), ipB, android, withGAID(gaid2))
		}, nil},
		{"the first open after the tap only", func(h *harness) facts.Batch {
			// o1 follows the tap but is consumed before it: not credited
			// (no late taps for re-engagements); o2 is not the first open
			// after the tap.
			h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o2", "inst-e1", installed.Add(3*day+2*time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"an open before the tap does not count", func(h *harness) facts.Batch {
			h.open("o0", "inst-e1", installed.Add(2*day), ipA, android, withGAID(gaid1))
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, map[string]int64{"100/advertising_id": 1}},
		{"one re-engagement per tap", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			if got := rowsOf(h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1)), tapline.FactReengagements); got["100/advertising_id"] != 1 {
				t.Errorf("first open: %v, want one re-engagement", got)
			}
			return h.open("o2", "inst-e1", installed.Add(3*day+2*time.Hour), ipA, android, withGAID(gaid1))
		}, nil},
		{"a tap credited to one installation is not another's", func(h *harness) facts.Batch {
			h.install("e2", installed.Add(time.Hour), ipA, android) // a second phone on the network
			h.hit("h1", reengage, installed.Add(3*day), ipA, chromeAndUA)
			if got := rowsOf(h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android), tapline.FactReengagements); got["100/fingerprint"] != 1 {
				t.Errorf("first phone's open: %v, want one re-engagement", got)
			}
			return h.open("o2", "inst-e2", installed.Add(3*day+2*time.Hour), ipA, android)
		}, nil},
		{"the newest of two taps", func(h *harness) facts.Batch {
			h.hit("h1", reengage, installed.Add(2*day), ipB, chromeAndUA, hitAdID(gaid1))
			h.hit("h2", reengage+1, installed.Add(3*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.open("o1", "inst-e1", installed.Add(3*day+time.Hour), ipA, android, withGAID(gaid1))
		}, map[string]int64{"101/advertising_id": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.reengagementLinks(reengage, reengage+1)
			h.hit("h-install", 5, installed.Add(-time.Hour), ipA, chromeAndUA, hitAdID(gaid1))
			h.install("e1", installed, ipA, android, withGAID(gaid1))
			before := h.conversion("e1")
			b := tt.steps(h)
			got := rowsOf(b, tapline.FactReengagements)
			if !equalCounts(got, tt.want) {
				t.Fatalf("re-engagements %v, want %v", got, tt.want)
			}
			if ins := installs(b); len(ins) != 0 || len(rowsOf(b, tapline.FactConversions)) != 0 || len(rowsOf(b, tapline.FactReinstalls)) != 0 {
				t.Fatalf("the open counted installs %v or conversions: %v", ins, b)
			}
			if ev := rowsOf(b, tapline.FactEvents); len(ev) != 1 {
				t.Fatalf("the open counted events %v, want one", ev)
			}
			if after := h.conversion("e1"); after.HitID != before.HitID || after.Method != before.Method || len(after.History) != len(before.History) {
				t.Fatalf("the install's attribution changed: %s by %s, was %s by %s", after.HitID, after.Method, before.HitID, before.Method)
			}
		})
	}
}

// TestReengagementStored checks the stored re-engagement and its decision,
// and that a replay of the open emits its delta again while a resend
// emits nothing.
func TestReengagementStored(t *testing.T) {
	h := newHarness(t)
	h.reengagementLinks(reengage)
	h.install("e1", t0, ipA, android, withGAID(gaid1))
	h.hit("h1", reengage, t0.Add(48*time.Hour), ipB, chromeAndUA, hitAdID(gaid1), func(hit *tapline.Hit) {
		hit.Params = map[string]string{"utm_campaign": "winback"}
	})
	open := &tapline.Event{ID: "o1", AppID: appID, Name: "android-app-open", Kind: tapline.KindOpen, Time: t0.Add(49 * time.Hour),
		ReceivedAt: t0.Add(49 * time.Hour), InstallID: "inst-e1", IP: ipA}
	android(open)
	open.Device.GAID = gaid1
	h.fp.Event(open)
	msg := h.msg(tapline.TopicEvents, open, open.Time)
	first := h.run(msg)
	k := tapline.FactKey{Table: tapline.FactReengagements, Hour: tapline.HourOf(open.Time), AppID: appID, LinkID: reengage,
		Platform: tapline.PlatformAndroid, Method: tapline.MethodAdID, Campaign: "winback"}
	if first[k].Count != 1 {
		t.Fatalf("deltas %v lack the re-engagement row %+v", first, k)
	}
	r, err := h.m.Raw.Reengagement(context.Background(), appID, tapline.ReengagementID("o1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.HitID != "h1" || r.InstallID != "inst-e1" || r.By != msg.Position() || r.Decision == nil || r.Decision.Rule != tapline.RuleReengagement ||
		r.Decision.Window != h.app().ReengagementWindow || len(r.Decision.Candidates) != 1 || !r.Decision.Candidates[0].Chosen {
		t.Fatalf("stored re-engagement %+v, decision %+v", r, r.Decision)
	}
	if b := h.run(msg); !equalBatches(b, first) {
		t.Fatalf("replay of the open gave %v, want %v", b, first)
	}
	dup := *open
	if b := h.run(h.msg(tapline.TopicEvents, &dup, open.Time)); len(b) != 0 {
		t.Fatalf("resent open gave %v, want nothing", b)
	}
	// A later open is not credited, the tap being taken.
	if got := rowsOf(h.open("o2", "inst-e1", t0.Add(50*time.Hour), ipA, android, withGAID(gaid1)), tapline.FactReengagements); len(got) != 0 {
		t.Fatalf("second open: %v", got)
	}
}

// TestReengagementReplayAfterTakenTap replays an open whose re-engagement
// was stored before a crash, after another open of another record has
// tried to claim the same tap: the replay still counts its own.
func TestReengagementReplayAfterTakenTap(t *testing.T) {
	h := newHarness(t)
	h.reengagementLinks(reengage)
	h.install("e1", t0, ipA, android)
	h.install("e2", t0.Add(time.Minute), ipA, android)
	h.hit("h1", reengage, t0.Add(48*time.Hour), ipA, chromeAndUA)
	o1 := &tapline.Event{ID: "o1", AppID: appID, Name: "open", Kind: tapline.KindOpen, Time: t0.Add(49 * time.Hour), ReceivedAt: t0.Add(49 * time.Hour), InstallID: "inst-e1", IP: ipA}
	android(o1)
	h.fp.Event(o1)
	msg := h.msg(tapline.TopicEvents, o1, o1.Time)
	first := h.run(msg)
	if got := rowsOf(first, tapline.FactReengagements); got["100/fingerprint"] != 1 {
		t.Fatalf("o1: %v", got)
	}
	if got := rowsOf(h.open("o2", "inst-e2", t0.Add(50*time.Hour), ipA, android), tapline.FactReengagements); len(got) != 0 {
		t.Fatalf("o2 on the taken tap: %v", got)
	}
	if b := h.run(msg); !equalBatches(b, first) {
		t.Fatalf("replay of o1 gave %v, want %v", b, first)
	}
}
