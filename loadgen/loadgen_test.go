package loadgen_test

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
	"tapline/loadgen"
)

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	a, err := loadgen.Generate(loadgen.NewConfig(7, 500))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loadgen.Generate(loadgen.NewConfig(7, 500))
	c, _ := loadgen.Generate(loadgen.NewConfig(8, 500))
	if !reflect.DeepEqual(a.Taps, b.Taps) || !reflect.DeepEqual(a.Installs, b.Installs) || !reflect.DeepEqual(a.Timeline, b.Timeline) {
		t.Fatal("the same seed gave different workloads")
	}
	if reflect.DeepEqual(a.Taps, c.Taps) {
		t.Fatal("different seeds gave the same taps")
	}
}

// TestGenerateShape checks the population against what it claims to
// model.
func TestGenerateShape(t *testing.T) {
	t.Parallel()
	w, err := loadgen.Generate(loadgen.NewConfig(1, 3000))
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprint.New()
	var organic, v6, reduced, inApp, changed int
	perIP := map[string]int{}
	for _, d := range w.Devices {
		if d.Organic {
			organic++
		}
	}
	for _, tap := range w.Taps {
		if strings.Contains(tap.IP, ":") {
			v6++
		}
		if strings.Contains(tap.UserAgent, "Android 10; K)") {
			reduced++
		}
		if strings.Contains(tap.UserAgent, "FBAN") || strings.Contains(tap.UserAgent, "FB_IAB") || strings.Contains(tap.UserAgent, "Instagram") {
			inApp++
		}
		perIP[tap.IP]++
		h := &tapline.Hit{IP: tap.IP, UserAgent: tap.UserAgent}
		fp.Hit(h)
		if h.Platform != w.Devices[tap.Device].Platform {
			t.Fatalf("tap UA %q parses as %s, device is %s", tap.UserAgent, h.Platform, w.Devices[tap.Device].Platform)
		}
	}
	for _, in := range w.Installs {
		if in.Truth == loadgen.Organic {
			continue
		}
		tap := w.Taps[in.Truth]
		if tap.Device != in.Device || tap.At > in.At {
			t.Fatalf("install %d: truth tap %d is of device %d at %s, install at %s", in.N, tap.N, tap.Device, tap.At, in.At)
		}
		if tap.IP != in.IP {
			changed++
		}
	}
	maxPerIP := 0
	for _, n := range perIP {
		maxPerIP = max(maxPerIP, n)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"organic devices", organic, 900},
		{"IPv6 taps", v6, 1},
		{"reduced Chrome taps", reduced, 100},
		{"in-app browser taps", inApp, 300},
		{"installs on another address", changed, 50},
		{"taps behind the busiest address", maxPerIP, 40},
	} {
		if c.got < c.want {
			t.Errorf("%s = %d, want at least %d", c.name, c.got, c.want)
		}
	}
	for i := 1; i < len(w.Timeline); i++ {
		if w.Timeline[i].At < w.Timeline[i-1].At {
			t.Fatalf("timeline out of order at %d", i)
		}
	}
}

// TestScoreAndNaive builds a tiny workload by hand: two devices behind one
// address, one organic, and checks both naive matchers and the scores.
func TestScoreAndNaive(t *testing.T) {
	t.Parallel()
	const inApp = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone15,2]"
	w, err := loadgen.Generate(loadgen.NewConfig(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	dev := *w.Devices[0]
	w.Devices = []*loadgen.Device{&dev, &dev, &dev}
	w.Config.Windows = loadgen.DefaultWindows()
	w.Taps = []loadgen.Tap{
		{N: 0, Device: 0, At: time.Hour, IP: "100.64.0.1", UserAgent: dev.DefaultUserAgent()},
		{N: 1, Device: 1, At: 2 * time.Hour, IP: "100.64.0.1", UserAgent: inApp},
	}
	w.Installs = []loadgen.Install{
		{N: 0, Device: 0, At: 3 * time.Hour, IP: "100.64.0.1", Truth: 0},
		{N: 1, Device: 1, At: 4 * time.Hour, IP: "100.64.0.1", Truth: 1},
		{N: 2, Device: 2, At: 5 * time.Hour, IP: "100.64.0.1", Truth: loadgen.Organic},
		{N: 3, Device: 2, At: 50 * time.Hour, IP: "100.64.0.1", Truth: loadgen.Organic},
	}
	fp := func(tap int) loadgen.Answer {
		return loadgen.Answer{Tap: tap, Method: tapline.MethodFingerprint, Best: tap, Score: math.Inf(1)}
	}
	org := loadgen.Answer{Tap: loadgen.Organic, Method: tapline.MethodOrganic, Best: loadgen.Organic}
	ip := loadgen.NaiveIP(w)
	if want := map[int]loadgen.Answer{0: fp(1), 1: fp(1), 2: fp(1), 3: org}; !reflect.DeepEqual(ip, want) {
		t.Errorf("NaiveIP = %v, want %v (newest tap within a day, else organic)", ip, want)
	}
	for _, c := range []struct {
		name string
		got  map[int]loadgen.Answer
		want loadgen.Accuracy
	}{
		{"perfect", map[int]loadgen.Answer{0: fp(0), 1: fp(1), 2: org, 3: org}, loadgen.Accuracy{Installs: 4, Caused: 2, Organic: 2, Attributed: 2, Correct: 2, Precision: 1, Recall: 1}},
		{"naive ip", ip, loadgen.Accuracy{Installs: 4, Caused: 2, Organic: 2, Attributed: 3, Correct: 1, Misattrib: 1, Precision: 1.0 / 3, Recall: 0.5, OrganicMisattribution: 0.5}},
		{"missing", map[int]loadgen.Answer{0: fp(0)}, loadgen.Accuracy{Installs: 4, Caused: 2, Organic: 2, Attributed: 1, Correct: 1, Missing: 3, Precision: 1, Recall: 0.5}},
	} {
		got := loadgen.Score(w, c.got)
		if got.FingerprintOnly == nil || !reflect.DeepEqual(*got.FingerprintOnly, c.want) {
			t.Errorf("%s: fingerprint-only score = %+v, want %+v (no install here has a deterministic signal)", c.name, got.FingerprintOnly, c.want)
		}
		got.FingerprintOnly, got.ByMethod, got.ByClass = nil, nil, nil
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Score = %+v, want %+v", c.name, got, c.want)
		}
	}
	// The SDK side carries the default browser's User-Agent, so IP + UA
	// never meets the in-app tap.
	if got, want := loadgen.NaiveIPUA(w), (map[int]loadgen.Answer{0: fp(0), 1: fp(0), 2: fp(0), 3: org}); !reflect.DeepEqual(got, want) {
		t.Errorf("NaiveIPUA = %v, want %v", got, want)
	}
	var buf bytes.Buffer
	if err := loadgen.WriteTruth(&buf, w); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Errorf("truth lines = %d, want 4", got)
	}
}

func TestWindowsScaled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		compression float64
		want        loadgen.Windows
	}{
		{"real time", 0, loadgen.DefaultWindows()},
		{"an hour a second", 3600, loadgen.Windows{Click: 168 * time.Second, Fingerprint: 24 * time.Second, Lateness: 24 * time.Second}},
		{"at least a second", 1e9, loadgen.Windows{Click: time.Second, Fingerprint: time.Second, Lateness: time.Second}},
	} {
		if got := loadgen.DefaultWindows().Scaled(c.compression); got != c.want {
			t.Errorf("%s: Scaled = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestPlayReferrer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, loc, want string }{
		{"play", "https://play.google.com/store/apps/details?id=x&referrer=utm_source%3Da%26tapline_hit%3Dabc", "utm_source=a&tapline_hit=abc"},
		{"app store", "https://apps.apple.com/app/id1?referrer=x", ""},
		{"empty", "", ""},
	} {
		if got := loadgen.PlayReferrer(c.loc); got != c.want {
			t.Errorf("%s: PlayReferrer = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestGenerateCauses checks the hard cases the truth must hold: tapping
// devices that never install, tapping devices that install later of their
// own accord (organic), organic devices that tapped another app's link,
// tap-driven installs later than any window (still the tap's), Chromium
// taps with client hints, and taps in another language than the phone's.
func TestGenerateCauses(t *testing.T) {
	t.Parallel()
	cfg := loadgen.NewHardConfig(3, 4000)
	cfg.OtherLinks = []string{"other-a", "other-b"}
	cfg.Windows.Click = 12 * time.Hour // shorter than the population's delays
	w, err := loadgen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	installed := map[int]bool{}
	var laterOrganic, otherThenOrganic, lateCaused int
	for _, in := range w.Installs {
		installed[in.Device] = true
		d := w.Devices[in.Device]
		switch {
		case in.Truth == loadgen.Organic && !d.Organic:
			laterOrganic++
		case in.Truth == loadgen.Organic:
			for _, tp := range w.Taps {
				if tp.Device == d.ID && tp.OtherApp {
					otherThenOrganic++
					if tp.At > in.At {
						t.Errorf("device %d tapped another app's link after installing organically", d.ID)
					}
				}
			}
		case in.At-w.Taps[in.Truth].At > cfg.Windows.Click:
			lateCaused++
		}
		if in.Truth != loadgen.Organic && w.Taps[in.Truth].OtherApp {
			t.Errorf("install %d caused by another app's tap", in.N)
		}
	}
	var tappedOnly, hinted, mismatched int
	for _, tp := range w.Taps {
		if !installed[tp.Device] {
			tappedOnly++
		}
		if tp.Hints != nil {
			hinted++
			if tp.Hints["Sec-CH-UA-Model"] != `"`+w.Devices[tp.Device].Model+`"` {
				t.Errorf("tap %d hints model %s, device is %s", tp.N, tp.Hints["Sec-CH-UA-Model"], w.Devices[tp.Device].Model)
			}
		}
		if !strings.EqualFold(tp.Language, strings.ReplaceAll(w.Devices[tp.Device].Locale, "_", "-")) {
			mismatched++
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"taps of devices that never install", tappedOnly, 1000},
		{"tapping devices installing organically later", laterOrganic, 50},
		{"organic installs after another app's tap", otherThenOrganic, 300},
		{"tap-driven installs later than the click window", lateCaused, 20},
		{"Chromium taps with client hints", hinted, 100},
		{"taps in another language", mismatched, 50},
	} {
		if c.got < c.want {
			t.Errorf("%s = %d, want at least %d", c.name, c.got, c.want)
		}
	}
}

// TestDeterministicAndClassify builds a workload by hand: the referrer
// names the device's last tap within the click window, an advertising id
// the newest tap carrying it; Classify says which signal each install
// offers; Curve re-decides fingerprint answers by their scores.
func TestDeterministicAndClassify(t *testing.T) {
	t.Parallel()
	w, err := loadgen.Generate(loadgen.NewConfig(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	and := *w.Devices[0]
	and.Platform, and.AdID = tapline.PlatformAndroid, "gaid-1"
	ios := and
	ios.Platform = tapline.PlatformIOS
	w.Devices = []*loadgen.Device{&and, &ios, &ios}
	w.Config.Windows = loadgen.DefaultWindows()
	w.Taps = []loadgen.Tap{
		{N: 0, Device: 0, At: time.Hour},
		{N: 1, Device: 0, At: 2 * time.Hour},
		{N: 2, Device: 1, At: time.Hour, AdID: "gaid-1"},
		{N: 3, Device: 1, At: 2 * time.Hour},
		{N: 4, Device: 2, At: time.Hour},
	}
	w.Installs = []loadgen.Install{
		{N: 0, Device: 0, At: 3 * time.Hour, Referrer: true, Truth: 1},
		{N: 1, Device: 1, At: 3 * time.Hour, Truth: 3},
		{N: 2, Device: 2, At: 3 * time.Hour, Truth: 4},
		{N: 3, Device: 0, At: 20 * 24 * time.Hour, Referrer: true, Truth: loadgen.Organic},
	}
	det := loadgen.Deterministic(w)
	for n, want := range map[int]loadgen.Answer{
		0: {Tap: 1, Method: tapline.MethodReferrer, Best: loadgen.Organic},
		1: {Tap: 2, Method: tapline.MethodAdID, Best: loadgen.Organic},
		2: {Tap: loadgen.Organic, Method: tapline.MethodOrganic, Best: loadgen.Organic},
		3: {Tap: loadgen.Organic, Method: tapline.MethodOrganic, Best: loadgen.Organic},
	} {
		if det[n] != want {
			t.Errorf("Deterministic[%d] = %+v, want %+v", n, det[n], want)
		}
	}
	classes := loadgen.Classify(w)
	for n, want := range map[int]string{0: loadgen.ClassReferrer, 1: loadgen.ClassFingerprint, 2: loadgen.ClassFingerprint, 3: loadgen.ClassFingerprint} {
		if classes[n] != want {
			t.Errorf("class of install %d = %s, want %s", n, classes[n], want)
		}
	}

	got := det
	got[1] = loadgen.Answer{Tap: 2, Method: tapline.MethodAdID, Best: loadgen.Organic}
	got[2] = loadgen.Answer{Tap: loadgen.Organic, Method: tapline.MethodOrganic, Best: 4, Score: 1.5}
	curve := loadgen.Curve(w, got, []float64{1, 2})
	if at1, at2 := curve[0].Accuracy, curve[1].Accuracy; at1.Correct != 2 || at2.Correct != 1 || at1.ByMethod[tapline.MethodFingerprint].Correct != 1 {
		t.Errorf("curve: correct %d at 1 (fingerprint %+v), %d at 2; want 2 (the scored tap 4 credited) and 1", at1.Correct, at1.ByMethod[tapline.MethodFingerprint], at2.Correct)
	}
	a := loadgen.Score(w, got)
	if m := a.ByMethod[tapline.MethodAdID]; m.Attributed != 1 || m.Correct != 0 {
		t.Errorf("advertising-id score %+v, want 1 credited, none right (an older tap than the cause)", m)
	}
	if c := a.ByClass[loadgen.ClassReferrer]; c.Caused != 1 || c.Correct != 1 || c.Recall != 1 {
		t.Errorf("referrer class %+v, want 1 of 1", c)
	}
}
