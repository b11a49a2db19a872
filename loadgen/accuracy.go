package loadgen

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// Organic is the attribution of an install no tap caused.
const Organic = -1

// Answer is what a matcher attributed one install to.
type Answer struct {
	Tap    int                 // the tap's number, or Organic
	Method tapline.MatchMethod // how: referrer, advertising_id, fingerprint or organic
	// Score is the fingerprint score of Best, the fingerprint candidate
	// the matcher chose or would have chosen at a low enough threshold;
	// Best is Organic when it had none (or when the candidates were too
	// alike to choose from at any threshold). Curve re-decides fingerprint
	// answers by them.
	Best  int
	Score float64
}

// Signal classes: the strongest signal an install offers that leads to
// the tap that caused it, or what may mislead on an organic one.
const (
	ClassReferrer    = "referrer"         // its Play install referrer names the tap
	ClassAdID        = "advertising_id"   // the tap carries its advertising id
	ClassFingerprint = "fingerprint_only" // neither: only the network and the device attributes
)

// Accuracy scores attributions against the ground truth.
type Accuracy struct {
	Installs   int `json:"installs"`
	Caused     int `json:"caused"`     // installs a tap caused (truth)
	Organic    int `json:"organic"`    // installs no tap caused (truth)
	Attributed int `json:"attributed"` // installs given to some tap
	Correct    int `json:"correct"`    // given to the tap that caused them
	Misattrib  int `json:"organic_misattributed"`
	Missing    int `json:"missing"` // installs without an answer

	// Precision is Correct/Attributed, Recall is Correct/Caused and
	// OrganicMisattribution is the share of organic installs given to a tap.
	Precision             float64 `json:"precision"`
	Recall                float64 `json:"recall"`
	OrganicMisattribution float64 `json:"organic_misattribution"`

	// ByMethod scores the attributions of each method the matcher used
	// (precision: how many of its attributions were right); ByClass the
	// installs of each signal class (recall: how many of the installs a tap
	// of that class caused were found). FingerprintOnly is the whole score
	// over the installs without a deterministic signal: the tap-driven
	// ones of ClassFingerprint and the organic ones no referrer or
	// advertising id points at a tap: where fingerprinting alone decides.
	ByMethod        map[tapline.MatchMethod]MethodScore `json:"by_method,omitempty"`
	ByClass         map[string]ClassScore               `json:"by_class,omitempty"`
	FingerprintOnly *Accuracy                           `json:"fingerprint_only,omitempty"`
	// Unreachable counts tap-driven installs no rule could credit:
	// installed longer after their tap than the click window or, without
	// a deterministic signal, than the fingerprint window, or on another
	// network than the tap.
	Unreachable int `json:"unreachable"`
}

// MethodScore is the precision of one method's attributions.
type MethodScore struct {
	Attributed int     `json:"attributed"`
	Correct    int     `json:"correct"`
	Precision  float64 `json:"precision"`
}

// ClassScore is the recall over the tap-driven installs of one class.
type ClassScore struct {
	Caused  int     `json:"caused"`
	Correct int     `json:"correct"`
	Recall  float64 `json:"recall"`
}

// Classify returns the signal class of each install of w (by number):
// what leads to its cause for a tap-driven install; for an organic one,
// ClassReferrer or ClassAdID when such a signal points at one of its
// device's taps (and could mislead), else ClassFingerprint.
func Classify(w *Workload) map[int]string {
	det := Deterministic(w)
	out := make(map[int]string, len(w.Installs))
	for _, in := range w.Installs {
		c := ClassFingerprint
		switch {
		case in.Truth != Organic && in.Referrer && w.Devices[in.Device].Platform == tapline.PlatformAndroid:
			c = ClassReferrer
		case in.Truth != Organic && w.Taps[in.Truth].AdID != "":
			c = ClassAdID
		case in.Truth == Organic && det[in.N].Method == tapline.MethodReferrer:
			c = ClassReferrer
		case in.Truth == Organic && det[in.N].Method == tapline.MethodAdID:
			c = ClassAdID
		}
		out[in.N] = c
	}
	return out
}

// Score compares got (by install number; an absent install counts as
// Missing and as organic) with the truth of w.
func Score(w *Workload, got map[int]Answer) Accuracy {
	classes := Classify(w)
	a := score(w, got, func(*Install) bool { return true })
	fp := score(w, got, func(in *Install) bool { return classes[in.N] == ClassFingerprint })
	a.FingerprintOnly = &fp
	a.ByMethod = map[tapline.MatchMethod]MethodScore{}
	a.ByClass = map[string]ClassScore{}
	for _, in := range w.Installs {
		ans, ok := got[in.N]
		if !ok {
			ans = Answer{Tap: Organic, Method: tapline.MethodOrganic}
		}
		if ans.Tap != Organic {
			m := a.ByMethod[ans.Method]
			m.Attributed++
			if ans.Tap == in.Truth {
				m.Correct++
			}
			m.Precision = ratio(m.Correct, m.Attributed)
			a.ByMethod[ans.Method] = m
		}
		if in.Truth == Organic {
			continue
		}
		c := a.ByClass[classes[in.N]]
		c.Caused++
		if ans.Tap == in.Truth {
			c.Correct++
		}
		c.Recall = ratio(c.Correct, c.Caused)
		a.ByClass[classes[in.N]] = c
		tap := &w.Taps[in.Truth]
		window := w.Config.Windows.Click
		if classes[in.N] == ClassFingerprint {
			window = w.Config.Windows.Fingerprint
		}
		switch {
		case in.At-tap.At > window:
			a.Unreachable++
		case classes[in.N] == ClassFingerprint && fingerprint.Network(tap.IP) != fingerprint.Network(in.IP):
			a.Unreachable++ // installed on another network: nothing joins it to the tap
		}
	}
	return a
}

// score is the overall score over the installs keep accepts.
func score(w *Workload, got map[int]Answer, keep func(*Install) bool) Accuracy {
	var a Accuracy
	for i := range w.Installs {
		in := &w.Installs[i]
		if !keep(in) {
			continue
		}
		a.Installs++
		pred := Organic
		if ans, ok := got[in.N]; ok {
			pred = ans.Tap
		} else {
			a.Missing++
		}
		if in.Truth == Organic {
			a.Organic++
		} else {
			a.Caused++
		}
		if pred == Organic {
			continue
		}
		a.Attributed++
		switch {
		case pred == in.Truth:
			a.Correct++
		case in.Truth == Organic:
			a.Misattrib++
		}
	}
	a.Precision = ratio(a.Correct, a.Attributed)
	a.Recall = ratio(a.Correct, a.Caused)
	a.OrganicMisattribution = ratio(a.Misattrib, a.Organic)
	return a
}

func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// CurvePoint is the score at one fingerprint threshold.
type CurvePoint struct {
	Threshold float64  `json:"threshold"`
	Accuracy  Accuracy `json:"accuracy"`
}

// Curve re-decides the fingerprint answers of got at each threshold (a
// fingerprint or organic answer with a Best candidate becomes Best when
// its Score reaches the threshold, organic otherwise) and scores each. A
// tap a lower threshold would have credited to one install stays
// available to another at a higher one in the matcher but not here, so a
// point above the threshold got was run at can be slightly pessimistic.
func Curve(w *Workload, got map[int]Answer, thresholds []float64) []CurvePoint {
	out := make([]CurvePoint, 0, len(thresholds))
	for _, t := range thresholds {
		re := make(map[int]Answer, len(got))
		for n, ans := range got {
			if ans.Method == tapline.MethodFingerprint || ans.Method == tapline.MethodOrganic {
				ans.Tap, ans.Method = Organic, tapline.MethodOrganic
				if ans.Best != Organic && ans.Score >= t {
					ans.Tap, ans.Method = ans.Best, tapline.MethodFingerprint
				}
			}
			re[n] = ans
		}
		out = append(out, CurvePoint{Threshold: t, Accuracy: Score(w, re)})
	}
	return out
}

// Deterministic attributes each install of w as tapline's deterministic
// rules do, before any fingerprint: to the tap its Play install referrer
// names (the device's last tap, when the install reports it) within the
// click window, else to the newest tap carrying its advertising id within
// the click window; organic otherwise.
func Deterministic(w *Workload) map[int]Answer {
	byDevice := map[int][]*Tap{} // in time order
	for i := range w.Taps {
		t := &w.Taps[i]
		if !t.OtherApp {
			byDevice[t.Device] = append(byDevice[t.Device], t)
		}
	}
	click := w.Config.Windows.Click
	out := make(map[int]Answer, len(w.Installs))
	for _, in := range w.Installs {
		ans := Answer{Tap: Organic, Method: tapline.MethodOrganic, Best: Organic}
		taps := byDevice[in.Device]
		i := sort.Search(len(taps), func(i int) bool { return taps[i].At > in.At })
		switch {
		case in.Referrer && i > 0 && in.At-taps[i-1].At <= click:
			ans.Tap, ans.Method = taps[i-1].N, tapline.MethodReferrer
		case w.Devices[in.Device].AdID != "":
			for j := i - 1; j >= 0 && in.At-taps[j].At <= click; j-- {
				if taps[j].AdID != "" {
					ans.Tap, ans.Method = taps[j].N, tapline.MethodAdID
					break
				}
			}
		}
		out[in.N] = ans
	}
	return out
}

// NaiveIP attributes each install to the newest tap from the very same IP
// address within the fingerprint window before it, as a matcher keyed on
// the address alone would, after the same deterministic rules as tapline
// (Deterministic), so that it differs from tapline only in fingerprinting.
func NaiveIP(w *Workload) map[int]Answer {
	return naive(w, func(t *Tap) string { return t.IP }, func(in *Install) string { return in.IP })
}

// NaiveIPUA is NaiveIP keyed on the address and exactly the User-Agent of
// the device's default browser (which the SDK would report at install),
// as a matcher keyed on address plus User-Agent string would.
func NaiveIPUA(w *Workload) map[int]Answer {
	return naive(w,
		func(t *Tap) string { return t.IP + "\x00" + t.UserAgent },
		func(in *Install) string { return in.IP + "\x00" + w.Devices[in.Device].DefaultUserAgent() })
}

func naive(w *Workload, tapKey func(*Tap) string, installKey func(*Install) string) map[int]Answer {
	byKey := map[string][]*Tap{} // each in time order
	for i := range w.Taps {
		t := &w.Taps[i]
		if t.OtherApp {
			continue // another app's tap: a per-app matcher never sees it
		}
		k := tapKey(t)
		byKey[k] = append(byKey[k], t)
	}
	for _, ts := range byKey {
		slices.SortStableFunc(ts, func(a, b *Tap) int { return cmp.Compare(a.At, b.At) })
	}
	out := Deterministic(w)
	window := w.Config.Windows.Fingerprint
	for i := range w.Installs {
		in := &w.Installs[i]
		if out[in.N].Method != tapline.MethodOrganic {
			continue
		}
		if n := newestBefore(byKey[installKey(in)], in.At, window); n != Organic {
			out[in.N] = Answer{Tap: n, Method: tapline.MethodFingerprint, Best: n, Score: math.Inf(1)}
		}
	}
	return out
}

// newestBefore returns the newest tap in ts (sorted by time) at or before at
// and within window of it, or Organic.
func newestBefore(ts []*Tap, at, window time.Duration) int {
	i := sort.Search(len(ts), func(i int) bool { return ts[i].At > at })
	if i == 0 || at-ts[i-1].At > window {
		return Organic
	}
	return ts[i-1].N
}
