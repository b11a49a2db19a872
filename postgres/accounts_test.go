package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// newAccount creates an account named name with password "password1".
// newService returns an AccountService on a fresh database, hashing with
// the lowest bcrypt cost to keep tests fast.
func newService(t *testing.T) (*postgres.AccountService, *postgres.DB) {
	t.Helper()
	db := pgtest.Open(t)
	s := postgres.NewAccountService(db)
	s.BcryptCost = bcrypt.MinCost
	return s, db
}

func newAccount(t *testing.T, s *postgres.AccountService, name string) *tapline.Account {
	t.Helper()
	a, _ := newAccountOwner(t, s, name)
	return a
}

// newAccountOwner creates account name with its owner name@example.com,
// whose password is password1.
func newAccountOwner(t *testing.T, s *postgres.AccountService, name string) (*tapline.Account, *tapline.User) {
	t.Helper()
	a, owner := &tapline.Account{Name: name}, &tapline.User{Email: name + "@example.com"}
	if err := s.CreateAccount(context.Background(), a, owner, "password1"); err != nil {
		t.Fatalf("CreateAccount(%s): %v", name, err)
	}
	return a, owner
}

func newApp(t *testing.T, s *postgres.AccountService, accountID int64, name string) *tapline.App {
	t.Helper()
	a := &tapline.App{AccountID: accountID, Name: name, IOSURL: "https://apps.apple.com/app/id1"}
	if err := s.CreateApp(context.Background(), a); err != nil {
		t.Fatalf("CreateApp(%s): %v", name, err)
	}
	return a
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := tapline.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)

	a, owner := &tapline.Account{Name: "acme"}, &tapline.User{Email: " Ops@Example.com ", Role: tapline.RoleViewer}
	if err := s.CreateAccount(ctx, a, owner, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.CreatedAt.IsZero() {
		t.Errorf("created account %+v, want an id and a creation time", a)
	}
	if owner.ID == 0 || owner.AccountID != a.ID || owner.Email != "ops@example.com" || owner.Role != tapline.RoleOwner {
		t.Errorf("created owner %+v, want an id, the account, a lower-case email and the owner role", owner)
	}
	got, err := s.AccountByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Name != a.Name || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("AccountByName = %+v, want %+v", got, a)
	}
	_, err = s.AccountByName(ctx, "nobody")
	wantCode(t, "AccountByName(nobody)", err, tapline.ENOTFOUND)

	for _, tc := range []struct {
		name, login, password, code string
	}{
		{"by name", "acme", "correct horse", ""},
		{"by email", "OPS@example.com", "correct horse", ""},
		{"wrong password", "acme", "wrong horse", tapline.EUNAUTHORIZED},
		{"unknown login", "nobody", "correct horse", tapline.EUNAUTHORIZED},
		{"empty password", "acme", "", tapline.EUNAUTHORIZED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, acct, err := s.Authenticate(ctx, tc.login, tc.password)
			wantCode(t, "Authenticate", err, tc.code)
			if tc.code == "" && (u == nil || u.ID != owner.ID || acct == nil || acct.ID != a.ID) {
				t.Errorf("Authenticate = %+v, %+v, want user %d of account %d", u, acct, owner.ID, a.ID)
			}
		})
	}
}

func TestCreateAccountErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	newAccount(t, s, "taken")
	for _, tc := range []struct {
		name, account, email, password, code, field string
	}{
		{"ok", "fine-1", "fine@example.com", "password1", "", ""},
		{"taken name", "taken", "other@example.com", "password1", tapline.ECONFLICT, ""},
		{"taken email", "other", "taken@example.com", "password1", tapline.ECONFLICT, ""},
		{"taken email other case", "other", "TAKEN@example.com", "password1", tapline.ECONFLICT, ""},
		{"upper-case name", "Acme", "a@example.com", "password1", tapline.EINVALID, "name"},
		{"empty name", "", "a@example.com", "password1", tapline.EINVALID, "name"},
		{"name with slash", "a/b", "a@example.com", "password1", tapline.EINVALID, "name"},
		{"name ending in dash", "acme-", "a@example.com", "password1", tapline.EINVALID, "name"},
		{"long name", strings.Repeat("a", 64), "a@example.com", "password1", tapline.EINVALID, "name"},
		{"bad email", "acme", "not-an-email", "password1", tapline.EINVALID, "email"},
		{"email with display name", "acme", "Bob <bob@example.com>", "password1", tapline.EINVALID, "email"},
		{"short password", "acme", "a@example.com", "short", tapline.EINVALID, "password"},
		{"long password", "acme", "a@example.com", strings.Repeat("p", 73), tapline.EINVALID, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateAccount(ctx, &tapline.Account{Name: tc.account}, &tapline.User{Email: tc.email}, tc.password)
			wantCode(t, "CreateAccount", err, tc.code)
			if msg := tapline.ErrorMessage(err); tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("message %q does not name field %q", msg, tc.field)
			}
		})
	}
}

func TestApps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "acme")
	other := newAccount(t, s, "other")

	app := newApp(t, s, acct.ID, "Game")
	if app.ID == 0 || app.CreatedAt.IsZero() {
		t.Errorf("created app %+v, want an id and a creation time", app)
	}
	if len(app.SDKSecret) < 32 || len(app.SDKKey) < 32 || app.SDKSecret == app.SDKKey {
		t.Errorf("generated secret %q and key %q, want two distinct long tokens", app.SDKSecret, app.SDKKey)
	}
	if app.ClickWindow != tapline.DefaultClickWindow || app.FingerprintWindow != tapline.DefaultFingerprintWindow ||
		app.LatenessHorizon != tapline.DefaultLatenessHorizon || app.Retention != tapline.DefaultRetention {
		t.Errorf("created app settings %v %v %v %v, want the defaults",
			app.ClickWindow, app.FingerprintWindow, app.LatenessHorizon, app.Retention)
	}
	second := &tapline.App{AccountID: acct.ID, Name: "Second", SDKSecret: "given-secret-0123456789",
		SDKKey: "given-key-0123456789", ClickWindow: 2 * time.Hour}
	if err := s.CreateApp(ctx, second); err != nil {
		t.Fatal(err)
	}
	if second.SDKSecret != "given-secret-0123456789" || second.ClickWindow != 2*time.Hour {
		t.Errorf("CreateApp replaced given fields: %+v", second)
	}
	otherApp := newApp(t, s, other.ID, "Game")

	got, err := s.App(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *withTimeOf(app, got) {
		t.Errorf("App = %+v, want %+v", got, app)
	}
	if !got.CreatedAt.Equal(app.CreatedAt) {
		t.Errorf("App CreatedAt = %v, want %v", got.CreatedAt, app.CreatedAt)
	}
	_, err = s.App(ctx, 999999)
	wantCode(t, "App(unknown)", err, tapline.ENOTFOUND)

	if got, err := s.AppBySDKKey(ctx, second.SDKKey); err != nil || got.ID != second.ID {
		t.Errorf("AppBySDKKey = %v, %v, want app %d", got, err, second.ID)
	}
	_, err = s.AppBySDKKey(ctx, "no-such-key-0123456789")
	wantCode(t, "AppBySDKKey(unknown)", err, tapline.ENOTFOUND)
	_, err = s.AppBySDKKey(ctx, "")
	wantCode(t, "AppBySDKKey(empty)", err, tapline.ENOTFOUND)

	apps, err := s.AppsByAccount(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].ID != app.ID || apps[1].ID != second.ID {
		t.Errorf("AppsByAccount = %v, want apps %d and %d", apps, app.ID, second.ID)
	}
	if apps, err := s.AppsByAccount(ctx, 999999); err != nil || len(apps) != 0 {
		t.Errorf("AppsByAccount(unknown) = %v, %v, want none", apps, err)
	}

	for _, tc := range []struct {
		name, account, secret string
		wantID                int64
		code                  string
	}{
		{"first app", "acme", app.SDKSecret, app.ID, ""},
		{"second app", "acme", second.SDKSecret, second.ID, ""},
		{"other account's secret", "acme", otherApp.SDKSecret, 0, tapline.EFORBIDDEN},
		{"wrong secret", "acme", "nope", 0, tapline.EFORBIDDEN},
		{"empty secret", "acme", "", 0, tapline.EFORBIDDEN},
		{"unknown account", "nobody", app.SDKSecret, 0, tapline.ENOTFOUND},
	} {
		t.Run("AppBySecret/"+tc.name, func(t *testing.T) {
			got, err := s.AppBySecret(ctx, tc.account, tc.secret)
			wantCode(t, "AppBySecret", err, tc.code)
			if tc.code == "" && (got == nil || got.ID != tc.wantID) {
				t.Errorf("AppBySecret = %+v, want app %d", got, tc.wantID)
			}
		})
	}
}

// withTimeOf returns a copy of want carrying got's CreatedAt, so structs
// compare equal whatever the time's monotonic reading and location.
func withTimeOf(want, got *tapline.App) *tapline.App {
	w := *want
	w.CreatedAt = got.CreatedAt
	return &w
}

func TestCreateAppErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "acme")
	taken := newApp(t, s, acct.ID, "Taken")
	for _, tc := range []struct {
		name  string
		app   tapline.App
		code  string
		field string
	}{
		{"ok", tapline.App{AccountID: acct.ID, Name: "Fine", AndroidURL: "market://details?id=x"}, "", ""},
		{"no account", tapline.App{Name: "A"}, tapline.EINVALID, "account_id"},
		{"unknown account", tapline.App{AccountID: 999999, Name: "A"}, tapline.ENOTFOUND, ""},
		{"empty name", tapline.App{AccountID: acct.ID, Name: " "}, tapline.EINVALID, "name"},
		{"taken name", tapline.App{AccountID: acct.ID, Name: "Taken"}, tapline.ECONFLICT, ""},
		{"taken key", tapline.App{AccountID: acct.ID, Name: "B", SDKKey: taken.SDKKey}, tapline.ECONFLICT, ""},
		{"short key", tapline.App{AccountID: acct.ID, Name: "B", SDKKey: "short"}, tapline.EINVALID, "sdk_key"},
		{"secret with space", tapline.App{AccountID: acct.ID, Name: "B", SDKSecret: "has a space in it!!"}, tapline.EINVALID, "sdk_secret"},
		{"relative url", tapline.App{AccountID: acct.ID, Name: "B", WebURL: "/path"}, tapline.EINVALID, "web_url"},
		{"javascript url", tapline.App{AccountID: acct.ID, Name: "B", IOSURL: "javascript:alert(1)"}, tapline.EINVALID, "ios_url"},
		{"http without host", tapline.App{AccountID: acct.ID, Name: "B", AndroidURL: "https:///x"}, tapline.EINVALID, "android_url"},
		{"negative window", tapline.App{AccountID: acct.ID, Name: "B", ClickWindow: -time.Hour}, tapline.EINVALID, "click_window"},
		{"unknown fraud action", tapline.App{AccountID: acct.ID, Name: "B", Fraud: tapline.FraudPolicy{Datacenter: "block"}}, tapline.EINVALID, "fraud.datacenter"},
		{"fraud rate above 1", tapline.App{AccountID: acct.ID, Name: "B", Fraud: tapline.FraudPolicy{FloodMaxInstallRate: 1.5}}, tapline.EINVALID, "fraud.flood_max_install_rate"},
		{"negative click-to-install", tapline.App{AccountID: acct.ID, Name: "B", Fraud: tapline.FraudPolicy{MinClickToInstall: -time.Second}}, tapline.EINVALID, "fraud.min_click_to_install"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := tc.app
			err := s.CreateApp(ctx, &app)
			wantCode(t, "CreateApp", err, tc.code)
			if msg := tapline.ErrorMessage(err); tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("message %q does not name field %q", msg, tc.field)
			}
		})
	}
}

func TestUpdateApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "acme")
	app := newApp(t, s, acct.ID, "Game")
	other := newApp(t, s, acct.ID, "Other")
	secret := app.SDKSecret

	upd := *app
	upd.Name = "Game 2"
	upd.WebURL = "https://example.com/"
	upd.FingerprintWindow = 3 * time.Hour
	upd.Retention = 0      // back to the default
	upd.SDKSecret = ""     // kept
	upd.AccountID = 999999 // ignored
	if err := s.UpdateApp(ctx, &upd); err != nil {
		t.Fatal(err)
	}
	got, err := s.App(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Game 2" || got.WebURL != "https://example.com/" || got.FingerprintWindow != 3*time.Hour ||
		got.Retention != tapline.DefaultRetention || got.SDKSecret != secret || got.AccountID != acct.ID {
		t.Errorf("after UpdateApp, App = %+v", got)
	}
	if upd.SDKSecret != secret || upd.AccountID != acct.ID {
		t.Errorf("UpdateApp did not refresh its argument: %+v", upd)
	}

	missing := *app
	missing.ID = 999999
	wantCode(t, "UpdateApp(unknown)", s.UpdateApp(ctx, &missing), tapline.ENOTFOUND)
	clash := *app
	clash.SDKKey = other.SDKKey
	wantCode(t, "UpdateApp(taken key)", s.UpdateApp(ctx, &clash), tapline.ECONFLICT)
	bad := *app
	bad.IOSURL = "nope"
	wantCode(t, "UpdateApp(bad url)", s.UpdateApp(ctx, &bad), tapline.EINVALID)
}

func TestLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "acme")
	app := newApp(t, s, acct.ID, "Game")
	app2 := newApp(t, s, acct.ID, "Game 2")

	l := &tapline.Link{AppID: app.ID, Slug: "Spring_sale-1", AndroidURL: "https://play.google.com/store/apps/details?id=x"}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if l.ID == 0 || l.CreatedAt.IsZero() || l.Name != "Spring_sale-1" {
		t.Errorf("created link %+v, want an id, a creation time and the slug as name", l)
	}
	l2 := &tapline.Link{AppID: app.ID, Slug: "b", Name: "Banner"}
	if err := s.CreateLink(ctx, l2); err != nil {
		t.Fatal(err)
	}
	got, err := s.LinkBySlug(ctx, "Spring_sale-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != l.ID || got.AppID != app.ID || got.AndroidURL != l.AndroidURL || !got.CreatedAt.Equal(l.CreatedAt) {
		t.Errorf("LinkBySlug = %+v, want %+v", got, l)
	}
	_, err = s.LinkBySlug(ctx, "nope")
	wantCode(t, "LinkBySlug(unknown)", err, tapline.ENOTFOUND)

	links, err := s.LinksByApp(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[0].ID != l.ID || links[1].ID != l2.ID {
		t.Errorf("LinksByApp = %v, want links %d and %d", links, l.ID, l2.ID)
	}
	if links, err := s.LinksByApp(ctx, app2.ID); err != nil || len(links) != 0 {
		t.Errorf("LinksByApp(app without links) = %v, %v, want none", links, err)
	}

	for _, tc := range []struct {
		name  string
		link  tapline.Link
		code  string
		field string
	}{
		{"taken slug", tapline.Link{AppID: app2.ID, Slug: "b"}, tapline.ECONFLICT, ""},
		{"unknown app", tapline.Link{AppID: 999999, Slug: "c"}, tapline.ENOTFOUND, ""},
		{"no app", tapline.Link{Slug: "c"}, tapline.EINVALID, "app_id"},
		{"empty slug", tapline.Link{AppID: app.ID}, tapline.EINVALID, "slug"},
		{"slug with slash", tapline.Link{AppID: app.ID, Slug: "a/b"}, tapline.EINVALID, "slug"},
		{"bad url", tapline.Link{AppID: app.ID, Slug: "c", WebURL: "data:text/html,x"}, tapline.EINVALID, "web_url"},
		{"param name with =", tapline.Link{AppID: app.ID, Slug: "c", Params: map[string]string{"a=b": "x"}}, tapline.EINVALID, "params"},
		{"long param value", tapline.Link{AppID: app.ID, Slug: "c", Params: map[string]string{"utm_source": strings.Repeat("x", 257)}}, tapline.EINVALID, "params"},
		{"deep link with a space", tapline.Link{AppID: app.ID, Slug: "c", DeepLink: "app://a b"}, tapline.EINVALID, "deep_link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := tc.link
			err := s.CreateLink(ctx, &link)
			wantCode(t, "CreateLink", err, tc.code)
			if msg := tapline.ErrorMessage(err); tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("message %q does not name field %q", msg, tc.field)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	s := postgres.NewAccountService(db)
	db.Close()
	_, err := s.AccountByName(ctx, "acme")
	if err == nil {
		t.Fatal("AccountByName on a closed DB succeeded")
	}

	down := postgres.NewDB("postgres://tapline@127.0.0.1:1/tapline?sslmode=disable&connect_timeout=2")
	err = down.Open(ctx)
	wantCode(t, "Open(nothing listening)", err, tapline.EUNAVAILABLE)
	if err := down.Close(); err != nil {
		t.Errorf("Close after failed Open: %v", err)
	}

	// With StartUnreachable, Open succeeds and keeps trying; queries fail
	// as unavailable meanwhile.
	later := postgres.NewDB("postgres://tapline@127.0.0.1:1/tapline?sslmode=disable&connect_timeout=2")
	later.StartUnreachable = true
	if err := later.Open(ctx); err != nil {
		t.Fatalf("Open(nothing listening) with StartUnreachable: %v", err)
	}
	select {
	case <-later.Ready():
		t.Error("Ready with nothing listening")
	default:
	}
	_, err = postgres.NewAccountService(later).AccountByName(ctx, "acme")
	wantCode(t, "AccountByName while unreachable", err, tapline.EUNAVAILABLE)
	if err := later.Close(); err != nil {
		t.Errorf("Close while retrying: %v", err)
	}
}

// TestLookupsRefuseUnstorableInput checks that strings PostgreSQL cannot
// hold (a NUL byte, invalid UTF-8) are answered as the client errors they
// are, not as internal failures of the database.
func TestLookupsRefuseUnstorableInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "nul")
	app := newApp(t, s, acct.ID, "App")
	for _, bad := range []string{"a\x00b", "\xff", "ok\xfe"} {
		_, err := s.LinkBySlug(ctx, bad)
		wantCode(t, "LinkBySlug "+strconv.Quote(bad), err, tapline.ENOTFOUND)
		_, err = s.AccountByName(ctx, bad)
		wantCode(t, "AccountByName "+strconv.Quote(bad), err, tapline.ENOTFOUND)
		_, err = s.AppBySDKKey(ctx, bad)
		wantCode(t, "AppBySDKKey "+strconv.Quote(bad), err, tapline.ENOTFOUND)
		_, err = s.AppBySecret(ctx, bad, app.SDKSecret)
		wantCode(t, "AppBySecret account "+strconv.Quote(bad), err, tapline.ENOTFOUND)
		_, err = s.AppBySecret(ctx, acct.Name, bad)
		wantCode(t, "AppBySecret secret "+strconv.Quote(bad), err, tapline.EFORBIDDEN)
		_, _, err = s.Authenticate(ctx, bad, "password1")
		wantCode(t, "Authenticate "+strconv.Quote(bad), err, tapline.EUNAUTHORIZED)
		err = s.CreateApp(ctx, &tapline.App{AccountID: acct.ID, Name: "App " + bad})
		wantCode(t, "CreateApp name "+strconv.Quote(bad), err, tapline.EINVALID)
		err = s.CreateLink(ctx, &tapline.Link{AppID: app.ID, Slug: "nul-link", Name: "Link " + bad})
		wantCode(t, "CreateLink name "+strconv.Quote(bad), err, tapline.EINVALID)
	}
}

// TestUpdateLink edits a link's settings, archives and unarchives it, and
// checks what it refuses; the slug stays.
func TestUpdateLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	app := newApp(t, s, newAccount(t, s, "acme").ID, "Game")
	l := &tapline.Link{AppID: app.ID, Slug: "spring", Params: map[string]string{"utm_source": "facebook"}, DeepLink: "game://offers/spring"}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, err := s.Link(ctx, l.ID)
	if err != nil || got.Params["utm_source"] != "facebook" || got.DeepLink != "game://offers/spring" || got.ArchivedAt != nil {
		t.Fatalf("Link = %+v, %v", got, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	got.Name, got.WebURL, got.Params, got.ArchivedAt, got.Slug = "Spring 2", "https://acme.example/spring", map[string]string{"utm_campaign": "spring"}, &now, "changed"
	if err := s.UpdateLink(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.LinkBySlug(ctx, "spring")
	if err != nil || again.Name != "Spring 2" || again.WebURL != "https://acme.example/spring" || len(again.Params) != 1 ||
		again.Params["utm_campaign"] != "spring" || again.ArchivedAt == nil || !again.ArchivedAt.Equal(now) {
		t.Fatalf("after the update: %+v, %v (the slug must stay spring)", again, err)
	}
	again.ArchivedAt, again.Params = nil, nil
	if err := s.UpdateLink(ctx, again); err != nil || again.ArchivedAt != nil || again.Params != nil {
		t.Fatalf("unarchive: %+v, %v", again, err)
	}
	_, err = s.Link(ctx, 999999)
	wantCode(t, "Link(unknown)", err, tapline.ENOTFOUND)
	wantCode(t, "UpdateLink(unknown)", s.UpdateLink(ctx, &tapline.Link{ID: 999999, Name: "x"}), tapline.ENOTFOUND)
	wantCode(t, "UpdateLink(bad url)", s.UpdateLink(ctx, &tapline.Link{ID: l.ID, Name: "x", IOSURL: "data:text/html,x"}), tapline.EINVALID)
}

// TestLinkWindows stores a link's own click and fingerprint windows, reads
// them back by every lookup, clears them back to the app's, and refuses
// windows under a second or over tapline.MaxLinkWindow, naming the field.
func TestLinkWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	app := newApp(t, s, newAccount(t, s, "acme").ID, "Game")
	l := &tapline.Link{AppID: app.ID, Slug: "slow-burn", ClickWindow: 30 * 24 * time.Hour, FingerprintWindow: 90 * time.Minute}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	plain := &tapline.Link{AppID: app.ID, Slug: "plain"}
	if err := s.CreateLink(ctx, plain); err != nil {
		t.Fatal(err)
	}
	byID, err := s.Link(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	bySlug, err := s.LinkBySlug(ctx, "slow-burn")
	if err != nil {
		t.Fatal(err)
	}
	links, err := s.LinksByApp(ctx, app.ID)
	if err != nil || len(links) != 2 {
		t.Fatalf("LinksByApp = %v, %v, want 2 links", links, err)
	}
	for name, got := range map[string]*tapline.Link{"Link": byID, "LinkBySlug": bySlug, "LinksByApp": links[0]} {
		if got.ClickWindow != 30*24*time.Hour || got.FingerprintWindow != 90*time.Minute {
			t.Errorf("%s: windows %v and %v, want 720h and 1h30m", name, got.ClickWindow, got.FingerprintWindow)
		}
	}
	if links[1].ClickWindow != 0 || links[1].FingerprintWindow != 0 {
		t.Errorf("a link made without windows has %v and %v, want none (the app's)", links[1].ClickWindow, links[1].FingerprintWindow)
	}
	if click, fp := app.LinkWindows(byID); click != 30*24*time.Hour || fp != 90*time.Minute {
		t.Errorf("LinkWindows(own) = %v, %v, want the link's", click, fp)
	}
	if click, fp := app.LinkWindows(links[1]); click != app.ClickWindow || fp != app.FingerprintWindow {
		t.Errorf("LinkWindows(none) = %v, %v, want the app's %v and %v", click, fp, app.ClickWindow, app.FingerprintWindow)
	}

	byID.ClickWindow, byID.FingerprintWindow = 0, 2*time.Hour
	if err := s.UpdateLink(ctx, byID); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Link(ctx, l.ID); err != nil || again.ClickWindow != 0 || again.FingerprintWindow != 2*time.Hour {
		t.Errorf("after clearing the click window: %+v, %v, want click 0 and fingerprint 2h", again, err)
	}

	for _, tc := range []struct {
		name  string
		link  tapline.Link
		field string
	}{
		{"click under a second", tapline.Link{ClickWindow: 500 * time.Millisecond}, "click_window"},
		{"negative click", tapline.Link{ClickWindow: -time.Hour}, "click_window"},
		{"click over the bound", tapline.Link{ClickWindow: tapline.MaxLinkWindow + time.Second}, "click_window"},
		{"fingerprint under a second", tapline.Link{FingerprintWindow: time.Millisecond}, "fingerprint_window"},
		{"fingerprint over the bound", tapline.Link{FingerprintWindow: 91 * 24 * time.Hour}, "fingerprint_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create := tc.link
			create.AppID, create.Slug = app.ID, "bad-window"
			err := s.CreateLink(ctx, &create)
			wantCode(t, "CreateLink", err, tapline.EINVALID)
			if msg := tapline.ErrorMessage(err); !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("CreateLink: message %q does not name field %q", msg, tc.field)
			}
			update := tc.link
			update.ID, update.Name = plain.ID, "plain"
			err = s.UpdateLink(ctx, &update)
			wantCode(t, "UpdateLink", err, tapline.EINVALID)
			if msg := tapline.ErrorMessage(err); !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("UpdateLink: message %q does not name field %q", msg, tc.field)
			}
		})
	}
	edge := &tapline.Link{AppID: app.ID, Slug: "edges", ClickWindow: time.Second, FingerprintWindow: tapline.MaxLinkWindow}
	if err := s.CreateLink(ctx, edge); err != nil {
		t.Errorf("windows of exactly a second and of MaxLinkWindow: %v", err)
	}
}

// TestSessions starts, checks, expires and ends sessions, refuses one
// made under a password that changed since, and counts login attempts by
// key within a window.
func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	_, a := newAccountOwner(t, s, "acme")
	_, b := newAccountOwner(t, s, "other")
	now := time.Now()
	one, err := s.CreateSession(ctx, a, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	two, _ := s.CreateSession(ctx, a, now.Add(time.Hour))
	theirs, _ := s.CreateSession(ctx, b, now.Add(time.Hour))
	// live reports whether session id is live at at, and user's.
	live := func(user *tapline.User, id string, at time.Time) bool {
		t.Helper()
		u, acct, err := s.SessionUser(ctx, id, at)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return false
		} else if err != nil {
			t.Fatal(err)
		}
		if u.ID != user.ID || acct.ID != user.AccountID {
			t.Fatalf("session %s is of user %d of account %d, want %d of %d", id, u.ID, acct.ID, user.ID, user.AccountID)
		}
		return true
	}
	if !live(a, one, now) || !live(b, theirs, now) || live(a, one, now.Add(2*time.Hour)) || live(a, "made-up", now) {
		t.Error("a session is live only for its user, before it expires")
	}
	if err := s.EndSessions(ctx, a.ID, two); err != nil {
		t.Fatal(err)
	}
	if live(a, one, now) || !live(a, two, now) || !live(b, theirs, now) {
		t.Error("EndSessions must end the user's others and keep the one named and other users'")
	}
	// A password change ends the others in its transaction; a login that
	// checked the old password makes no session.
	three, _ := s.CreateSession(ctx, a, now.Add(time.Hour))
	stale := *a
	if err := s.ChangePassword(ctx, a.ID, "password1", "another-long-password", two); err != nil {
		t.Fatal(err)
	}
	if !live(a, two, now) || live(a, three, now) || !live(b, theirs, now) {
		t.Error("the password change must keep its own session and end the user's others")
	}
	_, err = s.CreateSession(ctx, &stale, now.Add(time.Hour))
	wantCode(t, "CreateSession(under the old password)", err, tapline.EUNAUTHORIZED)
	wantCode(t, "ChangePassword(wrong current)", s.ChangePassword(ctx, a.ID, "password1", "third-long-password", two), tapline.EUNAUTHORIZED)
	wantCode(t, "ChangePassword(weak)", s.ChangePassword(ctx, a.ID, "another-long-password", "short", two), tapline.EINVALID)
	if err := s.EndSession(ctx, two); err != nil || live(a, two, now) {
		t.Errorf("EndSession: %v", err)
	}
	_, err = s.CreateSession(ctx, &tapline.User{ID: 999999}, now.Add(time.Hour))
	wantCode(t, "CreateSession(unknown user)", err, tapline.EUNAUTHORIZED)

	keys := []string{"account:1", "addr:192.0.2.0/24"}
	var got map[string]int
	for _, at := range []time.Time{now.Add(-20 * time.Minute), now.Add(-time.Minute), now} {
		if got, err = s.RecordLoginAttempt(ctx, keys, at, now.Add(-15*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if got["account:1"] != 2 || got["addr:192.0.2.0/24"] != 2 {
		t.Fatalf("attempts in the window, the last one included: %v, want 2 and 2", got)
	}
	if err := s.ClearLoginFailures(ctx, "account:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetLoginAttempt(ctx, "addr:192.0.2.0/24", now); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RecordLoginAttempt(ctx, keys, now, now.Add(-time.Hour)); got["account:1"] != 1 || got["addr:192.0.2.0/24"] != 3 {
		t.Errorf("after clearing the account and forgetting one attempt of the network: %v, want 1 and 3", got)
	}
}

// TestLoginAttemptsConcurrent records attempts of one key at once: each
// count includes every attempt recorded before it, so no two see the
// same number.
func TestLoginAttemptsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	now := time.Now()
	const n = 20
	counts := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := s.RecordLoginAttempt(ctx, []string{"account:7"}, now, now.Add(-time.Hour))
			if err != nil {
				t.Error(err)
				return
			}
			counts <- got["account:7"]
		})
	}
	wg.Wait()
	close(counts)
	seen := map[int]bool{}
	for c := range counts {
		if seen[c] || c < 1 || c > n {
			t.Errorf("count %d seen twice or out of 1..%d", c, n)
		}
		seen[c] = true
	}
}

// TestAppBySDKSecret finds an app by its secret alone: the oldest of one
// account's apps sharing it, never an app of another account, and no app
// when apps of two accounts share the secret.
func TestAppBySDKSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acme, other := newAccount(t, s, "acme"), newAccount(t, s, "other")
	app := newApp(t, s, acme.ID, "Game")
	twin := &tapline.App{AccountID: acme.ID, Name: "Game HD", SDKSecret: app.SDKSecret}
	if err := s.CreateApp(ctx, twin); err != nil {
		t.Fatal(err)
	}
	otherApp := newApp(t, s, other.ID, "Other")
	shared := "shared-secret-0123456789"
	for _, a := range []*tapline.App{{AccountID: acme.ID, Name: "Shared"}, {AccountID: other.ID, Name: "Shared"}} {
		a.SDKSecret = shared
		if err := s.CreateApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, secret string
		wantID       int64
		code         string
	}{
		{"oldest of one account's apps", app.SDKSecret, app.ID, ""},
		{"other account", otherApp.SDKSecret, otherApp.ID, ""},
		{"unknown", "no-such-secret-0123456789", 0, tapline.EFORBIDDEN},
		{"empty", "", 0, tapline.EFORBIDDEN},
		{"shared by two accounts", shared, 0, tapline.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AppBySDKSecret(ctx, tc.secret)
			wantCode(t, "AppBySDKSecret", err, tc.code)
			if tc.code == "" && (got == nil || got.ID != tc.wantID) {
				t.Errorf("AppBySDKSecret = %+v, want app %d", got, tc.wantID)
			}
		})
	}
}

// TestAppFraudPolicy checks that an app starts with the default fraud
// policy (flag everything, 10 s, 500 taps, 0.1%) and keeps what
// UpdateApp stores.
func TestAppFraudPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	app := newApp(t, s, newAccount(t, s, "acme").ID, "Game")
	got, err := s.App(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	def := tapline.FraudPolicy{ClickInjection: tapline.FraudFlag, ClickFlooding: tapline.FraudFlag, Datacenter: tapline.FraudFlag,
		TapAfterInstall: tapline.FraudFlag, MinClickToInstall: 10 * time.Second, FloodMinTaps: 500, FloodMaxInstallRate: 0.001}
	if got.Fraud != def {
		t.Errorf("new app's fraud policy %+v, want %+v", got.Fraud, def)
	}
	upd := *got
	upd.Fraud = tapline.FraudPolicy{ClickInjection: tapline.FraudReject, ClickFlooding: tapline.FraudFlag, Datacenter: tapline.FraudReject,
		TapAfterInstall: tapline.FraudReject, MinClickToInstall: 2500 * time.Millisecond, FloodMinTaps: 40, FloodMaxInstallRate: 0.02}
	if err := s.UpdateApp(ctx, &upd); err != nil {
		t.Fatal(err)
	}
	if got, err = s.App(ctx, app.ID); err != nil || got.Fraud != upd.Fraud {
		t.Errorf("after UpdateApp the fraud policy is %+v (%v), want %+v", got.Fraud, err, upd.Fraud)
	}
	bad := *got
	bad.Fraud.ClickFlooding = "ignore"
	wantCode(t, "UpdateApp(bad action)", s.UpdateApp(ctx, &bad), tapline.EINVALID)
}
