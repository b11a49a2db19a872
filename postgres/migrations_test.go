package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// migrationDB opens a fresh migrated database and a plain connection to
// it, for tests that move its schema up and down.
func migrationDB(t *testing.T) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	db := postgres.NewDB(url)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return db, conn
}

// TestClickToInstallMillisMigration checks migration 5: the whole seconds
// that fact_conversions summed before become milliseconds, and back down.
func TestClickToInstallMillisMigration(t *testing.T) {
	ctx := context.Background()
	db, conn := migrationDB(t)
	sum := func() (n int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT sum FROM fact_conversions WHERE app_id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Down to version 4, where the sum is whole seconds: 3 conversions, 95 s.
	if err := db.MigrateTo(4); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fact_conversions (app_id, hour, link_id, platform, method, count, sum)
		VALUES (1, '2024-03-01 10:00+00', 7, 'ios', 'fingerprint', 3, 95)`); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(5); err != nil {
		t.Fatal(err)
	}
	if got := sum(); got != 95_000 {
		t.Errorf("after the migration: sum %d, want 95000 milliseconds", got)
	}
	if err := db.MigrateTo(4); err != nil {
		t.Fatal(err)
	}
	if got := sum(); got != 95 {
		t.Errorf("after the down migration: sum %d, want 95 seconds", got)
	}
}

// TestCampaignDimsMigration checks migration 6: rows from before it are
// under no campaign, and going back down folds rows that differ only in
// their campaign into one.
func TestCampaignDimsMigration(t *testing.T) {
	ctx := context.Background()
	db, conn := migrationDB(t)
	if err := db.MigrateTo(5); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fact_hits (app_id, hour, link_id, platform, count) VALUES (1, '2024-03-01 10:00+00', 7, 'ios', 4)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var source, campaign string
	if err := conn.QueryRow(ctx, `SELECT source, campaign FROM fact_hits WHERE app_id = 1`).Scan(&source, &campaign); err != nil || source != "" || campaign != "" {
		t.Fatalf("an old row has source %q, campaign %q (%v), want none", source, campaign, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fact_hits (app_id, hour, link_id, platform, source, campaign, count)
		VALUES (1, '2024-03-01 10:00+00', 7, 'ios', 'facebook', 'spring', 3), (1, '2024-03-01 10:00+00', 7, 'ios', 'google', '', 2)`); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(5); err != nil {
		t.Fatal(err)
	}
	var rows, count int64
	if err := conn.QueryRow(ctx, `SELECT count(*), sum(count) FROM fact_hits WHERE app_id = 1`).Scan(&rows, &count); err != nil || rows != 1 || count != 9 {
		t.Fatalf("after the down migration: %d rows, %d hits (%v), want one row of 9", rows, count, err)
	}
}
