package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/fingerprint"
	"tapline/pebble"
)

const (
	safariUA    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	chromeAndUA = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	fbiOSUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBBV/585234234;FBDV/iPhone14,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
	ipA         = "203.0.113.7"
	ipB         = "198.51.100.9"
	ipC         = "192.0.2.44"
	appID       = int64(42)
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// harness drives Matcher.process over a real pebble raw store, one bus
// message at a time, with the app's settings preloaded in the app cache.
type harness struct {
	t    *testing.T
	m    *Matcher
	fp   *fingerprint.Fingerprinter
	next map[string]int64
	// rows are the conversions and activity the last record processed
	// wrote.
	rows tapline.FlushRows
}

// newHarness returns a harness whose app credits every fingerprint
// candidate that fits (the lowest fingerprint_min_score): the rules are
// under test, not the scores (TestFingerprintScores).
func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, func(a *tapline.App) { a.FingerprintMinScore = -tapline.MaxFingerprintMinScore })
}

// newHarnessWith returns a harness whose app has the defaults changed by
// set.
func newHarnessWith(t *testing.T, set func(*tapline.App)) *harness {
	t.Helper()
	raw := pebble.NewRawStore(t.TempDir())
	if err := raw.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	m := New(NewConfig(), nil, raw, nil, nil)
	m.metrics = newMetrics(nil)
	app := &tapline.App{ID: appID}
	app.SetDefaults()
	set(app)
	// No link windows nor re-engagement links; links and
	// reengagementLinks set some.
	m.apps = appCache{ttl: 1000 * time.Hour, now: func() time.Time { return t0 }, entries: map[int64]appEntry{appID: {app: app, fetched: t0}}}
	return &harness{t: t, m: m, fp: fingerprint.New(), next: map[string]int64{}}
}

// links gives the app's links ls, with their windows, to the app cache,
// as loading the app with LinksByApp would.
func (h *harness) links(ls ...*tapline.Link) {
	e := h.m.apps.entries[appID]
	e.links = newLinkWindows(ls)
	h.m.apps.entries[appID] = e
}

func (h *harness) msg(topic string, v any, published time.Time) *tapline.Message {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	off := h.next[topic]
	h.next[topic]++
	return &tapline.Message{Topic: topic, Partition: 0, Offset: off, Value: b, Time: published}
}

func (h *harness) run(msg *tapline.Message) facts.Batch {
	h.t.Helper()
	b, rows, err := h.m.process(context.Background(), msg, nil)
	if err != nil {
		h.t.Fatalf("process %s: %v", msg.Position(), err)
	}
	h.rows = rows
	return b
}

type hitOpt func(*tapline.Hit)

func (h *harness) hit(id string, link int64, at time.Time, ip, ua string, opts ...hitOpt) facts.Batch {
	h.t.Helper()
	hit := &tapline.Hit{ID: id, Time: at, AppID: appID, LinkID: link, IP: ip, UserAgent: ua}
	for _, o := range opts {
		o(hit)
	}
	h.fp.Hit(hit)
	return h.run(h.msg(tapline.TopicHits, hit, at))
}

type eventOpt func(*tapline.Event)

// receivedAfter has the collectors receive the event d after its device
// time: the phone's clock runs d behind.
func receivedAfter(d time.Duration) eventOpt {
	return func(e *tapline.Event) { e.ReceivedAt = e.Time.Add(d) }
}

func iphone(e *tapline.Event) {
	e.Device = tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2"}
}

func android(e *tapline.Event) {
	e.Device = tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "14", Model: "Pixel 7"}
}

func (h *harness) event(id, installID string, kind tapline.EventKind, at time.Time, ip string, opts ...eventOpt) (facts.Batch, *tapline.Event) {
	h.t.Helper()
	e := &tapline.Event{ID: id, AppID: appID, Name: string(kind), Kind: kind, Time: at, ReceivedAt: at, InstallID: installID, IP: ip}
	for _, o := range opts {
		o(e)
	}
	h.fp.Event(e)
	return h.run(h.msg(tapline.TopicEvents, e, at)), e
}

func (h *harness) install(id string, at time.Time, ip string, opts ...eventOpt) facts.Batch {
	h.t.Helper()
	b, _ := h.event(id, "inst-"+id, tapline.KindInstall, at, ip, opts...)
	return b
}

func (h *harness) conversion(eventID string) *tapline.Conversion {
	h.t.Helper()
	c, err := h.m.Raw.Conversion(context.Background(), appID, tapline.ConversionID(eventID))
	if err != nil {
		h.t.Fatalf("conversion of %s: %v", eventID, err)
	}
	return c
}

// installs sums the installs table of b by link and method.
func installs(b facts.Batch) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if k.Table == tapline.FactInstalls && v.Count != 0 {
			out[fmt.Sprintf("%d/%s", k.LinkID, k.Method)] += v.Count
		}
	}
	return out
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMatchRules(t *testing.T) {
	withGAID := func(id string) eventOpt { return func(e *tapline.Event) { e.Device.GAID = id } }
	withIDFA := func(id string) eventOpt { return func(e *tapline.Event) { e.Device.IDFA = id } }
	adID := func(id string) hitOpt { return func(h *tapline.Hit) { h.AdID = id } }
	referrer := func(hitID string) eventOpt {
		return func(e *tapline.Event) { e.Referrer = "utm_source=ads&" + tapline.ReferrerHitParam + "=" + hitID }
	}

	tests := []struct {
		name       string
		steps      func(h *harness) facts.Batch // returns the deltas of the install
		wantMethod tapline.MatchMethod
		wantHit    string
		wantLink   int64
	}{
		{"fingerprint within window", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			return h.install("e1", t0.Add(time.Hour), ipA, iphone)
		}, tapline.MethodFingerprint, "h1", 1},
		{"fingerprint outside window is organic", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			return h.install("e1", t0.Add(25*time.Hour), ipA, iphone)
		}, tapline.MethodOrganic, "", 0},
		{"other IP is organic", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			return h.install("e1", t0.Add(time.Minute), ipB, iphone)
		}, tapline.MethodOrganic, "", 0},
		{"other platform is organic", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, chromeAndUA)
			return h.install("e1", t0.Add(time.Minute), ipA, iphone)
		}, tapline.MethodOrganic, "", 0},
		{"hit after install is not matched", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0.Add(2*time.Hour), ipA, safariUA)
			return h.install("e1", t0, ipA, iphone)
		}, tapline.MethodOrganic, "", 0},
		{"last hit wins", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			h.hit("h2", 2, t0.Add(10*time.Minute), ipA, safariUA)
			return h.install("e1", t0.Add(20*time.Minute), ipA, iphone)
		}, tapline.MethodFingerprint, "h2", 2},
		{"in-app model mismatch skips the hit", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			h.hit("h2", 2, t0.Add(10*time.Minute), ipA, fbiOSUA) // iPhone14,2, not the installing iPhone15,2
			return h.install("e1", t0.Add(20*time.Minute), ipA, iphone)
		}, tapline.MethodFingerprint, "h1", 1},
		{"advertising id beats a later fingerprint hit", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipB, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			h.hit("h2", 2, t0.Add(10*time.Minute), ipA, chromeAndUA)
			return h.install("e1", t0.Add(20*time.Minute), ipA, android, withGAID("38400000-8cf0-11bd-b23e-10b96e40000d"))
		}, tapline.MethodAdID, "h1", 1},
		{"zero advertising id is ignored", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipB, safariUA, adID("00000000-0000-0000-0000-000000000000"))
			return h.install("e1", t0.Add(20*time.Minute), ipA, iphone, withIDFA("00000000-0000-0000-0000-000000000000"))
		}, tapline.MethodOrganic, "", 0},
		{"advertising id outside click window falls back to fingerprint", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipB, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			h.hit("h2", 2, t0.Add(8*24*time.Hour), ipA, chromeAndUA)
			return h.install("e1", t0.Add(8*24*time.Hour+time.Hour), ipA, android, withGAID("38400000-8cf0-11bd-b23e-10b96e40000d"))
		}, tapline.MethodFingerprint, "h2", 2},
		{"referrer beats advertising id and fingerprint", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipB, chromeAndUA)
			h.hit("h2", 2, t0.Add(time.Minute), ipA, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			return h.install("e1", t0.Add(20*time.Minute), ipA, android, referrer("h1"), withGAID("38400000-8cf0-11bd-b23e-10b96e40000d"))
		}, tapline.MethodReferrer, "h1", 1},
		{"referrer outside click window is ignored", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipB, chromeAndUA)
			return h.install("e1", t0.Add(8*24*time.Hour), ipA, android, referrer("h1"))
		}, tapline.MethodOrganic, "", 0},
		{"a converted hit is not reused", func(h *harness) facts.Batch {
			h.hit("h1", 1, t0, ipA, safariUA)
			h.install("e0", t0.Add(time.Minute), ipA, iphone)
			return h.install("e1", t0.Add(2*time.Minute), ipA, iphone)
		}, tapline.MethodOrganic, "", 0},
		{"late hit re-attributes an organic install", func(h *harness) facts.Batch {
			b := h.install("e1", t0.Add(time.Hour), ipA, iphone)
			b.Merge(h.hit("h1", 3, t0, ipA, safariUA))
			return b
		}, tapline.MethodFingerprint, "h1", 3},
		{"late referrer hit beats an earlier fingerprint match", func(h *harness) facts.Batch {
			b := h.hit("h0", 1, t0, ipA, chromeAndUA)
			b.Merge(h.install("e1", t0.Add(time.Hour), ipA, android, referrer("h9")))
			b.Merge(h.hit("h9", 9, t0.Add(30*time.Minute), ipB, chromeAndUA))
			return b
		}, tapline.MethodReferrer, "h9", 9},
		{"late hit older than the current match does not win", func(h *harness) facts.Batch {
			h.hit("h2", 2, t0.Add(30*time.Minute), ipA, safariUA)
			b := h.install("e1", t0.Add(time.Hour), ipA, iphone)
			b.Merge(h.hit("h1", 1, t0, ipA, safariUA))
			return b
		}, tapline.MethodFingerprint, "h2", 2},

		// Per-link windows: each hit is judged by its own link's window,
		// else the app's (7d click, 24h fingerprint).
		{"link with a shorter click window rejects an older referrer hit", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, ClickWindow: time.Hour})
			h.hit("h1", 7, t0, ipB, chromeAndUA)
			return h.install("e1", t0.Add(2*time.Hour), ipA, android, referrer("h1"))
		}, tapline.MethodOrganic, "", 0},
		{"link with a longer click window credits an older referrer hit", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, ClickWindow: 30 * 24 * time.Hour})
			h.hit("h1", 7, t0, ipB, chromeAndUA)
			return h.install("e1", t0.Add(10*24*time.Hour), ipA, android, referrer("h1"))
		}, tapline.MethodReferrer, "h1", 7},
		{"link with a shorter click window rejects an older advertising id hit", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, ClickWindow: time.Hour})
			h.hit("h0", 1, t0.Add(-time.Hour), ipB, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			h.hit("h1", 7, t0, ipB, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			return h.install("e1", t0.Add(2*time.Hour), ipA, android, withGAID("38400000-8cf0-11bd-b23e-10b96e40000d"))
		}, tapline.MethodAdID, "h0", 1},
		{"advertising id hit outside its link's click window alone is organic", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, ClickWindow: time.Hour})
			h.hit("h1", 7, t0, ipB, chromeAndUA, adID("38400000-8cf0-11bd-b23e-10b96e40000d"))
			return h.install("e1", t0.Add(2*time.Hour), ipA, android, withGAID("38400000-8cf0-11bd-b23e-10b96e40000d"))
		}, tapline.MethodOrganic, "", 0},
		{"link with a longer fingerprint window credits a hit the app's would not", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 8, FingerprintWindow: 3 * 24 * time.Hour})
			h.hit("h1", 8, t0, ipA, safariUA)
			return h.install("e1", t0.Add(30*time.Hour), ipA, iphone)
		}, tapline.MethodFingerprint, "h1", 8},
		{"fingerprint hit outside its link's shorter window is no candidate", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, FingerprintWindow: time.Hour})
			h.hit("h0", 1, t0, ipA, safariUA)
			h.hit("h1", 7, t0.Add(time.Hour), ipA, safariUA) // the same device's newer tap
			return h.install("e1", t0.Add(3*time.Hour), ipA, iphone)
		}, tapline.MethodFingerprint, "h0", 1},
		{"late hit outside its link's fingerprint window does not claim", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, FingerprintWindow: time.Hour})
			b := h.install("e1", t0.Add(2*time.Hour), ipA, iphone)
			b.Merge(h.hit("h1", 7, t0, ipA, safariUA))
			return b
		}, tapline.MethodOrganic, "", 0},
		{"late referrer hit outside its link's click window does not claim", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 7, ClickWindow: time.Hour})
			b := h.install("e1", t0.Add(2*time.Hour), ipA, android, referrer("h9"))
			b.Merge(h.hit("h9", 7, t0, ipB, chromeAndUA))
			return b
		}, tapline.MethodOrganic, "", 0},
		{"late hit within its link's longer fingerprint window claims", func(h *harness) facts.Batch {
			h.links(&tapline.Link{ID: 8, FingerprintWindow: 3 * 24 * time.Hour})
			b := h.install("e1", t0.Add(30*time.Hour), ipA, iphone)
			b.Merge(h.hit("h1", 8, t0, ipA, safariUA))
			return b
		}, tapline.MethodFingerprint, "h1", 8},
	}
	// The decision each case records: its rule and the hits it names as
	// lost candidates.
	decisions := map[string]struct {
		rule string
		lost []string
	}{
		"fingerprint within window":                                     {tapline.RuleFingerprint, nil},
		"fingerprint outside window is organic":                         {tapline.RuleOrganic, nil},
		"other IP is organic":                                           {tapline.RuleOrganic, nil},
		"other platform is organic":                                     {tapline.RuleOrganic, nil},
		"hit after install is not matched":                              {tapline.RuleOrganic, nil},
		"last hit wins":                                                 {tapline.RuleFingerprint, []string{"h1"}},
		"in-app model mismatch skips the hit":                           {tapline.RuleFingerprint, []string{"h2"}},
		"advertising id beats a later fingerprint hit":                  {tapline.RuleAdID, nil},
		"zero advertising id is ignored":                                {tapline.RuleOrganic, nil},
		"advertising id outside click window falls back to fingerprint": {tapline.RuleFingerprint, nil},
		"referrer beats advertising id and fingerprint":                 {tapline.RuleReferrer, nil},
		"referrer outside click window is ignored":                      {tapline.RuleOrganic, []string{"h1"}},
		"a converted hit is not reused":                                 {tapline.RuleOrganic, []string{"h1"}},
		"late hit re-attributes an organic install":                     {tapline.RuleLateHit, nil},
		"late referrer hit beats an earlier fingerprint match":          {tapline.RuleLateHit, []string{"h0"}},
		"late hit older than the current match does not win":            {tapline.RuleFingerprint, nil},

		"link with a shorter click window rejects an older referrer hit":          {tapline.RuleOrganic, []string{"h1"}},
		"link with a longer click window credits an older referrer hit":           {tapline.RuleReferrer, nil},
		"link with a shorter click window rejects an older advertising id hit":    {tapline.RuleAdID, []string{"h1"}},
		"advertising id hit outside its link's click window alone is organic":     {tapline.RuleOrganic, []string{"h1"}},
		"link with a longer fingerprint window credits a hit the app's would not": {tapline.RuleFingerprint, nil},
		"fingerprint hit outside its link's shorter window is no candidate":       {tapline.RuleFingerprint, []string{"h1"}},
		"late hit outside its link's fingerprint window does not claim":           {tapline.RuleOrganic, nil},
		"late referrer hit outside its link's click window does not claim":        {tapline.RuleOrganic, nil},
		"late hit within its link's longer fingerprint window claims":             {tapline.RuleLateHit, nil},
	}
	// The window a decision records for the chosen hit, and what it
	// says of a link's own window (in its reason or a lost candidate's),
	// where the case is about one.
	windows := map[string]struct {
		window time.Duration
		says   string
	}{
		"fingerprint within window":                                               {24 * time.Hour, "within the 1d fingerprint window"},
		"referrer outside click window is ignored":                                {0, "outside the 7d click window"},
		"link with a shorter click window rejects an older referrer hit":          {0, "outside link 7's own 1h click window (the app's is 7d)"},
		"link with a longer click window credits an older referrer hit":           {30 * 24 * time.Hour, "within link 7's own 30d click window"},
		"link with a shorter click window rejects an older advertising id hit":    {7 * 24 * time.Hour, "outside link 7's own 1h click window"},
		"advertising id hit outside its link's click window alone is organic":     {0, "outside link 7's own 1h click window"},
		"link with a longer fingerprint window credits a hit the app's would not": {3 * 24 * time.Hour, "within link 8's own 3d fingerprint window"},
		"fingerprint hit outside its link's shorter window is no candidate":       {24 * time.Hour, "outside link 7's own 1h fingerprint window (the app's is 1d): not a candidate"},
		"late hit within its link's longer fingerprint window claims":             {3 * 24 * time.Hour, "within link 8's own 3d fingerprint window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			b := tt.steps(h)
			c := h.conversion("e1")
			if c.Method != tt.wantMethod || c.HitID != tt.wantHit || c.LinkID != tt.wantLink {
				t.Fatalf("conversion = %s hit %q link %d, want %s hit %q link %d",
					c.Method, c.HitID, c.LinkID, tt.wantMethod, tt.wantHit, tt.wantLink)
			}
			checkDecision(t, c, decisions[tt.name].rule, decisions[tt.name].lost)
			if w, ok := windows[tt.name]; ok {
				if c.Decision.Window != w.window {
					t.Errorf("decision window %v, want %v", c.Decision.Window, w.window)
				}
				said := []string{c.Decision.Reason}
				for _, cd := range c.Decision.Candidates {
					said = append(said, cd.Reason)
				}
				if !slices.ContainsFunc(said, func(r string) bool { return strings.Contains(r, w.says) }) {
					t.Errorf("decision says %q, want %q in it", said, w.says)
				}
			}
			// Whatever happened in between, e1 must count as exactly one
			// install, under its final attribution.
			got := installs(b)
			want := map[string]int64{fmt.Sprintf("%d/%s", tt.wantLink, tt.wantMethod): 1}
			if !equalCounts(got, want) {
				t.Fatalf("install deltas = %v, want %v", got, want)
			}
		})
	}
}

// checkDecision checks that c's decision names rule, has a reason, puts
// the chosen hit first (none for an organic install) and names each of
// lost as a candidate that lost, with why.
func checkDecision(t *testing.T, c *tapline.Conversion, rule string, lost []string) {
	t.Helper()
	d := c.Decision
	if d == nil {
		t.Fatalf("conversion %s has no decision", c.ID)
	}
	if d.Rule != rule || d.Reason == "" {
		t.Errorf("decision rule %q reason %q, want rule %q with a reason", d.Rule, d.Reason, rule)
	}
	if d.Considered < len(d.Candidates) || len(d.Candidates) > tapline.MaxDecisionCandidates {
		t.Errorf("decision lists %d candidates of %d considered", len(d.Candidates), d.Considered)
	}
	if c.Method != tapline.MethodOrganic {
		if len(d.Candidates) == 0 || !d.Candidates[0].Chosen || d.Candidates[0].HitID != c.HitID {
			t.Errorf("decision candidates %+v, want the chosen hit %s first", d.Candidates, c.HitID)
		}
		if d.Window == 0 {
			t.Errorf("decision of a %s match has no window", c.Method)
		}
	}
	for _, id := range lost {
		i := slices.IndexFunc(d.Candidates, func(cd tapline.Candidate) bool { return cd.HitID == id })
		if i < 0 || d.Candidates[i].Chosen || d.Candidates[i].Reason == "" {
			t.Errorf("decision candidates %+v, want %s lost with a reason", d.Candidates, id)
		}
	}
	for _, cd := range d.Candidates[min(1, len(d.Candidates)):] {
		if cd.Chosen {
			t.Errorf("candidate %s chosen but not first", cd.HitID)
		}
	}
}

func TestLateHitBeyondHorizon(t *testing.T) {
	h := newHarness(t)
	h.install("e1", t0, ipA, iphone)
	hit := &tapline.Hit{ID: "h1", Time: t0.Add(-time.Minute), AppID: appID, LinkID: 1, IP: ipA, UserAgent: safariUA}
	h.fp.Hit(hit)
	// Published two days after the install was received: past the 24 h horizon.
	b := h.run(h.msg(tapline.TopicHits, hit, t0.Add(48*time.Hour)))
	if c := h.conversion("e1"); c.Method != tapline.MethodOrganic {
		t.Fatalf("conversion = %s, want organic (hit past the lateness horizon)", c.Method)
	}
	if got := installs(b); len(got) != 0 {
		t.Fatalf("late hit emitted install deltas %v, want none", got)
	}
}

func TestLaterEventsInheritAttribution(t *testing.T) {
	h := newHarness(t)
	h.hit("h1", 5, t0, ipA, safariUA)
	h.install("e1", t0.Add(time.Minute), ipA, iphone)
	b, _ := h.event("e2", "inst-e1", tapline.KindPurchase, t0.Add(time.Hour), ipB, func(e *tapline.Event) {
		iphone(e)
		e.Revenue = &tapline.Revenue{Micros: 4_990_000, Currency: "EUR"}
	})
	var events, revenue int64
	for k, v := range b {
		switch k.Table {
		case tapline.FactEvents:
			if k.LinkID != 5 || k.Method != tapline.MethodFingerprint {
				t.Errorf("event row %+v, want link 5 by fingerprint", k)
			}
			events += v.Count
		case tapline.FactRevenue:
			if k.LinkID != 5 || k.Currency != "EUR" {
				t.Errorf("revenue row %+v, want link 5 in EUR", k)
			}
			revenue += v.Sum
		case tapline.FactInstalls:
			t.Errorf("a purchase produced an install delta %+v", k)
		}
	}
	if events != 1 || revenue != 4_990_000 {
		t.Fatalf("events = %d revenue = %d, want 1 and 4990000", events, revenue)
	}
}

func TestDuplicatesAndReplays(t *testing.T) {
	h := newHarness(t)
	hitMsg := func() *tapline.Message {
		hit := &tapline.Hit{ID: "h1", Time: t0, AppID: appID, LinkID: 1, IP: ipA, UserAgent: safariUA}
		h.fp.Hit(hit)
		return h.msg(tapline.TopicHits, hit, t0)
	}
	first := hitMsg()
	b1 := h.run(first)
	if len(b1) == 0 {
		t.Fatal("first hit produced no deltas")
	}
	if b := h.run(hitMsg()); len(b) != 0 {
		t.Fatalf("resent hit (same id, new offset) produced deltas %v, want none", b)
	}
	if b := h.run(first); !equalBatches(b, b1) {
		t.Fatalf("replayed hit produced %v, want the first deltas %v again", b, b1)
	}

	ins := &tapline.Event{ID: "e1", AppID: appID, Name: "install", Kind: tapline.KindInstall, Time: t0.Add(time.Minute), ReceivedAt: t0.Add(time.Minute), InstallID: "i1", IP: ipA}
	iphone(ins)
	h.fp.Event(ins)
	insMsg := h.msg(tapline.TopicEvents, ins, ins.Time)
	e1 := h.run(insMsg)
	if got := installs(e1); got["1/fingerprint"] != 1 {
		t.Fatalf("install deltas %v, want one fingerprint install on link 1", got)
	}
	dup := *ins
	if b := h.run(h.msg(tapline.TopicEvents, &dup, ins.Time)); len(b) != 0 {
		t.Fatalf("resent install produced deltas %v, want none", b)
	}
	if b := h.run(insMsg); !equalBatches(b, e1) {
		t.Fatalf("replayed install produced %v, want %v", b, e1)
	}
	// A second install event of the same installation is an event, not an install.
	again := &tapline.Event{ID: "e9", AppID: appID, Name: "install", Kind: tapline.KindInstall, Time: t0.Add(time.Hour), ReceivedAt: t0.Add(time.Hour), InstallID: "i1", IP: ipA}
	iphone(again)
	h.fp.Event(again)
	if got := installs(h.run(h.msg(tapline.TopicEvents, again, again.Time))); len(got) != 0 {
		t.Fatalf("second install of one installation counted %v installs, want none", got)
	}
}

func TestReplayOfReattribution(t *testing.T) {
	h := newHarness(t)
	h.install("e1", t0.Add(time.Hour), ipA, iphone)
	hit := &tapline.Hit{ID: "h1", Time: t0, AppID: appID, LinkID: 3, IP: ipA, UserAgent: safariUA}
	h.fp.Hit(hit)
	msg := h.msg(tapline.TopicHits, hit, t0.Add(time.Hour+time.Minute))
	first := h.run(msg)
	if got := installs(first); got["0/organic"] != -1 || got["3/fingerprint"] != 1 {
		t.Fatalf("re-attribution deltas %v, want organic -1 and link 3 +1", got)
	}
	if b := h.run(msg); !equalBatches(b, first) {
		t.Fatalf("replay of the re-attributing hit gave %v, want %v", b, first)
	}
	if c := h.conversion("e1"); len(c.History) != 2 {
		t.Fatalf("history has %d changes after a replay, want 2", len(c.History))
	}
}

func equalBatches(a, b facts.Batch) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestHitClaimedMeanwhileClaimsNoSecondInstall covers the moment between a
// hit's worker storing the hit and matching late installs: an install
// matched the hit in between, so the hit must not also claim an older
// organic install with the same fingerprint.
func TestHitClaimedMeanwhileClaimsNoSecondInstall(t *testing.T) {
	h := newHarness(t)
	h.install("e2", t0.Add(5*time.Minute), ipA, iphone)
	hit := &tapline.Hit{ID: "h1", Time: t0, AppID: appID, LinkID: 1, IP: ipA, UserAgent: safariUA}
	h.fp.Hit(hit)
	msg := h.msg(tapline.TopicHits, hit, t0.Add(11*time.Minute))
	stored := *hit
	stored.Source = msg.Position()
	if _, err := h.m.Raw.PutHit(context.Background(), &stored); err != nil {
		t.Fatal(err)
	}
	h.install("e1", t0.Add(10*time.Minute), ipA, iphone)
	if c := h.conversion("e1"); c.HitID != "h1" {
		t.Fatalf("e1 matched %q, want h1", c.HitID)
	}
	h.run(msg)
	if c := h.conversion("e2"); c.Method != tapline.MethodOrganic {
		t.Fatalf("e2 = %s by %q, want organic: h1 already converted e1", c.Method, c.HitID)
	}
}

// TestCohortActivity checks what a later event adds to the cohorts: an
// activity of its day after the install under the install's attribution
// (none on the install's own day, none past MaxCohortDay), and a
// purchase's revenue on its day.
func TestCohortActivity(t *testing.T) {
	h := newHarness(t)
	h.hit("h1", 5, t0, ipA, safariUA)
	b := h.install("e1", t0.Add(time.Minute), ipA, iphone)
	if got := b[facts.CohortKey(h.conversion("e1"), h.conversion("e1").Attribution, 0)]; got.Count != 1 {
		t.Errorf("the install adds %+v to its cohort's day 0, want 1", got)
	}
	at := func(d time.Duration, opts ...eventOpt) (facts.Batch, tapline.FlushRows) {
		t.Helper()
		b, _ := h.event(fmt.Sprintf("ev-%d", d), "inst-e1", tapline.KindOpen, t0.Add(time.Minute+d), ipB, opts...)
		return b, h.rows
	}
	if _, rows := at(time.Hour); len(rows.Activity) != 0 {
		t.Errorf("an open on the install's day is activity %+v, want none", rows.Activity)
	}
	_, rows := at(25 * time.Hour)
	if len(rows.Activity) != 1 || rows.Activity[0].InstallID != "inst-e1" || rows.Activity[0].Key.DayN != 1 ||
		rows.Activity[0].Key.LinkID != 5 || rows.Activity[0].Key.Table != tapline.FactCohortActivity || rows.Activity[0].Key.Hour != tapline.HourOf(t0) {
		t.Errorf("an open a day later is activity %+v, want install inst-e1 on day 1 of link 5's cohort of %v", rows.Activity, t0)
	}
	b, rows = at(3*24*time.Hour+time.Hour, func(e *tapline.Event) {
		e.Kind, e.Name = tapline.KindPurchase, "purchase"
		e.Revenue = &tapline.Revenue{Micros: 2_500_000, Currency: "EUR"}
	})
	var revenue tapline.FactValue
	for k, v := range b {
		if k.Table == tapline.FactCohortRevenue {
			if k.DayN != 3 || k.Currency != "EUR" || k.LinkID != 5 {
				t.Errorf("cohort revenue row %+v, want day 3 in EUR on link 5", k)
			}
			revenue = v
		}
	}
	if revenue != (tapline.FactValue{Count: 1, Sum: 2_500_000}) || len(rows.Activity) != 1 || rows.Activity[0].Key.DayN != 3 {
		t.Errorf("a purchase on day 3: revenue %+v, activity %+v", revenue, rows.Activity)
	}
	if _, rows := at((tapline.MaxCohortDay + 1) * 24 * time.Hour); len(rows.Activity) != 0 {
		t.Errorf("an open past the last cohort day is activity %+v", rows.Activity)
	}
}

// TestBotHitsNeverCredited checks that a request that is no tap (a link
// previewer, a prefetch) is counted apart and cannot be credited with an
// install: not by fingerprint, not by advertising id, not when the install
// referrer names it, not as a late hit.
func TestBotHitsNeverCredited(t *testing.T) {
	bot := func(h *tapline.Hit) { h.Bot = "facebookexternalhit" }
	adID := func(h *tapline.Hit) { h.AdID = "38400000-8cf0-11bd-b23e-10b96e40000d" }
	h := newHarness(t)
	b := h.hit("h1", 1, t0, ipA, safariUA, bot, adID)
	var hits, bots int64
	for k, v := range b {
		switch k.Table {
		case tapline.FactHits:
			hits += v.Count
		case tapline.FactBotHits:
			bots += v.Count
			if k.Agent != "facebookexternalhit" || k.LinkID != 1 {
				t.Errorf("bot row %+v", k)
			}
		}
	}
	if hits != 0 || bots != 1 {
		t.Fatalf("a previewer's request counted %d hits and %d bot hits, want 0 and 1", hits, bots)
	}
	if got := installs(h.install("e1", t0.Add(time.Minute), ipA, iphone, func(e *tapline.Event) {
		e.Device.IDFA = "38400000-8cf0-11bd-b23e-10b96e40000d"
	})); !equalCounts(got, map[string]int64{"0/organic": 1}) {
		t.Errorf("an install after a previewer's request: %v, want organic", got)
	}
	h.event("e2", "inst-e2", tapline.KindInstall, t0.Add(2*time.Minute), ipB, android, func(e *tapline.Event) {
		e.Referrer = tapline.ReferrerHitParam + "=h1"
	})
	c := h.conversion("e2")
	if c.Method != tapline.MethodOrganic || len(c.Decision.Candidates) != 1 || !strings.Contains(c.Decision.Candidates[0].Reason, "previewer") {
		t.Errorf("an install whose referrer names a previewer's request: %s, candidates %+v", c.Method, c.Decision.Candidates)
	}
	// A prefetch's redirect may be what the person's tap reused: the
	// referrer, set on the installing phone, credits it.
	h.hit("h3", 3, t0.Add(3*time.Minute), ipB, chromeAndUA, func(h *tapline.Hit) { h.Bot = tapline.BotPrefetch })
	h.event("e4", "inst-e4", tapline.KindInstall, t0.Add(4*time.Minute), ipB, android, func(e *tapline.Event) {
		e.Referrer = tapline.ReferrerHitParam + "=h3"
	})
	if c := h.conversion("e4"); c.Method != tapline.MethodReferrer || c.HitID != "h3" || !strings.Contains(c.Decision.Reason, "prefetch") {
		t.Errorf("an install whose referrer names a prefetch: %s hit %q, reason %q; want credited by the referrer", c.Method, c.HitID, c.Decision.Reason)
	}
	// A late previewer's request claims nothing either.
	h.install("e3", t0.Add(time.Hour), ipB, iphone)
	if b := h.hit("h2", 2, t0.Add(30*time.Minute), ipB, safariUA, bot); len(installs(b)) != 0 || h.conversion("e3").Method != tapline.MethodOrganic {
		t.Errorf("a late previewer's request re-attributed an install: %v", installs(b))
	}
}

// TestReferrerNamingNoAndroidTap: only a tap from Android is redirected
// with its id in a Play referrer, so a referrer naming an iPhone's tap is
// not credited, whether the tap is consumed before the install or after.
func TestReferrerNamingNoAndroidTap(t *testing.T) {
	h := newHarness(t)
	h.hit("ios-tap", 1, t0, ipA, safariUA)
	if got := installs(h.install("e1", t0.Add(time.Hour), ipB, android, referrerTo("ios-tap"))); !equalCounts(got, map[string]int64{"0/organic": 1}) {
		t.Errorf("tap before the install: installs %v, want organic", got)
	}
	h.install("e2", t0.Add(3*time.Hour), ipB, android, referrerTo("late-ios-tap"))
	if got := installs(h.hit("late-ios-tap", 1, t0.Add(2*time.Hour), ipA, safariUA)); len(got) != 0 {
		t.Errorf("tap consumed after the install: installs %v, want no re-attribution", got)
	}
	// The same with an Android tap is credited, both ways.
	h.hit("and-tap", 1, t0.Add(4*time.Hour), ipA, chromeAndUA)
	if got := installs(h.install("e3", t0.Add(5*time.Hour), ipB, android, referrerTo("and-tap"))); !equalCounts(got, map[string]int64{"1/referrer": 1}) {
		t.Errorf("an Android tap: installs %v, want credited by referrer", got)
	}
}

// TestLateTapKeepsAdID: an install counted organic, then re-attributed by
// a late tap, is flushed in its later state, which must carry the
// install's advertising id like the first one did: the conversions
// table's hash (what an erasure by advertising id finds) comes from it,
// and the raw store the state is read back from keeps none.
func TestLateTapKeepsAdID(t *testing.T) {
	const gaid = "38400000-8cf0-11bd-b23e-10b96e40000d"
	h := newHarness(t)
	h.install("e1", t0.Add(time.Hour), ipB, android, referrerTo("late-tap"), func(e *tapline.Event) { e.Device.GAID = gaid })
	if len(h.rows.Conversions) != 1 || h.rows.Conversions[0].AdID != gaid || h.rows.Conversions[0].Method != tapline.MethodOrganic {
		t.Fatalf("the install's state: %+v, want organic with the advertising id", h.rows.Conversions)
	}
	if got := installs(h.hit("late-tap", 1, t0, ipA, chromeAndUA)); !equalCounts(got, map[string]int64{"0/organic": -1, "1/referrer": 1}) {
		t.Fatalf("the late tap: installs %v, want the install moved to it", got)
	}
	if len(h.rows.Conversions) != 1 || h.rows.Conversions[0].AdID != gaid || h.rows.Conversions[0].Method != tapline.MethodReferrer {
		t.Errorf("the re-attributed state: %+v, want by referrer with the advertising id", h.rows.Conversions)
	}
}
