package matcher

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/fingerprint"
)

// reengage decides whether open e of the installation whose conversion
// is inst is a re-engagement: a tap on a re-engagement link after the
// install, within the app's re-engagement window before the open, with
// the open's advertising id (else its fingerprint and a compatible
// device), no other open of the installation between the tap and this
// one, and not credited with a re-engagement yet. It stores the
// re-engagement keyed by the open and adds its delta to b. A replay of the
// open (the record at pos again) finds the re-engagement it stored and
// adds the same delta again; one stored by a late tap (lateReengagement)
// is that tap's to count.
func (m *Matcher) reengage(ctx context.Context, pos string, published time.Time, app *tapline.App, e *tapline.Event, inst *tapline.Conversion, b facts.Batch) (*tapline.Reengagement, error) {
	id := tapline.ReengagementID(e.ID)
	r, err := m.Raw.Reengagement(ctx, app.ID, id)
	switch {
	case err == nil:
		if r.By == pos {
			b.Reengagement(r)
			return r, nil
		}
		return nil, nil
	case tapline.ErrorCode(err) != tapline.ENOTFOUND:
		return nil, fmt.Errorf("load re-engagement %s: %w", id, err)
	}
	links, err := m.reengagementLinks(ctx, app.ID)
	if err != nil || len(links) == 0 {
		return nil, err // an app without re-engagement links looks no further
	}
	cands, err := m.reengagementTaps(ctx, app, e, inst, links)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	// Only the installation's first open after a tap can be its
	// re-engagement: an earlier open after the newest candidate rules out
	// every candidate, all older.
	prev, err := m.previousOpen(ctx, app.ID, e)
	if err != nil {
		return nil, err
	}
	for i, c := range cands {
		if !prev.IsZero() && !prev.Before(c.hit.Time) {
			return nil, nil
		}
		r := &tapline.Reengagement{
			ID: id, AppID: app.ID, EventID: e.ID, InstallID: e.InstallID, OpenTime: e.Time, Platform: e.Device.Platform,
			Attribution: tapline.Attribution{HitID: c.hit.ID, LinkID: c.hit.LinkID, Method: c.method, HitTime: c.hit.Time, HitParams: tapline.WithoutAdIDs(c.hit.Params)},
			By:          pos, At: published,
			Decision: reengagementDecision(app, e, inst, cands, i),
		}
		stored, err := m.Raw.PutReengagement(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("store re-engagement %s: %w", id, err)
		}
		if stored.ID != id {
			continue // the tap is credited with another open's re-engagement
		}
		if stored.By != pos {
			return nil, nil // a late tap's, consumed meanwhile: it counts it
		}
		b.Reengagement(stored)
		m.metrics.reengagements.WithLabelValues(string(stored.Method)).Inc()
		return stored, nil
	}
	return nil, nil
}

// lateReengagement credits a tap h on a re-engagement link, consumed
// after the open it led to (hits and events travel apart), with that
// open: found by the tap's advertising id, the first open after the tap,
// within the app's re-engagement window, of the device's newest
// installation before the tap, carrying the same advertising id. It adds
// the re-engagement's delta to b when this record (at pos) stored it, or
// stored it before a crash. Fingerprints join no late tap to an open.
func (m *Matcher) lateReengagement(ctx context.Context, pos string, published time.Time, app *tapline.App, h *tapline.Hit, b facts.Batch) (*lateReengaged, error) {
	ad := usableAdID(h.AdID)
	if ad == "" || h.Bot != "" {
		return nil, nil
	}
	if links, err := m.reengagementLinks(ctx, app.ID); err != nil || !links[h.LinkID] {
		return nil, err
	}
	ins, err := m.Raw.InstallsByAdID(ctx, app.ID, ad, h.Time.Add(-app.Retention), h.Time)
	if err != nil {
		return nil, fmt.Errorf("installs by advertising id: %w", err)
	}
	var inst *tapline.Conversion
	for _, e := range ins {
		if e.Kind != tapline.KindInstall || e.InstallID == "" || eventAdID(e) != ad || !h.Time.After(e.Time) {
			continue
		}
		c, err := m.Raw.ConversionByInstall(ctx, app.ID, e.InstallID)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("conversion of install %s: %w", e.InstallID, err)
		}
		inst = c
		break
	}
	if inst == nil {
		return nil, nil
	}
	evs, err := m.Raw.EventsByInstall(ctx, app.ID, inst.InstallID)
	if err != nil {
		return nil, fmt.Errorf("events of install %s: %w", inst.InstallID, err)
	}
	var open *tapline.Event
	for _, e := range evs { // oldest first
		if e.Kind == tapline.KindOpen && e.Time.After(h.Time) {
			open = e
			break
		}
	}
	if open == nil || open.Time.Sub(h.Time) > app.ReengagementWindow {
		return nil, nil
	}
	// The index keeps what a funnel reads; the open itself has the
	// device's identifiers and fingerprint.
	if open, err = m.Raw.Event(ctx, app.ID, open.ID); err != nil {
		return nil, fmt.Errorf("open %s: %w", open.ID, err)
	}
	if eventAdID(open) != ad {
		return nil, nil
	}
	cands := []reengagementTap{{hit: h, method: tapline.MethodAdID}}
	r := &tapline.Reengagement{
		ID: tapline.ReengagementID(open.ID), AppID: app.ID, EventID: open.ID, InstallID: open.InstallID, OpenTime: open.Time, Platform: open.Device.Platform,
		Attribution: tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: tapline.MethodAdID, HitTime: h.Time, HitParams: tapline.WithoutAdIDs(h.Params)},
		By:          pos, At: published,
		Decision: reengagementDecision(app, open, inst, cands, 0),
	}
	r.Decision.Reason += " The tap was consumed after the open."
	stored, err := m.Raw.PutReengagement(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("store re-engagement %s: %w", r.ID, err)
	}
	if stored.By != pos {
		return nil, nil
	}
	b.Reengagement(stored)
	m.metrics.reengagements.WithLabelValues(string(stored.Method)).Inc()
	return &lateReengaged{r: stored, open: open, inst: inst}, nil
}

// lateReengaged is a re-engagement a late tap made: the open it credits
// and the open's installation.
type lateReengaged struct {
	r    *tapline.Reengagement
	open *tapline.Event
	inst *tapline.Conversion
}

// reengagementTap is a tap an open may be credited to, and how it matched.
type reengagementTap struct {
	hit    *tapline.Hit
	method tapline.MatchMethod
}

// reengagementTaps returns the taps on re-engagement links open e may be
// credited to, best first: by advertising id (newest first) when the open
// has a usable one, else by fingerprint (newest compatible first). A tap
// must follow the installation's install: a tap before it led to the
// install itself.
func (m *Matcher) reengagementTaps(ctx context.Context, app *tapline.App, e *tapline.Event, inst *tapline.Conversion, links map[int64]bool) ([]reengagementTap, error) {
	upper := m.tapUpper(e)
	var out []reengagementTap
	keep := func(hs []*tapline.Hit, method tapline.MatchMethod, ok func(*tapline.Hit) bool) {
		for _, h := range hs {
			if links[h.LinkID] && h.Bot == "" && h.Time.After(inst.InstallTime) && ok(h) {
				out = append(out, reengagementTap{hit: h, method: method})
			}
		}
	}
	if ad := eventAdID(e); ad != "" {
		hs, err := m.Raw.HitsByAdID(ctx, app.ID, ad, e.Time.Add(-app.ReengagementWindow), upper)
		if err != nil {
			return nil, fmt.Errorf("hits by advertising id: %w", err)
		}
		keep(hs, tapline.MethodAdID, func(*tapline.Hit) bool { return true })
		if len(out) > 0 {
			return out, nil
		}
	}
	if e.Fingerprint == "" {
		return out, nil
	}
	window := min(app.ReengagementWindow, app.FingerprintWindow)
	hs, err := m.Raw.HitsByFingerprint(ctx, app.ID, e.Fingerprint, e.Time.Add(-window), upper)
	if err != nil {
		return nil, fmt.Errorf("hits by fingerprint: %w", err)
	}
	keep(hs, tapline.MethodFingerprint, func(h *tapline.Hit) bool { return fingerprint.Compatible(h, e) })
	return out, nil
}

// previousOpen returns the time of the installation's latest open before
// e (zero when none is stored).
func (m *Matcher) previousOpen(ctx context.Context, appID int64, e *tapline.Event) (time.Time, error) {
	evs, err := m.Raw.EventsByInstall(ctx, appID, e.InstallID)
	if err != nil {
		return time.Time{}, fmt.Errorf("events of install %s: %w", e.InstallID, err)
	}
	var prev time.Time
	for _, o := range evs {
		if o.Kind == tapline.KindOpen && o.ID != e.ID && tapline.CompareEvents(o, e) < 0 && o.Time.After(prev) {
			prev = o.Time
		}
	}
	return prev, nil
}

// reengagementDecision explains the credit of open e to cands[i].
func reengagementDecision(app *tapline.App, e *tapline.Event, inst *tapline.Conversion, cands []reengagementTap, i int) *tapline.Decision {
	c := cands[i]
	window := app.ReengagementWindow
	how := "carrying the open's advertising id"
	var signals []tapline.Signal
	if c.method == tapline.MethodFingerprint {
		window = min(app.ReengagementWindow, app.FingerprintWindow)
		how = "from the open's network on a compatible device"
	} else {
		signals = append(signals, tapline.Signal{Name: "advertising_id", Install: maskAdID(eventAdID(e)), Hit: maskAdID(usableAdID(c.hit.AdID)), Verdict: tapline.VerdictAgree})
	}
	signals = append(signals, fingerprint.Signals(c.hit, e)...)
	reason := fmt.Sprintf("The newest tap on a re-engagement link %s, %s before this first open after it and %s after the install, within the %s re-engagement window: the installation's %s attribution stays.",
		how, duration(e.Time.Sub(c.hit.Time)), duration(c.hit.Time.Sub(inst.InstallTime)), duration(window), strings.ReplaceAll(string(inst.Method), "_", " "))
	d := &tapline.Decision{Rule: tapline.RuleReengagement, Reason: reason, Window: window, Signals: signals}
	d.AddCandidate(tapline.Candidate{HitID: c.hit.ID, LinkID: c.hit.LinkID, HitTime: c.hit.Time, Method: c.method, Chosen: true, Reason: reason})
	for j, o := range cands {
		why := "An older tap: the newest wins."
		if j < i {
			why = "Credited with another open's re-engagement already: a tap is credited with one."
		}
		if j != i {
			d.AddCandidate(tapline.Candidate{HitID: o.hit.ID, LinkID: o.hit.LinkID, HitTime: o.hit.Time, Method: o.method, Reason: why})
		}
	}
	return d
}

// reengagementLinks returns the app's re-engagement links, from the app
// cache, which loads them with the app.
func (m *Matcher) reengagementLinks(ctx context.Context, appID int64) (map[int64]bool, error) {
	return m.apps.reengagement(ctx, appID)
}
