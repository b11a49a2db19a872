package matcher

import (
	"context"
	"fmt"

	"tapline"
	"tapline/facts"
	"tapline/fraud"
)

// checker returns the fraud rules' checker: the Matcher's Datacenters
// (the shipped list when nil) and its tap counts.
func (m *Matcher) checker() *fraud.Checker {
	ranges := m.Datacenters
	if ranges == nil {
		ranges = fraud.Shipped()
	}
	return &fraud.Checker{Datacenters: ranges, Flood: m.flood}
}

// countTap counts a consumed tap h for the click-flooding rule.
func (m *Matcher) countTap(app *tapline.App, h *tapline.Hit) {
	m.flood.Tap(h, app.FingerprintWindow)
}

// checkInstall applies app's fraud rules to the attribution a (and its
// decision d) that match chose for install e: it returns the attribution
// that stands (organic when a rule rejects the tap, d then saying so) and
// the signals found, which the install's change records. An install
// credited to its tap counts for that tap's sources.
func (m *Matcher) checkInstall(ctx context.Context, app *tapline.App, e *tapline.Event, a tapline.Attribution, d *tapline.Decision) (tapline.Attribution, []tapline.FraudFinding, error) {
	if a.Method == tapline.MethodOrganic || a.HitID == "" || d == nil {
		return a, nil, nil
	}
	h, err := m.Raw.Hit(ctx, app.ID, a.HitID)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return a, nil, nil // expired between the match and now: nothing to check
	} else if err != nil {
		return a, nil, fmt.Errorf("hit %s to check for fraud: %w", a.HitID, err)
	}
	fs := m.checker().Check(app, e, h, a.Method)
	m.countFraud(fs)
	a = fraud.Decide(a, d, fs)
	if a.Method != tapline.MethodOrganic {
		m.flood.Credit(h, e.Time, app.FingerprintWindow)
	}
	return a, fs, nil
}

// checkLate applies app's fraud rules to late hit h claiming install
// cand of conversion c: it returns the signals found and whether a rule
// rejects the tap, which then does not re-attribute the install; its
// signals are counted in b all the same.
func (m *Matcher) checkLate(b facts.Batch, app *tapline.App, h *tapline.Hit, cand candidate, c *tapline.Conversion) ([]tapline.FraudFinding, bool) {
	fs := m.checker().Check(app, cand.install, h, cand.method)
	m.countFraud(fs)
	if tapline.Rejecting(fs) != nil {
		b.Fraud(c, fs)
		return fs, true
	}
	if len(fs) == 0 {
		fs = nil
	}
	m.flood.Credit(h, cand.install.Time, app.FingerprintWindow)
	return fs, false
}

// countFraud counts the signals found in the metrics.
func (m *Matcher) countFraud(fs []tapline.FraudFinding) {
	for _, f := range fs {
		m.metrics.fraud.WithLabelValues(string(f.Signal), string(f.Action)).Inc()
	}
}
