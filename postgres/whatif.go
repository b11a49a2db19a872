package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// WhatIfStore keeps what-if runs.
type WhatIfStore struct{ db *DB }

var _ tapline.WhatIfStore = (*WhatIfStore)(nil)

// NewWhatIfStore returns a WhatIfStore on an opened, migrated db.
func NewWhatIfStore(db *DB) *WhatIfStore { return &WhatIfStore{db: db} }

const whatIfColumns = `id, app_id, request, status, result, error, requested_by, created_at, started_at, finished_at`

func scanWhatIf(r pgx.CollectableRow) (*tapline.WhatIfRun, error) {
	var w tapline.WhatIfRun
	var req, res []byte
	if err := r.Scan(&w.ID, &w.AppID, &req, &w.Status, &res, &w.Error, &w.RequestedBy, &w.CreatedAt, &w.StartedAt, &w.FinishedAt); err != nil {
		return nil, err
	}
	w.Request = req
	if res != nil {
		w.Result = res
	}
	return &w, nil
}

// RequestWhatIf stores r as pending.
func (s *WhatIfStore) RequestWhatIf(ctx context.Context, r *tapline.WhatIfRun) error {
	if !json.Valid(r.Request) {
		return tapline.Errorf(tapline.EINVALID, "request: not JSON")
	}
	err := s.db.pool.QueryRow(ctx, `INSERT INTO whatif_runs (app_id, request, requested_by) VALUES ($1, $2, $3)
		RETURNING id, status, created_at`, r.AppID, []byte(r.Request), storableText(r.RequestedBy)).Scan(&r.ID, &r.Status, &r.CreatedAt)
	if err != nil {
		if pgCode(err) == codeForeignKeyViolation {
			return tapline.Errorf(tapline.ENOTFOUND, "No such app.")
		}
		return fmt.Errorf("request what-if: %w", translate(err))
	}
	return nil
}

// ClaimWhatIf marks a pending run (or one whose lease ran out) running.
func (s *WhatIfStore) ClaimWhatIf(ctx context.Context, id int64, lease time.Duration) (*tapline.WhatIfRun, error) {
	rows, err := s.db.pool.Query(ctx, `UPDATE whatif_runs w SET status = 'running', started_at = now(),
		claimed_until = now() + $2 * interval '1 millisecond'
		FROM (SELECT id FROM whatif_runs
			WHERE (status = 'pending' OR status = 'running' AND claimed_until < now()) AND ($1 = 0 OR id = $1)
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) c
		WHERE w.id = c.id RETURNING `+prefixed("w.", whatIfColumns), id, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim what-if: %w", translate(err))
	}
	runs, err := pgx.CollectRows(rows, scanWhatIf)
	if err != nil {
		return nil, fmt.Errorf("claim what-if: %w", translate(err))
	}
	if len(runs) == 0 {
		return nil, nil
	}
	return runs[0], nil
}

// FinishWhatIf stores a run's result or error.
func (s *WhatIfStore) FinishWhatIf(ctx context.Context, id int64, result json.RawMessage, errMsg string) error {
	status := tapline.WhatIfDone
	var res []byte
	if errMsg != "" {
		status = tapline.WhatIfFailed
	} else {
		res = result
	}
	tag, err := s.db.pool.Exec(ctx, `UPDATE whatif_runs SET status = $2, result = $3, error = $4, finished_at = now(), claimed_until = NULL
		WHERE id = $1 AND status = 'running'`, id, string(status), res, clip(storableText(errMsg), 2000))
	if err != nil {
		return fmt.Errorf("finish what-if: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ECONFLICT, "What-if %d is not running.", id)
	}
	return nil
}

// WhatIfRuns lists an app's runs, newest first.
func (s *WhatIfStore) WhatIfRuns(ctx context.Context, appID int64, limit int) ([]*tapline.WhatIfRun, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := s.db.pool.Query(ctx, `SELECT `+whatIfColumns+` FROM whatif_runs WHERE app_id = $1 ORDER BY id DESC LIMIT $2`, appID, limit)
	if err != nil {
		return nil, fmt.Errorf("list what-ifs: %w", translate(err))
	}
	runs, err := pgx.CollectRows(rows, scanWhatIf)
	if err != nil {
		return nil, fmt.Errorf("list what-ifs: %w", translate(err))
	}
	return runs, nil
}

// WhatIf returns one run of an app.
func (s *WhatIfStore) WhatIf(ctx context.Context, appID, id int64) (*tapline.WhatIfRun, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+whatIfColumns+` FROM whatif_runs WHERE app_id = $1 AND id = $2`, appID, id)
	if err != nil {
		return nil, fmt.Errorf("what-if: %w", translate(err))
	}
	w, err := pgx.CollectExactlyOneRow(rows, scanWhatIf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No such what-if.")
	} else if err != nil {
		return nil, fmt.Errorf("what-if: %w", translate(err))
	}
	return w, nil
}
