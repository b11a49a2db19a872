package funnels

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"tapline"
)

// Runner backfills every funnel version that is waiting for it, one at a
// time, until its context ends: the all-in-one runs one in-process, and
// every scale-out matcher runs one, sharing the work by range claims.
type Runner struct {
	// Backfill is the template of each run (Raw, Store, Workers, Rate…).
	Backfill Backfill
	// Poll is how often to look for versions to backfill; 0 means 2 s.
	Poll time.Duration

	mu   sync.Mutex
	wake chan struct{}
}

// Wake makes the runner look for work now, as after a funnel was saved.
func (r *Runner) Wake() {
	r.mu.Lock()
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	w := r.wake
	r.mu.Unlock()
	select {
	case w <- struct{}{}:
	default:
	}
}

// Run backfills versions until ctx is done.
func (r *Runner) Run(ctx context.Context) {
	r.Wake() // look at once
	r.mu.Lock()
	wake := r.wake
	r.mu.Unlock()
	logger := cmp.Or(r.Backfill.Logger, slog.Default())
	poll := cmp.Or(r.Poll, 2*time.Second)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		for ctx.Err() == nil {
			f, err := r.next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("look for funnel backfills", "err", err)
				}
				break
			}
			if f == nil {
				break
			}
			r.run(ctx, logger, f)
		}
	}
}

// next returns the oldest version waiting for its backfill, nil for none.
func (r *Runner) next(ctx context.Context) (*tapline.Funnel, error) {
	fs, err := r.Backfill.Store.ActiveFunnels(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if f.Status == tapline.FunnelBackfilling {
			rs, err := r.Backfill.Store.Ranges(ctx, f.VersionID)
			if err != nil {
				return nil, err
			}
			if len(rs) == 0 || !allDone(rs) {
				return f, nil
			}
		}
	}
	return nil, nil
}

func allDone(rs []*tapline.BackfillRange) bool {
	for _, r := range rs {
		if !r.Done {
			return false
		}
	}
	return true
}

func (r *Runner) run(ctx context.Context, logger *slog.Logger, f *tapline.Funnel) {
	b := r.Backfill
	start := time.Now()
	logger.Info("funnel backfill started", "funnel", f.ID, "version", f.VersionID, "app", f.AppID)
	st, err := b.Run(ctx, f.VersionID)
	if err != nil {
		if ctx.Err() == nil {
			logger.Error("funnel backfill failed", "funnel", f.ID, "version", f.VersionID, "err", err)
			// Let the poll interval pass before the next attempt.
			t := time.NewTimer(cmp.Or(r.Poll, 2*time.Second))
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		return
	}
	logger.Info("funnel backfill done", "funnel", f.ID, "version", f.VersionID, "rows", st.Rows,
		"installations", st.Installations, "seconds", time.Since(start).Seconds())
}
