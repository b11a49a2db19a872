package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/postgres"
)

// TestLogoutEndsTheSession replays a session cookie after its logout: the
// server has ended the session, so the copy no longer logs anyone in.
func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	c := e.loggedIn("acme")
	stolen := "tapline_session=" + sessionCookie(t, c, e.srv.URL).Value
	hdr := map[string]string{"Cookie": stolen}
	wantStatus(t, "the copy before logout", e.do(e.client(), http.MethodGet, "/apps", nil, hdr), http.StatusOK)
	wantStatus(t, "logout", e.postForm(c, "/logout", nil), http.StatusSeeOther)
	wantStatus(t, "the copy after logout", e.do(e.client(), http.MethodGet, "/apps", nil, hdr), http.StatusSeeOther)
	wantJSONError(t, "the copy on the API", e.do(e.client(), http.MethodGet, "/api/v1/apps", nil, hdr), http.StatusUnauthorized, "unauthorized", "Log in")
}

// TestChangePassword changes the password on the account page: the old
// one stops working, the new one works, every other session ends and this
// one stays; refusals are shown on the page.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	c := e.loggedIn("acme")
	elsewhere := e.loggedIn("acme")
	const next = "a-new-long-password"
	for _, tc := range []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"current": {"wrong-password"}, "new": {next}, "confirm": {next}}, "The current password is wrong."},
		{url.Values{"current": {password}, "new": {next}, "confirm": {next + "x"}}, "The new password and its confirmation differ."},
		{url.Values{"current": {password}, "new": {"short"}, "confirm": {"short"}}, "password: must be at least"},
	} {
		res := e.postForm(c, "/account/password", tc.form)
		wantStatus(t, tc.msg, res, http.StatusBadRequest)
		if !strings.Contains(res.Body, `id="password-error"`) || !strings.Contains(res.Body, tc.msg) {
			t.Errorf("the page does not say %q", tc.msg)
		}
	}
	wantStatus(t, "still logged in elsewhere", e.get(elsewhere, "/apps"), http.StatusOK)
	res := e.postForm(c, "/account/password", url.Values{"current": {password}, "new": {next}, "confirm": {next}})
	wantStatus(t, "change", res, http.StatusSeeOther)
	if res = e.get(c, res.Header.Get("Location")); !strings.Contains(res.Body, `id="password-changed"`) {
		t.Error("this session did not survive its own password change")
	}
	wantStatus(t, "the other session", e.get(elsewhere, "/apps"), http.StatusSeeOther)
	if r := e.login(e.client(), "acme", password); r.Status != http.StatusUnauthorized {
		t.Errorf("the old password: status %d, want 401", r.Status)
	}
	if r := e.login(e.client(), "acme@example.com", next); r.Status != http.StatusSeeOther {
		t.Errorf("the new password: status %d, want 303", r.Status)
	}
}

// TestLoginThrottleIsPerAccountAndShared guesses an account's password
// under its name and its email in turn: the failures add up to one lock,
// which a second dashboard process on the same database enforces too.
func TestLoginThrottleIsPerAccountAndShared(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("victim")
	for i := range dashboard.MaxLoginFailures {
		login := "victim"
		if i%2 == 1 {
			login = "victim@example.com"
		}
		if r := e.login(e.client(), login, "wrong-password"); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, r.Status)
		}
	}
	for _, login := range []string{"victim", "VICTIM@example.com"} {
		if r := e.login(e.client(), login, password); r.Status != http.StatusTooManyRequests {
			t.Errorf("%s after %d guesses split between name and email: status %d, want 429", login, dashboard.MaxLoginFailures, r.Status)
		}
	}
	// Another dashboard process on the same database.
	cfg := dashboard.Config{SessionKey: []byte(strings.Repeat("s", 32)), CollectorURL: collectorURL}
	other := dashboard.New(cfg, e.accounts, postgres.NewReports(e.db))
	other.Funnels, other.FunnelReports = e.funnels, postgres.NewReports(e.db)
	srv := httptest.NewServer(other.Handler())
	defer srv.Close()
	form := url.Values{"login": {"victim"}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	res, err := e.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the other process: status %d, want 429", res.StatusCode)
	}
}

// TestLoginThrottlePerAddress guesses from one network across many
// logins: past MaxAddressFailures, that network is refused even for an
// account nobody guessed at, while the account's own count stays low.
func TestLoginThrottlePerAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("a hundred logins")
	}
	t.Parallel()
	e := newEnv(t)
	e.account("bystander")
	start := time.Now()
	e.clock.Store(start.UnixNano())
	for i := range dashboard.MaxAddressFailures {
		if r := e.login(e.client(), fmt.Sprintf("nobody-%d", i), "wrong-password"); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, r.Status)
		}
	}
	if r := e.login(e.client(), "bystander", password); r.Status != http.StatusTooManyRequests {
		t.Errorf("from the guessing network: status %d, want 429", r.Status)
	}
	e.clock.Store(start.Add(dashboard.LoginFailureWindow + time.Second).UnixNano())
	if r := e.login(e.client(), "bystander", password); r.Status != http.StatusSeeOther {
		t.Errorf("after the window: status %d, want 303", r.Status)
	}
}

// TestLoginThrottleBehindAProxy counts failures per client network as a
// trusted proxy reports it: a network that guessed is refused, another
// behind the same proxy is not.
func TestLoginThrottleBehindAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("a hundred logins")
	}
	t.Parallel()
	e := newEnv(t)
	e.d.Config.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e.account("bystander")
	login := func(name, pass, from string) int {
		form := url.Values{"login": {name}, "password": {pass}}
		return e.do(e.client(), http.MethodPost, "/login", strings.NewReader(form.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL, "X-Forwarded-For": from,
		}).Status
	}
	for i := range dashboard.MaxAddressFailures {
		if s := login(fmt.Sprintf("nobody-%d", i), "wrong-password", "198.51.100.7"); s != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, s)
		}
	}
	if s := login("bystander", password, "198.51.100.99"); s != http.StatusTooManyRequests {
		t.Errorf("from the guessing /24: status %d, want 429", s)
	}
	if s := login("bystander", password, "203.0.113.9"); s != http.StatusSeeOther {
		t.Errorf("from another network behind the proxy: status %d, want 303", s)
	}
}

// TestChangePasswordIsThrottled guesses the current password on the
// password form: past MaxLoginFailures the form refuses even the right
// one, and so does the login form, for the same account.
func TestChangePasswordIsThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	c := e.loggedIn("acme")
	for i := range dashboard.MaxLoginFailures {
		res := e.postForm(c, "/account/password", url.Values{"current": {fmt.Sprintf("guess-%d-password", i)}, "new": {"a-new-long-password"}, "confirm": {"a-new-long-password"}})
		if res.Status != http.StatusBadRequest {
			t.Fatalf("guess %d: status %d, want 400", i+1, res.Status)
		}
	}
	res := e.postForm(c, "/account/password", url.Values{"current": {password}, "new": {"a-new-long-password"}, "confirm": {"a-new-long-password"}})
	if res.Status != http.StatusTooManyRequests || !strings.Contains(res.Body, "Too many wrong passwords") {
		t.Errorf("the right password after %d guesses: status %d, want 429", dashboard.MaxLoginFailures, res.Status)
	}
	if r := e.login(e.client(), "acme", password); r.Status != http.StatusTooManyRequests {
		t.Errorf("the login form for the same account: status %d, want 429", r.Status)
	}
}

// TestLoginThrottleIsPerUser guesses a viewer's password to the limit:
// the viewer is locked out, the owner of the same account is not.
func TestLoginThrottleIsPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	e.join(e.loggedIn("acme"), "viewer@example.com", tapline.RoleViewer)
	for i := range dashboard.MaxLoginFailures {
		if r := e.login(e.client(), "viewer@example.com", "wrong-password"); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, r.Status)
		}
	}
	if r := e.login(e.client(), "viewer@example.com", password); r.Status != http.StatusTooManyRequests {
		t.Errorf("the viewer after %d guesses: status %d, want 429", dashboard.MaxLoginFailures, r.Status)
	}
	for _, login := range []string{"acme", "acme@example.com"} {
		if r := e.login(e.client(), login, password); r.Status != http.StatusSeeOther {
			t.Errorf("the owner as %s while the viewer is locked out: status %d, want 303", login, r.Status)
		}
	}
}
