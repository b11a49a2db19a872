package matcher

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"tapline"
)

// TestFingerprintScores runs fingerprint matches under the default
// fingerprint_min_score and checks what the decision records: the score,
// the minimum in force, each signal's weight and each candidate's score.
func TestFingerprintScores(t *testing.T) {
	t.Parallel()
	iphone142 := func(e *tapline.Event) {
		e.Device = tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4", Model: "iPhone14,2", Locale: "en_US"}
	}
	english := func(h *tapline.Hit) { h.AcceptLanguage = "en-US,en;q=0.9" }

	t.Run("strong in-app tap on a home network is credited", func(t *testing.T) {
		h := newHarnessWith(t, func(*tapline.App) {})
		h.hit("h1", 1, t0, ipA, fbiOSUA, english)
		h.install("e1", t0.Add(5*time.Minute), ipA, iphone142)
		c := h.conversion("e1")
		d := c.Decision
		if c.Method != tapline.MethodFingerprint || c.HitID != "h1" || d.Rule != tapline.RuleFingerprint {
			t.Fatalf("conversion %s by %s (rule %s), want h1 by fingerprint", c.HitID, c.Method, d.Rule)
		}
		if d.MinScore != tapline.DefaultFingerprintMinScore || d.Score < d.MinScore || d.Candidates[0].Score <= 0 {
			t.Errorf("score %.2f, min %.2f, candidate score %.2f; want a score over the default minimum %.2f", d.Score, d.MinScore, d.Candidates[0].Score, tapline.DefaultFingerprintMinScore)
		}
		var sum float64
		w := map[string]float64{}
		for _, s := range d.Signals {
			sum += s.Weight
			w[s.Name] = s.Weight
		}
		if w["model"] <= 0 || w["os_version"] <= 0 || w["language"] <= 0 || w["click_to_install"] <= 0 {
			t.Errorf("signal weights %v, want model, OS version, language and a 5-minute delay all for the tap", w)
		}
		if math.Abs(sum-d.Candidates[0].Score) > 1e-9 || math.Abs(d.Score-sum) > 1e-9 {
			t.Errorf("signal weights sum to %.4f, candidate score %.4f, decision score %.4f; alone on its network they must agree", sum, d.Candidates[0].Score, d.Score)
		}
	})

	t.Run("weak tap on a crowded network is organic", func(t *testing.T) {
		h := newHarnessWith(t, func(*tapline.App) {})
		for i := range 30 {
			ua := fmt.Sprintf("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%d.0.6312.52 Mobile/15E148 Safari/604.1", 100+i)
			h.hit(fmt.Sprintf("o%d", i), 2, t0.Add(time.Duration(i)*time.Minute), ipA, ua)
		}
		h.hit("s1", 1, t0.Add(2*time.Hour), ipA, safariUA) // no language, a class, a version
		h.install("e1", t0.Add(20*time.Hour), ipA, iphone)
		c := h.conversion("e1")
		d := c.Decision
		if c.Method != tapline.MethodOrganic || d.Rule != tapline.RuleBelowMinScore {
			t.Fatalf("conversion %s by %s (rule %s), want organic by %s", c.HitID, c.Method, d.Rule, tapline.RuleBelowMinScore)
		}
		if d.Score >= d.MinScore || len(d.Candidates) == 0 || d.Candidates[0].HitID != "s1" || d.Candidates[0].Chosen {
			t.Errorf("score %.2f min %.2f candidates %+v, want s1 first, not chosen, under the minimum", d.Score, d.MinScore, d.Candidates)
		}
		if d.Considered != 31 {
			t.Errorf("considered %d candidates, want all 31 taps on the network", d.Considered)
		}
	})

	t.Run("a lenient app credits the same tap", func(t *testing.T) {
		h := newHarnessWith(t, func(a *tapline.App) { a.FingerprintMinScore = -5 })
		for i := range 30 {
			ua := fmt.Sprintf("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%d.0.6312.52 Mobile/15E148 Safari/604.1", 100+i)
			h.hit(fmt.Sprintf("o%d", i), 2, t0.Add(time.Duration(i)*time.Minute), ipA, ua)
		}
		h.hit("s1", 1, t0.Add(2*time.Hour), ipA, safariUA)
		h.install("e1", t0.Add(20*time.Hour), ipA, iphone)
		if c := h.conversion("e1"); c.Method != tapline.MethodFingerprint || c.HitID != "s1" || c.Decision.MinScore != -5 {
			t.Errorf("conversion %s by %s (min %.2f), want s1 by fingerprint under a minimum of -5", c.HitID, c.Method, c.Decision.MinScore)
		}
	})

	t.Run("an advertising-id device's later tap from the same browser wins", func(t *testing.T) {
		h := newHarnessWith(t, func(*tapline.App) {})
		const idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
		h.hit("a1", 1, t0, ipA, fbiOSUA, english, func(x *tapline.Hit) { x.AdID = strings.ToLower(idfa) })
		h.hit("a2", 2, t0.Add(time.Hour), ipA, fbiOSUA, english)
		h.hit("x", 3, t0.Add(90*time.Minute), ipA, safariUA, english) // another browser: not linked
		h.install("e1", t0.Add(2*time.Hour), ipA, iphone142, func(e *tapline.Event) { e.Device.IDFA = idfa })
		c := h.conversion("e1")
		checkDecision(t, c, tapline.RuleAdID, []string{"a1"})
		if c.Method != tapline.MethodAdID || c.HitID != "a2" {
			t.Errorf("conversion %s by %s, want a2 by advertising id (the device's last tap)", c.HitID, c.Method)
		}
	})
}
