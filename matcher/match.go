package matcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/fingerprint"
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

// processHit stores a hit, counts it, and lets it claim installs it arrived
// too late for.
func (m *Matcher) processHit(ctx context.Context, msg *tapline.Message, h *tapline.Hit, vs []*liveVersion) (facts.Batch, error) {
	app, err := m.app(ctx, h.AppID)
	if err != nil {
		return nil, err
	}
	pos := msg.Position()
	h.Source = pos
	stored, err := m.Raw.PutHit(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("store hit %s: %w", h.ID, err)
	}
	if stored.Source != pos {
		m.metrics.duplicates.WithLabelValues(msg.Topic).Inc()
		return facts.Batch{}, nil
	}
	b := facts.Batch{}
	b.Hit(h)
	vs = ofApp(vs, app.ID)

	unlock := m.lockApp(app.ID)
	defer unlock()
	cands, err := m.lateInstalls(ctx, app, h, msg.Time)
	if err != nil {
		return nil, err
	}
	// A hit claims at most one install by fingerprint; an install matched
	// in the moment between storing this hit and taking the lock may have
	// claimed it already.
	claimedByFingerprint := false
	if len(cands) > 0 {
		convs, err := m.Raw.ConversionsByHit(ctx, app.ID, h.ID)
		if err != nil {
			return nil, fmt.Errorf("conversions of hit %s: %w", h.ID, err)
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
			return nil, fmt.Errorf("load conversion of %s: %w", cand.install.ID, err)
		}
		if ch := c.ChangeBy(pos); ch != nil {
			b.Change(c, ch) // replay of this hit: same deltas again
			if cand.method == tapline.MethodFingerprint {
				claimedByFingerprint = true
			}
			if err := m.funnelDeltas(ctx, b, app, c.InstallID, pos, vs); err != nil {
				return nil, err
			}
			continue
		}
		if cand.method == tapline.MethodFingerprint && claimedByFingerprint {
			continue
		}
		a := tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: cand.method, HitTime: h.Time, HitParams: h.Params}
		if !better(a, c.Attribution) {
			continue
		}
		prev := c.Attribution
		c.History = append(c.History, tapline.AttributionChange{By: pos, From: &prev, To: a, At: msg.Time})
		c.Attribution = a
		c.ClickToInstall = time.Duration(facts.ClickToInstallMillis(c.InstallTime, h.Time)) * time.Millisecond
		c.UpdatedAt = m.Now().UTC()
		if err := m.Raw.PutConversion(ctx, c); err != nil {
			return nil, fmt.Errorf("re-attribute conversion %s: %w", c.ID, err)
		}
		b.Change(c, &c.History[len(c.History)-1])
		m.metrics.reattributions.WithLabelValues(string(a.Method)).Inc()
		if cand.method == tapline.MethodFingerprint {
			claimedByFingerprint = true
		}
		if err := m.funnelDeltas(ctx, b, app, c.InstallID, pos, vs); err != nil {
			return nil, err
		}
	}
	return b, nil
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

type candidate struct {
	install *tapline.Event
	method  tapline.MatchMethod
}

// lateInstalls returns the installs a newly stored hit could claim,
// strongest method first and, within fingerprint matches, the earliest
// install after the hit first. Installs seen longer than the app's lateness
// horizon before the hit's publication are final.
func (m *Matcher) lateInstalls(ctx context.Context, app *tapline.App, h *tapline.Hit, published time.Time) ([]candidate, error) {
	fresh := func(e *tapline.Event) bool {
		return published.Sub(e.ReceivedAt) <= app.LatenessHorizon
	}
	inClickWindow := func(e *tapline.Event) bool {
		d := e.Time.Sub(h.Time)
		return d >= -m.Config.ClockSkew && d <= app.ClickWindow
	}
	var out []candidate
	seen := map[string]bool{}
	add := func(evs []*tapline.Event, method tapline.MatchMethod, ok func(*tapline.Event) bool) {
		for _, e := range evs {
			if !seen[e.ID] && e.Kind == tapline.KindInstall && fresh(e) && ok(e) {
				seen[e.ID] = true
				out = append(out, candidate{install: e, method: method})
			}
		}
	}

	byRef, err := m.Raw.InstallsByReferrerHit(ctx, app.ID, h.ID)
	if err != nil {
		return nil, fmt.Errorf("installs by referrer hit %s: %w", h.ID, err)
	}
	add(byRef, tapline.MethodReferrer, inClickWindow)

	if ad := usableAdID(h.AdID); ad != "" {
		byAd, err := m.Raw.InstallsByAdID(ctx, app.ID, ad, h.Time.Add(-m.Config.ClockSkew), h.Time.Add(app.ClickWindow))
		if err != nil {
			return nil, fmt.Errorf("installs by advertising id: %w", err)
		}
		add(byAd, tapline.MethodAdID, func(e *tapline.Event) bool { return !e.Device.LimitAdTracking })
	}

	if h.Fingerprint == "" {
		return out, nil
	}
	byFP, err := m.Raw.InstallsByFingerprint(ctx, app.ID, h.Fingerprint, h.Time.Add(-m.Config.ClockSkew), h.Time.Add(app.FingerprintWindow))
	if err != nil {
		return nil, fmt.Errorf("installs by fingerprint: %w", err)
	}
	slices.Reverse(byFP) // earliest install after the hit first
	add(byFP, tapline.MethodFingerprint, func(e *tapline.Event) bool { return fingerprint.Compatible(h, e) })
	return out, nil
}

// processEvent stores an event, matches it when it is an install, counts
// it under its install's attribution and advances its installation in the
// live funnels vs.
func (m *Matcher) processEvent(ctx context.Context, msg *tapline.Message, e *tapline.Event, vs []*liveVersion) (facts.Batch, error) {
	app, err := m.app(ctx, e.AppID)
	if err != nil {
		return nil, err
	}
	if e.Kind == tapline.KindInstall {
		// Store and match under the app's lock, so that a hit of this app
		// never sees the install without its conversion in this process.
		unlock := m.lockApp(app.ID)
		defer unlock()
	}
	b, counted, err := m.matchEvent(ctx, msg, app, e)
	if err != nil || !counted {
		return b, err
	}
	vs = ofApp(vs, app.ID)
	if e.Kind != tapline.KindInstall {
		vs = slices.DeleteFunc(vs, func(v *liveVersion) bool { return !v.c.Affects(e) })
	}
	if err := m.funnelDeltas(ctx, b, app, e.InstallID, msg.Position(), vs); err != nil {
		return nil, err
	}
	return b, nil
}

// matchEvent stores an event, matches it when it is an install, and counts
// it under its install's attribution; counted is false for a resent
// event, which counts nothing.
func (m *Matcher) matchEvent(ctx context.Context, msg *tapline.Message, app *tapline.App, e *tapline.Event) (_ facts.Batch, counted bool, _ error) {
	pos := msg.Position()
	e.Source = pos
	stored, err := m.Raw.PutEvent(ctx, e)
	if err != nil {
		return nil, false, fmt.Errorf("store event %s: %w", e.ID, err)
	}
	if stored.Source != pos {
		m.metrics.duplicates.WithLabelValues(msg.Topic).Inc()
		return facts.Batch{}, false, nil
	}
	b := facts.Batch{}
	if e.Kind != tapline.KindInstall {
		a, err := m.inherited(ctx, app.ID, e.InstallID)
		if err != nil {
			return nil, false, err
		}
		b.Event(e, a)
		return b, true, nil
	}

	c, err := m.Raw.Conversion(ctx, app.ID, tapline.ConversionID(e.ID))
	switch {
	case err == nil:
		// Replay: the conversion this install wrote before a crash.
		if ch := c.ChangeBy(pos); ch != nil {
			b.Change(c, ch)
			b.Event(e, ch.To)
			return b, true, nil
		}
		return nil, false, fmt.Errorf("conversion %s exists without a change by %s", c.ID, pos)
	case tapline.ErrorCode(err) != tapline.ENOTFOUND:
		return nil, false, fmt.Errorf("load conversion of %s: %w", e.ID, err)
	}
	if e.InstallID != "" {
		prev, err := m.Raw.ConversionByInstall(ctx, app.ID, e.InstallID)
		if err == nil {
			// A second install event for one installation: an event
			// under the first one's attribution, not a new install.
			b.Event(e, prev.Attribution)
			return b, true, nil
		} else if tapline.ErrorCode(err) != tapline.ENOTFOUND {
			return nil, false, fmt.Errorf("conversion of install %s: %w", e.InstallID, err)
		}
	}

	a, err := m.match(ctx, app, e)
	if err != nil {
		return nil, false, err
	}
	c = &tapline.Conversion{
		ID:          tapline.ConversionID(e.ID),
		AppID:       app.ID,
		EventID:     e.ID,
		InstallID:   e.InstallID,
		InstallTime: e.Time,
		Platform:    e.Device.Platform,
		Fingerprint: e.Fingerprint,
		AdID:        eventAdID(e),
		Attribution: a,
		History:     []tapline.AttributionChange{{By: pos, To: a, At: msg.Time}},
		UpdatedAt:   m.Now().UTC(),
	}
	if a.Method != tapline.MethodOrganic {
		c.ClickToInstall = time.Duration(facts.ClickToInstallMillis(e.Time, a.HitTime)) * time.Millisecond
	}
	if err := m.Raw.PutConversion(ctx, c); err != nil {
		return nil, false, fmt.Errorf("store conversion %s: %w", c.ID, err)
	}
	m.metrics.conversions.WithLabelValues(string(a.Method)).Inc()
	b.Change(c, &c.History[0])
	b.Event(e, a)
	return b, true, nil
}

// inherited returns the attribution of an install id, organic when the
// install is unknown.
func (m *Matcher) inherited(ctx context.Context, appID int64, installID string) (tapline.Attribution, error) {
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	if installID == "" {
		return organic, nil
	}
	c, err := m.Raw.ConversionByInstall(ctx, appID, installID)
	switch {
	case err == nil:
		return c.Attribution, nil
	case tapline.ErrorCode(err) == tapline.ENOTFOUND:
		return organic, nil
	}
	return organic, fmt.Errorf("conversion of install %s: %w", installID, err)
}

// match finds the hit that caused install e: referrer, then advertising id,
// then fingerprint; organic when none fits.
func (m *Matcher) match(ctx context.Context, app *tapline.App, e *tapline.Event) (tapline.Attribution, error) {
	hit := func(h *tapline.Hit, method tapline.MatchMethod) tapline.Attribution {
		return tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: method, HitTime: h.Time, HitParams: h.Params}
	}
	upper := e.Time.Add(m.Config.ClockSkew)

	if id := e.ReferrerHitID(); id != "" {
		h, err := m.Raw.Hit(ctx, app.ID, id)
		switch {
		case err == nil:
			if !h.Time.After(upper) && e.Time.Sub(h.Time) <= app.ClickWindow {
				return hit(h, tapline.MethodReferrer), nil
			}
		case tapline.ErrorCode(err) != tapline.ENOTFOUND:
			return tapline.Attribution{}, fmt.Errorf("hit %s from referrer: %w", id, err)
		}
	}
	if ad := eventAdID(e); ad != "" {
		hits, err := m.Raw.HitsByAdID(ctx, app.ID, ad, e.Time.Add(-app.ClickWindow), upper)
		if err != nil {
			return tapline.Attribution{}, fmt.Errorf("hits by advertising id: %w", err)
		}
		if len(hits) > 0 {
			return hit(hits[0], tapline.MethodAdID), nil
		}
	}
	if e.Fingerprint == "" {
		return tapline.Attribution{Method: tapline.MethodOrganic}, nil
	}
	hits, err := m.Raw.HitsByFingerprint(ctx, app.ID, e.Fingerprint, e.Time.Add(-app.FingerprintWindow), upper)
	if err != nil {
		return tapline.Attribution{}, fmt.Errorf("hits by fingerprint: %w", err)
	}
	for _, h := range hits {
		if !fingerprint.Compatible(h, e) {
			continue
		}
		convs, err := m.Raw.ConversionsByHit(ctx, app.ID, h.ID)
		if err != nil {
			return tapline.Attribution{}, fmt.Errorf("conversions of hit %s: %w", h.ID, err)
		}
		if len(convs) == 0 {
			return hit(h, tapline.MethodFingerprint), nil
		}
	}
	return tapline.Attribution{Method: tapline.MethodOrganic}, nil
}
