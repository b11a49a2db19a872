package fingerprint_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// tap returns a hit of ua from ip at t0 plus at, parsed as the collector
// parses it.
func tap(id, ip, ua, lang string, at time.Duration) *tapline.Hit {
	h := &tapline.Hit{ID: id, IP: ip, UserAgent: ua, AcceptLanguage: lang, Time: t0.Add(at)}
	shared().Hit(h)
	return h
}

// installOf returns an install of the device at t0 plus at.
func installOf(ip string, d tapline.Device, at time.Duration) *tapline.Event {
	e := &tapline.Event{IP: ip, Device: d, Time: t0.Add(at), Kind: tapline.KindInstall}
	shared().Event(e)
	return e
}

var iphone15 = tapline.Device{Platform: tapline.PlatformIOS, Model: "iPhone15,2", OSVersion: "17.4", Locale: "en_US"}

func weights(ss []tapline.Signal) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		out[s.Name] = s.Weight
	}
	return out
}

func TestEvidenceWeights(t *testing.T) {
	t.Parallel()
	const ip, window = "198.51.100.7", 24 * time.Hour
	e := installOf(ip, iphone15, 10*time.Minute)
	for _, c := range []struct {
		name  string
		hit   *tapline.Hit
		event *tapline.Event
		want  map[string]float64 // the weights that must be exactly these
	}{
		{"in-app: model and OS version", tap("h", ip, uaFacebookIOS, "en-US,en;q=0.9", 0), e,
			map[string]float64{"model": fingerprint.WeightModel, "os_version": fingerprint.WeightOSMinor, "language": fingerprint.WeightLocale, "network": 0, "platform": 0}},
		{"Safari: the class tells nothing", tap("h", ip, uaSafariIOS17, "en-US", 0), e,
			map[string]float64{"model": 0, "os_version": fingerprint.WeightOSMinor, "language": fingerprint.WeightLocale}},
		{"another region", tap("h", ip, uaSafariIOS17, "en-GB,en", 0), e,
			map[string]float64{"language": fingerprint.WeightLanguage}},
		{"another language", tap("h", ip, uaSafariIOS17, "de-DE", 0), e,
			map[string]float64{"language": fingerprint.WeightLanguageDiffer}},
		{"no Accept-Language", tap("h", ip, uaSafariIOS17, "", 0), e,
			map[string]float64{"language": 0}},
		{"updated between tap and install", tap("h", ip, uaSafariIOS17, "en-US", 0),
			installOf(ip, tapline.Device{Platform: tapline.PlatformIOS, Model: "iPhone15,2", OSVersion: "17.5", Locale: "en_US"}, time.Minute),
			map[string]float64{"os_version": fingerprint.WeightOSUpdated}},
	} {
		ss, sum := fingerprint.Evidence(c.hit, c.event, window, nil)
		got := weights(ss)
		for name, w := range c.want {
			if math.Abs(got[name]-w) > 1e-9 {
				t.Errorf("%s: weight of %s = %v, want %v (signals %+v)", c.name, name, got[name], w, ss)
			}
		}
		var total float64
		for _, w := range got {
			total += w
		}
		if math.Abs(total-sum) > 1e-9 {
			t.Errorf("%s: evidence %v is not the sum of the weights %v", c.name, sum, total)
		}
	}
}

// TestDelaysWeight checks the click-to-install weight of the prior: high
// for minutes, falling for hours, negative near a day, and the same shape
// for a window scaled down (the bench's compressed time).
func TestDelaysWeight(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	var d *fingerprint.Delays
	prev := math.Inf(1)
	for _, ctit := range []time.Duration{10 * time.Minute, time.Hour, 6 * time.Hour, 20 * time.Hour} {
		w := d.Weight(ctit, day)
		if w >= prev {
			t.Errorf("weight at %s = %.2f, not below the weight at a shorter delay (%.2f)", ctit, w, prev)
		}
		prev = w
		if scaled := d.Weight(ctit/3600, day/3600); math.Abs(scaled-w) > 0.5 {
			t.Errorf("weight at %s of a day = %.2f, at %s of %s = %.2f: want the same shape", ctit, w, ctit/3600, day/3600, scaled)
		}
	}
	if w := d.Weight(5*time.Minute, day); w < 2 {
		t.Errorf("weight at 5 minutes = %.2f, want strong evidence (at least 2)", w)
	}
	if w := d.Weight(20*time.Hour, day); w > -1 {
		t.Errorf("weight at 20 hours = %.2f, want evidence against (at most -1)", w)
	}
	if fast, usual := d.Weight(3*time.Second, day), d.Weight(10*time.Minute, day); fast < usual {
		t.Errorf("weight at 3 seconds = %.2f, below the weight at 10 minutes (%.2f): a shorter delay must never weigh less", fast, usual)
	}
	if got := d.Weight(-time.Second, day); got != d.Weight(0, day) {
		t.Errorf("a tap within the clock skew after the install weighs %.2f, want as an immediate install (%.2f)", got, d.Weight(0, day))
	}

	// An app whose installs come three hours after the tap learns it.
	learned := &fingerprint.Delays{}
	for range 2000 {
		learned.Learn(3*time.Hour, day)
	}
	if before, after := d.Weight(3*time.Hour, day), learned.Weight(3*time.Hour, day); after < before+1 {
		t.Errorf("weight at 3 hours: prior %.2f, after 2000 such matches %.2f; want it to rise by at least 1", before, after)
	}
	if learned.Learned() != 2000 {
		t.Errorf("Learned = %d, want 2000", learned.Learned())
	}
}

func TestPopulationRarity(t *testing.T) {
	t.Parallel()
	const ip, window = "198.51.100.7", 24 * time.Hour
	pop := fingerprint.NewPopulation()
	common := tapline.Device{Platform: tapline.PlatformIOS, Model: "iPhone15,2", OSVersion: "17.4", Locale: "en_US"}
	rare := tapline.Device{Platform: tapline.PlatformIOS, Model: "iPhone16,1", OSVersion: "17.4", Locale: "en_US"}
	for i := range 1000 {
		if i%100 == 0 {
			pop.LearnInstall(&rare)
		} else {
			pop.LearnInstall(&common)
		}
	}
	fbRare := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/455.0.0.35.109;FBDV/iPhone16,1;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBLC/en_US]"
	ssCommon, _ := fingerprint.Evidence(tap("h", ip, uaFacebookIOS, "en-US", 0), installOf(ip, common, time.Minute), window, pop)
	ssRare, _ := fingerprint.Evidence(tap("h", ip, fbRare, "en-US", 0), installOf(ip, rare, time.Minute), window, pop)
	wc, wr := weights(ssCommon)["model"], weights(ssRare)["model"]
	if !(wc < 0.5 && wr > 3) {
		t.Errorf("model weight of a model 99%% of installs have = %.2f (want under 0.5), of one 1%% have = %.2f (want over 3)", wc, wr)
	}
	// Every install here is on 17.4 in en_US: agreeing on them tells little.
	if w := weights(ssCommon)["os_version"]; w > 0.5 {
		t.Errorf("OS version weight of the only version seen = %.2f, want under 0.5", w)
	}

}

// TestDecide weighs candidates on networks of different crowding.
func TestDecide(t *testing.T) {
	t.Parallel()
	const home, nat, window = "198.51.100.7", "100.64.0.1", 24 * time.Hour
	fb := tap("fb", home, uaFacebookIOS, "en-US", 0)
	e := installOf(home, iphone15, 10*time.Minute)
	alone := []fingerprint.Candidate{{Hit: fb}}
	d := fingerprint.Decide(alone, e, window, nil)
	if d.Best != 0 || d.Devices != 1 || d.Rivals != 0 || math.Abs(d.Score-alone[0].Evidence) > 1e-9 {
		t.Fatalf("one device alone: %+v, want best 0 with its evidence %.2f as the score", d, alone[0].Evidence)
	}

	// The same tap on a NAT address where 39 other devices tapped: the
	// organic explanation weighs ln 40 more.
	crowded := []fingerprint.Candidate{{Hit: tap("fb", nat, uaFacebookIOS, "en-US", 0)}}
	for i := range 39 {
		ua := strings.Replace(uaChromeAndroid, "124.0.0.0", fmt.Sprintf("%d.0.0.0", 100+i), 1) // 39 browsers
		crowded = append(crowded, fingerprint.Candidate{Hit: tap("o", nat, ua, "pt-BR", -time.Duration(i+1)*time.Minute)})
	}
	en := installOf(nat, iphone15, 10*time.Minute)
	dc := fingerprint.Decide(crowded, en, window, nil)
	if dc.Best != 0 || dc.Devices != 40 || math.Abs(dc.Score-(crowded[0].Evidence-math.Log(40))) > 1e-9 {
		t.Errorf("crowded network: %+v (evidence %.2f), want best 0, 40 devices, score evidence − ln 40", dc, crowded[0].Evidence)
	}

	// Two taps of one device (same User-Agent, language, model) count once,
	// by the newer; a claimed tap is never chosen; an incompatible one
	// (another model) never either.
	older := tap("old", home, uaSafariIOS17, "en-US", -time.Hour)
	newer := tap("new", home, uaSafariIOS17, "en-US", -time.Minute)
	other := tap("pixel", home, uaWebView14, "en-US", -2*time.Minute)
	claimed := tap("claimed", home, uaFacebookIOS, "en-US", -3*time.Minute)
	cands := []fingerprint.Candidate{{Hit: newer}, {Hit: other}, {Hit: claimed, Claimed: true}, {Hit: older}}
	ds := fingerprint.Decide(cands, installOf(home, iphone15, 0), window, nil)
	if ds.Best != 0 || cands[3].SameAs != 0 || ds.Devices != 3 || ds.Rivals != 0 {
		t.Errorf("decision %+v, SameAs of the older tap %d; want the newer Safari tap best, the older the same device, 3 devices, no rival",
			ds, cands[3].SameAs)
	}

	// A rival with the same evidence halves the odds at least.
	twin := []fingerprint.Candidate{{Hit: tap("a", home, uaSafariIOS17, "en-US", 0)}, {Hit: tap("b", home, uaSafariIOS17, "en-GB", 0)}}
	dt := fingerprint.Decide(twin, installOf(home, iphone15, time.Minute), window, nil)
	if dt.Best != 0 || dt.Rivals != 1 || dt.Score >= twin[0].Evidence-math.Log(2) {
		t.Errorf("with a rival: %+v (evidences %.2f, %.2f), want best 0, 1 rival, the score below evidence − ln 2", dt, twin[0].Evidence, twin[1].Evidence)
	}

	// Nothing fits: no best.
	if d := fingerprint.Decide([]fingerprint.Candidate{{Hit: other}}, installOf(home, iphone15, 0), window, nil); d.Best != -1 {
		t.Errorf("only an incompatible tap: best %d, want -1", d.Best)
	}
}

// BenchmarkDecide weighs an install against the taps of a crowded carrier
// NAT address: 300 taps from 150 browsers.
func BenchmarkDecide(b *testing.B) {
	const nat, window = "100.64.0.9", 24 * time.Hour
	var hits []*tapline.Hit
	for i := range 300 {
		ua := strings.Replace(uaFacebookIOS, "FBAV/455.0.0.35.109", fmt.Sprintf("FBAV/%d.0.0.35.109", i%150), 1)
		hits = append(hits, tap(fmt.Sprint(i), nat, ua, "en-US,en;q=0.9", -time.Duration(i)*time.Minute))
	}
	e := installOf(nat, iphone15, 0)
	pop := fingerprint.NewPopulation()
	pop.LearnInstall(&e.Device)
	cands := make([]fingerprint.Candidate, len(hits))
	b.ReportAllocs()
	for b.Loop() {
		for i, h := range hits {
			cands[i] = fingerprint.Candidate{Hit: h}
		}
		fingerprint.Decide(cands, e, window, pop)
	}
}
