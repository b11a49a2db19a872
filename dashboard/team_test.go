package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// inviteURLRE finds the invite link the team page shows once.
var inviteURLRE = regexp.MustCompile(`id="invite-url">(http://[^<]+/invite/([A-Za-z0-9_-]+))<`)

// invite has owner c invite email with role on the team page and returns
// the path of the invite link it shows.
func (e *env) invite(c *http.Client, email string, role tapline.Role) string {
	e.t.Helper()
	res := e.postForm(c, "/account/invites", url.Values{"email": {email}, "role": {string(role)}})
	wantStatus(e.t, "invite "+email, res, http.StatusCreated)
	m := inviteURLRE.FindStringSubmatch(res.Body)
	if m == nil {
		e.t.Fatalf("the invite link is not shown: %.600s", res.Body)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		e.t.Fatal(err)
	}
	return u.Path
}

// accept accepts the invite at path with password in a new client and
// returns it, logged in.
func (e *env) accept(path, pass string) *http.Client {
	e.t.Helper()
	c := e.client()
	res := e.postForm(c, path, url.Values{"password": {pass}, "confirm": {pass}})
	wantStatus(e.t, "accept "+path, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/apps" {
		e.t.Fatalf("accepting sends to %q, want /apps", loc)
	}
	return c
}

// join has owner c invite email with role and returns the new user's
// logged-in client.
func (e *env) join(c *http.Client, email string, role tapline.Role) *http.Client {
	e.t.Helper()
	return e.accept(e.invite(c, email, role), password)
}

// userID finds the id of the user with email on the team page.
func (e *env) userID(c *http.Client, email string) string {
	e.t.Helper()
	m := regexp.MustCompile(`<tr id="user-(\d+)">\s*<td>` + regexp.QuoteMeta(email)).FindStringSubmatch(e.get(c, "/account/users").Body)
	if m == nil {
		e.t.Fatalf("%s is not on the team page", email)
	}
	return m[1]
}

// TestInviteAcceptAndViewer invites a viewer, who accepts the link once,
// is logged in, reads the reports, sees no controls to change anything,
// is refused every change (403, a page or JSON), and may change their
// own password.
func TestInviteAcceptAndViewer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	l := e.link(app, "spring", "Spring")
	owner := e.loggedIn("acme")

	path := e.invite(owner, "Viewer@Example.com", tapline.RoleViewer)
	token := strings.TrimPrefix(path, "/invite/")
	team := e.get(owner, "/account/users")
	if strings.Contains(team.Body, token) {
		t.Error("the team page shows the invite link again")
	}
	if !strings.Contains(team.Body, `id="invites"`) || !strings.Contains(team.Body, "viewer@example.com") {
		t.Errorf("the pending invite is not listed: %.600s", team.Body)
	}

	anon := e.client()
	res := e.get(anon, path)
	wantStatus(t, "the invite page", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="invite-email">viewer@example.com<`) || !strings.Contains(res.Body, `id="invite-role">viewer<`) || !strings.Contains(res.Body, "acme") {
		t.Errorf("the invite page does not say who is invited where: %.600s", res.Body)
	}
	for _, tc := range []struct {
		name            string
		password, again string
		msg             string
	}{
		{"confirmation differs", "a-long-password", "a-long-passworx", "The password and its confirmation differ."},
		{"weak", "short", "short", "password: must be at least"},
	} {
		res := e.postForm(anon, path, url.Values{"password": {tc.password}, "confirm": {tc.again}})
		wantStatus(t, tc.name, res, http.StatusBadRequest)
		if !strings.Contains(res.Body, `id="invite-error"`) || !strings.Contains(res.Body, tc.msg) {
			t.Errorf("%s: the page does not say %q: %.600s", tc.name, tc.msg, res.Body)
		}
	}
	viewer := e.accept(path, "viewer-password")

	// Used: the link is gone, clearly.
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		res := e.do(e.client(), method, path, strings.NewReader("password=a-long-password&confirm=a-long-password"),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
		wantStatus(t, method+" the used invite", res, http.StatusGone)
		if !strings.Contains(res.Body, "used already") {
			t.Errorf("%s the used invite does not say so: %.400s", method, res.Body)
		}
	}
	if team := e.get(owner, "/account/users"); !strings.Contains(team.Body, "No pending invites.") || !strings.Contains(team.Body, "viewer@example.com") {
		t.Errorf("after acceptance: want the viewer among the users and no pending invite")
	}

	// The viewer reads.
	appPath := "/apps/" + strconv.FormatInt(app.ID, 10)
	linkPath := appPath + "/links/" + strconv.FormatInt(l.ID, 10)
	for _, p := range []string{"/apps", appPath, appPath + "/links", linkPath, appPath + "/settings", appPath + "/funnels", "/account", "/account/users"} {
		res := e.get(viewer, p)
		wantStatus(t, "viewer reads "+p, res, http.StatusOK)
		for _, control := range []string{`id="new-link"`, `id="save-link"`, `id="archive-link"`, `id="save-settings"`, `id="new-funnel"`, `id="token-form"`, `id="invite-form"`, `action="/account/users/`} {
			if strings.Contains(res.Body, control) {
				t.Errorf("the viewer's %s shows %s", p, control)
			}
		}
	}
	wantStatus(t, "viewer reads the API", e.get(viewer, "/api/v1"+appPath+"/daily"), http.StatusOK)
	// The owner sees the controls the viewer does not.
	if res := e.get(owner, linkPath); !strings.Contains(res.Body, `id="save-link"`) {
		t.Error("the owner's link page has no save button")
	}

	// The viewer changes nothing.
	res = e.postForm(viewer, linkPath, url.Values{"name": {"Renamed"}})
	wantStatus(t, "viewer edits a link", res, http.StatusForbidden)
	if !strings.Contains(res.Body, "viewer") {
		t.Errorf("the refusal does not say why: %.400s", res.Body)
	}
	wantJSONError(t, "viewer patches a link", e.sendJSON(viewer, http.MethodPatch, "/api/v1"+linkPath, `{"name":"Renamed"}`),
		http.StatusForbidden, "forbidden", "viewer")
	if got, err := e.accounts.Link(context.Background(), l.ID); err != nil || got.Name != "Spring" {
		t.Errorf("after the viewer's refused edits: %+v, %v", got, err)
	}
	// But their own password.
	res = e.postForm(viewer, "/account/password", url.Values{"current": {"viewer-password"}, "new": {"viewer-password-2"}, "confirm": {"viewer-password-2"}})
	wantStatus(t, "viewer changes their password", res, http.StatusSeeOther)
	if r := e.login(e.client(), "VIEWER@example.com", "viewer-password-2"); r.Status != http.StatusSeeOther {
		t.Errorf("the viewer's login by email: status %d, want 303", r.Status)
	}
	if r := e.login(e.client(), "acme", "viewer-password-2"); r.Status != http.StatusUnauthorized {
		t.Errorf("the account's name with the viewer's password: status %d, want 401 (the name logs its owner in)", r.Status)
	}
	wantStatus(t, "the owner's session outlives the viewer's password change", e.get(owner, "/apps"), http.StatusOK)
}

// TestInviteLinksThatDoNotWork opens invite links that are made up,
// expired or revoked: each is a page saying so, 404 or 410.
func TestInviteLinksThatDoNotWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("acme")
	owner := e.loggedIn("acme")
	anon := e.client()

	res := e.get(anon, "/invite/made-up-token")
	wantStatus(t, "a made-up invite", res, http.StatusNotFound)
	if !strings.Contains(res.Body, "not valid") || !strings.Contains(res.Body, "<html") {
		t.Errorf("a made-up invite: want a page saying it is not valid: %.400s", res.Body)
	}

	revoked := e.invite(owner, "revoked@example.com", tapline.RoleViewer)
	id := regexp.MustCompile(`action="/account/invites/(\d+)/revoke"`).FindStringSubmatch(e.get(owner, "/account/users").Body)
	if id == nil {
		t.Fatal("no revoke button")
	}
	res = e.postForm(owner, "/account/invites/"+id[1]+"/revoke", nil)
	wantStatus(t, "revoke", res, http.StatusSeeOther)
	if res = e.get(owner, res.Header.Get("Location")); !strings.Contains(res.Body, "Invite revoked") || strings.Contains(res.Body, "revoked@example.com") {
		t.Errorf("after revoking: want a notice and the invite off the list")
	}
	res = e.get(anon, revoked)
	wantStatus(t, "a revoked invite", res, http.StatusGone)
	if !strings.Contains(res.Body, "revoked") {
		t.Errorf("a revoked invite does not say so: %.400s", res.Body)
	}

	expired := e.invite(owner, "late@example.com", tapline.RoleViewer)
	e.clock.Store(time.Now().Add(tapline.InviteLifetime + time.Minute).UnixNano())
	res = e.postForm(anon, expired, url.Values{"password": {"a-long-password"}, "confirm": {"a-long-password"}})
	wantStatus(t, "an expired invite", res, http.StatusGone)
	if !strings.Contains(res.Body, "expired") {
		t.Errorf("an expired invite does not say so: %.400s", res.Body)
	}
	if r := e.login(e.client(), "late@example.com", "a-long-password"); r.Status != http.StatusUnauthorized {
		t.Errorf("an expired invite made a user: login status %d", r.Status)
	}
}

// TestTeamForms changes roles and removes users on the team page: bad
// input and the last owner are refused on the page; a removed user's
// sessions end; a demoted owner can no longer change anything.
func TestTeamForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	owner := e.loggedIn("acme")
	me := e.userID(owner, "acme@example.com")

	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		msg        string
	}{
		{"no email", "/account/invites", url.Values{"email": {" "}, "role": {"viewer"}}, http.StatusBadRequest, "Enter the email address"},
		{"bad email", "/account/invites", url.Values{"email": {"not-an-email"}, "role": {"viewer"}}, http.StatusBadRequest, "email: must be a valid address"},
		{"bad role", "/account/invites", url.Values{"email": {"x@example.com"}, "role": {"admin"}}, http.StatusBadRequest, "Choose a role"},
		{"a user already", "/account/invites", url.Values{"email": {"ACME@example.com"}, "role": {"viewer"}}, http.StatusConflict, "is a user already"},
		{"bad role change", "/account/users/" + me + "/role", url.Values{"role": {"admin"}}, http.StatusBadRequest, "Choose a role"},
		{"demote the last owner", "/account/users/" + me + "/role", url.Values{"role": {"viewer"}}, http.StatusConflict, "last owner"},
		{"remove the last owner", "/account/users/" + me + "/remove", nil, http.StatusConflict, "last owner"},
	} {
		res := e.postForm(owner, tc.path, tc.form)
		wantStatus(t, tc.name, res, tc.status)
		if !strings.Contains(res.Body, `id="form-error"`) || !strings.Contains(res.Body, tc.msg) {
			t.Errorf("%s: the page does not say %q: %.600s", tc.name, tc.msg, res.Body)
		}
	}
	// The refused invite form keeps what was typed.
	if res := e.postForm(owner, "/account/invites", url.Values{"email": {"not-an-email"}, "role": {"owner"}}); !strings.Contains(res.Body, `value="not-an-email"`) || !strings.Contains(res.Body, `<option value="owner" selected>`) {
		t.Error("the refused invite form does not keep its input")
	}

	// A second owner; the first steps down and can change nothing more.
	second := e.join(owner, "second@example.com", tapline.RoleOwner)
	viewer := e.join(second, "viewer@example.com", tapline.RoleViewer)
	wantStatus(t, "step down", e.postForm(owner, "/account/users/"+me+"/role", url.Values{"role": {"viewer"}}), http.StatusSeeOther)
	wantStatus(t, "the former owner invites", e.postForm(owner, "/account/invites", url.Values{"email": {"x@example.com"}, "role": {"viewer"}}), http.StatusForbidden)
	wantStatus(t, "the former owner makes a link", e.postForm(owner, "/apps/"+strconv.FormatInt(app.ID, 10)+"/links", url.Values{"slug": {"x"}}), http.StatusForbidden)

	// Removing a user ends their sessions at once.
	wantStatus(t, "the viewer before removal", e.get(viewer, "/apps"), http.StatusOK)
	res := e.postForm(second, "/account/users/"+e.userID(second, "viewer@example.com")+"/remove", nil)
	wantStatus(t, "remove the viewer", res, http.StatusSeeOther)
	if res = e.get(second, res.Header.Get("Location")); !strings.Contains(res.Body, "User removed") || strings.Contains(res.Body, "viewer@example.com") {
		t.Error("after removing: want a notice and the user off the list")
	}
	wantStatus(t, "the removed viewer's session", e.get(viewer, "/apps"), http.StatusSeeOther)
	if r := e.login(e.client(), "viewer@example.com", password); r.Status != http.StatusUnauthorized {
		t.Errorf("the removed viewer logs in: status %d, want 401", r.Status)
	}
	// The remaining owner may remove themselves only while another owner
	// is left.
	wantStatus(t, "promote back", e.postForm(second, "/account/users/"+me+"/role", url.Values{"role": {"owner"}}), http.StatusSeeOther)
	res = e.postForm(second, "/account/users/"+e.userID(second, "second@example.com")+"/remove", nil)
	wantStatus(t, "remove oneself", res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/login" {
		t.Errorf("removing oneself sends to %q, want /login", loc)
	}
	wantStatus(t, "after removing oneself", e.get(second, "/apps"), http.StatusSeeOther)
	wantStatus(t, "the first owner again", e.get(owner, "/account/users"), http.StatusOK)
}

// TestTeamIsolatesTenants has another account's owner try this account's
// user and invite ids: 404, and nothing changes.
func TestTeamIsolatesTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	e.account("other")
	owner := e.loggedIn("acme")
	e.join(owner, "viewer@example.com", tapline.RoleViewer)
	e.invite(owner, "pending@example.com", tapline.RoleViewer)
	viewerID := e.userID(owner, "viewer@example.com")
	inviteID := regexp.MustCompile(`action="/account/invites/(\d+)/revoke"`).FindStringSubmatch(e.get(owner, "/account/users").Body)
	if inviteID == nil {
		t.Fatal("no pending invite")
	}
	other := e.loggedIn("other")
	if res := e.get(other, "/account/users"); strings.Contains(res.Body, "viewer@example.com") || strings.Contains(res.Body, "pending@example.com") {
		t.Error("another account's team page shows this account's users or invites")
	}
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/account/users/" + viewerID + "/role", url.Values{"role": {"owner"}}},
		{"/account/users/" + viewerID + "/remove", nil},
		{"/account/invites/" + inviteID[1] + "/revoke", nil},
		{"/account/users/0/remove", nil},
		{"/account/users/x/role", url.Values{"role": {"owner"}}},
	} {
		res := e.postForm(other, tc.path, tc.form)
		wantStatus(t, "other "+tc.path, res, http.StatusNotFound)
		if strings.Contains(res.Body, "viewer@example.com") {
			t.Errorf("other %s shows the user", tc.path)
		}
	}
	users, err := e.accounts.Users(context.Background(), acme.ID)
	if err != nil || len(users) != 2 || users[1].Role != tapline.RoleViewer {
		t.Errorf("acme's users after the other account's tries: %+v, %v", users, err)
	}
	if invites, _ := e.accounts.Invites(context.Background(), acme.ID, time.Now()); len(invites) != 1 {
		t.Errorf("acme's pending invites after the other account's tries: %d, want 1", len(invites))
	}
}

// viewerMayPost are the only routes that change something that a viewer
// may use: logging in and out, their own password, accepting an invite.
var viewerMayPost = map[string]bool{
	"POST /login":            true,
	"POST /logout":           true,
	"POST /account/password": true,
	"POST /invite/{token}":   true,
}

// TestEveryChangeIsRefusedToViewers walks the dashboard's own route list
// and sends every route that is not a GET, with ids of the viewer's own
// account, as a logged-in viewer: each answers 403 but those of
// viewerMayPost, so a route added later is covered without naming it here.
// The admin routes answer 401 to a session.
func TestEveryChangeIsRefusedToViewers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	link := e.link(app, "spring", "Spring")
	f, err := e.funnels.CreateFunnel(context.Background(), app.ID, tapline.FunnelDefinition{Name: "Spring funnel",
		Steps: []tapline.FunnelStep{{Kind: tapline.StepTap, Links: []int64{link.ID}}, {Kind: tapline.StepInstall}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.accounts.CreateAPIToken(context.Background(), acme.ID, "export")
	if err != nil {
		t.Fatal(err)
	}
	owner := e.loggedIn("acme")
	viewer := e.join(owner, "viewer@example.com", tapline.RoleViewer)
	e.invite(owner, "pending@example.com", tapline.RoleViewer)
	inviteID := regexp.MustCompile(`action="/account/invites/(\d+)/revoke"`).FindStringSubmatch(e.get(owner, "/account/users").Body)[1]
	ids := strings.NewReplacer("{id}", strconv.FormatInt(app.ID, 10), "{lid}", strconv.FormatInt(link.ID, 10),
		"{fid}", strconv.FormatInt(f.ID, 10), "{tid}", strconv.FormatInt(tok.ID, 10),
		"{uid}", e.userID(owner, "acme@example.com"), "{iid}", inviteID, "/*", "/")

	routes := e.d.Handler().(chi.Routes)
	checked, allowed := 0, map[string]bool{}
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions || strings.HasPrefix(route, "/admin/") {
			return nil
		}
		if viewerMayPost[method+" "+route] {
			allowed[method+" "+route] = true
			return nil
		}
		checked++
		path := ids.Replace(route)
		t.Run(method+" "+path, func(t *testing.T) {
			if strings.HasPrefix(route, "/api/") {
				wantJSONError(t, method+" "+path, e.sendJSON(viewer, method, path, `{"name":"x","slug":"x"}`), http.StatusForbidden, "forbidden", "viewer")
				return
			}
			res := e.postForm(viewer, path, url.Values{"name": {"x"}, "slug": {"x"}, "role": {"viewer"}, "email": {"x@example.com"}})
			if method != http.MethodPost {
				res = e.do(viewer, method, path, nil, map[string]string{"Origin": e.srv.URL})
			}
			wantStatus(t, method+" "+path, res, http.StatusForbidden)
			if !strings.Contains(res.Body, "<html") || !strings.Contains(res.Body, "viewer") {
				t.Errorf("%s %s: want a page saying the viewer may only read: %.400s", method, path, res.Body)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 15 {
		t.Errorf("walked %d changing routes; the route list seems incomplete", checked)
	}
	for r := range viewerMayPost {
		if !allowed[r] {
			t.Errorf("%s is allowed to viewers but is no route", r)
		}
	}
	// Nothing changed.
	if got, _ := e.accounts.Link(context.Background(), link.ID); got.Name != "Spring" || got.ArchivedAt != nil {
		t.Errorf("the link after the viewer's tries: %+v", got)
	}
	if users, _ := e.accounts.Users(context.Background(), acme.ID); len(users) != 2 || users[0].Role != tapline.RoleOwner {
		t.Errorf("the users after the viewer's tries: %+v", users)
	}
	if tokens, _ := e.accounts.APITokens(context.Background(), acme.ID); len(tokens) != 1 || tokens[0].RevokedAt != nil {
		t.Errorf("the tokens after the viewer's tries: %+v", tokens)
	}
}
