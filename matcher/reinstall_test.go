package matcher

import (
	"context"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

func TestReinstallRules(t *testing.T) {
	if testing.Short() {
		// make race runs -short: this table drives the matcher from one
		// goroutine, takes minutes under the race detector, and the plain
		// go test run covers it.
		t.Skip("single-goroutine rule table; skipped with -short (make race), run by go test without -short")
	}
	day := 24 * time.Hour
	const idfv = "e621e1f8-c36c-495a-93fc-0c247a3e6e5f"
	iosIDFV := func(e *tapline.Event) { iphone(e); e.Device.IDFV = idfv }
	tests := []struct {
		name        string
		reattribute bool
		steps       func(h *harness) facts.Batch // returns the deltas of the second install
		installs    map[string]int64             // of the second install
		reinstalls  map[string]int64
		by          string // the Reinstall's By, "" for none (or one in place)
	}{
		{"by advertising id keeps the attribution", false, func(h *harness) facts.Batch {
			h.hit("h1", 1, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			return h.install("e2", t0.Add(10*day), ipB, android, withGAID(gaid1))
		}, nil, map[string]int64{"1/advertising_id": 1}, tapline.ReinstallByAdID},
		{"outside the reinstall window is a new install", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			return h.install("e2", t0.Add(61*day), ipB, android, withGAID(gaid1))
		}, map[string]int64{"0/organic": 1}, nil, ""},
		{"another advertising id is a new install", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			return h.install("e2", t0.Add(day), ipA, android, withGAID(gaid2))
		}, map[string]int64{"0/organic": 1}, nil, ""},
		{"a limited advertising id is never used", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1), limited)
			return h.install("e2", t0.Add(day), ipB, android, withGAID(gaid1), limited)
		}, map[string]int64{"0/organic": 1}, nil, ""},
		{"an earlier limited install is never found by its advertising id", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1), limited)
			return h.install("e2", t0.Add(day), ipB, android, withGAID(gaid1))
		}, map[string]int64{"0/organic": 1}, nil, ""},
		{"by vendor id", false, func(h *harness) facts.Batch {
			h.hit("h1", 3, t0.Add(-time.Minute), ipA, safariUA)
			h.install("e1", t0, ipA, iosIDFV)
			return h.install("e2", t0.Add(20*day), ipB, iosIDFV)
		}, nil, map[string]int64{"3/fingerprint": 1}, tapline.ReinstallByVendorID},
		{"by install id", false, func(h *harness) facts.Batch {
			h.hit("h1", 1, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			b, _ := h.event("e2", "inst-e1", tapline.KindInstall, t0.Add(3*day), ipB, android)
			return b
		}, nil, map[string]int64{"1/advertising_id": 1}, ""},
		{"by install id outside the window is an event only", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			b, _ := h.event("e2", "inst-e1", tapline.KindInstall, t0.Add(70*day), ipB, android)
			return b
		}, nil, nil, ""},
		{"re-attributed to a new tap", true, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			h.hit("h2", 2, t0.Add(10*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.install("e2", t0.Add(10*day+time.Hour), ipB, android, withGAID(gaid1))
		}, nil, map[string]int64{"2/advertising_id": 1}, tapline.ReinstallByAdID},
		{"not re-attributed when the option is off", false, func(h *harness) facts.Batch {
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			h.hit("h2", 2, t0.Add(10*day), ipB, chromeAndUA, hitAdID(gaid1))
			return h.install("e2", t0.Add(10*day+time.Hour), ipB, android, withGAID(gaid1))
		}, nil, map[string]int64{"0/organic": 1}, tapline.ReinstallByAdID},
		{"re-attributed without a tap is organic", true, func(h *harness) facts.Batch {
			h.hit("h1", 1, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			return h.install("e2", t0.Add(10*day), ipB, android, withGAID(gaid1))
		}, nil, map[string]int64{"0/organic": 1}, tapline.ReinstallByAdID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.app().ReattributeReinstalls = tt.reattribute
			b := tt.steps(h)
			if got := installs(b); !equalCounts(got, tt.installs) {
				t.Errorf("installs %v, want %v", got, tt.installs)
			}
			if got := rowsOf(b, tapline.FactReinstalls); !equalCounts(got, tt.reinstalls) {
				t.Errorf("reinstalls %v, want %v", got, tt.reinstalls)
			}
			if len(tt.reinstalls) > 0 && len(rowsOf(b, tapline.FactConversions)) != 0 {
				t.Errorf("a reinstall counted conversions: %v", rowsOf(b, tapline.FactConversions))
			}
			if ev := rowsOf(b, tapline.FactEvents); len(ev) != 1 {
				t.Errorf("the install event counted events %v, want one", ev)
			}
			c, err := h.m.Raw.Conversion(context.Background(), appID, tapline.ConversionID("e2"))
			if tt.by == "" {
				if err == nil && c.Reinstall != nil {
					t.Errorf("conversion of e2 is a reinstall %+v, want none", c.Reinstall)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.KeepsAttribution() && c.ClickToInstall != 0 {
				t.Errorf("a kept reinstall has a click-to-install time %s from the earlier install's tap", c.ClickToInstall)
			}
			want := tapline.Reinstall{Of: tapline.ConversionID("e1"), By: tt.by, Reattributed: tt.reattribute}
			if c.Reinstall == nil || *c.Reinstall != want {
				t.Fatalf("Reinstall = %+v, want %+v", c.Reinstall, want)
			}
			wantRule := tapline.RuleReinstall
			if tt.reattribute {
				wantRule = c.Decision.Rule // the match's own rule
				if wantRule == tapline.RuleReinstall {
					t.Errorf("a re-attributed reinstall's decision names the reinstall rule")
				}
			}
			if c.Decision == nil || c.Decision.Rule != wantRule || c.Decision.Window == 0 && !tt.reattribute {
				t.Errorf("decision %+v, want rule %s", c.Decision, wantRule)
			}
		})
	}
}

// TestReinstallKeepsAttributionAgainstLateTap checks that a reinstall that
// keeps its earlier install's attribution is never re-attributed by a late
// tap, and that with re-attribution on it is, as an install would be.
func TestReinstallKeepsAttributionAgainstLateTap(t *testing.T) {
	for _, reattribute := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept", true: "re-attributed"}[reattribute], func(t *testing.T) {
			h := newHarness(t)
			h.app().ReattributeReinstalls = reattribute
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			h.install("e2", t0.Add(48*time.Hour), ipB, android, withGAID(gaid1))
			// A tap published after the reinstall, tapped before it.
			hit := &tapline.Hit{ID: "h9", Time: t0.Add(47 * time.Hour), AppID: appID, LinkID: 9, IP: ipB, UserAgent: chromeAndUA, AdID: gaid1}
			h.fp.Hit(hit)
			b := h.run(h.msg(tapline.TopicHits, hit, t0.Add(48*time.Hour+time.Minute)))
			c := h.conversion("e2")
			got := rowsOf(b, tapline.FactReinstalls)
			if reattribute {
				if c.HitID != "h9" || got["9/advertising_id"] != 1 || got["0/organic"] != -1 {
					t.Fatalf("conversion on %q, reinstall deltas %v; want moved to h9", c.HitID, got)
				}
			} else if c.HitID != "" || len(got) != 0 {
				t.Fatalf("conversion on %q, reinstall deltas %v; want kept", c.HitID, got)
			}
			if ins := installs(b); len(ins) != 0 {
				t.Fatalf("the late tap moved installs %v, want none (a reinstall is none)", ins)
			}
		})
	}
}

// TestReinstallReplay replays a reinstall's record: the same deltas again,
// nothing for a resend.
func TestReinstallReplay(t *testing.T) {
	h := newHarness(t)
	h.install("e1", t0, ipA, android, withGAID(gaid1))
	e := &tapline.Event{ID: "e2", AppID: appID, Name: "install", Kind: tapline.KindInstall, Time: t0.Add(72 * time.Hour), ReceivedAt: t0.Add(72 * time.Hour), InstallID: "inst-e2", IP: ipB}
	android(e)
	e.Device.GAID = gaid1
	h.fp.Event(e)
	msg := h.msg(tapline.TopicEvents, e, e.Time)
	first := h.run(msg)
	if got := rowsOf(first, tapline.FactReinstalls); got["0/organic"] != 1 {
		t.Fatalf("reinstall deltas %v", got)
	}
	if b := h.run(msg); !equalBatches(b, first) {
		t.Fatalf("replay gave %v, want %v", b, first)
	}
	dup := *e
	if b := h.run(h.msg(tapline.TopicEvents, &dup, e.Time)); len(b) != 0 {
		t.Fatalf("resend gave %v", b)
	}
	// Later events of the reinstalled installation inherit its
	// attribution and start no cohort.
	b, _ := h.event("p1", "inst-e2", tapline.KindPurchase, e.Time.Add(48*time.Hour), ipB, android, func(ev *tapline.Event) {
		ev.Revenue = &tapline.Revenue{Micros: 1_000_000, Currency: "USD"}
	})
	if got := rowsOf(b, tapline.FactEvents); got["0/organic"] != 1 {
		t.Fatalf("purchase events %v", got)
	}
	if len(rowsOf(b, tapline.FactCohortRevenue)) != 0 || len(h.rows.Activity) != 0 {
		t.Fatalf("a reinstall's purchase counted in the cohorts: %v %v", b, h.rows.Activity)
	}
}
