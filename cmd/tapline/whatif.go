package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/internal/node"
	"tapline/postgres"
	"tapline/whatif"
)

// parseDay reads a day (2026-11-01, UTC midnight) or an RFC 3339 time.
func parseDay(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("-%s: %q is not a day (2026-11-01) or an RFC 3339 time", flag, s)
}

// whatIf runs "tapline whatif": a what-if replay of an app's installs
// under other rules, run here when this process can open the raw store,
// else by the running tapline; the result is stored (the dashboard shows
// it) and printed.
func (m *Main) whatIf(ctx context.Context, args []string) error {
	c := m.subcommand("whatif", "-app ID -from DAY -to DAY [-click-window 3d] [-fingerprint-window 6h] [-fingerprint-min-score 4]", `Show what an app's installs from -from to -to (by install time, -to excluded) would look
like under other attribution rules, without changing anything: the matcher replays the
range's taps and installs twice on scratch stores, with today's rules and with the ones
given, and the two are compared (installs by link and match method, the installs that
would move). It also says how many of today's replayed answers equal the stored ones.
When the embedded raw store is held by the running tapline, that process runs it: this
command waits for it. The result is kept and shown on the dashboard's What-if page.`, true)
	af := c.appFlags()
	from := c.fs.String("from", "", "first day of the installs (2026-11-01), UTC")
	to := c.fs.String("to", "", "day after the last one, UTC (default: the day after -from)")
	click := c.fs.String("click-window", "", "the click window to try, such as 3d")
	fpw := c.fs.String("fingerprint-window", "", "the fingerprint window to try, such as 6h")
	score := c.fs.Float64("fingerprint-min-score", 0, "the minimum fingerprint score to try")
	wait := c.fs.Duration("wait", 30*time.Minute, "how long to wait for the running tapline to run it")
	if err := c.parseNone(args); err != nil {
		return err
	}
	var req whatif.Request
	var err error
	if *from == "" {
		return errors.New("whatif: -from: required")
	}
	if req.From, err = parseDay("from", *from); err != nil {
		return err
	}
	req.To = req.From.Add(24 * time.Hour)
	if *to != "" {
		if req.To, err = parseDay("to", *to); err != nil {
			return err
		}
	}
	if *click != "" {
		if req.Rules.ClickWindow, err = tapline.ParseWindow("-click-window", *click); err != nil {
			return describe(err)
		}
	}
	if *fpw != "" {
		if req.Rules.FingerprintWindow, err = tapline.ParseWindow("-fingerprint-window", *fpw); err != nil {
			return describe(err)
		}
	}
	if c.set("fingerprint-min-score") {
		req.Rules.FingerprintMinScore = score
	}
	db, err := m.openDB(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	accts := postgres.NewAccountService(db)
	app, err := af.app(ctx, accts)
	if err != nil {
		return describe(err)
	}
	req.AppID = app.ID
	if err := req.Validate(); err != nil {
		return describe(err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	store := postgres.NewWhatIfStore(db)
	run := &tapline.WhatIfRun{AppID: app.ID, Request: body, RequestedBy: "cli"}
	if err := store.RequestWhatIf(ctx, run); err != nil {
		return describe(err)
	}
	out := m.Stdout
	if *c.asJSON {
		out = m.Stderr
	}
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	raw, err := openRaw(ctx, c.cfg, logger)
	var locked *rawLockedError
	switch {
	case errors.As(err, &locked):
		fmt.Fprintf(out, "What-if %d: %s, which runs it. Waiting for it (at most %s).\n", run.ID, locked.Error(), *wait)
		run, err = waitWhatIf(ctx, store, app.ID, run.ID, *wait)
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		defer raw.Close()
		full, ok := raw.(tapline.RawStore)
		if !ok {
			return fmt.Errorf("whatif: the raw store cannot replay")
		}
		claimed, err := store.ClaimWhatIf(ctx, run.ID, time.Hour)
		if err != nil {
			return err
		}
		if claimed == nil {
			// A matcher on another machine took it first.
			fmt.Fprintf(out, "What-if %d: another process runs it. Waiting for it (at most %s).\n", run.ID, *wait)
		} else {
			fmt.Fprintf(out, "What-if %d: replaying app %d's taps and installs from %s to %s…\n", run.ID, app.ID, req.From.Format(time.DateOnly), req.To.Format(time.DateOnly))
			r := &whatif.Runner{Store: store, Raw: full, Accounts: accts, Scratch: node.WhatIfScratch(filepath.Join(c.cfg.DataDir, "whatif")),
				Replay: node.WhatIfReplay(c.cfg, logger), Logger: logger}
			if err := r.Execute(ctx, claimed); err != nil {
				return err
			}
		}
		if run, err = waitWhatIf(ctx, store, app.ID, run.ID, *wait); err != nil {
			return err
		}
	}
	if run.Status == tapline.WhatIfFailed {
		return fmt.Errorf("what-if %d failed: %s", run.ID, run.Error)
	}
	var res whatif.Result
	if err := json.Unmarshal(run.Result, &res); err != nil {
		return fmt.Errorf("what-if %d: stored result: %w", run.ID, err)
	}
	if *c.asJSON {
		return m.printJSON(res)
	}
	writeWhatIf(m.Stdout, run.ID, &res)
	return nil
}

// waitWhatIf polls run id until it is done or failed.
func waitWhatIf(ctx context.Context, store tapline.WhatIfStore, appID, id int64, wait time.Duration) (*tapline.WhatIfRun, error) {
	deadline := time.Now().Add(wait)
	for {
		run, err := store.WhatIf(ctx, appID, id)
		if err != nil {
			return nil, err
		}
		if run.Status == tapline.WhatIfDone || run.Status == tapline.WhatIfFailed {
			return run, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("what-if %d is still %s after %s; its result will be on the dashboard's What-if page", id, run.Status, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeWhatIf prints a result for a person.
func writeWhatIf(w io.Writer, id int64, r *whatif.Result) {
	fmt.Fprintf(w, "What-if %d, app %d, installs from %s to %s (%s):\n", id, r.AppID, r.From.Format(time.DateOnly), r.To.Format(time.DateOnly), r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  rules today: %s\n  rules tried: %s\n", describeRules(r.Today), describeRules(r.Hypothetical))
	fmt.Fprintf(w, "  %d installs (%d taps replayed); %d would move\n", r.Installs, r.Hits, r.Moved)
	fmt.Fprintf(w, "  replay check: %d of %d stored conversions replayed to the same attribution today\n\n", r.StoredSame, r.StoredCompared)
	t := newTable("link", "method", "today", "tried", "change").alignRight(2, 3, 4)
	for _, c := range r.Counts {
		link := strconv.FormatInt(c.LinkID, 10)
		if c.LinkID == 0 {
			link = "–"
		}
		t.add(link, c.Method, strconv.Itoa(c.Today), strconv.Itoa(c.Hypothetical), fmt.Sprintf("%+d", c.Hypothetical-c.Today))
	}
	t.write(w)
	if len(r.Moves) > 0 {
		fmt.Fprintln(w, "\nInstalls that would move:")
		mt := newTable("install", "at", "today", "tried")
		for i, mv := range r.Moves {
			if i == 20 {
				break
			}
			mt.add(mv.InstallID, mv.InstallTime.UTC().Format(time.DateTime), answer(mv.Today), answer(mv.Hyp))
		}
		mt.write(w)
		if r.Moved > 20 {
			fmt.Fprintf(w, "… and %d more (-json lists up to %d)\n", r.Moved-20, whatif.MaxMoves)
		}
	}
}

func describeRules(r whatif.Rules) string {
	var parts []string
	parts = append(parts, "click window "+r.ClickWindow.String(), "fingerprint window "+r.FingerprintWindow.String())
	if r.FingerprintMinScore != nil {
		parts = append(parts, "minimum fingerprint score "+strconv.FormatFloat(*r.FingerprintMinScore, 'g', -1, 64))
	}
	return strings.Join(parts, ", ")
}

func answer(a whatif.Answer) string {
	if a.HitID == "" {
		return a.Method
	}
	return fmt.Sprintf("%s, link %d (tap %s)", a.Method, a.LinkID, a.HitID)
}
