package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// sources returns app 1's hits by source at hour0.
func sources(t *testing.T, db *postgres.DB) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT source, sum(count)::bigint FROM fact_hits WHERE app_id = 1 GROUP BY source`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var s string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[s] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func hitFrom(app int64, source, campaign string) tapline.FactKey {
	return tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: app, LinkID: 7, Platform: tapline.PlatformIOS,
		Source: source, Campaign: campaign}
}

// TestCampaignCap checks the bound on campaign values: an app keeps the
// first CampaignCap values of a dimension, counts later new ones as
// "(other)", keeps counting kept values under their names, and takes a
// retraction back from the row its delta went to, also in a store that
// starts without the first one's memory; other apps and dimensions have
// caps of their own.
func TestCampaignCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	fs.CampaignCap = 2
	apply := func(fs *postgres.FactStore, deltas map[tapline.FactKey]tapline.FactValue) {
		t.Helper()
		if err := fs.ApplyFacts(ctx, "m1", deltas, nil, tapline.FlushRows{}); err != nil {
			t.Fatal(err)
		}
	}
	apply(fs, map[tapline.FactKey]tapline.FactValue{
		hitFrom(1, "facebook", "spring"): {Count: 3}, hitFrom(1, "google", "spring"): {Count: 2}, hitFrom(1, "tiktok", "fall"): {Count: 1},
		hitFrom(1, "", ""): {Count: 4},
	})
	// Decided in value order: facebook and google kept, tiktok the third.
	want := map[string]int64{"facebook": 3, "google": 2, tapline.CampaignOther: 1, "": 4}
	if got := sources(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hits by source %v, want %v", got, want)
	}
	apply(fs, map[tapline.FactKey]tapline.FactValue{
		hitFrom(1, "google", "spring"): {Count: 1}, hitFrom(1, "bing", "spring"): {Count: 5}, hitFrom(2, "bing", "x"): {Count: 1},
	})
	want = map[string]int64{"facebook": 3, "google": 3, tapline.CampaignOther: 6, "": 4}
	if got := sources(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the cap: hits by source %v, want %v", got, want)
	}
	// A fresh store (another matcher) decides the same from the table.
	fresh := postgres.NewFactStore(db)
	fresh.CampaignCap = 2
	apply(fresh, map[tapline.FactKey]tapline.FactValue{hitFrom(1, "tiktok", "fall"): {Count: -1}, hitFrom(1, "facebook", "spring"): {Count: -1}})
	want = map[string]int64{"facebook": 2, "google": 3, tapline.CampaignOther: 5, "": 4}
	if got := sources(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after retractions: hits by source %v, want %v", got, want)
	}
	// The campaign dimension has its own cap: spring and fall kept, x in
	// app 2 too.
	if rows := factRows(t, db, "campaign_values"); len(rows) != 6 {
		t.Errorf("campaign_values %q: want app 1's facebook, google, spring, fall and app 2's bing, x", rows)
	}
}

// TestCampaignCapConcurrent applies new values from several stores at
// once: the cap holds, no transaction deadlocks, and every hit is counted.
func TestCampaignCapConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	const writers, each, limit = 4, 10, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fs := postgres.NewFactStore(db)
			fs.CampaignCap = limit
			for i := range each {
				// Each writer's batch holds its own new value and a shared one.
				deltas := map[tapline.FactKey]tapline.FactValue{
					hitFrom(1, fmt.Sprintf("w%d-%02d", w, i), ""): {Count: 1},
					hitFrom(1, fmt.Sprintf("shared-%02d", i), ""): {Count: 1},
				}
				if err := fs.ApplyFacts(ctx, "", deltas, nil, tapline.FlushRows{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := sources(t, db)
	var total int64
	for _, n := range got {
		total += n
	}
	if total != 2*writers*each {
		t.Errorf("%d hits counted, want %d", total, 2*writers*each)
	}
	if n := len(got) - 1; n != limit || got[tapline.CampaignOther] == 0 { // less "(other)"
		t.Errorf("%d sources kept (%v), want the cap of %d and the rest as other", n, got, limit)
	}
}
