package postgres

import (
	"context"
	"fmt"
)

// Ping checks that the server answers, on a connection of the pool. It
// returns EUNAVAILABLE when the server cannot be reached and an error when
// the DB is nil or not open.
func (db *DB) Ping(ctx context.Context) error {
	if db == nil || db.pool == nil {
		return fmt.Errorf("ping postgres: the database is not open")
	}
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	return nil
}
