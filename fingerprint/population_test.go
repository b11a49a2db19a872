package fingerprint_test

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
	"tapline/loadgen"
)

// decideAll attributes the installs of w as the matcher does, offline:
// the deterministic rules first (loadgen.Deterministic), then
// fingerprint.Decide over the hits on the install's network in the
// fingerprint window, a tap credited by fingerprint at most once, installs
// in time order; every install's best candidate and score are kept so that
// loadgen.Curve can re-decide at any threshold. Delays are learned from the
// deterministic matches, as the matcher learns them.
func decideAll(w *loadgen.Workload, minScore float64) map[int]loadgen.Answer {
	fp := fingerprint.New()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	window := w.Config.Windows.Fingerprint
	byKey := map[string][]*tapline.Hit{}
	tapOf := map[*tapline.Hit]int{}
	for i := range w.Taps {
		t := &w.Taps[i]
		if t.OtherApp {
			continue
		}
		h := &tapline.Hit{ID: fmt.Sprint(t.N), Time: start.Add(t.At), IP: t.IP, UserAgent: t.UserAgent, AcceptLanguage: t.Language}
		if len(t.Hints) > 0 {
			h.ClientHints = map[string]string{}
			for k, v := range t.Hints {
				h.ClientHints[strings.ToLower(k)] = v
			}
		}
		fp.Hit(h)
		byKey[h.Fingerprint] = append(byKey[h.Fingerprint], h)
		tapOf[h] = t.N
	}
	for _, hs := range byKey {
		slices.SortFunc(hs, func(a, b *tapline.Hit) int { return b.Time.Compare(a.Time) }) // newest first
	}
	det := loadgen.Deterministic(w)
	pop := fingerprint.NewPopulation()
	order := make([]*loadgen.Install, len(w.Installs))
	for i := range w.Installs {
		order[i] = &w.Installs[i]
	}
	slices.SortFunc(order, func(a, b *loadgen.Install) int { return cmp.Compare(a.At, b.At) })
	claimed := map[*tapline.Hit]bool{}

	out := map[int]loadgen.Answer{}
	for _, in := range order {
		d := w.Devices[in.Device]
		e := &tapline.Event{Time: start.Add(in.At), IP: in.IP, Device: tapline.Device{Platform: d.Platform, Model: d.Model, OSVersion: d.OSVersion, Locale: d.Locale}}
		fp.Event(e)
		if a := det[in.N]; a.Method != tapline.MethodOrganic {
			pop.LearnDelay(in.At-w.Taps[a.Tap].At, window)
			pop.LearnInstall(&e.Device)
			out[in.N] = a
			continue
		}
		var cands []fingerprint.Candidate
		for _, h := range byKey[e.Fingerprint] {
			if h.Time.After(e.Time) || e.Time.Sub(h.Time) > window {
				continue
			}
			cands = append(cands, fingerprint.Candidate{Hit: h, Claimed: claimed[h]})
		}
		dec := fingerprint.Decide(cands, e, window, pop)
		ans := loadgen.Answer{Tap: loadgen.Organic, Method: tapline.MethodOrganic, Best: loadgen.Organic}
		if dec.Best >= 0 {
			best := cands[dec.Best].Hit
			ans.Best, ans.Score = tapOf[best], dec.Score
			if dec.Score >= minScore {
				ans.Tap, ans.Method = tapOf[best], tapline.MethodFingerprint
				claimed[best] = true
			}
		}
		out[in.N] = ans
		pop.LearnInstall(&e.Device)
	}
	return out
}

// TestDecidePopulations scores the fingerprint decision, offline, on both
// bench populations: at the default minimum score it must find most
// fingerprint-only installs and be right about nine times in ten on the
// default one. TAPLINE_CURVE=1 logs the whole curve.
func TestDecidePopulations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		cfg          loadgen.Config
		minP, minR   float64
		maxMisattrib float64
	}{
		{"default", loadgen.NewConfig(11, 4000), 0.88, 0.7, 0.05},
		{"hard", loadgen.NewHardConfig(12, 3000), 0.8, 0.6, 0.08},
	} {
		c.cfg.OtherLinks = []string{"other"}
		w, err := loadgen.Generate(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := decideAll(w, tapline.DefaultFingerprintMinScore)
		a := loadgen.Score(w, got)
		fo := a.FingerprintOnly
		t.Logf("%s: precision %.3f recall %.3f organic %.3f; fingerprint-only %.3f / %.3f / %.3f", c.name, a.Precision, a.Recall, a.OrganicMisattribution, fo.Precision, fo.Recall, fo.OrganicMisattribution)
		if fo.Precision < c.minP || fo.Recall < c.minR || fo.OrganicMisattribution > c.maxMisattrib {
			t.Errorf("%s: fingerprint-only precision %.3f, recall %.3f, organic misattributed %.3f; want at least %.2f, %.2f and at most %.2f",
				c.name, fo.Precision, fo.Recall, fo.OrganicMisattribution, c.minP, c.minR, c.maxMisattrib)
		}
		if os.Getenv("TAPLINE_CURVE") != "" {
			for _, p := range loadgen.Curve(w, got, []float64{-2, -1, 0, 0.5, 1, 1.5, 2, 3, 4}) {
				x := p.Accuracy
				t.Logf("  %5.2f  P %.3f R %.3f O %.3f | fp-only P %.3f R %.3f", p.Threshold, x.Precision, x.Recall, x.OrganicMisattribution, x.FingerprintOnly.Precision, x.FingerprintOnly.Recall)
			}
		}
	}
}

// TestDecideCandidateWindow checks that a candidate's own Window, the
// fingerprint window of its link, replaces Decide's window in weighing its
// click-to-install time, and that a candidate without one is weighed
// against Decide's.
func TestDecideCandidateWindow(t *testing.T) {
	t.Parallel()
	install := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := &tapline.Event{Time: install, Device: tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7"}}
	hit := func(id string) *tapline.Hit {
		return &tapline.Hit{ID: id, Time: install.Add(-20 * time.Hour), UserAgent: "ua-" + id}
	}
	const window = 24 * time.Hour
	cands := []fingerprint.Candidate{{Hit: hit("own"), Window: 30 * 24 * time.Hour}, {Hit: hit("app")}}
	fingerprint.Decide(cands, e, window, nil)
	if cands[0].Evidence == cands[1].Evidence {
		t.Errorf("evidence %.3f for both: the candidate's window is not weighed", cands[0].Evidence)
	}
	for i := range cands {
		fingerprint.Explain(&cands[i], e, window, nil)
	}
	ctit := func(c fingerprint.Candidate) float64 {
		for _, s := range c.Signals {
			if s.Name == "click_to_install" {
				return s.Weight
			}
		}
		t.Fatalf("candidate %s has no click_to_install signal: %+v", c.Hit.ID, c.Signals)
		return 0
	}
	var prior *fingerprint.Delays
	if got, want := ctit(cands[0]), prior.Weight(20*time.Hour, 30*24*time.Hour); got != want {
		t.Errorf("with its own 30d window: click_to_install weight %.3f, want %.3f", got, want)
	}
	if got, want := ctit(cands[1]), prior.Weight(20*time.Hour, window); got != want {
		t.Errorf("without a window of its own: click_to_install weight %.3f, want %.3f (Decide's 24h)", got, want)
	}
	if ctit(cands[0]) == ctit(cands[1]) {
		t.Errorf("20h of a 30d window and of a 24h window weigh the same (%.3f): the candidate's window is not used", ctit(cands[0]))
	}
}
