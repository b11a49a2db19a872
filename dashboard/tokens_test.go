package dashboard_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAPITokens makes a token on the account page, reads reports with it,
// and checks that it only reads, only this account's apps, and stops
// working once revoked.
func TestAPITokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	theirs := e.app(e.account("other"), "Theirs")
	c := e.loggedIn("acme")

	res := e.postForm(c, "/account/tokens", url.Values{"name": {"nightly export"}})
	wantStatus(t, "make a token", res, http.StatusCreated)
	m := regexp.MustCompile(`id="new-secret">(tl_[A-Za-z0-9_-]+)<`).FindStringSubmatch(res.Body)
	if m == nil {
		t.Fatalf("the new token's secret is not shown: %.500s", res.Body)
	}
	secret := m[1]
	if res = e.get(c, "/account"); strings.Contains(res.Body, secret) || !strings.Contains(res.Body, secret[:9]+"…") {
		t.Errorf("the account page shows the secret again, or not its prefix")
	}
	wantStatus(t, "no name", e.postForm(c, "/account/tokens", url.Values{"name": {" "}}), http.StatusBadRequest)

	bearer := map[string]string{"Authorization": "Bearer " + secret}
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10)
	anon := e.client()
	for _, path := range []string{"/api/v1/apps", api + "/daily", api + "/breakdown?by=source", api + "/breakdown.csv?by=day", api + "/links"} {
		wantStatus(t, "token reads "+path, e.do(anon, http.MethodGet, path, nil, bearer), http.StatusOK)
	}
	res = e.do(anon, http.MethodGet, "/api/v1/apps", nil, bearer)
	if !strings.Contains(res.Body, `"name": "Acme"`) || strings.Contains(res.Body, "Theirs") || strings.Contains(res.Body, app.SDKKey) || strings.Contains(res.Body, app.SDKSecret) {
		t.Errorf("the token lists %s: want its account's apps, without their SDK credentials", res.Body)
	}
	wantJSONError(t, "token on their app", e.do(anon, http.MethodGet, "/api/v1/apps/"+strconv.FormatInt(theirs.ID, 10)+"/daily", nil, bearer),
		http.StatusNotFound, "not_found", "not found")
	res = e.do(anon, http.MethodPost, api+"/links", strings.NewReader(`{"slug":"x"}`), map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"})
	wantJSONError(t, "token writes", res, http.StatusForbidden, "forbidden", "read-only")
	wantStatus(t, "token on a page", e.do(anon, http.MethodGet, "/apps/"+strconv.FormatInt(app.ID, 10), nil, bearer), http.StatusSeeOther)

	// Another account cannot revoke it; its owner can.
	id := regexp.MustCompile(`action="/account/tokens/(\d+)/revoke"`).FindStringSubmatch(e.get(c, "/account").Body)
	if id == nil {
		t.Fatal("no revoke button")
	}
	other := e.loggedIn("other")
	wantStatus(t, "other revokes", e.postForm(other, "/account/tokens/"+id[1]+"/revoke", nil), http.StatusNotFound)
	wantStatus(t, "still works", e.do(anon, http.MethodGet, "/api/v1/apps", nil, bearer), http.StatusOK)
	wantStatus(t, "revoke", e.postForm(c, "/account/tokens/"+id[1]+"/revoke", nil), http.StatusSeeOther)
	wantJSONError(t, "revoked", e.do(anon, http.MethodGet, "/api/v1/apps", nil, bearer), http.StatusUnauthorized, "unauthorized", "Invalid API token.")
	wantJSONError(t, "made up", e.do(anon, http.MethodGet, "/api/v1/apps", nil, map[string]string{"Authorization": "Bearer tl_nope"}),
		http.StatusUnauthorized, "unauthorized", "Invalid API token.")
}
