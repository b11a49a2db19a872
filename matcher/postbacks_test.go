package matcher

import (
	"slices"
	"testing"
	"time"

	"tapline"
)

// postbacks gives the app the postbacks ps in the harness's app cache, as
// loading the app with a PostbackService would.
func (h *harness) postbacks(ps ...*tapline.Postback) {
	h.t.Helper()
	e := h.m.apps.entries[appID]
	for i, p := range ps {
		p.ID, p.AppID = int64(i+1), appID
		if err := p.Validate(); err != nil {
			h.t.Fatal(err)
		}
	}
	e.postbacks = ps
	e.slugs = map[int64]string{5: "five", 6: "six", reengage: "back"}
	h.m.apps.entries[appID] = e
}

// delivered lists the last record's deliveries as "postback:trigger:click".
func (h *harness) delivered() []string {
	var out []string
	for _, d := range h.rows.Deliveries {
		out = append(out, d.Network+":"+d.Trigger+":"+d.URL[len("https://nw.example/?c="):])
	}
	slices.Sort(out)
	return out
}

func pb(network string, reattribution string, events ...string) *tapline.Postback {
	return &tapline.Postback{Network: network, Events: events, URL: "https://nw.example/?c={click_id}", OnReattribution: reattribution}
}

// TestPostbacksOnReattribution: a late tap that takes an install from
// another tap sends the install postback to its network only where the
// postback says "send"; a late tap on an organic install is the install's
// first attribution and is announced under every setting.
func TestPostbacksOnReattribution(t *testing.T) {
	for _, tc := range []struct {
		name, setting string
		want, later   []string
	}{
		{"none", tapline.ReattributionNone, nil, nil},
		{"send", tapline.ReattributionSend, []string{"nw:install:hB"}, []string{"nw:purchase:hB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.postbacks(pb("nw", tc.setting, "install", "purchase"))
			h.hit("hA", 5, t0.Add(-2*time.Hour), ipA, chromeAndUA)
			h.install("e1", t0, ipA, android, withGAID(gaid1))
			if got := h.delivered(); !slices.Equal(got, []string{"nw:install:hA"}) {
				t.Fatalf("the install's deliveries %v, want its fingerprint tap's", got)
			}
			h.hit("hB", 6, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
			if c := h.conversion("e1"); c.HitID != "hB" {
				t.Fatalf("the late tap did not take the install: %+v", c.Attribution)
			}
			if got := h.delivered(); !slices.Equal(got, tc.want) {
				t.Errorf("the late tap's deliveries %v, want %v", got, tc.want)
			}
			// A later event counts under the new tap: its network hears of
			// it only if it was told of the install.
			h.event("p1", "inst-e1", tapline.KindPurchase, t0.Add(time.Hour), ipA, android, withGAID(gaid1), func(e *tapline.Event) { e.Name = "purchase" })
			if got := h.delivered(); !slices.Equal(got, tc.later) {
				t.Errorf("a later purchase's deliveries %v, want %v", got, tc.later)
			}
		})
	}
	t.Run("organic install", func(t *testing.T) {
		h := newHarness(t)
		h.postbacks(pb("nw", tapline.ReattributionNone, "install", "purchase"))
		h.install("e1", t0, ipA, android, withGAID(gaid1))
		h.event("p1", "inst-e1", tapline.KindPurchase, t0.Add(time.Minute), ipA, android, withGAID(gaid1), func(e *tapline.Event) { e.Name = "purchase" })
		if got := h.delivered(); len(got) != 0 {
			t.Fatalf("an organic install's purchase: %v, want nothing", got)
		}
		h.hit("hB", 6, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
		// The purchase moved with the install: it follows the tap too.
		if got := h.delivered(); !slices.Equal(got, []string{"nw:install:hB", "nw:purchase:hB"}) {
			t.Errorf("the late tap's deliveries %v, want the install and its moved purchase", got)
		}
	})
	// A postback by kind follows a moved event too: the change keeps the
	// event's kind beside its name.
	t.Run("by kind", func(t *testing.T) {
		h := newHarness(t)
		h.postbacks(pb("nw", tapline.ReattributionNone, "kind:"+string(tapline.KindPurchase)))
		h.install("e1", t0, ipA, android, withGAID(gaid1))
		h.event("p1", "inst-e1", tapline.KindPurchase, t0.Add(time.Minute), ipA, android, withGAID(gaid1), func(e *tapline.Event) { e.Name = "order_completed" })
		h.event("o1", "inst-e1", tapline.KindOpen, t0.Add(2*time.Minute), ipA, android, withGAID(gaid1))
		h.hit("hB", 6, t0.Add(-time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
		if got := h.delivered(); !slices.Equal(got, []string{"nw:order_completed:hB"}) {
			t.Errorf("the late tap's deliveries %v, want the moved purchase's, by its kind", got)
		}
		ch := h.conversion("e1").History
		for _, mv := range ch[len(ch)-1].Moved {
			if mv.ID == "p1" && mv.Kind != tapline.KindPurchase {
				t.Errorf("moved purchase recorded with kind %q", mv.Kind)
			}
		}
	})
}

// TestPostbacksOnReengagement: an open credited to a tap on a
// re-engagement link triggers "reengagement" postbacks with that tap,
// beside the open's own postbacks under the install's attribution.
func TestPostbacksOnReengagement(t *testing.T) {
	h := newHarness(t)
	h.reengagementLinks(reengage)
	h.postbacks(pb("nw", "", "reengagement", "open"))
	h.hit("h-install", 5, t0.Add(-time.Hour), ipA, chromeAndUA, hitAdID(gaid1))
	h.install("e1", t0, ipA, android, withGAID(gaid1))
	h.hit("h-back", reengage, t0.Add(72*time.Hour), ipB, chromeAndUA, hitAdID(gaid1))
	h.open("o1", "inst-e1", t0.Add(73*time.Hour), ipA, android, withGAID(gaid1))
	if got := h.delivered(); !slices.Equal(got, []string{"nw:open:h-install", "nw:reengagement:h-back"}) {
		t.Errorf("the open's deliveries %v, want the open under the install's tap and the re-engagement under its own", got)
	}
	keys := map[string]bool{}
	for _, d := range h.rows.Deliveries {
		keys[d.Key] = true
	}
	if len(keys) != 2 {
		t.Errorf("the open's two deliveries share a key")
	}
}
