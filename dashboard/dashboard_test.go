package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/internal/health"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

const (
	adminToken   = "test-admin-token-0123456789"
	collectorURL = "http://collector.test"
	password     = "correct horse battery"
)

// env is one dashboard over its own database, served on loopback.
type env struct {
	db       *postgres.DB
	t        *testing.T
	d        *dashboard.Dashboard
	srv      *httptest.Server
	accounts tapline.AccountService
	facts    tapline.FactStore
	funnels  tapline.FunnelStore
	skan     *postgres.SKANStore
	saved    atomic.Int64 // calls of OnFunnelSaved
	clock    atomic.Int64 // Unix nanoseconds; 0 is the wall clock
	export   *exportEnv   // set by withExport
}

// newEnv returns a dashboard over its own database; each of opts may set
// the dashboard's fields up before its handler is made.
func newEnv(t *testing.T, opts ...func(*env)) *env {
	t.Helper()
	db := pgtest.Open(t)
	e := &env{t: t, db: db, accounts: postgres.NewAccountService(db), facts: postgres.NewFactStore(db), funnels: postgres.NewFunnelStore(db)}
	cfg := dashboard.Config{AdminToken: adminToken, SessionKey: []byte(strings.Repeat("s", 32)), CollectorURL: collectorURL + "/"}
	reports := postgres.NewReports(db)
	e.d = dashboard.New(cfg, e.accounts, reports)
	e.d.Funnels, e.d.FunnelReports = e.funnels, reports
	e.d.OnFunnelSaved = func() { e.saved.Add(1) }
	e.d.Erasures = postgres.NewErasureStore(db)
	e.d.Postbacks, e.d.WhatIfs = postgres.NewPostbackService(db), postgres.NewWhatIfStore(db)
	e.skan = postgres.NewSKANStore(db)
	e.d.SKAN = e.skan
	e.d.Health = []health.Check{health.Ping("postgres", db.Ping)}
	if err := e.d.Validate(); err != nil {
		t.Fatal(err)
	}
	e.d.Logger = slog.New(slog.DiscardHandler)
	e.d.Now = func() time.Time {
		if n := e.clock.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Now()
	}
	for _, o := range opts {
		o(e)
	}
	e.srv = httptest.NewServer(e.d.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// account creates an account whose owner is name@example.com with
// password and returns it.
func (e *env) account(name string) *tapline.Account {
	e.t.Helper()
	a, owner := &tapline.Account{Name: name}, &tapline.User{Email: name + "@example.com"}
	if err := e.accounts.CreateAccount(context.Background(), a, owner, password); err != nil {
		e.t.Fatalf("create account %s: %v", name, err)
	}
	return a
}

// app creates an app of account a.
func (e *env) app(a *tapline.Account, name string) *tapline.App {
	e.t.Helper()
	app := &tapline.App{AccountID: a.ID, Name: name, IOSURL: "https://apps.apple.com/app/id1", WebURL: "https://example.com/"}
	if err := e.accounts.CreateApp(context.Background(), app); err != nil {
		e.t.Fatalf("create app %s: %v", name, err)
	}
	return app
}

// link creates a link of app.
func (e *env) link(app *tapline.App, slug, name string) *tapline.Link {
	e.t.Helper()
	l := &tapline.Link{AppID: app.ID, Slug: slug, Name: name}
	if err := e.accounts.CreateLink(context.Background(), l); err != nil {
		e.t.Fatalf("create link %s: %v", slug, err)
	}
	return l
}

// client returns an HTTP client with its own cookie jar that does not
// follow redirects.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is a read response.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// do sends a request and reads the whole response.
func (e *env) do(c *http.Client, method, path string, body io.Reader, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

func (e *env) get(c *http.Client, path string) response {
	e.t.Helper()
	return e.do(c, http.MethodGet, path, nil, nil)
}

// login posts the login form from this site's origin.
func (e *env) login(c *http.Client, login, pass string) response {
	e.t.Helper()
	form := url.Values{"login": {login}, "password": {pass}}
	return e.do(c, http.MethodPost, "/login", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"Origin":       e.srv.URL,
	})
}

// loggedIn returns a client logged in as the named account.
func (e *env) loggedIn(name string) *http.Client {
	e.t.Helper()
	c := e.client()
	if res := e.login(c, name, password); res.Status != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d, want 303; body %s", name, res.Status, res.Body)
	}
	return c
}

func wantStatus(t *testing.T, what string, res response, want int) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("%s: status %d, want %d; body: %.400s", what, res.Status, want, res.Body)
	}
}

// wantJSONError checks an httperr body with code and a message containing
// msg.
func wantJSONError(t *testing.T, what string, res response, status int, code, msg string) {
	t.Helper()
	wantStatus(t, what, res, status)
	var body struct{ Error, Message string }
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, res.Body, err)
	}
	if body.Error != code || !strings.Contains(body.Message, msg) {
		t.Errorf("%s: error %q message %q, want %q with %q", what, body.Error, body.Message, code, msg)
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.account("acme")
	e.app(a, "Acme Shop")

	t.Run("unauthenticated page redirects", func(t *testing.T) {
		res := e.get(e.client(), "/apps")
		wantStatus(t, "GET /apps", res, http.StatusSeeOther)
		if got := res.Header.Get("Location"); got != "/login?next=%2Fapps" {
			t.Errorf("Location %q, want /login?next=%%2Fapps", got)
		}
		wantStatus(t, "GET /", e.get(e.client(), "/"), http.StatusSeeOther)
	})
	t.Run("wrong password", func(t *testing.T) {
		for _, login := range []string{"acme", "acme@example.com", "nobody"} {
			res := e.login(e.client(), login, "wrong password")
			wantStatus(t, "login "+login, res, http.StatusUnauthorized)
			if !strings.Contains(res.Body, "Wrong email, account name or password.") {
				t.Errorf("login %s: page lacks the error message: %.400s", login, res.Body)
			}
			if res.Header.Get("Set-Cookie") != "" {
				t.Errorf("login %s: failed login set a cookie %q", login, res.Header.Get("Set-Cookie"))
			}
		}
	})
	for _, login := range []string{"acme", "acme@example.com"} {
		t.Run("success by "+login, func(t *testing.T) {
			c := e.client()
			res := e.login(c, login, password)
			wantStatus(t, "login", res, http.StatusSeeOther)
			if got := res.Header.Get("Location"); got != "/apps" {
				t.Errorf("Location %q, want /apps", got)
			}
			cookie := res.Header.Get("Set-Cookie")
			for _, attr := range []string{"tapline_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"} {
				if !strings.Contains(cookie, attr) {
					t.Errorf("Set-Cookie %q lacks %s", cookie, attr)
				}
			}
			res = e.get(c, "/apps")
			wantStatus(t, "GET /apps", res, http.StatusOK)
			if !strings.Contains(res.Body, "Acme Shop") {
				t.Errorf("apps page lacks the app: %.600s", res.Body)
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", res.Header.Get("Cache-Control"))
			}

			res = e.do(c, http.MethodPost, "/logout", nil, map[string]string{"Origin": e.srv.URL})
			wantStatus(t, "logout", res, http.StatusSeeOther)
			if !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
				t.Errorf("logout Set-Cookie %q does not clear the session", res.Header.Get("Set-Cookie"))
			}
			wantStatus(t, "GET /apps after logout", e.get(c, "/apps"), http.StatusSeeOther)
		})
	}
	t.Run("next path kept", func(t *testing.T) {
		c := e.client()
		form := url.Values{"login": {"acme"}, "password": {password}, "next": {"/apps?x=1"}}
		res := e.do(c, http.MethodPost, "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
		if got := res.Header.Get("Location"); got != "/apps?x=1" {
			t.Errorf("Location %q, want /apps?x=1", got)
		}
	})
}

func sessionCookie(t *testing.T, c *http.Client, base string) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "tapline_session" {
			return ck
		}
	}
	t.Fatal("no session cookie in the jar")
	return nil
}

func TestSessionTampering(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	e.account("other")
	good := sessionCookie(t, e.loggedIn("acme"), e.srv.URL).Value
	payload, sig, _ := strings.Cut(good, ".")
	otherPayload, _, _ := strings.Cut(sessionCookie(t, e.loggedIn("other"), e.srv.URL).Value, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[3] == 'A' {
			b[3] = 'B'
		} else {
			b[3] = 'A'
		}
		return string(b)
	}
	// The untouched cookie works when sent by hand, so the rejections below
	// are the tampering's doing.
	wantStatus(t, "untouched", e.do(e.client(), http.MethodGet, "/apps", nil, map[string]string{"Cookie": "tapline_session=" + good}), http.StatusOK)
	tests := []struct{ name, value string }{
		{"payload changed", flip(payload) + "." + sig},
		{"signature changed", payload + "." + flip(sig)},
		{"payload swapped", otherPayload + "." + sig},
		{"no signature", payload},
		{"garbage", "not-a-session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Cookie": "tapline_session=" + tt.value}
			wantStatus(t, "page", e.do(e.client(), http.MethodGet, "/apps", nil, hdr), http.StatusSeeOther)
			wantJSONError(t, "api", e.do(e.client(), http.MethodGet, "/api/v1/apps", nil, hdr), http.StatusUnauthorized, "unauthorized", "Log in")
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	start := time.Now()
	e.clock.Store(start.UnixNano())
	c := e.loggedIn("acme")
	tests := []struct {
		name  string
		at    time.Duration
		page  int
		api   int
		valid bool
	}{
		{"fresh", time.Minute, http.StatusOK, http.StatusOK, true},
		{"six days on", 6 * 24 * time.Hour, http.StatusOK, http.StatusOK, true},
		{"expired", 7*24*time.Hour + time.Second, http.StatusSeeOther, http.StatusUnauthorized, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Store(start.Add(tt.at).UnixNano())
			// The jar would drop the cookie by its own clock; send it by hand
			// so the server's check is what is tested.
			hdr := map[string]string{"Cookie": "tapline_session=" + sessionCookie(t, c, e.srv.URL).Value}
			wantStatus(t, "page", e.do(e.client(), http.MethodGet, "/apps", nil, hdr), tt.page)
			wantStatus(t, "api", e.do(e.client(), http.MethodGet, "/api/v1/apps", nil, hdr), tt.api)
		})
	}
}

func TestCrossAccountAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	other := e.account("other")
	mine := e.app(acme, "Mine")
	theirs := e.app(other, "Theirs")
	e.link(theirs, "their-link", "Their link")
	c := e.loggedIn("acme")

	wantStatus(t, "own app", e.get(c, "/apps/"+strconv.FormatInt(mine.ID, 10)), http.StatusOK)
	for _, path := range []string{
		"/apps/" + strconv.FormatInt(theirs.ID, 10),
		"/apps/999999",
		"/apps/abc",
	} {
		res := e.get(c, path)
		wantStatus(t, path, res, http.StatusNotFound)
		if strings.Contains(res.Body, "Theirs") || strings.Contains(res.Body, theirs.SDKSecret) {
			t.Errorf("%s leaks the other account's app: %.400s", path, res.Body)
		}
	}
	for _, path := range []string{
		"/api/v1/apps/" + strconv.FormatInt(theirs.ID, 10) + "/daily",
		"/api/v1/apps/" + strconv.FormatInt(theirs.ID, 10) + "/links",
		"/api/v1/apps/" + strconv.FormatInt(theirs.ID, 10) + "/breakdown?by=source",
		"/api/v1/apps/999999/daily",
	} {
		wantJSONError(t, path, e.get(c, path), http.StatusNotFound, "not_found", "not found")
	}
	res := e.get(c, "/api/v1/apps")
	wantStatus(t, "api apps", res, http.StatusOK)
	var list struct{ Apps []dashboard.AppView }
	if err := json.Unmarshal([]byte(res.Body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Apps) != 1 || list.Apps[0].ID != mine.ID || list.Apps[0].SDKKey != mine.SDKKey {
		t.Errorf("api apps = %+v, want only app %d", list.Apps, mine.ID)
	}
}

func TestCSRFOriginCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	form := url.Values{"login": {"acme"}, "password": {password}}.Encode()
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"same origin", map[string]string{"Origin": e.srv.URL}, http.StatusSeeOther},
		{"same origin referer", map[string]string{"Referer": e.srv.URL + "/login"}, http.StatusSeeOther},
		{"no origin (non-browser)", map[string]string{}, http.StatusSeeOther},
		{"behind a proxy", map[string]string{"Origin": "https://dash.example", "X-Forwarded-Host": "dash.example"}, http.StatusSeeOther},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"null origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"foreign referer", map[string]string{"Referer": "https://evil.example/page"}, http.StatusForbidden},
		{"foreign origin, own referer", map[string]string{"Origin": "https://evil.example", "Referer": e.srv.URL + "/login"}, http.StatusForbidden},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.header["Content-Type"] = "application/x-www-form-urlencoded"
			res := e.do(e.client(), http.MethodPost, "/login", strings.NewReader(form), tt.header)
			wantStatus(t, "POST /login", res, tt.want)
		})
	}
	t.Run("logout from another site", func(t *testing.T) {
		c := e.loggedIn("acme")
		res := e.do(c, http.MethodPost, "/logout", nil, map[string]string{"Origin": "https://evil.example"})
		wantStatus(t, "POST /logout", res, http.StatusForbidden)
		wantStatus(t, "still logged in", e.get(c, "/apps"), http.StatusOK)
	})
}

// seed is the facts the report tests apply, with the days they make in UTC
// and in New York (UTC-4 in March 2026).
type seed struct {
	app          *tapline.App
	spring, fall *tapline.Link
	idle         *tapline.Link
}

func seedFacts(t *testing.T, e *env, app *tapline.App) seed {
	t.Helper()
	s := seed{app: app, spring: e.link(app, "spring-sale", "Spring sale"), fall: e.link(app, "fall-promo", "Fall promo"), idle: e.link(app, "idle", "Idle link")}
	h := func(day, hour int) int64 { return time.Date(2026, 3, day, hour, 0, 0, 0, time.UTC).Unix() }
	deltas := map[tapline.FactKey]tapline.FactValue{
		// 2026-03-10 02:00 UTC, 2026-03-09 22:00 in New York.
		{Table: tapline.FactHits, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformWeb}:                                                             {Count: 1000},
		{Table: tapline.FactHits, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformIOS}:                                                             {Count: 234},
		{Table: tapline.FactInstalls, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}:                      {Count: 37},
		{Table: tapline.FactConversions, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}:                   {Count: 37, Sum: 37 * 600_000},
		{Table: tapline.FactInstalls, Hour: h(10, 2), AppID: app.ID, Platform: tapline.PlatformAndroid, Method: tapline.MethodOrganic}:                                           {Count: 12},
		{Table: tapline.FactEvents, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, EventName: "purchase", Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}: {Count: 4},
		{Table: tapline.FactRevenue, Hour: h(10, 2), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformIOS, Currency: "USD"}:                                         {Count: 4, Sum: 12_345_000},
		// 2026-03-10 23:00 UTC, 19:00 in New York.
		{Table: tapline.FactHits, Hour: h(10, 23), AppID: app.ID, LinkID: s.fall.ID, Platform: tapline.PlatformAndroid}:                                        {Count: 7},
		{Table: tapline.FactInstalls, Hour: h(10, 23), AppID: app.ID, LinkID: s.fall.ID, Platform: tapline.PlatformAndroid, Method: tapline.MethodReferrer}:    {Count: 1},
		{Table: tapline.FactConversions, Hour: h(10, 23), AppID: app.ID, LinkID: s.fall.ID, Platform: tapline.PlatformAndroid, Method: tapline.MethodReferrer}: {Count: 1, Sum: 120_000},
		// 2026-03-11 12:00 UTC, 08:00 in New York.
		{Table: tapline.FactHits, Hour: h(11, 12), AppID: app.ID, LinkID: s.spring.ID, Platform: tapline.PlatformWeb}: {Count: 20},
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatalf("apply facts: %v", err)
	}
	return s
}

func TestAppPageShowsSeededNumbers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, `Acme <Shop> & "Co"`)
	seedFacts(t, e, app)
	c := e.loggedIn("acme")

	res := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"?from=2026-03-09&to=2026-03-11")
	wantStatus(t, "app page", res, http.StatusOK)
	body := withoutLabels(res.Body)
	for _, want := range []string{
		"Acme &lt;Shop&gt; &amp; &#34;Co&#34;", // escaped app name
		// 2026-03-10 in UTC: 1,241 hits, 50 installs, 38 conversions (3.1%), 12 organic, 4 events, 12.35 USD.
		`<td class="day">2026-03-10</td><td class="num">1,241</td><td class="num">50</td><td class="num">38</td><td class="num">3.1%</td><td class="num">12</td><td class="num">4</td><td class="num">12.35 USD</td>`,
		`<td class="day">2026-03-11</td><td class="num">20</td><td class="num">0</td><td class="num">0</td><td class="num">0.0%</td><td class="num">0</td><td class="num">0</td><td class="num">–</td>`,
		// A day without hits has no rate, not 0.0%.
		`<td class="day">2026-03-09</td><td class="num">0</td><td class="num">0</td><td class="num">0</td><td class="num">–</td>`,
		`id="total-hits">1,261<`, `id="total-installs">50<`, `id="total-conversions">38<`, `id="total-rate">3.0%<`,
		`id="total-organic">12<`, `id="total-events">4<`, `id="total-revenue">12.35 USD<`,
		"Spring sale", "spring-sale", collectorURL + "/l/spring-sale", "Fall promo", collectorURL + "/l/fall-promo", "Idle link",
		// By link, busiest first: spring 37/1,254 converted in 600 s each, its purchases; organic installs under no link.
		`<td class="num">1,254</td><td class="num">37</td><td class="num">37</td><td class="num">3.0%</td><td class="num">0</td><td class="num">4</td><td class="num">12.35 USD</td><td class="num">10m</td></tr>`,
		`>No link (organic)</a></td><td class="num">0</td><td class="num">12</td>`,
		app.SDKSecret, app.SDKKey, "<code>acme</code>", collectorURL + "/acme/event/{event-name}",
		"<svg class=\"chart\"", "<rect class=\"hits\"",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	if strings.Contains(body, "<Shop>") {
		t.Error("app page shows the app name unescaped")
	}
	// The daily table is newest first.
	if i, j, k := strings.Index(body, ">2026-03-11<"), strings.Index(body, ">2026-03-10<"), strings.Index(body, ">2026-03-09<"); i < 0 || !(i < j && j < k) {
		t.Errorf("daily rows at %d, %d, %d: want 2026-03-11, -10, -09 in that order", i, j, k)
	}
	if strings.Contains(body, `id="no-traffic"`) {
		t.Error("an app with traffic shows the no-traffic help")
	}
	for _, external := range []string{"<script", `src="http`, `href="http`, "@import"} {
		if strings.Contains(body, external) {
			t.Errorf("app page contains %q; it must load nothing from elsewhere", external)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}

	t.Run("new york days", func(t *testing.T) {
		res := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"?from=2026-03-09&to=2026-03-11&tz=America/New_York")
		wantStatus(t, "app page", res, http.StatusOK)
		for _, want := range []string{
			`<td class="day">2026-03-09</td><td class="num">1,234</td><td class="num">49</td><td class="num">37</td>`,
			`<td class="day">2026-03-10</td><td class="num">7</td><td class="num">1</td><td class="num">1</td><td class="num">14.3%</td>`,
		} {
			if !strings.Contains(withoutLabels(res.Body), want) {
				t.Errorf("New York page lacks %q", want)
			}
		}
	})
	t.Run("bad tz", func(t *testing.T) {
		res := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"?tz=Mars/Olympus")
		wantStatus(t, "bad tz", res, http.StatusBadRequest)
		// The page itself, with the message above the default range's
		// report, not an error card in its place.
		for _, want := range []string{`id="range-error"`, "unknown time zone &#34;Mars/Olympus&#34;", "in UTC instead",
			`id="total-hits"`, `id="daily"`, `name="tz" value="UTC"`} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("bad tz page lacks %q: %.600s", want, res.Body)
			}
		}
	})
	t.Run("empty days folded", func(t *testing.T) {
		res := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"?from=2026-02-20&to=2026-03-11")
		wantStatus(t, "app page", res, http.StatusOK)
		if !strings.Contains(res.Body, "2026-02-20 to 2026-03-09: no hits, installs or events (18 days)") {
			t.Errorf("18 empty days are not one row")
		}
		if strings.Contains(res.Body, `<td class="day">2026-03-01</td>`) {
			t.Error("an empty day inside a folded run has a row of its own")
		}
	})
}

// withoutLabels drops the cells' data-label attributes (the column names a
// narrow screen shows beside each value) from a page, so the tests can
// read its rows.
func withoutLabels(page string) string { return dataLabel.ReplaceAllString(page, "") }

var dataLabel = regexp.MustCompile(` data-label="[^"]*"`)

// TestAppPageWithoutTraffic checks the empty state: an app without hits,
// installs or events in the range says how to get some, with its tracking
// link once it has one, and the SDK snippet with its own key.
func TestAppPageWithoutTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	page := "/apps/" + strconv.FormatInt(app.ID, 10)
	res := e.get(c, page)
	wantStatus(t, "app page", res, http.StatusOK)
	for _, want := range []string{`id="no-traffic"`, "tapline create-link -app " + strconv.FormatInt(app.ID, 10),
		"Authorization: Bearer " + app.SDKKey, collectorURL + "/v1/events", `id="total-rate">–<`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("empty app page lacks %q", want)
		}
	}
	e.link(app, "first-link", "First")
	res = e.get(c, page)
	if !strings.Contains(res.Body, `Try a tracking link: <code class="copy">`+collectorURL+"/l/first-link</code>") {
		t.Error("the empty state does not offer the app's tracking link")
	}
	if strings.Contains(res.Body, "tapline create-link") {
		t.Error("the empty state asks for a link the app has")
	}
}

// day is the JSON shape of one DailyStats as the tests want it.
type day struct {
	Day             string           `json:"day"`
	Hits            int64            `json:"hits"`
	Installs        int64            `json:"installs"`
	OrganicInstalls int64            `json:"organic_installs"`
	Conversions     int64            `json:"conversions"`
	Events          int64            `json:"events"`
	ConversionRate  float64          `json:"conversion_rate"`
	RevenueMicros   map[string]int64 `json:"revenue_micros"`
}

func sameDay(a, b day) bool {
	if a.Day != b.Day || a.Hits != b.Hits || a.Installs != b.Installs || a.OrganicInstalls != b.OrganicInstalls ||
		a.Conversions != b.Conversions || a.Events != b.Events || math.Abs(a.ConversionRate-b.ConversionRate) > 1e-9 ||
		len(a.RevenueMicros) != len(b.RevenueMicros) {
		return false
	}
	for k, v := range a.RevenueMicros {
		if b.RevenueMicros[k] != v {
			return false
		}
	}
	return true
}

func TestDailyJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	seedFacts(t, e, app)
	other := e.app(acme, "Other app") // facts of one app never show in another
	c := e.loggedIn("acme")
	usd := map[string]int64{"USD": 12_345_000}
	tests := []struct {
		name   string
		query  string
		tz     string
		days   []day
		totals day
	}{
		{
			name: "utc", query: "from=2026-03-09&to=2026-03-11", tz: "UTC",
			days: []day{
				{Day: "2026-03-09"},
				{Day: "2026-03-10", Hits: 1241, Installs: 50, OrganicInstalls: 12, Conversions: 38, Events: 4, ConversionRate: 38.0 / 1241, RevenueMicros: usd},
				{Day: "2026-03-11", Hits: 20},
			},
			totals: day{Hits: 1261, Installs: 50, OrganicInstalls: 12, Conversions: 38, Events: 4, ConversionRate: 38.0 / 1261, RevenueMicros: usd},
		},
		{
			name: "new york", query: "from=2026-03-09&to=2026-03-11&tz=America/New_York", tz: "America/New_York",
			days: []day{
				{Day: "2026-03-09", Hits: 1234, Installs: 49, OrganicInstalls: 12, Conversions: 37, Events: 4, ConversionRate: 37.0 / 1234, RevenueMicros: usd},
				{Day: "2026-03-10", Hits: 7, Installs: 1, Conversions: 1, ConversionRate: 1.0 / 7},
				{Day: "2026-03-11", Hits: 20},
			},
			totals: day{Hits: 1261, Installs: 50, OrganicInstalls: 12, Conversions: 38, Events: 4, ConversionRate: 38.0 / 1261, RevenueMicros: usd},
		},
		{
			name: "tokyo one day", query: "from=2026-03-10&to=2026-03-10&tz=Asia/Tokyo", tz: "Asia/Tokyo",
			// Tokyo is UTC+9: 02:00 and 23:00 UTC fall on March 10 and 11.
			days:   []day{{Day: "2026-03-10", Hits: 1234, Installs: 49, OrganicInstalls: 12, Conversions: 37, Events: 4, ConversionRate: 37.0 / 1234, RevenueMicros: usd}},
			totals: day{Hits: 1234, Installs: 49, OrganicInstalls: 12, Conversions: 37, Events: 4, ConversionRate: 37.0 / 1234, RevenueMicros: usd},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/daily?"+tt.query)
			wantStatus(t, "daily", res, http.StatusOK)
			var got struct {
				AppID  int64  `json:"app_id"`
				TZ     string `json:"tz"`
				Days   []day  `json:"days"`
				Totals day    `json:"totals"`
			}
			if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
				t.Fatalf("decode %s: %v", res.Body, err)
			}
			if got.AppID != app.ID || got.TZ != tt.tz {
				t.Errorf("app_id %d tz %q, want %d %q", got.AppID, got.TZ, app.ID, tt.tz)
			}
			if len(got.Days) != len(tt.days) {
				t.Fatalf("days = %+v, want %+v", got.Days, tt.days)
			}
			for i := range tt.days {
				if !sameDay(got.Days[i], tt.days[i]) {
					t.Errorf("day %d = %+v, want %+v", i, got.Days[i], tt.days[i])
				}
			}
			if !sameDay(got.Totals, tt.totals) {
				t.Errorf("totals = %+v, want %+v", got.Totals, tt.totals)
			}
		})
	}
	t.Run("other app empty", func(t *testing.T) {
		res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(other.ID, 10)+"/daily?from=2026-03-10&to=2026-03-10")
		wantStatus(t, "daily", res, http.StatusOK)
		var got struct{ Totals day }
		if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
			t.Fatal(err)
		}
		if !sameDay(got.Totals, day{}) {
			t.Errorf("other app totals = %+v, want zeros", got.Totals)
		}
	})
}

func TestLinksJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	s := seedFacts(t, e, app)
	c := e.loggedIn("acme")

	res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/links?from=2026-03-09&to=2026-03-11")
	wantStatus(t, "links", res, http.StatusOK)
	type link struct {
		LinkID      int64            `json:"link_id"`
		Slug        string           `json:"slug"`
		Name        string           `json:"name"`
		TrackingURL string           `json:"tracking_url"`
		Hits        int64            `json:"hits"`
		Conversions int64            `json:"conversions"`
		Rate        float64          `json:"conversion_rate"`
		Mean        float64          `json:"mean_click_to_install_seconds"`
		ByMethod    map[string]int64 `json:"conversions_by_method"`
	}
	var got struct {
		AppID int64  `json:"app_id"`
		Links []link `json:"links"`
	}
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("decode %s: %v", res.Body, err)
	}
	want := []link{
		{LinkID: s.spring.ID, Slug: "spring-sale", Name: "Spring sale", TrackingURL: collectorURL + "/l/spring-sale", Hits: 1254, Conversions: 37, Rate: 37.0 / 1254, Mean: 600, ByMethod: map[string]int64{"fingerprint": 37}},
		{LinkID: s.fall.ID, Slug: "fall-promo", Name: "Fall promo", TrackingURL: collectorURL + "/l/fall-promo", Hits: 7, Conversions: 1, Rate: 1.0 / 7, Mean: 120, ByMethod: map[string]int64{"referrer": 1}},
		{LinkID: s.idle.ID, Slug: "idle", Name: "Idle link", TrackingURL: collectorURL + "/l/idle"},
	}
	if len(got.Links) != len(want) {
		t.Fatalf("links = %+v, want %+v", got.Links, want)
	}
	for i, w := range want {
		g := got.Links[i]
		same := g.LinkID == w.LinkID && g.Slug == w.Slug && g.Name == w.Name && g.TrackingURL == w.TrackingURL &&
			g.Hits == w.Hits && g.Conversions == w.Conversions && math.Abs(g.Rate-w.Rate) < 1e-9 && math.Abs(g.Mean-w.Mean) < 1e-6 &&
			len(g.ByMethod) == len(w.ByMethod)
		for k, v := range w.ByMethod {
			same = same && g.ByMethod[k] == v
		}
		if !same {
			t.Errorf("link %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestBadQueryParams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	base := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10)
	tests := []struct {
		name  string
		query string
		msg   string
	}{
		{"bad tz", "tz=Mars/Olympus", `tz: unknown time zone "Mars/Olympus"`},
		{"bad from", "from=2026-02-30", "from:"},
		{"bad to", "to=03/10/2026", "to:"},
		{"from after to", "from=2026-03-10&to=2026-03-09", "from (2026-03-10) is after to (2026-03-09)"},
		{"too long", "from=2024-01-01&to=2025-12-31", "at most 366"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{base + "/daily?" + tt.query, base + "/links?" + tt.query} {
				wantJSONError(t, path, e.get(c, path), http.StatusBadRequest, "invalid", tt.msg)
			}
			res := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"?"+tt.query)
			wantStatus(t, "page", res, http.StatusBadRequest)
		})
	}
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	id := strconv.FormatInt(app.ID, 10)
	for _, path := range []string{"/api/v1/apps", "/api/v1/apps/" + id + "/daily", "/api/v1/apps/" + id + "/links"} {
		t.Run(path, func(t *testing.T) {
			wantJSONError(t, "no credentials", e.get(e.client(), path), http.StatusUnauthorized, "unauthorized", "")
			wantJSONError(t, "wrong token", e.do(e.client(), http.MethodGet, path, nil, map[string]string{"Authorization": "Bearer wrong"}), http.StatusUnauthorized, "unauthorized", "")
		})
	}
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	wantStatus(t, "admin daily", e.do(e.client(), http.MethodGet, "/api/v1/apps/"+id+"/daily", nil, admin), http.StatusOK)
	wantJSONError(t, "admin apps without account", e.do(e.client(), http.MethodGet, "/api/v1/apps", nil, admin), http.StatusBadRequest, "invalid", "account")
	res := e.do(e.client(), http.MethodGet, "/api/v1/apps?account=acme", nil, admin)
	wantStatus(t, "admin apps", res, http.StatusOK)
	if !strings.Contains(res.Body, app.SDKKey) {
		t.Errorf("admin apps lacks the app: %s", res.Body)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range auth {
			h[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	call := func(method, path, body string, header map[string]string) response {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		return e.do(e.client(), method, path, r, header)
	}

	// Create the account, its app and a link; each step's errors follow it.
	res := call("POST", "/admin/v1/accounts", `{"name":"acme","email":"ops@acme.example","password":"s3cret-pass"}`, auth)
	wantStatus(t, "create account", res, http.StatusCreated)
	var acct dashboard.AccountView
	if err := json.Unmarshal([]byte(res.Body), &acct); err != nil || acct.ID == 0 || acct.Name != "acme" || acct.Email != "ops@acme.example" {
		t.Fatalf("created account = %+v (%v), body %s", acct, err, res.Body)
	}
	if strings.Contains(res.Body, "s3cret-pass") {
		t.Error("create account echoes the password")
	}
	if u, _, err := e.accounts.Authenticate(context.Background(), "acme", "s3cret-pass"); err != nil || u.Role != tapline.RoleOwner {
		t.Errorf("the created account cannot log in: %v", err)
	}

	res = call("POST", "/admin/v1/accounts/acme/apps", `{"name":"Acme Shop","ios_url":"https://apps.apple.com/app/id42","android_url":"https://play.google.com/store/apps/details?id=com.acme","web_url":"https://acme.example/","click_window":"168h","fingerprint_window":"12h"}`, auth)
	wantStatus(t, "create app", res, http.StatusCreated)
	var app dashboard.AppView
	if err := json.Unmarshal([]byte(res.Body), &app); err != nil {
		t.Fatal(err)
	}
	if app.ID == 0 || app.AccountID != acct.ID || app.SDKSecret == "" || app.SDKKey == "" || app.ClickWindow != "168h0m0s" ||
		app.FingerprintWindow != "12h0m0s" || app.Retention != tapline.DefaultRetention.String() || app.IOSURL != "https://apps.apple.com/app/id42" {
		t.Errorf("created app = %+v", app)
	}
	appID := strconv.FormatInt(app.ID, 10)

	res = call("POST", "/admin/v1/apps/"+appID+"/links", `{"slug":"spring-sale","name":"Spring sale","web_url":"https://acme.example/spring"}`, auth)
	wantStatus(t, "create link", res, http.StatusCreated)
	var link struct {
		tapline.Link
		TrackingURL string `json:"tracking_url"`
	}
	if err := json.Unmarshal([]byte(res.Body), &link); err != nil {
		t.Fatal(err)
	}
	if link.ID == 0 || link.AppID != app.ID || link.Slug != "spring-sale" || link.TrackingURL != collectorURL+"/l/spring-sale" {
		t.Errorf("created link = %+v", link)
	}

	big := `{"name":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		want                     string // in the body
	}{
		{"get account", "GET", "/admin/v1/accounts/acme", "", auth, 200, `"email": "ops@acme.example"`},
		{"list apps", "GET", "/admin/v1/accounts/acme/apps", "", auth, 200, app.SDKKey},
		{"list links", "GET", "/admin/v1/apps/" + appID + "/links", "", auth, 200, `"tracking_url": "` + collectorURL + `/l/spring-sale"`},

		{"no token", "GET", "/admin/v1/accounts/acme", "", map[string]string{}, 401, `"unauthorized"`},
		{"wrong token", "GET", "/admin/v1/accounts/acme", "", with(map[string]string{"Authorization": "Bearer " + adminToken + "x"}), 401, `"unauthorized"`},
		{"basic auth", "GET", "/admin/v1/accounts/acme", "", with(map[string]string{"Authorization": "Basic " + adminToken}), 401, `"unauthorized"`},
		{"session is not admin", "POST", "/admin/v1/accounts", `{}`, map[string]string{"Content-Type": "application/json"}, 401, `"unauthorized"`},

		{"account: taken name", "POST", "/admin/v1/accounts", `{"name":"acme","email":"x@acme.example","password":"pw-123456"}`, auth, 409, `"conflict"`},
		{"account: missing email", "POST", "/admin/v1/accounts", `{"name":"beta","password":"pw-123456"}`, auth, 400, `email`},
		{"account: upper-case name", "POST", "/admin/v1/accounts", `{"name":"Beta","email":"b@b.example","password":"pw-123456"}`, auth, 400, `name`},
		{"account: bad name", "POST", "/admin/v1/accounts", `{"name":"a b/c","email":"b@b.example","password":"pw-123456"}`, auth, 400, `name`},
		{"account: missing password", "POST", "/admin/v1/accounts", `{"name":"beta","email":"b@b.example"}`, auth, 400, `password`},
		{"account: unknown field", "POST", "/admin/v1/accounts", `{"name":"beta","email":"b@b.example","password":"pw-123456","admin":true}`, auth, 400, `admin`},
		{"account: not json", "POST", "/admin/v1/accounts", `{"name":`, auth, 400, `"invalid"`},
		{"account: wrong type", "POST", "/admin/v1/accounts", `{"name":5}`, auth, 400, `name`},
		{"account: text body", "POST", "/admin/v1/accounts", `name=beta`, with(map[string]string{"Content-Type": "text/plain"}), 415, `application/json`},
		{"account: no content type", "POST", "/admin/v1/accounts", `{}`, with(map[string]string{"Content-Type": ""}), 415, `application/json`},
		{"account: too large", "POST", "/admin/v1/accounts", big, auth, 413, `"too_large"`},
		{"account: not found", "GET", "/admin/v1/accounts/nobody", "", auth, 404, `"not_found"`},

		{"app: unknown account", "POST", "/admin/v1/accounts/nobody/apps", `{"name":"X"}`, auth, 404, `"not_found"`},
		{"app: missing name", "POST", "/admin/v1/accounts/acme/apps", `{"web_url":"https://acme.example/"}`, auth, 400, `name`},
		{"app: bad window", "POST", "/admin/v1/accounts/acme/apps", `{"name":"X","click_window":"7 days"}`, auth, 400, `click_window`},
		{"app: negative window", "POST", "/admin/v1/accounts/acme/apps", `{"name":"X","retention":"-1h"}`, auth, 400, `retention`},
		{"app: bad url", "POST", "/admin/v1/accounts/acme/apps", `{"name":"X","ios_url":"not a url"}`, auth, 400, `ios_url`},
		{"app: script url", "POST", "/admin/v1/accounts/acme/apps", `{"name":"X","web_url":"javascript:alert(1)"}`, auth, 400, `web_url`},
		{"app: text body", "POST", "/admin/v1/accounts/acme/apps", `{"name":"X"}`, with(map[string]string{"Content-Type": "text/plain"}), 415, `application/json`},
		{"app: too large", "POST", "/admin/v1/accounts/acme/apps", big, auth, 413, `"too_large"`},
		{"apps: unknown account", "GET", "/admin/v1/accounts/nobody/apps", "", auth, 404, `"not_found"`},

		{"link: taken slug", "POST", "/admin/v1/apps/" + appID + "/links", `{"slug":"spring-sale"}`, auth, 409, `"conflict"`},
		{"link: bad slug", "POST", "/admin/v1/apps/" + appID + "/links", `{"slug":"a/b"}`, auth, 400, `slug`},
		{"link: missing slug", "POST", "/admin/v1/apps/" + appID + "/links", `{"name":"x"}`, auth, 400, `slug`},
		{"link: bad url", "POST", "/admin/v1/apps/" + appID + "/links", `{"slug":"ok","android_url":"//nohost"}`, auth, 400, `android_url`},
		{"link: unknown app", "POST", "/admin/v1/apps/999999/links", `{"slug":"x"}`, auth, 404, `"not_found"`},
		{"link: text body", "POST", "/admin/v1/apps/" + appID + "/links", `{"slug":"x"}`, with(map[string]string{"Content-Type": "text/plain"}), 415, `application/json`},
		{"link: too large", "POST", "/admin/v1/apps/" + appID + "/links", big, auth, 413, `"too_large"`},
		{"links: unknown app", "GET", "/admin/v1/apps/999999/links", "", auth, 404, `"not_found"`},
		{"links: bad id", "GET", "/admin/v1/apps/abc/links", "", auth, 404, `"not_found"`},
		{"unknown endpoint", "GET", "/admin/v1/nothing", "", auth, 404, `"not_found"`},
		{"wrong method", "DELETE", "/admin/v1/accounts/acme", "", auth, 405, `method_not_allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(tt.method, tt.path, tt.body, tt.header)
			wantStatus(t, tt.method+" "+tt.path, res, tt.status)
			if !strings.Contains(res.Body, tt.want) {
				t.Errorf("%s %s body %.300s, want it to contain %q", tt.method, tt.path, res.Body, tt.want)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
		})
	}

	t.Run("disabled without token", func(t *testing.T) {
		cfg := e.d.Config
		cfg.AdminToken = ""
		offDash := dashboard.New(cfg, e.accounts, e.d.Reports)
		offDash.Funnels, offDash.FunnelReports = e.d.Funnels, e.d.FunnelReports
		off := httptest.NewServer(offDash.Handler())
		defer off.Close()
		for _, token := range []string{"", adminToken} {
			req, _ := http.NewRequest("GET", off.URL+"/admin/v1/accounts/acme", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("admin API off, token %q: status %d, want 404", token, res.StatusCode)
			}
		}
	})
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("victim")
	e.account("bystander")
	start := time.Now()
	e.clock.Store(start.UnixNano())
	c := e.client()
	for i := range dashboard.MaxLoginFailures {
		if r := e.login(c, "victim@example.com", "wrong-password"); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d, want 401", i+1, r.Status)
		}
	}
	// Locked out now, even with the right password, and told when to retry.
	r := e.login(c, "VICTIM@example.com", password)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "Too many wrong passwords") {
		t.Fatalf("after %d failures: status %d, Retry-After %q; want 429 with Retry-After and a message", dashboard.MaxLoginFailures, r.Status, r.Header.Get("Retry-After"))
	}
	// Other logins are not affected.
	if r := e.login(e.client(), "bystander@example.com", password); r.Status != http.StatusSeeOther {
		t.Fatalf("another login: status %d, want 303", r.Status)
	}
	// After the window the right password works again.
	e.clock.Store(start.Add(dashboard.LoginFailureWindow + time.Second).UnixNano())
	if r := e.login(c, "victim@example.com", password); r.Status != http.StatusSeeOther {
		t.Fatalf("after the window: status %d, want 303", r.Status)
	}
}
