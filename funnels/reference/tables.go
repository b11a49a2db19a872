package reference

import (
	"context"
	"database/sql"
	"fmt"

	"tapline"
)

// Tables is data loaded into the temporary tables of one connection, so
// that loading and querying can be timed apart (the funnel benchmark) and
// several funnels counted over one load. Run is Load, Query and Close.
type Tables struct {
	conn    *sql.Conn
	appID   int64
	handoff bool
}

// Load loads data as of h (nil: no handoff) into temporary tables on a
// connection of db, which the Tables hold until Close. data must be as Run
// requires.
func Load(ctx context.Context, db *sql.DB, data *Data, h Handoff) (*Tables, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb connection: %w", err)
	}
	t := &Tables{conn: conn, appID: data.AppID, handoff: h != nil}
	for _, s := range schema {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Close()
			return nil, fmt.Errorf("create table: %w", err)
		}
	}
	if err := load(conn, data, h); err != nil {
		t.Close()
		return nil, err
	}
	if err := check(ctx, conn, data.AppID); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Query returns the fact_funnel_steps rows of funnel def over the loaded
// data, as Run does.
func (t *Tables) Query(ctx context.Context, def *tapline.FunnelDefinition) (map[Key]Value, error) {
	if err := def.Validate(0, nil); err != nil {
		return nil, fmt.Errorf("funnel definition: %w", err)
	}
	q, args := render(def, t.appID, t.handoff)
	rows, err := t.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("funnel query: %w", err)
	}
	defer rows.Close()
	return ReadResults(rows)
}

// Close drops the tables and returns the connection to db.
func (t *Tables) Close() error {
	for _, name := range tables {
		_, _ = t.conn.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+name)
	}
	return t.conn.Close()
}
