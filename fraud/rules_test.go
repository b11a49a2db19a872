package fraud_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
	"tapline/fraud"
)

var t0 = time.Date(2026, 11, 21, 13, 45, 0, 0, time.UTC)

func testApp(p tapline.FraudPolicy) *tapline.App {
	app := &tapline.App{ID: 1, Fraud: p}
	app.SetDefaults()
	return app
}

func signals(fs []tapline.FraudFinding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Signal)+"/"+string(f.Action))
	}
	return out
}

// TestCheck runs each rule below and above its threshold, flagging and
// rejecting.
func TestCheck(t *testing.T) {
	ranges := mustRanges(t, "3.5.140.0/22 aws\n2600:1f00::/24 aws\n")
	reject := tapline.FraudPolicy{ClickInjection: tapline.FraudReject, ClickFlooding: tapline.FraudReject,
		Datacenter: tapline.FraudReject, TapAfterInstall: tapline.FraudReject}
	tap := func(ip string, before time.Duration) *tapline.Hit {
		return &tapline.Hit{ID: "h1", AppID: 1, LinkID: 7, IP: ip, Time: t0.Add(-before)}
	}
	for _, tc := range []struct {
		name   string
		policy tapline.FraudPolicy
		hit    *tapline.Hit
		want   []string
	}{
		{"clean", tapline.FraudPolicy{}, tap("198.51.100.7", time.Minute), nil},
		{"click injection flagged", tapline.FraudPolicy{}, tap("198.51.100.7", 3*time.Second), []string{"click_injection/flag"}},
		{"click injection rejected", reject, tap("198.51.100.7", 9999*time.Millisecond), []string{"click_injection/reject"}},
		{"exactly the minimum", reject, tap("198.51.100.7", 10*time.Second), nil},
		{"own minimum", tapline.FraudPolicy{MinClickToInstall: 2 * time.Second}, tap("198.51.100.7", 3*time.Second), nil},
		{"tap at the install", tapline.FraudPolicy{}, tap("198.51.100.7", 0), []string{"click_injection/flag"}},
		{"tap after install", reject, tap("198.51.100.7", -30*time.Second), []string{"tap_after_install/reject"}},
		{"datacenter v4 first", tapline.FraudPolicy{}, tap("3.5.140.0", time.Hour), []string{"datacenter/flag"}},
		{"datacenter v4 last", reject, tap("3.5.143.255", time.Hour), []string{"datacenter/reject"}},
		{"next to datacenter", reject, tap("3.5.144.0", time.Hour), nil},
		{"datacenter v6", reject, tap("2600:1f00:1:2::3", time.Hour), []string{"datacenter/reject"}},
		{"datacenter and injection", tapline.FraudPolicy{Datacenter: tapline.FraudReject}, tap("3.5.140.1", time.Second),
			[]string{"click_injection/flag", "datacenter/reject"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fraud.Checker{Datacenters: ranges}
			e := &tapline.Event{ID: "e1", Time: t0}
			got := c.Check(testApp(tc.policy), e, tc.hit, tapline.MethodReferrer)
			if !slices.Equal(signals(got), tc.want) {
				t.Fatalf("Check = %v, want %v", signals(got), tc.want)
			}
			for _, f := range got {
				if f.HitID != "h1" || f.LinkID != 7 || f.Method != tapline.MethodReferrer || f.Value == "" {
					t.Errorf("finding %+v does not name the tap, its match and its value", f)
				}
				if net := fingerprint.MaskNetwork(fingerprint.Network(tc.hit.IP)); f.Signal == tapline.FraudDatacenter &&
					(!strings.HasPrefix(f.Value, net+" in aws's range ") || (net != tc.hit.IP+"/24" && strings.Contains(f.Value, tc.hit.IP))) {
					t.Errorf("datacenter finding %q does not show the masked network %s and the provider, or shows the address", f.Value, net)
				}
			}
		})
	}
}

// TestCheckFlooding counts taps from a network and a sub-publisher and
// checks the rule at its edges: enough taps, an install rate under the
// limit, and the window.
func TestCheckFlooding(t *testing.T) {
	policy := tapline.FraudPolicy{ClickFlooding: tapline.FraudReject, FloodMinTaps: 10, FloodMaxInstallRate: 0.2}
	app := testApp(policy)
	app.FingerprintWindow = 24 * time.Hour
	flood := &fraud.Flood{}
	c := &fraud.Checker{Flood: flood}
	tap := func(id, ip string, at time.Time, params map[string]string) *tapline.Hit {
		return &tapline.Hit{ID: id, AppID: 1, LinkID: 3, IP: ip, Time: at, Params: params}
	}
	install := &tapline.Event{ID: "e1", Time: t0}
	// Nine taps from one /24 over the day: under the tap minimum.
	for i := range 9 {
		flood.Tap(tap("t", "198.51.100."+string(rune('1'+i)), t0.Add(-time.Duration(i+1)*time.Hour), nil), app.FingerprintWindow)
	}
	h := tap("h1", "198.51.100.200", t0.Add(-time.Minute), nil)
	if got := c.Check(app, install, h, tapline.MethodFingerprint); len(got) != 0 {
		t.Fatalf("nine taps: %v, want none", signals(got))
	}
	flood.Tap(h, app.FingerprintWindow)
	got := c.Check(app, install, h, tapline.MethodFingerprint)
	if !slices.Equal(signals(got), []string{"click_flooding/reject"}) || !strings.Contains(got[0].Value, "network 198.51.100.0/24: 10 taps, 0 installed") {
		t.Fatalf("ten taps, none installed: %+v", got)
	}
	// Two installs credited: 20%, not under the limit.
	flood.Credit(h, t0.Add(-30*time.Minute), app.FingerprintWindow)
	flood.Credit(h, t0.Add(-20*time.Minute), app.FingerprintWindow)
	if got := c.Check(app, install, h, tapline.MethodFingerprint); len(got) != 0 {
		t.Fatalf("ten taps, two installed: %v, want none", signals(got))
	}
	// A day later the network's taps are out of the window.
	later := &tapline.Event{ID: "e2", Time: t0.Add(36 * time.Hour)}
	if got := c.Check(app, later, h, tapline.MethodFingerprint); len(got) != 0 {
		t.Fatalf("a day and a half later: %v, want none", signals(got))
	}

	// A sub-publisher flooding from many networks, in any case of the
	// parameter's name.
	for i := range 12 {
		flood.Tap(tap("s", "203.0."+string(rune('0'+i%10))+".1", t0.Add(-time.Duration(i)*time.Minute), map[string]string{"Site_ID": "pub-42"}), app.FingerprintWindow)
	}
	h2 := tap("h2", "192.0.2.1", t0.Add(-time.Minute), map[string]string{"site_id": "pub-42"})
	got = c.Check(app, install, h2, tapline.MethodReferrer)
	if len(got) != 1 || got[0].Signal != tapline.FraudClickFlooding || !strings.Contains(got[0].Value, "site_id=pub-42: 12 taps") {
		t.Fatalf("a flooding sub-publisher: %+v", got)
	}
	// Another app's counts are apart.
	other := testApp(policy)
	other.ID, other.FingerprintWindow = 2, 24*time.Hour
	if got := c.Check(other, install, h2, tapline.MethodReferrer); len(got) != 0 {
		t.Fatalf("another app: %v", signals(got))
	}
}

// TestFloodBounded checks that a Flood keeps at most MaxSources sources.
func TestFloodBounded(t *testing.T) {
	f := &fraud.Flood{MaxSources: 100}
	for i := range 1000 {
		h := &tapline.Hit{AppID: 1, IP: "10.0.0.1", Time: t0, Params: map[string]string{"pub_id": strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))}}
		f.Tap(h, time.Hour)
		if f.Len() > 100 {
			t.Fatalf("%d sources after %d taps, want at most 100", f.Len(), i+1)
		}
	}
	// The most recent source is kept.
	if taps, _ := f.Count(1, fraud.FloodSource{Kind: "network", Value: "10.0.0.0/24"}, t0, time.Hour); taps == 0 {
		t.Errorf("the network tapped every time was dropped")
	}
}

// TestDecide checks that flagged findings keep the attribution and are
// recorded, and that a rejecting one makes a referrer or a fingerprint
// match organic with a decision naming the rule and the tap.
func TestDecide(t *testing.T) {
	matched := tapline.Attribution{HitID: "h1", LinkID: 7, Method: tapline.MethodReferrer, HitTime: t0.Add(-time.Second)}
	decision := func(rule string, method tapline.MatchMethod) *tapline.Decision {
		return &tapline.Decision{Rule: rule, Reason: "chosen", Window: time.Hour,
			Signals:    []tapline.Signal{{Name: "install_referrer", Install: "h1", Hit: "h1", Verdict: tapline.VerdictAgree}},
			Candidates: []tapline.Candidate{{HitID: "h1", LinkID: 7, Method: method, Chosen: true, Reason: "The newest."}, {HitID: "h0", Reason: "older"}},
			Considered: 2}
	}
	flag := tapline.FraudFinding{Signal: tapline.FraudDatacenter, HitID: "h1", LinkID: 7, Method: tapline.MethodReferrer, Value: "3.5.140.0/24 in aws's range 3.5.140.0/22", Action: tapline.FraudFlag}
	rej := tapline.FraudFinding{Signal: tapline.FraudClickInjection, HitID: "h1", LinkID: 7, Method: tapline.MethodReferrer, Value: "first open 1s after the tap", Threshold: "10s", Action: tapline.FraudReject}

	d := decision(tapline.RuleReferrer, tapline.MethodReferrer)
	if a := fraud.Decide(matched, d, nil); a.HitID != "h1" || d.Fraud != nil || d.Rule != tapline.RuleReferrer {
		t.Errorf("no findings changed the attribution or decision: %+v %+v", a, d)
	}
	if a := fraud.Decide(matched, d, []tapline.FraudFinding{flag}); a.HitID != "h1" || len(d.Fraud) != 1 || d.Rule != tapline.RuleReferrer || !d.Candidates[0].Chosen {
		t.Errorf("a flagged finding: %+v, decision %+v", a, d)
	}

	for _, tc := range []struct {
		rule   string
		method tapline.MatchMethod
	}{{tapline.RuleReferrer, tapline.MethodReferrer}, {tapline.RuleFingerprint, tapline.MethodFingerprint}} {
		d := decision(tc.rule, tc.method)
		f := rej
		f.Method = tc.method
		a := fraud.Decide(tapline.Attribution{HitID: "h1", LinkID: 7, Method: tc.method}, d, []tapline.FraudFinding{flag, f})
		if a.Method != tapline.MethodOrganic || a.HitID != "" || a.LinkID != 0 {
			t.Errorf("%s: rejected attribution %+v, want organic", tc.rule, a)
		}
		if d.Rule != tapline.RuleFraud || len(d.Fraud) != 2 || d.Signals != nil || d.Candidates[0].Chosen ||
			!strings.HasPrefix(d.Candidates[0].Reason, "Rejected by the click injection rule.") {
			t.Errorf("%s: decision %+v", tc.rule, d)
		}
		for _, want := range []string{"click injection rule rejected tap h1", "the " + strings.ReplaceAll(tc.rule, "_", " ") + " rule chose", "first open 1s after the tap", "limit 10s"} {
			if !strings.Contains(d.Reason, want) {
				t.Errorf("%s: reason %q does not say %q", tc.rule, d.Reason, want)
			}
		}
	}
}

// BenchmarkCheck checks a tap from a busy network and sub-publisher
// against every rule, after counting it.
func BenchmarkCheck(b *testing.B) {
	app := testApp(tapline.FraudPolicy{})
	app.FingerprintWindow = 24 * time.Hour
	c := &fraud.Checker{Datacenters: fraud.Shipped(), Flood: &fraud.Flood{}}
	h := &tapline.Hit{ID: "h", AppID: 1, LinkID: 2, IP: "81.2.69.142", Time: t0, Params: map[string]string{"utm_source": "x", "site_id": "pub-1"}}
	e := &tapline.Event{ID: "e", Time: t0.Add(time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		c.Flood.Tap(h, app.FingerprintWindow)
		c.Check(app, e, h, tapline.MethodFingerprint)
	}
}
