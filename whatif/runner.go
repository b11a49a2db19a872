package whatif

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"tapline"
)

// Runner runs the stored what-ifs (tapline.WhatIfStore) in a process that
// holds the raw store: the matcher's, or the CLI's when it can open it.
type Runner struct {
	Store    tapline.WhatIfStore
	Raw      tapline.RawStore
	Accounts tapline.AccountService
	Scratch  Scratch
	Replay   ReplayFunc
	Logger   *slog.Logger
	// Poll is the wait between looks for pending what-ifs (default 2 s);
	// Lease how long a run may take before another process may take it
	// over (default 30 minutes).
	Poll  time.Duration
	Lease time.Duration
}

func (r *Runner) logger() *slog.Logger { return cmp.Or(r.Logger, slog.Default()) }

// Loop runs pending what-ifs until ctx is done.
func (r *Runner) Loop(ctx context.Context) {
	for ctx.Err() == nil {
		run, err := r.Store.ClaimWhatIf(ctx, 0, cmp.Or(r.Lease, 30*time.Minute))
		if err != nil && ctx.Err() == nil {
			r.logger().Warn("claim a what-if", "err", err)
		}
		if run != nil {
			if err := r.Execute(ctx, run); err != nil && ctx.Err() == nil {
				r.logger().Warn("what-if", "id", run.ID, "err", err)
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(cmp.Or(r.Poll, 2*time.Second)):
		}
	}
}

// Execute runs the claimed what-if run and stores its result, or the
// error that stopped it (returned too, unless it was only stored).
func (r *Runner) Execute(ctx context.Context, run *tapline.WhatIfRun) error {
	res, err := r.execute(ctx, run)
	if ctx.Err() != nil {
		return ctx.Err() // stopping: the lease brings it back
	}
	msg := ""
	var body []byte
	if err != nil {
		msg = tapline.ErrorMessage(err)
		if tapline.ErrorCode(err) == tapline.EINTERNAL {
			r.logger().Error("what-if failed", "id", run.ID, "err", err)
		}
	} else if body, err = json.Marshal(res); err != nil {
		return fmt.Errorf("what-if %d: %w", run.ID, err)
	}
	r.logger().Info("what-if done", "id", run.ID, "app", run.AppID, "error", msg)
	return r.Store.FinishWhatIf(context.WithoutCancel(ctx), run.ID, body, msg)
}

func (r *Runner) execute(ctx context.Context, run *tapline.WhatIfRun) (*Result, error) {
	var req Request
	if err := json.Unmarshal(run.Request, &req); err != nil {
		return nil, tapline.Errorf(tapline.EINVALID, "The stored request is not a what-if: %v.", err)
	}
	req.AppID = run.AppID
	app, err := r.Accounts.App(ctx, run.AppID)
	if err != nil {
		return nil, err
	}
	links, err := r.Accounts.LinksByApp(ctx, run.AppID)
	if err != nil {
		return nil, err
	}
	return Run(ctx, r.Raw, app, links, req, r.Scratch, r.Replay, nil)
}
