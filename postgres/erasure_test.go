package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

const testAdID = "38400000-8cf0-11bd-b23e-10b96e40000d"

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAdIDHashKeyed checks that the conversions table keeps a keyed hash
// of the advertising id, not its SHA-256, different per app, and that the
// explorer finds it by the id in any of its written forms.
func TestAdIDHashKeyed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs, reports := postgres.NewFactStore(db), postgres.NewReports(db)
	one, two := testConversion(1, 1), testConversion(2, 1)
	two.AppID = 2
	one.AdID, two.AdID = testAdID, testAdID
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{one, two}}); err != nil {
		t.Fatal(err)
	}
	conn := pgConn(t, db)
	hashes := map[int64]string{}
	rows, err := conn.Query(ctx, `SELECT app_id, ad_id_hash FROM conversions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var app int64
		var h string
		if err := rows.Scan(&app, &h); err != nil {
			t.Fatal(err)
		}
		hashes[app] = h
	}
	if len(hashes) != 2 || hashes[1] == "" || hashes[1] == hashes[2] || hashes[1] == sha256Hex(testAdID) || len(hashes[1]) != 64 {
		t.Errorf("ad_id_hash by app = %v; want two different keyed hashes, not the SHA-256 %s", hashes, sha256Hex(testAdID))
	}
	for _, q := range []string{testAdID, " " + strings.ToUpper(testAdID) + " ", strings.ReplaceAll(testAdID, "-", "")} {
		p, err := reports.Conversions(ctx, tapline.ConversionQuery{AppID: 1, Search: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Conversions) != 1 || p.Conversions[0].ID != one.ID {
			t.Errorf("search %q found %d conversions, want %s", q, len(p.Conversions), one.ID)
		}
	}
}

// pgConn returns a plain connection to db's database.
func pgConn(t *testing.T, db *postgres.DB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestErasureMigration checks migration 18 and Migrate's rehashing: an
// unkeyed hash stored before becomes the keyed one, which the explorer's
// search by the advertising id finds.
func TestErasureMigration(t *testing.T) {
	ctx := context.Background()
	db, conn := migrationDB(t)
	if err := db.MigrateTo(16); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO conversions (app_id, id, install_id, event_id, install_time, platform,
		ad_id_hash, fingerprint, method, history, changes, updated_at)
		VALUES (1, 'cv-old', 'inst-old', 'old', now(), 'ios', $1, '203.0.113.0/24|ios', 'organic', '[]', 1, now())`,
		sha256Hex(testAdID)); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var hash, legacy string
	if err := conn.QueryRow(ctx, `SELECT ad_id_hash, ad_id_sha256 FROM conversions WHERE id = 'cv-old'`).Scan(&hash, &legacy); err != nil {
		t.Fatal(err)
	}
	if hash == "" || hash == sha256Hex(testAdID) || legacy != "" {
		t.Errorf("after Migrate: ad_id_hash %q, ad_id_sha256 %q; want a keyed hash and no SHA-256 left", hash, legacy)
	}
	p, err := postgres.NewReports(db).Conversions(ctx, tapline.ConversionQuery{AppID: 1, Search: strings.ToUpper(testAdID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Conversions) != 1 {
		t.Errorf("search by the advertising id after the migration found %d conversions, want 1", len(p.Conversions))
	}
	if err := db.MigrateTo(16); err != nil {
		t.Fatalf("down to 16: %v", err)
	}
}

// TestErasureRequests checks the life of a request: bad input, an unknown
// app, the pending request and its lease, and its completion, which strips
// the conversions table rows of the device and forgets the key.
func TestErasureRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	accounts := postgres.NewAccountService(db)
	acct := newAccount(t, accounts, "erasure")
	app := newApp(t, accounts, acct.ID, "game")
	es := postgres.NewErasureStore(db)

	for _, r := range []tapline.ErasureRequest{
		{AppID: app.ID, Kind: tapline.ErasureAdID, Key: "not-an-id", RequestedBy: "a@b"},
		{AppID: app.ID, Kind: tapline.ErasureAdID, Key: "00000000-0000-0000-0000-000000000000", RequestedBy: "a@b"},
		{AppID: app.ID, Kind: tapline.ErasureInstallID, Key: "  ", RequestedBy: "a@b"},
		{AppID: app.ID, Kind: "email", Key: "x", RequestedBy: "a@b"},
	} {
		wantCode(t, "RequestErasure("+string(r.Kind)+" "+r.Key+")", es.RequestErasure(ctx, &r), tapline.EINVALID)
	}
	wantCode(t, "RequestErasure of an unknown app",
		es.RequestErasure(ctx, &tapline.ErasureRequest{AppID: app.ID + 1000, Kind: tapline.ErasureAdID, Key: testAdID, RequestedBy: "a@b"}), tapline.ENOTFOUND)

	// The device's conversion, and another device's.
	fs := postgres.NewFactStore(db)
	mine, other := testConversion(1, 2), testConversion(2, 2)
	mine.AppID, other.AppID = app.ID, app.ID
	mine.AdID, other.AdID = testAdID, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	// Postback deliveries of both, carrying their advertising ids: one of
	// the device's delivered, one pending.
	now := time.Now().UTC()
	delivery := func(key string, c *tapline.Conversion) *tapline.Delivery {
		return &tapline.Delivery{Key: key, AppID: app.ID, PostbackID: 1, Network: "nw", Trigger: "install", ConversionID: c.ID,
			Method: "POST", URL: "https://nw.example/pb?gaid=" + c.AdID, Body: []byte(`{"gaid":"` + c.AdID + `"}`),
			Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now}
	}
	pbs := postgres.NewPostbackService(db)
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{mine, other},
		Deliveries: []*tapline.Delivery{delivery("mine-1", mine), delivery("mine-2", mine), delivery("other", other)}}); err != nil {
		t.Fatal(err)
	}
	all, err := pbs.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.Key == "mine-1" {
			if err := pbs.RecordAttempt(ctx, d.ID, 0, tapline.DeliveryDelivered, now, tapline.DeliveryResult{Code: 200, Body: "gaid " + d.URL}); err != nil {
				t.Fatal(err)
			}
		}
	}

	r := &tapline.ErasureRequest{AppID: app.ID, Kind: tapline.ErasureAdID, Key: " " + strings.ToUpper(testAdID), RequestedBy: "erasure@example.com"}
	if err := es.RequestErasure(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || r.Key != testAdID || r.KeyHash == "" || r.RequestedAt.IsZero() {
		t.Errorf("recorded request = %+v; want an id, the normalised key, its hash and a time", r)
	}
	claimed, err := es.ClaimErasure(ctx, time.Minute)
	if err != nil || claimed == nil || claimed.ID != r.ID || claimed.Key != testAdID {
		t.Fatalf("ClaimErasure = %+v, %v; want request %d with its key", claimed, err, r.ID)
	}
	if again, err := es.ClaimErasure(ctx, time.Minute); err != nil || again != nil {
		t.Errorf("ClaimErasure while leased = %+v, %v; want none", again, err)
	}
	ids, err := es.ErasureConversions(ctx, claimed)
	if err != nil || len(ids) != 1 || ids[0] != mine.ID {
		t.Errorf("ErasureConversions = %v, %v; want [%s]", ids, err, mine.ID)
	}
	counts := tapline.ErasureCounts{Hits: 2, Events: 3, Conversions: 1, HitsStripped: 1}
	if err := es.FinishErasure(ctx, claimed, nil, counts); err != nil {
		t.Fatal(err)
	}
	got, err := es.Erasure(ctx, app.ID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	counts.Rows = 1
	if !got.Done() || got.Key != "" || got.Counts != counts || got.KeyHash != r.KeyHash {
		t.Errorf("done request = %+v; want done, no key, counts %+v", got, counts)
	}
	if _, err := es.Erasure(ctx, app.ID+1000, r.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("Erasure of another app: %v, want ENOTFOUND", err)
	}
	if again, err := es.ClaimErasure(ctx, time.Minute); err != nil || again != nil {
		t.Errorf("ClaimErasure after done = %+v, %v; want none", again, err)
	}

	conn := pgConn(t, db)
	var fp, hash, decision string
	if err := conn.QueryRow(ctx, `SELECT fingerprint, ad_id_hash, decision::text FROM conversions WHERE app_id = $1 AND id = $2`,
		app.ID, mine.ID).Scan(&fp, &hash, &decision); err != nil {
		t.Fatal(err)
	}
	if fp != "" || hash != "" || strings.Contains(decision, "203.0.113") || !strings.Contains(decision, `"network"`) {
		t.Errorf("erased row: fingerprint %q, ad_id_hash %q, decision %s; want none of the device's values, the signal's name kept", fp, hash, decision)
	}
	var ofp string
	if err := conn.QueryRow(ctx, `SELECT fingerprint FROM conversions WHERE app_id = $1 AND id = $2`, app.ID, other.ID).Scan(&ofp); err != nil || ofp == "" {
		t.Errorf("the other device's row: fingerprint %q, %v; want it kept", ofp, err)
	}
	ds, err := pbs.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		carries := strings.Contains(d.URL+string(d.Body)+d.LastBody, testAdID)
		switch {
		case d.ConversionID == mine.ID && (carries || d.Status == tapline.DeliveryPending):
			t.Errorf("the device's delivery %s after erasure: %+v; want no advertising id, none pending", d.Key, d)
		case d.ConversionID == other.ID && (d.URL == "" || d.Status != tapline.DeliveryPending):
			t.Errorf("the other device's delivery: %+v; want it kept", d)
		}
	}
	var keys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM erasure_requests WHERE key IS NOT NULL`).Scan(&keys); err != nil || keys != 0 {
		t.Errorf("erasure requests holding a key: %d, %v; want 0", keys, err)
	}

	// A flush of the conversion's state from before the erasure (a replay)
	// keeps the stripped decision.
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{testConversionOf(app.ID, 1, 2)}}); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT decision::text FROM conversions WHERE app_id = $1 AND id = $2`, app.ID, mine.ID).Scan(&decision); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(decision, "203.0.113") {
		t.Errorf("decision after a replayed flush = %s; want it stripped still", decision)
	}
}

func testConversionOf(app int64, n, changes int) *tapline.Conversion {
	c := testConversion(n, changes)
	c.AppID = app
	return c
}
