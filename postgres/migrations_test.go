package postgres_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"tapline"
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

// TestUsersMigration checks migration 14 on a database with accounts and
// a session: each account's login becomes its owner user, who logs in
// with the same password, under the same password generation, in the
// same session; going back down gives the accounts their logins back.
func TestUsersMigration(t *testing.T) {
	ctx := context.Background()
	db, conn := migrationDB(t)
	if err := db.MigrateTo(11); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("old-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var acme int64
	if err := conn.QueryRow(ctx, `
		INSERT INTO accounts (name, email, password_hash, password_gen) VALUES ('acme', 'ops@acme.example', $1, 3), ('other', 'ops@other.example', $1, 0)
		RETURNING id`, string(hash)).Scan(&acme); err != nil {
		t.Fatal(err)
	}
	const sid = "a-session-id-from-before-the-migration"
	sum := sha256.Sum256([]byte(sid))
	if _, err := conn.Exec(ctx, `INSERT INTO sessions (id_hash, account_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')`, sum[:], acme); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(14); err != nil {
		t.Fatal(err)
	}
	s := postgres.NewAccountService(db)
	for _, login := range []string{"acme", "OPS@acme.example"} {
		u, a, err := s.Authenticate(ctx, login, "old-password")
		if err != nil || a.ID != acme || u.Role != tapline.RoleOwner || u.Email != "ops@acme.example" || u.PasswordGen != 3 {
			t.Errorf("login %s after the migration: %+v, %+v, %v; want the owner of acme at generation 3", login, u, a, err)
		}
	}
	u, a, err := s.SessionUser(ctx, sid, time.Now())
	if err != nil || a.ID != acme || u.Email != "ops@acme.example" {
		t.Errorf("the session from before: %+v, %+v, %v; want acme's owner's", u, a, err)
	}
	// A viewer and their session go on the way down; the owner's stay.
	viewer := &tapline.Invite{AccountID: acme, Email: "viewer@acme.example", Role: tapline.RoleViewer, ExpiresAt: time.Now().Add(time.Hour)}
	token, err := s.CreateInvite(ctx, viewer)
	if err != nil {
		t.Fatal(err)
	}
	vu, err := s.AcceptInvite(ctx, token, "viewer-password", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSession(ctx, vu, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(11); err != nil {
		t.Fatal(err)
	}
	var email, pwHash string
	var gen int64
	if err := conn.QueryRow(ctx, `SELECT email, password_hash, password_gen FROM accounts WHERE id = $1`, acme).Scan(&email, &pwHash, &gen); err != nil {
		t.Fatal(err)
	}
	if email != "ops@acme.example" || pwHash != string(hash) || gen != 3 {
		t.Errorf("after the down migration: %s, generation %d; want acme's login back", email, gen)
	}
	var sessions int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE account_id = $1 AND id_hash = $2`, acme, sum[:]).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	var all int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if sessions != 1 || all != 1 {
		t.Errorf("after the down migration: the owner's session %d times, %d sessions in all; want only the owner's", sessions, all)
	}
}

// TestFraudMigration checks migration 19: an app from before it gets the
// default fraud policy (flag every rule, 10 s, 500 taps, 0.1%), the
// columns refuse an unknown action, and the way down drops them and
// fact_fraud.
func TestFraudMigration(t *testing.T) {
	ctx := context.Background()
	db, conn := migrationDB(t)
	s := postgres.NewAccountService(db)
	s.BcryptCost = bcrypt.MinCost
	acct := &tapline.Account{Name: "acme"}
	if err := s.CreateAccount(ctx, acct, &tapline.User{Email: "ops@acme.example"}, "password-123"); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(16); err != nil {
		t.Fatal(err)
	}
	var appID int64
	if err := conn.QueryRow(ctx, `INSERT INTO apps (account_id, name, sdk_secret, sdk_key, ios_url, android_url, web_url,
		click_window, fingerprint_window, lateness_horizon, retention)
		VALUES ($1, 'Old', 'secret-0123456789', 'key-0123456789abc', '', '', '', 604800, 86400, 86400, 5184000) RETURNING id`, acct.ID).Scan(&appID); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil { // reading an app needs the later columns too
		t.Fatal(err)
	}
	app, err := s.App(ctx, appID)
	if err != nil {
		t.Fatal(err)
	}
	def := tapline.FraudPolicy{ClickInjection: tapline.FraudFlag, ClickFlooding: tapline.FraudFlag, Datacenter: tapline.FraudFlag,
		TapAfterInstall: tapline.FraudFlag, MinClickToInstall: 10 * time.Second, FloodMinTaps: 500, FloodMaxInstallRate: 0.001}
	if app.Fraud != def {
		t.Errorf("an app from before the migration has fraud policy %+v, want %+v", app.Fraud, def)
	}
	if app.FingerprintMinScore != tapline.DefaultFingerprintMinScore {
		t.Errorf("an app from before the migrations has fingerprint_min_score %v, want the default %v", app.FingerprintMinScore, tapline.DefaultFingerprintMinScore)
	}
	if _, err := conn.Exec(ctx, `UPDATE apps SET fraud_datacenter = 'block' WHERE id = $1`, appID); err == nil {
		t.Errorf("the column took an unknown action")
	}
	if err := db.MigrateTo(16); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'apps' AND column_name LIKE 'fraud_%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after the way down %d fraud columns are left (%v)", n, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'fact_fraud'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after the way down fact_fraud is left (%v)", err)
	}
}
