package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"tapline"
	"tapline/facts"
	"tapline/fingerprint"
	"tapline/fraud"
)

// fraudRows sums the fraud table of b by link, signal and action.
func fraudRows(b facts.Batch) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if k.Table == tapline.FactFraud && v.Count != 0 {
			out[fmt.Sprintf("%d/%s/%s", k.LinkID, k.Signal, k.Action)] += v.Count
		}
	}
	return out
}

// policy sets the harness app's fraud policy.
func (h *harness) policy(set func(p *tapline.FraudPolicy)) {
	set(&h.m.apps.entries[appID].app.Fraud)
}

func referrerTo(hitID string) eventOpt {
	return func(e *tapline.Event) { e.Referrer = tapline.ReferrerHitParam + "=" + hitID }
}

// TestFraudRejectsReferrerMatch checks that a referrer match tapped 3 s
// before the first open, with click injection rejected, makes the install
// organic with a decision naming the rule and the tap, counts the
// rejection, and counts it again on a replay of the install.
func TestFraudRejectsReferrerMatch(t *testing.T) {
	h := newHarness(t)
	h.policy(func(p *tapline.FraudPolicy) { p.ClickInjection = tapline.FraudReject })
	h.hit("h1", 5, t0, ipB, chromeAndUA)
	b, e := h.event("e1", "inst-e1", tapline.KindInstall, t0.Add(3*time.Second), ipA, android, referrerTo("h1"))
	if got := installs(b); !equalCounts(got, map[string]int64{"0/organic": 1}) {
		t.Errorf("installs %v, want one organic", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"5/click_injection/reject": 1}) {
		t.Errorf("fraud rows %v, want one rejected click injection of link 5", got)
	}
	c := h.conversion("e1")
	d := c.Decision
	if c.Method != tapline.MethodOrganic || c.LinkID != 0 || c.ClickToInstall != 0 || d.Rule != tapline.RuleFraud ||
		!strings.Contains(d.Reason, "click injection rule rejected tap h1, which the referrer rule chose") ||
		len(d.Fraud) != 1 || d.Fraud[0].Action != tapline.FraudReject || d.Fraud[0].Threshold != "10s" || d.Candidates[0].Chosen {
		t.Errorf("conversion %s/%d, decision %+v", c.Method, c.LinkID, d)
	}
	if len(c.History) != 1 || len(c.History[0].Fraud) != 1 {
		t.Errorf("the change does not record the finding: %+v", c.History)
	}
	var metric dto.Metric
	if err := h.m.metrics.fraud.WithLabelValues("click_injection", "reject").Write(&metric); err != nil {
		t.Fatal(err)
	}
	if n := metric.GetCounter().GetValue(); n != 1 {
		t.Errorf("tapline_matcher_fraud_total{click_injection,reject} = %v, want 1", n)
	}
	// A replay of the install (a crash before the flush) counts the same.
	e.Source = ""
	h.next[tapline.TopicEvents]--
	if got := fraudRows(h.run(h.msg(tapline.TopicEvents, e, e.Time))); !equalCounts(got, map[string]int64{"5/click_injection/reject": 1}) {
		t.Errorf("replay: fraud rows %v", got)
	}
}

// TestFraudRejectsFingerprintMatch checks a fingerprint match from a
// datacenter range rejected, and a flagged one kept.
func TestFraudRejectsFingerprintMatch(t *testing.T) {
	h := newHarness(t)
	const cloudIP = "45.67.8.9"
	h.m.Datacenters = fraud.NewRanges([]fraud.Range{{Prefix: netip.MustParsePrefix("45.67.8.0/22"), Provider: "testcloud"}})
	h.policy(func(p *tapline.FraudPolicy) { p.Datacenter = tapline.FraudReject })
	h.hit("h1", 2, t0, cloudIP, safariUA)
	b := h.install("e1", t0.Add(time.Hour), cloudIP, iphone)
	if got := installs(b); !equalCounts(got, map[string]int64{"0/organic": 1}) {
		t.Errorf("installs %v, want one organic", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"2/datacenter/reject": 1}) {
		t.Errorf("fraud rows %v", got)
	}
	d := h.conversion("e1").Decision
	if d.Rule != tapline.RuleFraud || !strings.Contains(d.Reason, "datacenter rule rejected tap h1, which the fingerprint rule chose") ||
		!strings.Contains(d.Reason, "45.67.8.0/24 in testcloud's range 45.67.8.0/22") || strings.Contains(d.Reason, cloudIP) {
		t.Errorf("decision %+v", d)
	}

	// Flagged: the tap keeps the install; the decision and facts say so.
	h.policy(func(p *tapline.FraudPolicy) { p.Datacenter = tapline.FraudFlag })
	h.hit("h2", 3, t0.Add(2*time.Hour), cloudIP, safariUA)
	b = h.install("e2", t0.Add(3*time.Hour), cloudIP, iphone)
	if got := installs(b); !equalCounts(got, map[string]int64{"3/fingerprint": 1}) {
		t.Errorf("flagged: installs %v, want the fingerprint match kept", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"3/datacenter/flag": 1}) {
		t.Errorf("flagged: fraud rows %v", got)
	}
	if d := h.conversion("e2").Decision; d.Rule != tapline.RuleFingerprint || len(d.Fraud) != 1 || d.Fraud[0].Action != tapline.FraudFlag {
		t.Errorf("flagged: decision %+v", d)
	}
}

// TestFraudLateHits checks that a late tap stamped after the first open
// (within the clock-skew allowance: the phone's clock runs 40 seconds
// behind, the tap came 30 seconds after the install's device time and ten
// before the collectors received it) does not re-attribute the install
// when that rule rejects, is counted, and re-attributes it, flagged, when
// the rule flags. A tap received after the install was received is no
// candidate at all, whatever the device's clock said.
func TestFraudLateHits(t *testing.T) {
	h := newHarness(t)
	h.policy(func(p *tapline.FraudPolicy) { p.TapAfterInstall = tapline.FraudReject })
	h.install("e1", t0, ipA, iphone, receivedAfter(40*time.Second))
	b := h.hit("h1", 4, t0.Add(30*time.Second), ipA, safariUA)
	if got := installs(b); len(got) != 0 {
		t.Errorf("a rejected late tap moved installs: %v", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"4/tap_after_install/reject": 1}) {
		t.Errorf("rejected late tap: fraud rows %v", got)
	}
	if c := h.conversion("e1"); c.Method != tapline.MethodOrganic || len(c.History) != 1 {
		t.Errorf("a rejected late tap changed the conversion: %s, %d changes", c.Method, len(c.History))
	}

	h.policy(func(p *tapline.FraudPolicy) { p.TapAfterInstall = tapline.FraudFlag })
	h.install("e2", t0.Add(time.Hour), ipB, iphone, receivedAfter(40*time.Second))
	b = h.hit("h2", 6, t0.Add(time.Hour+20*time.Second), ipB, safariUA)
	if got := installs(b); !equalCounts(got, map[string]int64{"0/organic": -1, "6/fingerprint": 1}) {
		t.Errorf("flagged late tap: installs %v, want the install moved to link 6", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"6/tap_after_install/flag": 1}) {
		t.Errorf("flagged late tap: fraud rows %v", got)
	}
	c := h.conversion("e2")
	if c.Decision.Rule != tapline.RuleLateHit || len(c.Decision.Fraud) != 1 || len(c.History) != 2 || len(c.History[1].Fraud) != 1 {
		t.Errorf("flagged late tap: decision %+v, history %+v", c.Decision, c.History)
	}

	// The phone's clock is right: a tap received 20 seconds after the
	// install (past the collectors' 5-second skew) came after it.
	h.install("e3", t0.Add(2*time.Hour), ipC, iphone)
	b = h.hit("h3", 7, t0.Add(2*time.Hour+20*time.Second), ipC, safariUA)
	if got := installs(b); len(got) != 0 {
		t.Errorf("a tap received after the install moved installs: %v", got)
	}
	if got := fraudRows(b); len(got) != 0 {
		t.Errorf("a tap received after the install was judged: fraud rows %v", got)
	}
	if c := h.conversion("e3"); c.Method != tapline.MethodOrganic || len(c.History) != 1 {
		t.Errorf("a tap received after the install changed its conversion: %s, %d changes", c.Method, len(c.History))
	}
}

// TestFraudClickFlooding checks that a sub-publisher whose taps are
// rarely installed gets its next install rejected, counted online from
// the taps the matcher consumed.
func TestFraudClickFlooding(t *testing.T) {
	h := newHarness(t)
	h.policy(func(p *tapline.FraudPolicy) {
		p.ClickFlooding, p.FloodMinTaps, p.FloodMaxInstallRate = tapline.FraudReject, 20, 0.05
	})
	site := func(v string) hitOpt {
		return func(hit *tapline.Hit) { hit.Params = map[string]string{"sub_publisher": v} }
	}
	for i := range 25 {
		h.hit(fmt.Sprintf("f%d", i), 8, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("192.0.%d.1", i+1), chromeAndUA, site("app-123"))
	}
	b, _ := h.event("e1", "inst-e1", tapline.KindInstall, t0.Add(time.Hour), ipA, android, referrerTo("f24"))
	if got := installs(b); !equalCounts(got, map[string]int64{"0/organic": 1}) {
		t.Errorf("installs %v, want organic", got)
	}
	if got := fraudRows(b); !equalCounts(got, map[string]int64{"8/click_flooding/reject": 1}) {
		t.Errorf("fraud rows %v", got)
	}
	if d := h.conversion("e1").Decision; !strings.Contains(d.Reason, "sub_publisher=app-123: 25 taps, 0 installed") {
		t.Errorf("decision %q", d.Reason)
	}
	// Another sub-publisher's tap is credited.
	h.hit("g1", 8, t0.Add(time.Hour), ipB, chromeAndUA, site("app-456"))
	b, _ = h.event("e2", "inst-e2", tapline.KindInstall, t0.Add(2*time.Hour), ipA, android, referrerTo("g1"))
	if got := installs(b); !equalCounts(got, map[string]int64{"8/referrer": 1}) || len(fraudRows(b)) != 0 {
		t.Errorf("a quiet sub-publisher: installs %v, fraud %v", got, fraudRows(b))
	}
}

// TestFraudExactlyOnce runs installs whose taps a rule rejects (from a
// datacenter) or flags (click injection) through matchers that crash,
// one after a flush that committed but reported an error, and checks the
// fraud facts, the installs and the stored decisions count each once.
func TestFraudExactlyOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "fraudeo")
	f.app.Fraud.Datacenter = tapline.FraudReject
	if err := f.accounts.UpdateApp(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	cloud := fraud.NewRanges([]fraud.Range{{Prefix: netip.MustParsePrefix("45.67.8.0/22"), Provider: "testcloud"}})
	fp := fingerprint.New()
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	var msgs []tapline.Message
	add := func(topic string, key []byte, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, tapline.Message{Topic: topic, Key: key, Value: b})
	}
	const devices = 120
	var rejected, flagged int64
	for i := range devices {
		ip := fmt.Sprintf("81.2.%d.%d", i/200, i%200+1)
		if i%4 == 0 {
			ip = fmt.Sprintf("45.67.%d.%d", 8+i%4, i+1)
			rejected++
		}
		tapAt := base.Add(time.Duration(i) * time.Second)
		installAt := tapAt.Add(10 * time.Minute)
		if i%4 == 1 {
			installAt = tapAt.Add(4 * time.Second)
			flagged++
		}
		h := &tapline.Hit{ID: fmt.Sprintf("hit-%d", i), Time: tapAt, AppID: f.app.ID, LinkID: int64(1 + i%2), IP: ip, UserAgent: safariUA}
		fp.Hit(h)
		add(tapline.TopicHits, fingerprint.BusKey(f.app.ID, h.Fingerprint), h)
		in := &tapline.Event{ID: fmt.Sprintf("install-%d", i), AppID: f.app.ID, Name: "install", Kind: tapline.KindInstall, Time: installAt,
			ReceivedAt: installAt, InstallID: fmt.Sprintf("device-%d", i), IP: ip,
			Device: tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2"}}
		fp.Event(in)
		add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, in.Fingerprint), in)
	}
	bus := f.pebbleBus(t, 4)
	if err := bus.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	start := func(fs tapline.FactStore) *Matcher {
		m := New(cfg, bus, f.raw, fs, f.accounts)
		m.Datacenters = cloud
		if err := m.Open(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	flaky := &flakyFacts{FactStore: f.store, failOn: 1, failed: make(chan struct{})}
	m1 := start(flaky)
	select {
	case <-flaky.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the injected failure never happened")
	}
	m1.abort()
	m2 := start(f.store)
	time.Sleep(30 * time.Millisecond)
	m2.abort()
	m3 := start(f.store)
	want := truth{hits: devices, installs: devices, conversions: devices - rejected, events: devices}
	waitFor(t, "the facts to reach the ground truth", 30*time.Second, func() bool { return same(f.totals(t), want) })
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	f.checkTotals(t, want)
	got, err := f.reports.Fraud(ctx, tapline.StatsFilter{AppID: f.app.ID, From: time.Now().UTC().Add(-72 * time.Hour).Truncate(24 * time.Hour),
		To: time.Now().UTC().Add(48 * time.Hour).Truncate(24 * time.Hour), Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	wantFraud := []tapline.FraudCount{
		{Signal: tapline.FraudClickInjection, Action: tapline.FraudFlag, Count: flagged},
		{Signal: tapline.FraudDatacenter, Action: tapline.FraudReject, Count: rejected},
	}
	if !slices.Equal(got, wantFraud) {
		t.Errorf("fraud facts %+v, want %+v", got, wantFraud)
	}
	// Each install from the datacenter is organic: by a fraud decision
	// when its tap came first, as an organic one its late tap could not
	// re-attribute when the install did.
	for i := 0; i < devices; i += 4 {
		page, err := f.reports.Conversions(ctx, tapline.ConversionQuery{AppID: f.app.ID, Search: fmt.Sprintf("device-%d", i)})
		if err != nil || len(page.Conversions) != 1 {
			t.Fatalf("conversion of device-%d: %v (%v)", i, page, err)
		}
		c := page.Conversions[0]
		if c.Method != tapline.MethodOrganic || c.Decision == nil ||
			(c.Decision.Rule == tapline.RuleFraud) != (len(c.Decision.Fraud) == 1 && c.Decision.Fraud[0].Signal == tapline.FraudDatacenter) {
			t.Errorf("stored conversion of device-%d: %s, decision %+v", i, c.Method, c.Decision)
		}
	}
}

// TestReferrerTappedAfterReceipt has the install referrer name a tap the
// collectors received after the install, from a phone whose clock runs 30
// minutes ahead (the tap lies before the install's device time): the tap
// is not credited, and the decision says when the collectors saw it.
func TestReferrerTappedAfterReceipt(t *testing.T) {
	h := newHarness(t)
	h.hit("h1", 1, t0.Add(20*time.Minute), ipB, chromeAndUA)
	h.install("e1", t0.Add(40*time.Minute), ipA, android, referrerTo("h1"), func(e *tapline.Event) { e.ReceivedAt = t0.Add(10 * time.Minute) })
	c := h.conversion("e1")
	if c.Method != tapline.MethodOrganic {
		t.Fatalf("install credited by %s to %q, want organic", c.Method, c.HitID)
	}
	var reason string
	for _, cand := range c.Decision.Candidates {
		if cand.HitID == "h1" {
			reason = cand.Reason
		}
	}
	if !strings.Contains(reason, "tapped 10m") || !strings.Contains(reason, "after the collectors received the install") {
		t.Errorf("h1's reason %q, want it tapped 10m after the collectors received the install", reason)
	}
}
