package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"tapline/postgres/pgtest"
)

func TestURLGivesFreshMigratedDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u1, u2 := pgtest.URL(t), pgtest.URL(t)
	if u1 == u2 {
		t.Fatalf("URL returned %q twice", u1)
	}
	c1, err := pgx.Connect(ctx, u1)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	c2, err := pgx.Connect(ctx, u2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	if _, err := c1.Exec(ctx, `INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES ('c', 't', 0, 1)`); err != nil {
		t.Fatalf("insert into migrated table: %v", err)
	}
	var n int
	if err := c2.QueryRow(ctx, `SELECT count(*) FROM consumer_offsets`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second database sees %d rows of the first, want 0", n)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	if db.URL == "" {
		t.Fatal("Open returned a DB without URL")
	}
	if err := db.Migrate(context.Background()); err != nil {
		t.Errorf("Migrate on a migrated database: %v", err)
	}
}
