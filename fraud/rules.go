package fraud

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// Checker checks the tap an install is credited to against an app's fraud
// rules.
type Checker struct {
	// Datacenters are the hosting ranges of the datacenter rule; nil
	// checks none.
	Datacenters *Ranges
	// Flood counts taps and credited installs for the click-flooding
	// rule; nil checks none.
	Flood *Flood
}

// Check returns the fraud signals app's rules find on tap h, matched by
// method to install e, in tapline.FraudSignals order, each with the action
// app.Fraud takes; none for a clean tap.
func (c *Checker) Check(app *tapline.App, e *tapline.Event, h *tapline.Hit, method tapline.MatchMethod) []tapline.FraudFinding {
	p := &app.Fraud
	var out []tapline.FraudFinding
	found := func(s tapline.FraudSignal, value, threshold string) {
		out = append(out, tapline.FraudFinding{Signal: s, HitID: h.ID, LinkID: h.LinkID, Method: method,
			Value: value, Threshold: threshold, Action: actionOf(p, s)})
	}
	cti := e.Time.Sub(h.Time)
	if cti >= 0 && cti < p.MinClickToInstall {
		found(tapline.FraudClickInjection, "first open "+showDuration(cti)+" after the tap", showDuration(p.MinClickToInstall))
	}
	if c.Flood != nil {
		for _, src := range c.Flood.Sources(h) {
			taps, installed := c.Flood.Count(app.ID, src, e.Time, app.FingerprintWindow)
			if taps >= int64(p.FloodMinTaps) && float64(installed) < p.FloodMaxInstallRate*float64(taps) {
				found(tapline.FraudClickFlooding,
					fmt.Sprintf("%s: %d taps, %d installed (%s) in the %s before the install", src, taps, installed, showRate(float64(installed)/float64(taps)), showDuration(app.FingerprintWindow)),
					fmt.Sprintf("at least %d taps and under %s installed", p.FloodMinTaps, showRate(p.FloodMaxInstallRate)))
				break
			}
		}
	}
	if r, ok := c.Datacenters.LookupString(h.IP); ok {
		found(tapline.FraudDatacenter, fmt.Sprintf("%s in %s's range %s", fingerprint.MaskNetwork(fingerprint.Network(h.IP)), r.Provider, r.Prefix), "")
	}
	if cti < 0 {
		found(tapline.FraudTapAfterInstall, "tapped "+showDuration(-cti)+" after the first open", "")
	}
	return out
}

// actionOf returns p's action for s, flag when unset.
func actionOf(p *tapline.FraudPolicy, s tapline.FraudSignal) tapline.FraudAction {
	if a := p.Action(s); a.Valid() {
		return a
	}
	return tapline.FraudFlag
}

// Decide records the findings fs on decision d (the choice of their tap)
// and returns the attribution that stands: a, when no finding rejects
// (flagged ones are recorded and keep it), else the organic attribution,
// d then explaining which rule rejected which tap (Reject).
func Decide(a tapline.Attribution, d *tapline.Decision, fs []tapline.FraudFinding) tapline.Attribution {
	if len(fs) == 0 {
		return a
	}
	d.Fraud = fs
	f := tapline.Rejecting(fs)
	if f == nil {
		return a
	}
	Reject(d, f)
	return tapline.Attribution{Method: tapline.MethodOrganic}
}

// Reject turns decision d, whose rule chose f's tap, into the organic
// decision the fraud rule of f makes: rule tapline.RuleFraud, a reason
// naming the rule, the tap and what it measured, the tap no longer chosen
// and no signals compared.
func Reject(d *tapline.Decision, f *tapline.FraudFinding) {
	chose := d.Rule
	d.Rule = tapline.RuleFraud
	d.Reason = fmt.Sprintf("Organic: the %s rule rejected tap %s, which the %s rule chose (%s match): %s%s.",
		strings.ReplaceAll(string(f.Signal), "_", " "), f.HitID, strings.ReplaceAll(chose, "_", " "),
		strings.ReplaceAll(string(f.Method), "_", " "), f.Value, limit(f.Threshold))
	d.Signals = nil
	for i := range d.Candidates {
		if d.Candidates[i].HitID == f.HitID && d.Candidates[i].Chosen {
			d.Candidates[i].Chosen = false
			d.Candidates[i].Reason = "Rejected by the " + strings.ReplaceAll(string(f.Signal), "_", " ") + " rule. " + d.Candidates[i].Reason
		}
	}
}

func limit(threshold string) string {
	if threshold == "" {
		return ""
	}
	return " (limit " + threshold + ")"
}

// showDuration shows d to a precision that fits it: "350ms", "3.2s",
// "4m10s", "24h0m0s".
func showDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// showRate shows a rate as a percentage: "0.1%", "0%", "2.5%".
func showRate(r float64) string {
	return strconv.FormatFloat(math.Round(r*10000)/100, 'f', -1, 64) + "%"
}
