package matcher

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/funnels"
)

// Live funnels. docs/funnels.md ("Live and backfill") tells the whole
// story; in short:
//
//   - The matcher switches a pending funnel version on partition by
//     partition, between two records: the partition's next offset is its
//     handoff, stored with the next flush, in the flush's transaction.
//   - A record at or past a version's handoff is not processed until the
//     version's handoff is complete (every partition of both topics has
//     one), so that every record before the handoff is in the raw store.
//   - For each installation the record touches it evaluates the version
//     over the raw rows and emits the difference to what is counted: the
//     FunnelState in the raw store, or, when the state has no outcome for
//     the version yet, the outcome as of the handoff, which is exactly what
//     the backfill counts.

// liveVersion is a funnel version as the matcher counts it. Only ready
// and, before it, handoff change after it is made.
type liveVersion struct {
	id, app int64
	c       *funnels.Compiled
	needHit bool            // evaluating it reads the attributed hit's parameters
	handoff funnels.Handoff // set once, before ready
	ready   atomic.Bool     // the handoff is complete
}

// funnelSet is the registry of versions, replaced whole on each refresh:
// the versions and what the last refresh loaded of each (status and
// handoff so far).
type funnelSet struct {
	byID   map[int64]*liveVersion
	loaded map[int64]*tapline.Funnel
}

// partFunnels is what one partition of the current generation counts:
// from holds, per version, the first offset counted live. The worker holds
// mu while it processes a record, so a switch falls between two records.
type partFunnels struct {
	mu   sync.Mutex
	next int64
	from map[int64]int64
}

// installLocks serialise the funnel state of one installation within this
// matcher; conditional writes guard it across matchers.
const installLockStripes = 256

// funnelState is the matcher's funnel bookkeeping.
type funnelState struct {
	set        atomic.Pointer[funnelSet]
	partsMu    sync.Mutex
	parts      map[tapline.Partition]*partFunnels // of the current generation
	partitions int                                // of both topics
	handoffMu  sync.Mutex
	handoffs   []tapline.FunnelHandoff // switched, not yet stored
	refresh    chan struct{}
	locks      [installLockStripes]sync.Mutex
}

func (fs *funnelState) lockInstall(appID int64, installID string) func() {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s", appID, installID)
	mu := &fs.locks[h.Sum32()%installLockStripes]
	mu.Lock()
	return mu.Unlock
}

// refreshFunnels loads the active versions, switches pending ones on for
// the partitions of the current generation and marks complete handoffs.
func (m *Matcher) refreshFunnels(ctx context.Context) error {
	if m.Funnels == nil {
		return nil
	}
	active, err := m.Funnels.ActiveFunnels(ctx)
	if err != nil {
		return fmt.Errorf("load active funnels: %w", err)
	}
	old := m.funnels.set.Load()
	set := &funnelSet{byID: map[int64]*liveVersion{}, loaded: map[int64]*tapline.Funnel{}}
	for _, f := range active {
		var lv *liveVersion
		if old != nil && old.byID[f.VersionID] != nil {
			lv = old.byID[f.VersionID]
		} else {
			lv = &liveVersion{id: f.VersionID, app: f.AppID, c: funnels.Compile(f)}
			lv.needHit = lv.c.NeedsHitParams()
		}
		if !lv.ready.Load() && (f.Status == tapline.FunnelBackfilling || f.Status == tapline.FunnelLive) {
			lv.handoff = funnels.Handoff(f.Handoff)
			lv.ready.Store(true)
		}
		set.byID[f.VersionID] = lv
		set.loaded[f.VersionID] = f
	}
	m.funnels.set.Store(set)
	m.switchFunnels(set)
	return nil
}

// switchFunnels brings every partition of the current generation in line
// with set: versions gone are dropped, versions with a stored handoff for
// the partition count from it, pending ones are switched on now.
func (m *Matcher) switchFunnels(set *funnelSet) {
	m.funnels.partsMu.Lock()
	defer m.funnels.partsMu.Unlock()
	switched := false
	for p, pf := range m.funnels.parts {
		pf.mu.Lock()
		for vid := range pf.from {
			if set.byID[vid] == nil {
				delete(pf.from, vid)
			}
		}
		for vid, f := range set.loaded {
			if _, ok := pf.from[vid]; ok {
				continue
			}
			if h, ok := f.Handoff[p]; ok {
				pf.from[vid] = h
				continue
			}
			if f.Status != tapline.FunnelPending {
				continue // complete without this partition: a partition added since
			}
			pf.from[vid] = pf.next
			m.funnels.handoffMu.Lock()
			m.funnels.handoffs = append(m.funnels.handoffs, tapline.FunnelHandoff{
				VersionID: vid, Partition: p, Offset: pf.next, Of: m.funnels.partitions})
			m.funnels.handoffMu.Unlock()
			switched = true
		}
		pf.mu.Unlock()
	}
	if switched {
		select {
		case m.flushNow <- struct{}{}:
		default:
		}
	}
}

// startFunnels sets up the partitions of a new generation, starting at
// their stored offsets, and switches them.
func (m *Matcher) startFunnels(ctx context.Context, start map[tapline.Partition]int64, parts []tapline.Partition) {
	m.funnels.partsMu.Lock()
	m.funnels.parts = make(map[tapline.Partition]*partFunnels, len(parts))
	for _, p := range parts {
		m.funnels.parts[p] = &partFunnels{next: start[p], from: map[int64]int64{}}
	}
	m.funnels.partsMu.Unlock()
	m.funnels.handoffMu.Lock()
	m.funnels.handoffs = nil
	m.funnels.handoffMu.Unlock()
	if m.Funnels == nil {
		return
	}
	if err := m.refreshFunnels(ctx); err != nil {
		m.Logger.Warn("refresh funnels at the start of a generation", "err", err)
		if set := m.funnels.set.Load(); set != nil {
			m.switchFunnels(set)
		}
	}
}

// stopFunnels forgets the generation's partitions and unstored handoffs.
func (m *Matcher) stopFunnels() {
	m.funnels.partsMu.Lock()
	m.funnels.parts = nil
	m.funnels.partsMu.Unlock()
	m.funnels.handoffMu.Lock()
	m.funnels.handoffs = nil
	m.funnels.handoffMu.Unlock()
}

// takeHandoffs returns the switched handoffs not yet stored.
func (m *Matcher) takeHandoffs() []tapline.FunnelHandoff {
	m.funnels.handoffMu.Lock()
	defer m.funnels.handoffMu.Unlock()
	hs := m.funnels.handoffs
	m.funnels.handoffs = nil
	return hs
}

// restoreHandoffs puts back handoffs whose flush did not land.
func (m *Matcher) restoreHandoffs(hs []tapline.FunnelHandoff) {
	if len(hs) == 0 {
		return
	}
	m.funnels.handoffMu.Lock()
	defer m.funnels.handoffMu.Unlock()
	m.funnels.handoffs = append(hs, m.funnels.handoffs...)
}

func (m *Matcher) funnelLoop(ctx context.Context) {
	if m.Funnels == nil {
		return
	}
	t := time.NewTicker(m.Config.FunnelPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.funnels.refresh:
		}
		if err := m.refreshFunnels(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn("refresh funnels", "err", err)
		}
	}
}

// partition returns the funnel bookkeeping of a partition of the current
// generation, nil when it has none.
func (m *Matcher) partition(topic string, partition int) *partFunnels {
	m.funnels.partsMu.Lock()
	defer m.funnels.partsMu.Unlock()
	return m.funnels.parts[tapline.Partition{Topic: topic, Partition: partition}]
}

// versionsFor returns the versions the record at offset of pf counts, and
// whether they are all ready. pf.mu is held.
func (m *Matcher) versionsFor(pf *partFunnels, offset int64) ([]*liveVersion, bool) {
	set := m.funnels.set.Load()
	if set == nil || len(pf.from) == 0 {
		return nil, true
	}
	var out []*liveVersion
	ready := true
	for vid, from := range pf.from {
		lv := set.byID[vid]
		if lv == nil || offset < from {
			continue
		}
		out = append(out, lv)
		ready = ready && lv.ready.Load()
	}
	return out, ready
}

// awaitVersions locks pf for the record at offset and returns the versions
// it counts, once their handoffs are complete. It returns with pf.mu held,
// or with ctx's error and pf.mu free.
func (m *Matcher) awaitVersions(ctx context.Context, pf *partFunnels, offset int64) ([]*liveVersion, error) {
	waited := false
	for {
		pf.mu.Lock()
		vs, ready := m.versionsFor(pf, offset)
		if ready {
			return vs, nil
		}
		pf.mu.Unlock()
		if !waited {
			waited = true
			m.metrics.funnelWaits.Inc()
		}
		m.refreshSoon()
		if !sleep(ctx, 50*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// ofApp returns the versions of vs that belong to app.
func ofApp(vs []*liveVersion, appID int64) []*liveVersion {
	var out []*liveVersion
	for _, v := range vs {
		if v.app == appID {
			out = append(out, v)
		}
	}
	return out
}

// advanceFunnels re-evaluates installation installID in the versions vs
// after the record at pos touched it, and returns the deltas. Changes the
// installation's funnel state already records for pos (a replay) are
// emitted again as recorded; every other version of vs is evaluated anew,
// its outcome now compared with what is counted, and what changed is
// recorded in the state, by pos, before its deltas are returned. (A replay
// may count versions the first pass did not: one whose handoff a crash
// moved back to before pos.)
func (m *Matcher) advanceFunnels(ctx context.Context, app *tapline.App, installID, pos string, vs []*liveVersion) (facts.Batch, error) {
	appID := app.ID
	if len(vs) == 0 || installID == "" {
		return facts.Batch{}, nil
	}
	defer m.funnels.lockInstall(appID, installID)()
	for attempt := 0; ; attempt++ {
		b := facts.Batch{}
		st, err := m.Raw.FunnelState(ctx, appID, installID)
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			st = nil
		case err != nil:
			return nil, fmt.Errorf("funnel state of %s: %w", installID, err)
		}
		rest := vs
		if st != nil {
			var covered map[int64]bool
			for _, ch := range st.History {
				if ch.By != pos {
					continue
				}
				if covered == nil {
					covered = map[int64]bool{}
				}
				for _, c := range ch.Changes {
					b.FunnelChange(appID, c.Version, &c.From, &c.To)
					covered[c.Version] = true
				}
			}
			if covered != nil {
				rest = slices.DeleteFunc(slices.Clone(vs), func(v *liveVersion) bool { return covered[v.id] })
			}
		}
		if len(rest) == 0 {
			return b, nil
		}
		change, err := m.evaluateFunnels(ctx, app, installID, pos, st, rest)
		if err != nil || change == nil {
			return b, err
		}
		next := &tapline.FunnelState{AppID: appID, InstallID: installID, Outcomes: map[int64]tapline.FunnelOutcome{}}
		if st != nil {
			next.Outcomes = maps.Clone(st.Outcomes)
			next.History = slices.Clone(st.History)
		}
		for _, c := range change.Changes {
			next.Outcomes[c.Version] = c.To
		}
		next.History = append(next.History, *change)
		next.UpdatedAt = m.Now().UTC()
		err = m.Raw.PutFunnelState(ctx, next)
		if tapline.ErrorCode(err) == tapline.ECONFLICT && attempt < 10 {
			continue // another matcher moved it on: evaluate again
		} else if err != nil {
			return nil, fmt.Errorf("store funnel state of %s: %w", installID, err)
		}
		for _, c := range change.Changes {
			b.FunnelChange(appID, c.Version, &c.From, &c.To)
		}
		m.metrics.funnelChanges.Add(float64(len(change.Changes)))
		return b, nil
	}
}

// evaluateFunnels returns what the record at pos changes of an
// installation's outcomes, nil for nothing.
func (m *Matcher) evaluateFunnels(ctx context.Context, app *tapline.App, installID, pos string, st *tapline.FunnelState, vs []*liveVersion) (*tapline.FunnelChange, error) {
	appID := app.ID
	// An outcome whose entry is about to leave the raw store (its tap
	// leaves up to a window earlier: the widest of the app and its links)
	// is final: evaluated again over rows partly gone it would count a
	// different, wrong path.
	lw, err := m.linkWindows(ctx, app)
	if err != nil {
		return nil, err
	}
	click, fp := lw.widest(app)
	finalBefore := m.Now().Add(-(app.Retention - max(click, fp))).Unix()
	final := func(o *tapline.FunnelOutcome) bool { return len(o.Steps) > 0 && o.Hour+3600 <= finalBefore }
	events, err := m.Raw.EventsByInstall(ctx, appID, installID)
	if err != nil {
		return nil, fmt.Errorf("events of install %s: %w", installID, err)
	}
	conv, err := m.Raw.ConversionByInstall(ctx, appID, installID)
	switch {
	case tapline.ErrorCode(err) == tapline.ENOTFOUND:
		conv = nil
	case err != nil:
		return nil, fmt.Errorf("conversion of install %s: %w", installID, err)
	}
	hits := map[string]map[string]string{}
	hitParams := func(p *funnels.Path) error {
		if !p.Tapped() || p.HitParams != nil {
			return nil
		}
		id := p.Attribution.HitID
		params, ok := hits[id]
		if !ok {
			h, err := m.Raw.HitAt(ctx, appID, id, p.Attribution.HitTime)
			switch {
			case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			case err != nil:
				return fmt.Errorf("hit %s: %w", id, err)
			default:
				params = h.Params
			}
			hits[id] = params
		}
		p.HitParams = params
		return nil
	}
	now := funnels.NewPath(events, conv, nil)
	var ev funnels.Evaluator
	change := &tapline.FunnelChange{By: pos}
	for _, v := range vs {
		if v.needHit {
			if err := hitParams(&now); err != nil {
				return nil, err
			}
		}
		after := ev.Evaluate(v.c, &now)
		before, counted := tapline.FunnelOutcome{}, false
		if st != nil {
			before, counted = st.Outcomes[v.id]
		}
		if !counted {
			then := funnels.NewPath(events, conv, v.handoff)
			if v.needHit {
				if err := hitParams(&then); err != nil {
					return nil, err
				}
			}
			before = ev.Evaluate(v.c, &then)
		}
		if final(&before) {
			continue
		}
		if !after.Equal(&before) {
			change.Changes = append(change.Changes, tapline.FunnelVersionChange{Version: v.id, From: before, To: after})
		}
	}
	if len(change.Changes) == 0 {
		return nil, nil
	}
	return change, nil
}

// refreshSoon asks the funnel loop to load the versions now.
func (m *Matcher) refreshSoon() {
	select {
	case m.funnels.refresh <- struct{}{}:
	default:
	}
}
