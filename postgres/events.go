package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// MaxEventNames bounds the names EventNames returns.
const MaxEventNames = 1000

// EventNames returns the names of the app's events counted in fact_events
// from the hour of since on, most frequent first (then by name), at most
// limit of them (at most MaxEventNames; 0 or less means MaxEventNames).
// It reads the fact table only, never raw events: the funnel builder
// offers these names.
func (r *Reports) EventNames(ctx context.Context, appID int64, since time.Time, limit int) ([]string, error) {
	if appID <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "app_id: required")
	}
	if limit <= 0 || limit > MaxEventNames {
		limit = MaxEventNames
	}
	rows, err := r.db.pool.Query(ctx, `
		SELECT event_name FROM fact_events
		WHERE app_id = $1 AND hour >= $2 AND event_name <> ''
		GROUP BY event_name HAVING sum(count) > 0
		ORDER BY sum(count) DESC, event_name
		LIMIT $3`, appID, since.Truncate(time.Hour), limit)
	if err != nil {
		return nil, fmt.Errorf("event names: %w", translate(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("event names: %w", translate(err))
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}
