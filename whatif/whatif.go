// Package whatif answers "what would these installs look like under other
// attribution rules?" without changing anything: it replays an app's taps
// and installs of a time range through the matcher twice, with today's
// rules and with the hypothetical ones, each time on scratch stores, and
// compares the two: installs by link and match method under each, and the
// installs that would move. It also says how many of today's replayed
// answers equal the stored conversions, the check that the replay is
// faithful.
package whatif

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"tapline"
)

// Rules are the attribution rules a what-if changes; a zero field keeps
// the app's.
type Rules struct {
	ClickWindow         time.Duration `json:"click_window,omitempty"`
	FingerprintWindow   time.Duration `json:"fingerprint_window,omitempty"`
	FingerprintMinScore *float64      `json:"fingerprint_min_score,omitempty"`
}

// Validate checks the rules' bounds.
func (r Rules) Validate() error {
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"click_window", r.ClickWindow}, {"fingerprint_window", r.FingerprintWindow}} {
		if w.d < 0 || w.d > tapline.MaxLinkWindow {
			return tapline.Errorf(tapline.EINVALID, "%s: from 0 (the app's) to %s", w.name, tapline.MaxLinkWindow)
		}
	}
	if s := r.FingerprintMinScore; s != nil && (*s < -tapline.MaxFingerprintMinScore || *s > tapline.MaxFingerprintMinScore) {
		return tapline.Errorf(tapline.EINVALID, "fingerprint_min_score: from %g to %g", -tapline.MaxFingerprintMinScore, tapline.MaxFingerprintMinScore)
	}
	if r.ClickWindow == 0 && r.FingerprintWindow == 0 && r.FingerprintMinScore == nil {
		return tapline.Errorf(tapline.EINVALID, "Change at least one rule: click_window, fingerprint_window or fingerprint_min_score.")
	}
	return nil
}

// Apply returns a copy of app with the rules r changes.
func (r Rules) Apply(app *tapline.App) *tapline.App {
	a := *app
	if r.ClickWindow > 0 {
		a.ClickWindow = r.ClickWindow
	}
	if r.FingerprintWindow > 0 {
		a.FingerprintWindow = r.FingerprintWindow
	}
	if r.FingerprintMinScore != nil {
		a.FingerprintMinScore = *r.FingerprintMinScore
	}
	return &a
}

// Request is a what-if: the installs of app AppID from From to To (by
// install time, To excluded) under Rules.
type Request struct {
	AppID int64     `json:"app_id"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Rules Rules     `json:"rules"`
}

// MaxRange bounds a what-if's range.
const MaxRange = 62 * 24 * time.Hour

// Validate checks r.
func (r *Request) Validate() error {
	if r.AppID <= 0 {
		return tapline.Errorf(tapline.EINVALID, "app: required")
	}
	if !r.From.Before(r.To) || r.To.Sub(r.From) > MaxRange {
		return tapline.Errorf(tapline.EINVALID, "from, to: from before to, at most %d days apart", int(MaxRange/(24*time.Hour)))
	}
	return r.Rules.Validate()
}

// Answer is an install's attribution, as a what-if compares them.
type Answer struct {
	LinkID int64  `json:"link_id,omitempty"`
	Method string `json:"method"`
	HitID  string `json:"hit_id,omitempty"`
}

func answerOf(c *tapline.Conversion) Answer {
	if c == nil {
		return Answer{Method: string(tapline.MethodOrganic)}
	}
	return Answer{LinkID: c.LinkID, Method: string(c.Method), HitID: c.HitID}
}

// Count is the installs of one link and method under both rules.
type Count struct {
	LinkID       int64  `json:"link_id"`
	Method       string `json:"method"`
	Today        int    `json:"today"`
	Hypothetical int    `json:"hypothetical"`
}

// Move is an install the hypothetical rules credit otherwise.
type Move struct {
	EventID     string    `json:"event_id"`
	InstallID   string    `json:"install_id"`
	InstallTime time.Time `json:"install_time"`
	Today       Answer    `json:"today"`
	Hyp         Answer    `json:"hypothetical"`
}

// MaxMoves bounds the moves a result lists (Moved counts them all).
const MaxMoves = 1000

// Result is a what-if's answer.
type Result struct {
	Request
	// Today are the app's rules as replayed; Hypothetical the request's
	// applied to them.
	Today        Rules   `json:"today"`
	Hypothetical Rules   `json:"hypothetical"`
	Hits         int     `json:"hits"`
	Installs     int     `json:"installs"`
	Counts       []Count `json:"counts"`
	Moved        int     `json:"moved"`
	Moves        []Move  `json:"moves"`
	// StoredSame of StoredCompared installs have, replayed with today's
	// rules, the attribution their stored conversion has.
	StoredSame     int           `json:"stored_same"`
	StoredCompared int           `json:"stored_compared"`
	Elapsed        time.Duration `json:"elapsed"`
	Finished       time.Time     `json:"finished"`
}

// Scratch gives a replay empty stores, and a function to drop them.
type Scratch func(ctx context.Context) (tapline.Bus, tapline.RawStore, func(), error)

// ReplayFunc is matcher.Replay.
type ReplayFunc func(ctx context.Context, bus tapline.Bus, raw tapline.RawStore, app *tapline.App, links []*tapline.Link, hits []*tapline.Hit, installs []*tapline.Event) (map[string]*tapline.Conversion, error)

// MaxRows bounds the hits and installs a what-if loads.
const MaxRows = 5_000_000

// Observe, given to Run, sees each replay's scratch raw store before it is
// dropped: "today" and "hypothetical" (the bench scores both against its
// population's truth).
type Observe func(replay string, raw tapline.RawStore) error

// Run answers req for app (its links given) from the raw store src,
// replaying with replay on stores from scratch; observe, when not nil, sees
// each replay's store.
func Run(ctx context.Context, src tapline.RawStore, app *tapline.App, links []*tapline.Link, req Request, scratch Scratch, replay ReplayFunc, observe Observe) (*Result, error) {
	start := time.Now()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	app.SetDefaults()
	hyp := req.Rules.Apply(app)
	// Taps as far back as any window in force reaches (a link's own, or
	// the hypothetical), and as late as a late tap may still claim an
	// install; installs from a reinstall window before, for reinstalls.
	reach := max(app.ClickWindow, app.FingerprintWindow, hyp.ClickWindow, hyp.FingerprintWindow)
	for _, l := range links {
		reach = max(reach, l.ClickWindow, l.FingerprintWindow)
	}
	var hits []*tapline.Hit
	err := src.ScanHitRows(ctx, app.ID, req.From.Add(-reach), req.To.Add(app.LatenessHorizon), tapline.RowPos{}, func(h *tapline.Hit) error {
		c := *h
		c.Params, c.ClientHints = maps.Clone(h.Params), maps.Clone(h.ClientHints)
		hits = append(hits, &c)
		if len(hits) > MaxRows {
			return tapline.Errorf(tapline.ETOOLARGE, "More than %d taps in the range: choose a shorter one.", MaxRows)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("what-if: scan taps: %w", err)
	}
	var installs []*tapline.Event
	err = src.ScanEventRows(ctx, app.ID, req.From.Add(-app.ReinstallWindow), req.To, tapline.RowPos{}, func(e *tapline.Event) error {
		if e.Kind != tapline.KindInstall {
			return nil
		}
		c := *e
		c.Params = maps.Clone(e.Params)
		installs = append(installs, &c)
		if len(installs) > MaxRows {
			return tapline.Errorf(tapline.ETOOLARGE, "More than %d installs in the range: choose a shorter one.", MaxRows)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("what-if: scan installs: %w", err)
	}
	run := func(name string, a *tapline.App) (map[string]*tapline.Conversion, error) {
		bus, raw, drop, err := scratch(ctx)
		if err != nil {
			return nil, fmt.Errorf("what-if: scratch stores: %w", err)
		}
		defer drop()
		out, err := replay(ctx, bus, raw, a, links, hits, installs)
		if err == nil && observe != nil {
			err = observe(name, raw)
		}
		return out, err
	}
	today, err := run("today", app)
	if err != nil {
		return nil, err
	}
	then, err := run("hypothetical", hyp)
	if err != nil {
		return nil, err
	}

	res := &Result{Request: req, Hits: len(hits),
		Today:        Rules{ClickWindow: app.ClickWindow, FingerprintWindow: app.FingerprintWindow, FingerprintMinScore: &app.FingerprintMinScore},
		Hypothetical: Rules{ClickWindow: hyp.ClickWindow, FingerprintWindow: hyp.FingerprintWindow, FingerprintMinScore: &hyp.FingerprintMinScore}}
	type key struct {
		link   int64
		method string
	}
	counts := map[key]*Count{}
	count := func(a Answer) *Count {
		k := key{a.LinkID, a.Method}
		if counts[k] == nil {
			counts[k] = &Count{LinkID: a.LinkID, Method: a.Method}
		}
		return counts[k]
	}
	seen := map[string]bool{}
	for _, e := range installs {
		if e.Time.Before(req.From) || !e.Time.Before(req.To) || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		res.Installs++
		t, h := answerOf(today[e.ID]), answerOf(then[e.ID])
		count(t).Today++
		count(h).Hypothetical++
		if t != h {
			res.Moved++
			if len(res.Moves) < MaxMoves {
				res.Moves = append(res.Moves, Move{EventID: e.ID, InstallID: e.InstallID, InstallTime: e.Time, Today: t, Hyp: h})
			}
		}
		stored, err := src.Conversion(ctx, app.ID, tapline.ConversionID(e.ID))
		switch {
		case err == nil:
			res.StoredCompared++
			if answerOf(stored) == t {
				res.StoredSame++
			}
		case tapline.ErrorCode(err) != tapline.ENOTFOUND:
			return nil, fmt.Errorf("what-if: stored conversion of %s: %w", e.ID, err)
		}
	}
	for _, c := range counts {
		res.Counts = append(res.Counts, *c)
	}
	slices.SortFunc(res.Counts, func(a, b Count) int {
		if c := cmp.Compare(a.LinkID, b.LinkID); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	res.Finished = time.Now().UTC()
	res.Elapsed = res.Finished.Sub(start)
	return res, nil
}
