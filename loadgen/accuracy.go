package loadgen

import (
	"sort"
	"time"
)

// Organic is the attribution of an install no tap caused.
const Organic = -1

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
}

// Score compares got (install number to tap number or Organic; an absent
// install counts as Missing and as organic) with the truth of w.
func Score(w *Workload, got map[int]int) Accuracy {
	var a Accuracy
	for _, in := range w.Installs {
		a.Installs++
		pred, ok := got[in.N]
		if !ok {
			a.Missing++
			pred = Organic
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

// NaiveIP attributes each install to the newest tap from the very same IP
// address within the fingerprint window before it, as a matcher keyed on
// the address alone would.
func NaiveIP(w *Workload) map[int]int {
	return naive(w, func(t *Tap, in *Install) string { return t.IP }, func(in *Install) string { return in.IP })
}

// NaiveIPUA attributes each install to the newest tap within the
// fingerprint window with the same IP address and exactly the same
// User-Agent as the device's default browser (which the SDK would report
// at install), as a matcher keyed on address plus User-Agent string would.
func NaiveIPUA(w *Workload) map[int]int {
	return naive(w,
		func(t *Tap, in *Install) string { return t.IP + "\x00" + t.UserAgent },
		func(in *Install) string { return in.IP + "\x00" + w.Devices[in.Device].DefaultUserAgent() })
}

func naive(w *Workload, tapKey func(*Tap, *Install) string, installKey func(*Install) string) map[int]int {
	byKey := map[string][]*Tap{} // each in time order
	for i := range w.Taps {
		t := &w.Taps[i]
		k := tapKey(t, nil)
		byKey[k] = append(byKey[k], t)
	}
	for _, ts := range byKey {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].At < ts[j].At })
	}
	out := make(map[int]int, len(w.Installs))
	window := w.Config.Windows.Fingerprint
	for i := range w.Installs {
		in := &w.Installs[i]
		out[in.N] = newestBefore(byKey[installKey(in)], in.At, window)
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
