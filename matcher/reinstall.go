package matcher

import (
	"context"
	"fmt"
	"strings"

	"tapline"
	"tapline/facts"
)

// attribute returns the attribution of install e, with its decision, and
// whether it is a reinstall. A reinstall (see reinstallOf) keeps the
// attribution of the device's earlier install unless the app re-attributes
// reinstalls; then, like a new install, it is matched to a tap of its own.
func (m *Matcher) attribute(ctx context.Context, app *tapline.App, e *tapline.Event) (tapline.Attribution, *tapline.Decision, *tapline.Reinstall, error) {
	prev, by, err := m.reinstallOf(ctx, app, e)
	if err != nil {
		return tapline.Attribution{}, nil, nil, err
	}
	if prev == nil || app.ReattributeReinstalls {
		a, dec, err := m.match(ctx, app, e)
		if err != nil || prev == nil {
			return a, dec, nil, err
		}
		if dec == nil {
			dec = &tapline.Decision{Rule: string(a.Method)}
		}
		dec.Reason += " " + reinstallSentence(app, e, prev, by) + " It is matched as a new install would be (the app re-attributes reinstalls) and counted as a reinstall."
		m.metrics.reinstalls.WithLabelValues(by).Inc()
		return a, dec, &tapline.Reinstall{Of: prev.ID, By: by, Reattributed: true}, nil
	}
	m.metrics.reinstalls.WithLabelValues(by).Inc()
	return prev.Attribution, reinstallDecision(app, e, prev, by), &tapline.Reinstall{Of: prev.ID, By: by}, nil
}

// reinstallOf returns the conversion of the device's latest install before
// install e within the app's reinstall window, found by the same usable
// advertising id (never a limited one), else the same vendor id (IDFV),
// and the identifier that found it; nil when e is the device's first
// install in the window.
func (m *Matcher) reinstallOf(ctx context.Context, app *tapline.App, e *tapline.Event) (*tapline.Conversion, string, error) {
	from := e.Time.Add(-app.ReinstallWindow)
	if ad := eventAdID(e); ad != "" {
		evs, err := m.Raw.InstallsByAdID(ctx, app.ID, ad, from, e.Time)
		if err != nil {
			return nil, "", fmt.Errorf("installs by advertising id: %w", err)
		}
		c, err := m.earlierInstall(ctx, app.ID, e, evs, func(o *tapline.Event) bool { return eventAdID(o) == ad })
		if c != nil || err != nil {
			return c, tapline.ReinstallByAdID, err
		}
	}
	if v := vendorID(e); v != "" {
		evs, err := m.Raw.InstallsByVendorID(ctx, app.ID, v, from, e.Time)
		if err != nil {
			return nil, "", fmt.Errorf("installs by vendor id: %w", err)
		}
		c, err := m.earlierInstall(ctx, app.ID, e, evs, func(o *tapline.Event) bool { return vendorID(o) == v })
		if c != nil || err != nil {
			return c, tapline.ReinstallByVendorID, err
		}
	}
	return nil, "", nil
}

// vendorID returns the event's IDFV when it can tell a device: not empty,
// not all zeros.
func vendorID(e *tapline.Event) string { return usableAdID(e.Device.IDFV) }

// earlierInstall returns the conversion of the newest install of evs
// (newest first) before e, of another installation, that ok accepts.
func (m *Matcher) earlierInstall(ctx context.Context, appID int64, e *tapline.Event, evs []*tapline.Event, ok func(*tapline.Event) bool) (*tapline.Conversion, error) {
	for _, o := range evs {
		if o.ID == e.ID || o.Kind != tapline.KindInstall || tapline.CompareEvents(o, e) >= 0 || !ok(o) {
			continue
		}
		if o.InstallID != "" && o.InstallID == e.InstallID {
			continue // the same installation: see reinstalledInPlace
		}
		c, err := m.awaitConversion(ctx, appID, o.ID)
		switch {
		case err == nil:
			return c, nil
		case tapline.ErrorCode(err) != tapline.ENOTFOUND:
			return nil, fmt.Errorf("conversion of install %s: %w", o.ID, err)
		}
		// Its worker died before matching it: whoever replays it decides.
	}
	return nil, nil
}

// reinstalledInPlace adds to b the reinstall of a second install event e
// of the installation whose conversion is prev (the SDK kept its install
// id), when it falls within the app's reinstall window of the first: one
// reinstall under the installation's attribution, which it keeps (one
// installation has one attribution). It reports whether e was one.
func (m *Matcher) reinstalledInPlace(b facts.Batch, app *tapline.App, e *tapline.Event, prev *tapline.Conversion) bool {
	d := e.Time.Sub(prev.InstallTime)
	if prev.EventID == e.ID || d <= 0 || d > app.ReinstallWindow {
		return false
	}
	c := *prev
	c.InstallTime, c.Platform = e.Time, e.Device.Platform
	c.Reinstall = &tapline.Reinstall{Of: prev.ID, By: tapline.ReinstallByInstallID}
	b.Attribution(&c, prev.Attribution, +1)
	m.metrics.reinstalls.WithLabelValues(tapline.ReinstallByInstallID).Inc()
	return true
}

// reinstallSentence says why install e is a reinstall of prev.
func reinstallSentence(app *tapline.App, e *tapline.Event, prev *tapline.Conversion, by string) string {
	return fmt.Sprintf("The device installed the app %s before (install %s), found by the same %s, within the %s reinstall window: a reinstall, never counted as an install.",
		duration(e.Time.Sub(prev.InstallTime)), prev.InstallID, strings.ReplaceAll(by, "_", " "), duration(app.ReinstallWindow))
}

// reinstallDecision explains a reinstall that keeps prev's attribution.
func reinstallDecision(app *tapline.App, e *tapline.Event, prev *tapline.Conversion, by string) *tapline.Decision {
	reason := reinstallSentence(app, e, prev, by) + fmt.Sprintf(" It keeps that install's %s attribution.", strings.ReplaceAll(string(prev.Method), "_", " "))
	d := &tapline.Decision{Rule: tapline.RuleReinstall, Reason: reason, Window: app.ReinstallWindow}
	switch by {
	case tapline.ReinstallByAdID:
		d.Signals = append(d.Signals, tapline.Signal{Name: "advertising_id", Install: maskAdID(eventAdID(e)), Hit: maskAdID(prev.AdID), Verdict: tapline.VerdictAgree})
	case tapline.ReinstallByVendorID:
		d.Signals = append(d.Signals, tapline.Signal{Name: "vendor_id", Install: maskAdID(vendorID(e)), Verdict: tapline.VerdictAgree})
	}
	if prev.HitID != "" {
		d.AddCandidate(tapline.Candidate{HitID: prev.HitID, LinkID: prev.LinkID, HitTime: prev.HitTime, Method: prev.Method, Chosen: true,
			Reason: "The tap the device's earlier install is attributed to."})
	}
	return d
}
