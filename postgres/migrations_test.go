package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// TestClickToInstallMillisMigration checks migration 5: the whole seconds
// that fact_conversions summed before become milliseconds, and back down.
func TestClickToInstallMillisMigration(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	db := postgres.NewDB(url)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sum := func() (n int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT sum FROM fact_conversions WHERE app_id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Down to version 4, where the sum is whole seconds: 3 conversions, 95 s.
	if err := db.MigrateSteps(-1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fact_conversions (app_id, hour, link_id, platform, method, count, sum)
		VALUES (1, '2024-03-01 10:00+00', 7, 'ios', 'fingerprint', 3, 95)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sum(); got != 95_000 {
		t.Errorf("after the migration: sum %d, want 95000 milliseconds", got)
	}
	if err := db.MigrateSteps(-1); err != nil {
		t.Fatal(err)
	}
	if got := sum(); got != 95 {
		t.Errorf("after the down migration: sum %d, want 95 seconds", got)
	}
}
