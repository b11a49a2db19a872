package tapline

import (
	"context"
	"encoding/json"
	"time"
)

// WhatIfRun is a stored what-if (package whatif): its request, and once a
// matcher process or the CLI ran it, its result, both as package whatif's
// JSON.
type WhatIfRun struct {
	ID          int64           `json:"id"`
	AppID       int64           `json:"app_id"`
	Request     json.RawMessage `json:"request"`
	Status      WhatIfStatus    `json:"status"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	RequestedBy string          `json:"requested_by"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

// WhatIfStatus is where a what-if stands.
type WhatIfStatus string

// What-if statuses.
const (
	WhatIfPending WhatIfStatus = "pending" // waiting for a process with the raw store
	WhatIfRunning WhatIfStatus = "running"
	WhatIfDone    WhatIfStatus = "done"
	WhatIfFailed  WhatIfStatus = "failed"
)

// WhatIfStore keeps what-ifs and hands pending ones to the processes that
// hold the raw store.
type WhatIfStore interface {
	// RequestWhatIf stores r as pending, setting its ID and CreatedAt.
	RequestWhatIf(ctx context.Context, r *WhatIfRun) error
	// ClaimWhatIf marks the oldest pending what-if (or, with id > 0, that
	// one if pending) running for lease and returns it; nil when none. A
	// run whose lease ran out is pending again.
	ClaimWhatIf(ctx context.Context, id int64, lease time.Duration) (*WhatIfRun, error)
	// FinishWhatIf stores a claimed run's result, or its error.
	FinishWhatIf(ctx context.Context, id int64, result json.RawMessage, errMsg string) error
	// WhatIfRuns lists an app's what-ifs, newest first, at most limit.
	WhatIfRuns(ctx context.Context, appID int64, limit int) ([]*WhatIfRun, error)
	// WhatIf returns what-if id of app; ENOTFOUND when there is none.
	WhatIf(ctx context.Context, appID, id int64) (*WhatIfRun, error)
}
