package matcher

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/fingerprint"
	"tapline/postbacks"
)

// rank orders match methods: a stronger method always wins.
func rank(m tapline.MatchMethod) int {
	switch m {
	case tapline.MethodReferrer:
		return 3
	case tapline.MethodAdID:
		return 2
	case tapline.MethodFingerprint:
		return 1
	}
	return 0
}

// better reports whether attribution a should replace cur: a stronger
// method, or the same method with a later hit (the last hit wins).
func better(a, cur tapline.Attribution) bool {
	if ra, rc := rank(a.Method), rank(cur.Method); ra != rc {
		return ra > rc
	}
	return a.Method != tapline.MethodOrganic && a.HitTime.After(cur.HitTime)
}

// maskAdID returns an advertising id as a decision, kept past the raw
// rows, shows it: its last four characters, to tell ids apart by eye.
func maskAdID(id string) string {
	if len(id) <= 4 {
		return id
	}
	return "…" + id[len(id)-4:]
}

// usableAdID returns id when it can join a hit to an install: not empty and
// not the all-zero id a device reports when it hides its advertising id.
func usableAdID(id string) string {
	id = strings.TrimSpace(strings.ToLower(id))
	if strings.Trim(id, "0-") == "" {
		return ""
	}
	return id
}

func eventAdID(e *tapline.Event) string {
	if e.Device.LimitAdTracking {
		return ""
	}
	return usableAdID(e.Device.AdID())
}

func (m *Matcher) app(ctx context.Context, id int64) (*tapline.App, error) {
	app, err := m.apps.get(ctx, id)
	if err != nil && tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, &permanentError{fmt.Errorf("record of unknown app: %w", err)}
	}
	return app, err
}

// linkWindows returns the windows of app's links that set their own, from
// the app cache.
func (m *Matcher) linkWindows(ctx context.Context, app *tapline.App) (*linkWindows, error) {
	lw, err := m.apps.windows(ctx, app.ID)
	if err != nil && tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, &permanentError{fmt.Errorf("record of unknown app: %w", err)}
	}
	return lw, err
}

// processHit stores a hit, counts it, and lets it claim installs it arrived
// too late for.
func (m *Matcher) processHit(ctx context.Context, msg *tapline.Message, h *tapline.Hit, vs []*liveVersion) (facts.Batch, tapline.FlushRows, error) {
	app, err := m.app(ctx, h.AppID)
	if err != nil {
		return nil, tapline.FlushRows{}, err
	}
	pos := msg.Position()
	h.Source = pos
	if h.Bot != "" {
		// No tap: stored (so a resent copy is known) without the
		// fingerprint and advertising id that would let an install find
		// it, counted apart, claiming nothing.
		h.Fingerprint, h.AdID = "", ""
	}
	stored, err := m.Raw.PutHit(ctx, h)
	if err != nil {
		return nil, tapline.FlushRows{}, fmt.Errorf("store hit %s: %w", h.ID, err)
	}
	if stored.Source != pos {
		m.metrics.duplicates.WithLabelValues(msg.Topic).Inc()
		return facts.Batch{}, tapline.FlushRows{}, nil
	}
	b := facts.Batch{}
	if h.Bot != "" {
		b.BotHit(h)
		return b, tapline.FlushRows{}, nil
	}
	b.Hit(h)
	m.countTap(app, h)
	vs = ofApp(vs, app.ID)

	unlock := m.lockApp(app.ID)
	defer unlock()
	var rows tapline.FlushRows // the conversions this hit changed, the deliveries it makes
	if re, err := m.lateReengagement(ctx, pos, msg.Time, app, h, b); err != nil {
		return nil, tapline.FlushRows{}, err
	} else if re != nil {
		if rows.Deliveries, err = m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: re.open, Conversion: re.inst, Attribution: re.r.Attribution, Reengagement: true}); err != nil {
			return nil, tapline.FlushRows{}, err
		}
	}
	cands, err := m.lateInstalls(ctx, app, h, msg.Time)
	if err != nil {
		return nil, tapline.FlushRows{}, err
	}
	// A hit claims at most one install by fingerprint; an install matched
	// in the moment between storing this hit and taking the lock may have
	// claimed it already.
	claimedByFingerprint := false
	weighed := 0 // installs this hit's fingerprint decision was run again for
	if len(cands) > 0 {
		convs, err := m.Raw.ConversionsByHit(ctx, app.ID, h.ID)
		if err != nil {
			return nil, tapline.FlushRows{}, fmt.Errorf("conversions of hit %s: %w", h.ID, err)
		}
		for _, c := range convs {
			claimedByFingerprint = claimedByFingerprint || c.Method == tapline.MethodFingerprint
		}
	}
	for _, cand := range cands {
		c, err := m.awaitConversion(ctx, app.ID, cand.install.ID)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			// Its worker died before matching it; whoever replays it finds
			// this hit in the raw store.
			continue
		} else if err != nil {
			return nil, tapline.FlushRows{}, fmt.Errorf("load conversion of %s: %w", cand.install.ID, err)
		}
		// The raw store keeps no advertising id: the conversions table's
		// hash takes it from the install, as the install's own state did.
		c.AdID = eventAdID(cand.install)
		if ch := c.ChangeBy(pos); ch != nil {
			b.Change(c, ch) // replay of this hit: same deltas again
			rows.Conversions = append(rows.Conversions, c)
			ds, err := m.changeDeliveries(ctx, app.ID, c, cand.install, ch, pos)
			if err != nil {
				return nil, tapline.FlushRows{}, err
			}
			rows.Deliveries = append(rows.Deliveries, ds...)
			if cand.method == tapline.MethodFingerprint {
				claimedByFingerprint = true
			}
			if err := m.funnelDeltas(ctx, b, app, c.InstallID, pos, vs); err != nil {
				return nil, tapline.FlushRows{}, err
			}
			continue
		}
		if cand.method == tapline.MethodFingerprint && claimedByFingerprint {
			continue
		}
		if c.KeepsAttribution() {
			continue // a reinstall keeps its earlier install's attribution
		}
		if judged(c, h.ID) {
			// The install met this tap already, stored in the moment
			// before this worker took the lock, and a fraud rule refused
			// it: judged and counted once.
			continue
		}
		a := tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: cand.method, HitTime: h.Time, HitParams: tapline.WithoutAdIDs(h.Params)}
		var fp *fingerprint.Candidate
		var fd fingerprint.Decision
		if cand.method == tapline.MethodFingerprint {
			// The install's fingerprint decision again, with this tap
			// among the candidates: it must come out best and credited.
			if rank(c.Method) > rank(tapline.MethodFingerprint) || c.HitID == h.ID || weighed == maxLateWeighs || !m.mayWin(ctx, app, h, cand.install, c) {
				continue
			}
			weighed++
			var cands []fingerprint.Candidate
			if cands, fd, err = m.weigh(ctx, app, cand.install); err != nil {
				return nil, tapline.FlushRows{}, err
			}
			if fd.Best < 0 || cands[fd.Best].Hit.ID != h.ID || fd.Score < app.FingerprintMinScore {
				continue
			}
			fp = &cands[fd.Best]
		} else if !better(a, c.Attribution) {
			continue
		}
		findings, rejected := m.checkLate(b, app, h, cand, c)
		if rejected {
			continue // a rejected late tap does not re-attribute
		}
		prev := c.Attribution
		unlock := m.lockInstall(app.ID, c.InstallID)
		moved, err := m.movedEvents(ctx, app.ID, c, prev)
		if err != nil {
			unlock()
			return nil, tapline.FlushRows{}, err
		}
		c.History = append(c.History, tapline.AttributionChange{By: pos, From: &prev, To: a, At: msg.Time, Fraud: findings, Moved: moved})
		c.Attribution = a
		c.Decision = lateDecision(app, h, cand, prev, fp, fd)
		c.Decision.Fraud = findings
		c.ClickToInstall = time.Duration(facts.ClickToInstallMillis(c.InstallTime, h.Time)) * time.Millisecond
		c.UpdatedAt = m.Now().UTC()
		err = m.Raw.PutConversion(ctx, c)
		unlock()
		if err != nil {
			return nil, tapline.FlushRows{}, fmt.Errorf("re-attribute conversion %s: %w", c.ID, err)
		}
		b.Change(c, &c.History[len(c.History)-1])
		rows.Conversions = append(rows.Conversions, c)
		ds, err := m.changeDeliveries(ctx, app.ID, c, cand.install, &c.History[len(c.History)-1], pos)
		if err != nil {
			return nil, tapline.FlushRows{}, err
		}
		rows.Deliveries = append(rows.Deliveries, ds...)
		m.metrics.reattributions.WithLabelValues(string(a.Method)).Inc()
		if cand.method == tapline.MethodFingerprint {
			claimedByFingerprint = true
		}
		if err := m.funnelDeltas(ctx, b, app, c.InstallID, pos, vs); err != nil {
			return nil, tapline.FlushRows{}, err
		}
	}
	return b, rows, nil
}

// funnelDeltas adds to b the funnel deltas of installation installID after
// the record at pos touched it.
func (m *Matcher) funnelDeltas(ctx context.Context, b facts.Batch, app *tapline.App, installID, pos string, vs []*liveVersion) error {
	if len(vs) == 0 || installID == "" {
		return nil
	}
	fb, err := m.advanceFunnels(ctx, app, installID, pos, vs)
	if err != nil {
		return err
	}
	b.Merge(fb)
	return nil
}

// awaitConversion returns the conversion of a stored install. An install
// row exists only once a worker is matching it, so a missing conversion is
// one being written right now, by a worker of another partition or of
// another matcher of the group: wait for it briefly.
func (m *Matcher) awaitConversion(ctx context.Context, appID int64, installID string) (*tapline.Conversion, error) {
	for wait := 0; ; wait++ {
		c, err := m.Raw.Conversion(ctx, appID, tapline.ConversionID(installID))
		if tapline.ErrorCode(err) != tapline.ENOTFOUND || wait == 20 {
			return c, err
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// lateDecision explains the re-attribution of cand's install to hit h,
// consumed after the install, from prev.
// fp and fd are the fingerprint candidate the hit is and the decision that
// chose it, for a fingerprint match.
func lateDecision(app *tapline.App, h *tapline.Hit, cand candidate, prev tapline.Attribution, fp *fingerprint.Candidate, fd fingerprint.Decision) *tapline.Decision {
	e := cand.install
	window := cand.window
	why := "a stronger match than the install's " + string(prev.Method) + " attribution"
	switch {
	case fp != nil:
		why = "with it among the candidates, the best-scoring tap from the install's network, " + fd.Explain(fp, app.FingerprintMinScore) +
			"; it replaces the install's " + string(prev.Method) + " attribution"
	case prev.Method == cand.method:
		why = "a later tap of the same strength than the install's " + string(prev.Method) + " attribution (the last tap wins)"
	}
	reason := fmt.Sprintf("A tap consumed after the install, %s before it, matched it by %s within %s: %s.",
		duration(e.Time.Sub(h.Time)), strings.ReplaceAll(string(cand.method), "_", " "), cand.windowName, why)
	d := &tapline.Decision{Rule: tapline.RuleLateHit, Reason: reason, Window: window}
	switch cand.method {
	case tapline.MethodReferrer:
		d.Signals = append(d.Signals, tapline.Signal{Name: "install_referrer", Install: e.ReferrerHitID(), Hit: h.ID, Verdict: tapline.VerdictAgree})
	case tapline.MethodAdID:
		d.Signals = append(d.Signals, tapline.Signal{Name: "advertising_id", Install: maskAdID(eventAdID(e)), Hit: maskAdID(usableAdID(h.AdID)), Verdict: tapline.VerdictAgree})
	}
	chosen := tapline.Candidate{HitID: h.ID, LinkID: h.LinkID, HitTime: h.Time, Method: cand.method, Chosen: true, Reason: reason}
	if fp != nil {
		d.Signals = fp.Signals
		d.Score, d.MinScore, chosen.Score = fd.Score, app.FingerprintMinScore, fp.Evidence
	} else {
		d.Signals = append(d.Signals, fingerprint.Signals(h, e)...)
	}
	d.AddCandidate(chosen)
	if prev.Method != tapline.MethodOrganic && prev.HitID != "" {
		d.AddCandidate(tapline.Candidate{HitID: prev.HitID, LinkID: prev.LinkID, HitTime: prev.HitTime, Method: prev.Method,
			Reason: "The install's attribution until this tap was consumed and replaced it."})
	}
	return d
}

// tapUpper returns the latest time a tap that led to install or open e
// can carry: the device's time of e plus the clock skew allowed between a
// device and the collectors, and no later than the collectors' receipt of
// e plus the skew allowed between collectors. A tap received after the
// install was received came after it, and a late-consumed one must not
// take the install from the tap that led to it.
func (m *Matcher) tapUpper(e *tapline.Event) time.Time {
	upper := e.Time.Add(m.Config.ClockSkew)
	if !e.ReceivedAt.IsZero() {
		if r := e.ReceivedAt.Add(m.Config.CollectorSkew); r.Before(upper) {
			upper = r
		}
	}
	return upper
}

type candidate struct {
	install *tapline.Event
	method  tapline.MatchMethod
	// window is the hit's link's window of the method, windowName says it
	// for the decision.
	window     time.Duration
	windowName string
}

// lateInstalls returns the installs a newly stored hit could claim within
// its link's windows, strongest method first and, within fingerprint
// matches, the earliest install after the hit first. Installs seen longer
// than the app's lateness horizon before the hit's publication are final.
func (m *Matcher) lateInstalls(ctx context.Context, app *tapline.App, h *tapline.Hit, published time.Time) ([]candidate, error) {
	lw, err := m.linkWindows(ctx, app)
	if err != nil {
		return nil, err
	}
	clickWindow, fpWindow := lw.of(app, h.LinkID)
	fresh := func(e *tapline.Event) bool {
		return published.Sub(e.ReceivedAt) <= app.LatenessHorizon
	}
	inClickWindow := func(e *tapline.Event) bool {
		return !h.Time.After(m.tapUpper(e)) && e.Time.Sub(h.Time) <= clickWindow
	}
	var out []candidate
	seen := map[string]bool{}
	add := func(evs []*tapline.Event, method tapline.MatchMethod, ok func(*tapline.Event) bool) {
		window, kind := clickWindow, "click"
		if method == tapline.MethodFingerprint {
			window, kind = fpWindow, "fingerprint"
		}
		for _, e := range evs {
			if !seen[e.ID] && e.Kind == tapline.KindInstall && fresh(e) && ok(e) {
				seen[e.ID] = true
				out = append(out, candidate{install: e, method: method, window: window, windowName: lw.window(app, h.LinkID, kind)})
			}
		}
	}

	if h.ReferrerNamable() { // else no install names it: the index scan is saved
		byRef, err := m.Raw.InstallsByReferrerHit(ctx, app.ID, h.ID)
		if err != nil {
			return nil, fmt.Errorf("installs by referrer hit %s: %w", h.ID, err)
		}
		add(byRef, tapline.MethodReferrer, inClickWindow)
	}

	if ad := usableAdID(h.AdID); ad != "" {
		byAd, err := m.Raw.InstallsByAdID(ctx, app.ID, ad, h.Time.Add(-m.Config.ClockSkew), h.Time.Add(clickWindow))
		if err != nil {
			return nil, fmt.Errorf("installs by advertising id: %w", err)
		}
		add(byAd, tapline.MethodAdID, func(e *tapline.Event) bool { return !e.Device.LimitAdTracking && !h.Time.After(m.tapUpper(e)) })
	}

	if h.Fingerprint == "" {
		return out, nil
	}
	byFP, err := m.Raw.InstallsByFingerprint(ctx, app.ID, h.Fingerprint, h.Time.Add(-m.Config.ClockSkew), h.Time.Add(fpWindow))
	if err != nil {
		return nil, fmt.Errorf("installs by fingerprint: %w", err)
	}
	slices.Reverse(byFP) // earliest install after the hit first
	add(byFP, tapline.MethodFingerprint, func(e *tapline.Event) bool { return !h.Time.After(m.tapUpper(e)) && fingerprint.Compatible(h, e) })
	return out, nil
}

// processEvent stores an event, matches it when it is an install, counts
// it under its install's attribution and advances its installation in the
// live funnels vs.
func (m *Matcher) processEvent(ctx context.Context, msg *tapline.Message, e *tapline.Event, vs []*liveVersion) (facts.Batch, tapline.FlushRows, error) {
	app, err := m.app(ctx, e.AppID)
	if err != nil {
		return nil, tapline.FlushRows{}, err
	}
	if e.Kind == tapline.KindInstall {
		// Store and match under the app's lock, so that a hit of this app
		// never sees the install without its conversion in this process.
		unlock := m.lockApp(app.ID)
		defer unlock()
	}
	b, rows, counted, err := m.matchEvent(ctx, msg, app, e)
	if err != nil || !counted {
		return b, tapline.FlushRows{}, err
	}
	vs = ofApp(vs, app.ID)
	if e.Kind != tapline.KindInstall {
		vs = slices.DeleteFunc(vs, func(v *liveVersion) bool { return !v.c.Affects(e) })
	}
	if err := m.funnelDeltas(ctx, b, app, e.InstallID, msg.Position(), vs); err != nil {
		return nil, tapline.FlushRows{}, err
	}
	return b, rows, nil
}

// matchEvent stores an event, matches it when it is an install, and counts
// it under its install's attribution; counted is false for a resent
// event, which counts nothing. rows hold the conversion an install wrote
// (or wrote before a crash) and the cohort activity of a later event.
func (m *Matcher) matchEvent(ctx context.Context, msg *tapline.Message, app *tapline.App, e *tapline.Event) (_ facts.Batch, rows tapline.FlushRows, counted bool, _ error) {
	pos := msg.Position()
	e.Source = pos
	if e.Kind != tapline.KindInstall {
		return m.countEvent(ctx, msg, app, e)
	}
	// A second install event of a known installation is counted as an
	// event under its attribution: recorded as countEvent records it.
	// The installation's conversion, read once: installs of the app are
	// matched under its lock, so none appears before this one is done.
	var first *tapline.Conversion // of another install event of the installation
	unlock := m.lockInstall(app.ID, e.InstallID)
	if e.InstallID != "" {
		prev, err := m.Raw.ConversionByInstall(ctx, app.ID, e.InstallID)
		switch {
		case err == nil && prev.EventID != e.ID:
			first = prev
			hit := prev.HitID
			e.CountedUnder = &hit
		case err != nil && tapline.ErrorCode(err) != tapline.ENOTFOUND:
			unlock()
			return nil, rows, false, fmt.Errorf("conversion of install %s: %w", e.InstallID, err)
		}
	}
	stored, err := m.Raw.PutEvent(ctx, e)
	unlock()
	if err != nil {
		return nil, rows, false, fmt.Errorf("store event %s: %w", e.ID, err)
	}
	if stored.Source != pos {
		m.metrics.duplicates.WithLabelValues(msg.Topic).Inc()
		return facts.Batch{}, rows, false, nil
	}
	b := facts.Batch{}

	c, err := m.Raw.Conversion(ctx, app.ID, tapline.ConversionID(e.ID))
	switch {
	case err == nil:
		// Replay: the conversion this install wrote before a crash. The
		// raw store keeps no advertising id: the table's hash takes it
		// from the install again.
		c.AdID = eventAdID(e)
		if ch := c.ChangeBy(pos); ch != nil {
			b.Change(c, ch)
			b.Event(e, ch.To)
			ds, err := m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: e, Conversion: c, Attribution: ch.To, Change: pos})
			if err != nil {
				return nil, rows, false, err
			}
			return b, tapline.FlushRows{Conversions: []*tapline.Conversion{c}, Deliveries: ds}, true, nil
		}
		return nil, rows, false, fmt.Errorf("conversion %s exists without a change by %s", c.ID, pos)
	case tapline.ErrorCode(err) != tapline.ENOTFOUND:
		return nil, rows, false, fmt.Errorf("load conversion of %s: %w", e.ID, err)
	}
	if prev := first; prev != nil {
		// A second install event for one installation: an event under
		// the first one's attribution, not a new install; within the
		// reinstall window, a reinstall too.
		a := prev.Attribution
		if under := stored.CountedUnder; under != nil && *under != a.HitID {
			a = prev.AttributionOf(*under) // a replay: where it was first counted
		}
		b.Event(e, a)
		m.reinstalledInPlace(b, app, e, prev)
		rows = cohortActivity(b, e, prev, a)
		if rows.Deliveries, err = m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: e, Conversion: prev, Attribution: a}); err != nil {
			return nil, rows, false, err
		}
		return b, rows, true, nil
	}

	a, dec, reinstall, err := m.attribute(ctx, app, e)
	if err != nil {
		return nil, rows, false, err
	}
	m.population(app.ID).LearnInstall(&e.Device)
	a, findings, err := m.checkInstall(ctx, app, e, a, dec)
	if err != nil {
		return nil, rows, false, err
	}
	if (a.Method == tapline.MethodReferrer || a.Method == tapline.MethodAdID) && reinstall == nil {
		// A tap known to have caused its install, and not refused as
		// fraud: its delay teaches the fingerprint what delays look like
		// for this app, as a share of the fingerprint window its link's
		// taps are weighed in.
		if lw, err := m.linkWindows(ctx, app); err == nil {
			_, fpWindow := lw.of(app, a.LinkID)
			m.population(app.ID).LearnDelay(e.Time.Sub(a.HitTime), fpWindow)
		}
	}
	c = &tapline.Conversion{
		ID:          tapline.ConversionID(e.ID),
		AppID:       app.ID,
		EventID:     e.ID,
		InstallID:   e.InstallID,
		InstallTime: e.Time,
		Platform:    e.Device.Platform,
		// Kept forever: the fingerprint's address masked, the advertising
		// id for the conversions table's keyed hash only (see
		// tapline.Conversion).
		Fingerprint: fingerprint.MaskFingerprint(e.Fingerprint),
		AdID:        eventAdID(e),
		Attribution: a,
		History:     []tapline.AttributionChange{{By: pos, To: a, At: msg.Time, Fraud: findings}},
		UpdatedAt:   m.Now().UTC(),
		Decision:    dec,
		Reinstall:   reinstall,
	}
	if a.Method != tapline.MethodOrganic && !c.KeepsAttribution() {
		c.ClickToInstall = time.Duration(facts.ClickToInstallMillis(e.Time, a.HitTime)) * time.Millisecond
	}
	if err := m.Raw.PutConversion(ctx, c); err != nil {
		return nil, rows, false, fmt.Errorf("store conversion %s: %w", c.ID, err)
	}
	if reinstall == nil {
		m.metrics.conversions.WithLabelValues(string(a.Method)).Inc()
	}
	b.Change(c, &c.History[0])
	b.Event(e, a)
	ds, err := m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: e, Conversion: c, Attribution: a, Change: pos})
	if err != nil {
		return nil, rows, false, err
	}
	return b, tapline.FlushRows{Conversions: []*tapline.Conversion{c}, Deliveries: ds}, true, nil
}

// countEvent stores an event other than an install and counts it under
// its installation's attribution, recording which (Event.CountedUnder):
// a replay counts it there again, even after a re-attribution moved it,
// which then moves it exactly once. Storing it and reading the attribution
// happen under the installation's lock, which a re-attribution holds
// while it lists the events to move, so that no event is counted under
// the old attribution without being moved.
func (m *Matcher) countEvent(ctx context.Context, msg *tapline.Message, app *tapline.App, e *tapline.Event) (_ facts.Batch, rows tapline.FlushRows, counted bool, _ error) {
	pos := msg.Position()
	unlock := m.lockInstall(app.ID, e.InstallID)
	c, a, err := m.inherited(ctx, app.ID, e.InstallID)
	if err != nil {
		unlock()
		return nil, rows, false, err
	}
	hit := a.HitID
	if c == nil && e.InstallID != "" {
		// Counted organic before its install was matched, without a
		// cohort: no re-attribution of the install moves it.
		hit = tapline.CountedBeforeInstall
	}
	e.CountedUnder = &hit
	stored, err := m.Raw.PutEvent(ctx, e)
	unlock()
	if err != nil {
		return nil, rows, false, fmt.Errorf("store event %s: %w", e.ID, err)
	}
	if stored.Source != pos {
		m.metrics.duplicates.WithLabelValues(msg.Topic).Inc()
		return facts.Batch{}, rows, false, nil
	}
	if under := stored.CountedUnder; under != nil && *under != a.HitID && c != nil {
		a = c.AttributionOf(*under) // a replay: where it was first counted
	}
	b := facts.Batch{}
	b.Event(e, a)
	var re *tapline.Reengagement
	if e.Kind == tapline.KindOpen && c != nil {
		if re, err = m.reengage(ctx, pos, msg.Time, app, e, c, b); err != nil {
			return nil, rows, false, err
		}
	}
	rows = cohortActivity(b, e, c, a)
	if rows.Deliveries, err = m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: e, Conversion: c, Attribution: a}); err != nil {
		return nil, rows, false, err
	}
	if re != nil {
		ds, err := m.deliveries(ctx, app.ID, &postbacks.Trigger{Event: e, Conversion: c, Attribution: re.Attribution, Reengagement: true})
		if err != nil {
			return nil, rows, false, err
		}
		rows.Deliveries = append(rows.Deliveries, ds...)
	}
	return b, rows, true, nil
}

// movedEvents lists the events of c's installation counted under prev, the
// attribution the change about to be appended replaces: the ones it moves.
func (m *Matcher) movedEvents(ctx context.Context, appID int64, c *tapline.Conversion, prev tapline.Attribution) ([]tapline.MovedEvent, error) {
	if c.InstallID == "" {
		return nil, nil
	}
	evs, err := m.Raw.EventsByInstall(ctx, appID, c.InstallID)
	if err != nil {
		return nil, fmt.Errorf("events of install %s: %w", c.InstallID, err)
	}
	var moved []tapline.MovedEvent
	for _, e := range evs {
		if len(moved) == tapline.MaxMovedEvents {
			break
		}
		if c.CountedUnder(e, len(c.History)) == prev.HitID {
			moved = append(moved, tapline.MovedEvent{ID: e.ID, Name: e.Name, Kind: e.Kind, Time: e.Time, Revenue: e.Revenue})
		}
	}
	return moved, nil
}

// cohortActivity adds to b the cohort revenue of event e of install c (nil:
// an unknown install, which has no cohort, nor has a reinstall), counted
// under attribution a, and returns the cohort activity
// it is, when it falls on a day after the install's first that the
// cohorts count.
func cohortActivity(b facts.Batch, e *tapline.Event, c *tapline.Conversion, a tapline.Attribution) tapline.FlushRows {
	if c == nil || c.Reinstall != nil {
		// No cohort: an unknown install, or a reinstall (cohorts follow
		// new installs).
		return tapline.FlushRows{}
	}
	b.CohortRevenue(e, c, a)
	n, ok := tapline.CohortDay(c.InstallTime, e.Time)
	if !ok || n == 0 {
		return tapline.FlushRows{}
	}
	return tapline.FlushRows{Activity: []tapline.CohortActivity{{InstallID: c.InstallID, Key: facts.CohortKey(c, c.Attribution, n)}}}
}

// inherited returns the conversion of an install id and its attribution;
// nil and organic when the install is unknown.
func (m *Matcher) inherited(ctx context.Context, appID int64, installID string) (*tapline.Conversion, tapline.Attribution, error) {
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	if installID == "" {
		return nil, organic, nil
	}
	c, err := m.Raw.ConversionByInstall(ctx, appID, installID)
	switch {
	case err == nil:
		return c, c.Attribution, nil
	case tapline.ErrorCode(err) == tapline.ENOTFOUND:
		return nil, organic, nil
	}
	return nil, organic, fmt.Errorf("conversion of install %s: %w", installID, err)
}

// match finds the hit that caused install e: referrer, then advertising id,
// then fingerprint; organic when none fits. Each hit is judged by its
// link's windows (tapline.App.LinkWindows). The decision says why, with
// the candidates that lost.
func (m *Matcher) match(ctx context.Context, app *tapline.App, e *tapline.Event) (tapline.Attribution, *tapline.Decision, error) {
	d := &tapline.Decision{}
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	lw, err := m.linkWindows(ctx, app)
	if err != nil {
		return organic, nil, err
	}
	choose := func(h *tapline.Hit, method tapline.MatchMethod, rule, reason string, window time.Duration, signals ...tapline.Signal) (tapline.Attribution, *tapline.Decision, error) {
		d.Rule, d.Reason, d.Window = rule, reason, window
		d.Signals = append(signals, fingerprint.Signals(h, e)...)
		d.Candidates = slices.Insert(d.Candidates, 0, tapline.Candidate{
			HitID: h.ID, LinkID: h.LinkID, HitTime: h.Time, Method: method, Chosen: true, Reason: reason,
		})
		d.Considered++
		if len(d.Candidates) > tapline.MaxDecisionCandidates {
			d.Candidates = d.Candidates[:tapline.MaxDecisionCandidates]
		}
		return tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: method, HitTime: h.Time, HitParams: tapline.WithoutAdIDs(h.Params)}, d, nil
	}
	lost := func(h *tapline.Hit, method tapline.MatchMethod, reason string) {
		d.AddCandidate(tapline.Candidate{HitID: h.ID, LinkID: h.LinkID, HitTime: h.Time, Method: method, Reason: reason})
	}
	upper := m.tapUpper(e)
	var tried []string // what was looked for, for an organic decision

	if id := e.ReferrerHitID(); id != "" {
		h, err := m.Raw.Hit(ctx, app.ID, id)
		switch {
		case err == nil:
			age := e.Time.Sub(h.Time)
			click, _ := lw.of(app, h.LinkID)
			signal := tapline.Signal{Name: "install_referrer", Install: id, Hit: h.ID, Verdict: tapline.VerdictAgree}
			switch {
			case h.Previewer():
				lost(h, tapline.MethodReferrer, "Named by the install referrer, but the request came from a link previewer or crawler ("+h.Bot+"): never credited.")
			case !h.ReferrerNamable():
				lost(h, tapline.MethodReferrer, "Named by the install referrer, but the tap was not sent to the Play Store (platform "+string(h.Platform)+"): no referrer of a real install can name it.")
			case h.Time.After(upper):
				if r := e.ReceivedAt; !r.IsZero() && h.Time.After(r) {
					// The phone's clock may run ahead: say what the collectors saw.
					lost(h, tapline.MethodReferrer, fmt.Sprintf("Named by the install referrer, but tapped %s after the collectors received the install.", duration(h.Time.Sub(r))))
					break
				}
				lost(h, tapline.MethodReferrer, fmt.Sprintf("Named by the install referrer, but tapped %s after the install.", duration(-age)))
			case age > click:
				lost(h, tapline.MethodReferrer, fmt.Sprintf("Named by the install referrer, but tapped %s before the install, outside %s.", duration(age), lw.window(app, h.LinkID, "click")))
			default:
				reason := fmt.Sprintf("The Play install referrer names this hit, tapped %s before the install, within %s.", duration(age), lw.window(app, h.LinkID, "click"))
				if h.Bot != "" {
					// A prefetch whose redirect the tap reused, or a tap
					// over its address's rate: the referrer, set on the
					// installing device, says it led to the install.
					reason += " The request was marked " + h.Bot + " and not counted as a tap; the referrer credits it."
				}
				return choose(h, tapline.MethodReferrer, tapline.RuleReferrer, reason, click, signal)
			}
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			d.AddCandidate(tapline.Candidate{HitID: id, Method: tapline.MethodReferrer, Reason: "Named by the install referrer, but no such hit is stored (expired, or not from this app)."})
		default:
			return organic, nil, fmt.Errorf("hit %s from referrer: %w", id, err)
		}
		tried = append(tried, "the hit the install referrer names does not fit")
	} else {
		tried = append(tried, "no install referrer names a hit")
	}
	widestClick, widestFP := lw.widest(app)
	switch ad := eventAdID(e); {
	case ad != "":
		// Over the widest click window of the app and its links, then
		// each tap within its own link's.
		hits, err := m.Raw.HitsByAdID(ctx, app.ID, ad, e.Time.Add(-widestClick), upper)
		if err != nil {
			return organic, nil, fmt.Errorf("hits by advertising id: %w", err)
		}
		found := len(hits) > 0
		hits = slices.DeleteFunc(hits, func(h *tapline.Hit) bool {
			age := e.Time.Sub(h.Time)
			if click, _ := lw.of(app, h.LinkID); age <= click {
				return false
			}
			lost(h, tapline.MethodAdID, fmt.Sprintf("Carries the install's advertising id, but tapped %s before the install, outside %s.", duration(age), lw.window(app, h.LinkID, "click")))
			return true
		})
		if len(hits) > 0 {
			for _, h := range hits[1:] {
				lost(h, tapline.MethodAdID, "An older tap with the same advertising id: the newest wins.")
			}
			signal := tapline.Signal{Name: "advertising_id", Install: maskAdID(ad), Hit: maskAdID(usableAdID(hits[0].AdID)), Verdict: tapline.VerdictAgree}
			later, err := m.laterTapOf(ctx, app, hits[0], e)
			if err != nil {
				return organic, nil, err
			}
			if later != nil {
				lost(hits[0], tapline.MethodAdID, "The newest tap carrying the install's advertising id, but the same device tapped again later: its last tap wins.")
				click, _ := lw.of(app, later.LinkID)
				return choose(later, tapline.MethodAdID, tapline.RuleAdID,
					fmt.Sprintf("The last tap of the device the install's advertising id names: %s before the install, within %s, from the same network and browser (same User-Agent, language and model) as its tap %s that carried the advertising id.",
						duration(e.Time.Sub(later.Time)), lw.window(app, later.LinkID, "click"), hits[0].ID),
					click, signal)
			}
			click, _ := lw.of(app, hits[0].LinkID)
			return choose(hits[0], tapline.MethodAdID, tapline.RuleAdID,
				fmt.Sprintf("The newest tap carrying the install's advertising id, %s before the install, within %s.", duration(e.Time.Sub(hits[0].Time)), lw.window(app, hits[0].LinkID, "click")),
				click, signal)
		}
		if found {
			tried = append(tried, "no tap carrying its advertising id is within its link's click window")
		} else {
			tried = append(tried, "no tap carries its advertising id in the "+duration(widestClick)+" click window")
		}
	case e.Device.LimitAdTracking:
		tried = append(tried, "its advertising id is limited (not used)")
	default:
		tried = append(tried, "it has no advertising id")
	}
	if e.Fingerprint == "" {
		tried = append(tried, "it has no fingerprint (no usable address)")
		return organicDecision(d, tried)
	}
	cands, outside, fd, err := m.weighWithin(ctx, app, lw, e)
	if err != nil {
		return organic, nil, err
	}
	losers := func() {
		addLosers(d, cands, fd, e)
		for _, h := range outside {
			lost(h, tapline.MethodFingerprint, fmt.Sprintf("From the install's network, but tapped %s before the install, outside %s: not a candidate.",
				duration(e.Time.Sub(h.Time)), lw.window(app, h.LinkID, "fingerprint")))
		}
	}
	if fd.Best < 0 {
		losers()
		switch {
		case len(cands) == 0 && len(outside) > 0:
			tried = append(tried, "no tap from its network is within its link's fingerprint window")
		case len(cands) == 0:
			tried = append(tried, "no tap from its network in the "+duration(widestFP)+" fingerprint window")
		default:
			tried = append(tried, "no tap from its network fits")
		}
		return organicDecision(d, tried)
	}
	best := &cands[fd.Best]
	h := best.Hit
	_, fpWindow := lw.of(app, h.LinkID)
	d.Score, d.MinScore = fd.Score, app.FingerprintMinScore
	if fd.Score < app.FingerprintMinScore {
		d.AddCandidate(tapline.Candidate{HitID: h.ID, LinkID: h.LinkID, HitTime: h.Time, Method: tapline.MethodFingerprint, Score: best.Evidence,
			Reason: fmt.Sprintf("The best tap from the install's network, %s before it, but not credited: %s.", duration(e.Time.Sub(h.Time)), fd.Explain(best, app.FingerprintMinScore))})
		losers()
		d.Rule, d.Window, d.Signals = tapline.RuleBelowMinScore, fpWindow, best.Signals
		d.Reason = fmt.Sprintf("Organic: %s; the best tap from its network scored %.2f, under the app's minimum of %.2f (%d tapping device(s) on the network, %d rival tap(s)).",
			strings.Join(tried, "; "), fd.Score, app.FingerprintMinScore, fd.Devices, fd.Rivals)
		return organic, d, nil
	}
	losers()
	a, d, err := choose(h, tapline.MethodFingerprint, tapline.RuleFingerprint,
		fmt.Sprintf("The best-scoring tap from the install's network, %s before the install, within %s: %s.",
			duration(e.Time.Sub(h.Time)), lw.window(app, h.LinkID, "fingerprint"), fd.Explain(best, app.FingerprintMinScore)),
		fpWindow)
	d.Signals = best.Signals
	d.Candidates[0].Score = best.Evidence
	return a, d, err
}

// weigh returns the fingerprint candidates of install e, every hit on its
// network within its link's fingerprint window, newest first, each marked
// claimed when a conversion of another install credits it, and the
// decision over them.
func (m *Matcher) weigh(ctx context.Context, app *tapline.App, e *tapline.Event) ([]fingerprint.Candidate, fingerprint.Decision, error) {
	lw, err := m.linkWindows(ctx, app)
	if err != nil {
		return nil, fingerprint.Decision{}, err
	}
	cands, _, fd, err := m.weighWithin(ctx, app, lw, e)
	return cands, fd, err
}

// weighWithin is weigh given the windows of app's links; outside are the
// hits on the network within the widest fingerprint window of the app and
// its links but outside their own link's, newest first: no candidates.
func (m *Matcher) weighWithin(ctx context.Context, app *tapline.App, lw *linkWindows, e *tapline.Event) (cands []fingerprint.Candidate, outside []*tapline.Hit, _ fingerprint.Decision, _ error) {
	_, widest := lw.widest(app)
	hits, err := m.Raw.HitsByFingerprint(ctx, app.ID, e.Fingerprint, e.Time.Add(-widest), m.tapUpper(e))
	if err != nil {
		return nil, nil, fingerprint.Decision{}, fmt.Errorf("hits by fingerprint: %w", err)
	}
	cands = make([]fingerprint.Candidate, 0, len(hits))
	for _, h := range hits {
		_, window := lw.of(app, h.LinkID)
		if e.Time.Sub(h.Time) > window {
			outside = append(outside, h)
			continue
		}
		cands = append(cands, fingerprint.Candidate{Hit: h, Window: window})
	}
	pop := m.population(app.ID)
	fingerprint.Weigh(cands, e, app.FingerprintWindow, pop)
	// Whether a tap is credited already is one raw-store read: asked of
	// the strongest candidates only, until the best unclaimed one and
	// maxClaimChecks rivals are known. Weaker ones count as rivals
	// unasked, which can only lower the score.
	own := tapline.ConversionID(e.ID)
	unclaimed := 0
	for _, i := range fingerprint.Order(cands) {
		if unclaimed > maxClaimChecks {
			break
		}
		c := &cands[i]
		convs, err := m.Raw.ConversionsByHit(ctx, app.ID, c.Hit.ID)
		if err != nil {
			return nil, nil, fingerprint.Decision{}, fmt.Errorf("conversions of hit %s: %w", c.Hit.ID, err)
		}
		for _, conv := range convs {
			if conv.ID != own {
				c.Claimed = true
				c.ClaimedBy = conv.InstallID
			}
		}
		if !c.Claimed {
			unclaimed++
		}
	}
	fd := fingerprint.Choose(cands)
	if fd.Best >= 0 {
		fingerprint.Explain(&cands[fd.Best], e, app.FingerprintWindow, pop)
	}
	return cands, outside, fd, nil
}

// judged reports whether a fraud rule already refused tap hitID for
// conversion c (a finding on one of its changes names the tap).
func judged(c *tapline.Conversion, hitID string) bool {
	for _, ch := range c.History {
		for _, f := range ch.Fraud {
			if f.HitID == hitID && f.Action == tapline.FraudReject {
				return true
			}
		}
	}
	return false
}

// mayWin reports whether late hit h could win install e's fingerprint
// decision, now held by conversion c, before weighing every tap on the
// network again: its evidence must reach the app's minimum score even
// with no other device there, and beat the evidence of the tap c credits
// by fingerprint (which stays a candidate).
func (m *Matcher) mayWin(ctx context.Context, app *tapline.App, h *tapline.Hit, e *tapline.Event, c *tapline.Conversion) bool {
	window := app.FingerprintWindow
	if lw, err := m.linkWindows(ctx, app); err == nil {
		_, window = lw.of(app, h.LinkID)
	}
	_, ev := fingerprint.Evidence(h, e, window, m.population(app.ID))
	if ev < app.FingerprintMinScore {
		return false
	}
	if d := c.Decision; c.Method == tapline.MethodFingerprint && d != nil && len(d.Candidates) > 0 && d.Candidates[0].Chosen && d.Candidates[0].Score > ev {
		return false
	}
	return true
}

// maxLateWeighs bounds the installs a late hit runs the fingerprint
// decision again for, the earliest after it first: the likeliest to be
// its effect. Each weighs every tap on the install's network.
const maxLateWeighs = 3

// maxClaimChecks bounds the rivals of a fingerprint decision whose credit
// is looked up (see weighWithin).
const maxClaimChecks = 8

// laterTapOf returns the newest tap after h, before install e, that looks
// like the same device's (fingerprint.SameDevice), fits e and is within its
// link's click window, or nil: a device an advertising id names that
// tapped again through a link without the id.
func (m *Matcher) laterTapOf(ctx context.Context, app *tapline.App, h *tapline.Hit, e *tapline.Event) (*tapline.Hit, error) {
	if h.Fingerprint == "" {
		return nil, nil
	}
	lw, err := m.linkWindows(ctx, app)
	if err != nil {
		return nil, err
	}
	hits, err := m.Raw.HitsByFingerprint(ctx, app.ID, h.Fingerprint, h.Time, m.tapUpper(e))
	if err != nil {
		return nil, fmt.Errorf("later taps of hit %s: %w", h.ID, err)
	}
	for _, later := range hits { // newest first
		if click, _ := lw.of(app, later.LinkID); e.Time.Sub(later.Time) > click {
			continue
		}
		if later.ID != h.ID && later.Time.After(h.Time) && later.Bot == "" && fingerprint.SameDevice(h, later) && fingerprint.Compatible(later, e) {
			return later, nil
		}
	}
	return nil, nil
}

// lockInstall serialises, for one installation, storing an event with
// the attribution it is counted under and a re-attribution listing the
// events to move (see countEvent); it returns the unlock. An event without
// an installation takes no lock.
func (m *Matcher) lockInstall(appID int64, installID string) func() {
	if installID == "" {
		return func() {}
	}
	h := fnv.New32a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(appID))
	h.Write(b[:])
	h.Write([]byte(installID))
	mu := &m.installLocks[h.Sum32()%uint32(len(m.installLocks))]
	mu.Lock()
	return mu.Unlock
}

// population returns what the fingerprint learned of an app's installs.
func (m *Matcher) population(appID int64) *fingerprint.Population {
	if p, ok := m.populations.Load(appID); ok {
		return p.(*fingerprint.Population)
	}
	p, _ := m.populations.LoadOrStore(appID, fingerprint.NewPopulation())
	return p.(*fingerprint.Population)
}

// addLosers adds to d every candidate of cands but the best, with why it
// lost.
func addLosers(d *tapline.Decision, cands []fingerprint.Candidate, fd fingerprint.Decision, e *tapline.Event) {
	for i := range cands {
		c := &cands[i]
		if i == fd.Best {
			continue
		}
		if len(d.Candidates) >= tapline.MaxDecisionCandidates {
			d.Considered++ // counted, not listed: no reason needed
			continue
		}
		var reason string
		switch {
		case !c.Fits:
			reason = tapline.CandidateConflict(conflicts(fingerprint.CandidateSignals(c, e)))
		case c.SameAs >= 0:
			reason = "An older tap of the same device (same browser, language and model): its newest tap stands for it."
		case c.Claimed:
			reason = "Already credited with install " + c.ClaimedBy + ": a tap is credited with one install by fingerprint."
		default:
			reason = fmt.Sprintf("Another device on the network, weaker evidence (%.2f).", c.Evidence)
		}
		d.AddCandidate(tapline.Candidate{HitID: c.Hit.ID, LinkID: c.Hit.LinkID, HitTime: c.Hit.Time, Method: tapline.MethodFingerprint, Score: c.Evidence, Reason: reason})
	}
}

// organicDecision completes d as the decision of an organic install, given
// what was tried.
func organicDecision(d *tapline.Decision, tried []string) (tapline.Attribution, *tapline.Decision, error) {
	d.Rule = tapline.RuleOrganic
	d.Reason = "Organic: " + strings.Join(tried, "; ") + "."
	return tapline.Attribution{Method: tapline.MethodOrganic}, d, nil
}

// conflicts names the conflicting signals of ss: "model Pixel 7 (install)
// vs SM-S918B (tap)".
func conflicts(ss []tapline.Signal) string {
	var parts []string
	for _, s := range ss {
		if s.Verdict == tapline.VerdictConflict {
			parts = append(parts, fmt.Sprintf("%s %s (install) vs %s (tap)", strings.ReplaceAll(s.Name, "_", " "), s.Install, s.Hit))
		}
	}
	return strings.Join(parts, ", ")
}

// duration shows d for a person, to a precision that fits its size:
// "350ms", "42s", "3m12s", "2h5m", "7d", "1d2h".
func duration(d time.Duration) string {
	d = max(d, -d)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	const day = 24 * time.Hour
	if d < day {
		d = d.Round(time.Minute)
		h, m := d/time.Hour, d%time.Hour/time.Minute
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	d = d.Round(time.Hour)
	days, h := d/day, d%day/time.Hour
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}
