package dashboard_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// postForm posts a form from this site's origin.
func (e *env) postForm(c *http.Client, path string, form url.Values) response {
	e.t.Helper()
	return e.do(c, http.MethodPost, path, strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"Origin":       e.srv.URL,
	})
}

// TestLinkPages creates, edits, archives and restores a link through the
// pages' forms, with the QR code and the refusals shown on the form.
func TestLinkPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	links := "/apps/" + strconv.FormatInt(app.ID, 10) + "/links"

	res := e.get(c, links)
	wantStatus(t, "links", res, http.StatusOK)
	if !strings.Contains(res.Body, "No tracking links yet.") || !strings.Contains(res.Body, `href="`+links+`/new"`) {
		t.Error("the empty list does not offer to create a link")
	}
	wantStatus(t, "new link page", e.get(c, links+"/new"), http.StatusOK)

	form := url.Values{"slug": {"spring-fb"}, "name": {"Spring on Facebook"}, "params": {"utm_source=facebook\r\n\r\nutm_campaign = spring"},
		"deep_link": {"acme://offers/spring"}, "web_url": {"https://acme.example/spring"}}
	res = e.postForm(c, links, form)
	wantStatus(t, "create", res, http.StatusSeeOther)
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, links+"/") || !strings.HasSuffix(loc, "?saved=created") {
		t.Fatalf("created link at %q", loc)
	}
	page := strings.TrimSuffix(loc, "?saved=created")
	res = e.get(c, loc)
	wantStatus(t, "link page", res, http.StatusOK)
	for _, want := range []string{"Link created.", `id="tracking-url">` + collectorURL + "/l/spring-fb<", `<svg class="qr"`,
		"utm_campaign=spring\nutm_source=facebook</textarea>", `value="acme://offers/spring"`, "Last 30 days by source",
		`href="/apps/` + strconv.FormatInt(app.ID, 10) + `?by=source&amp;from=`,
		`id="link-csv" href="/api/v1/apps/` + strconv.FormatInt(app.ID, 10) + `/breakdown.csv?by=source&amp;from=`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("link page lacks %q", want)
		}
	}
	// The QR code as a PNG to download.
	res = e.get(c, page+"/qr.png")
	wantStatus(t, "qr png", res, http.StatusOK)
	if img, err := png.Decode(bytes.NewReader([]byte(res.Body))); err != nil || img.Bounds().Dx() != 512 {
		t.Errorf("qr.png: %v, %v; want a 512 px PNG", err, err)
	}

	// Refusals on the form, with what was typed kept.
	res = e.postForm(c, links, url.Values{"slug": {"spring-fb"}})
	wantStatus(t, "taken slug", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `id="form-error"`) || !strings.Contains(res.Body, "A link with this slug exists already.") {
		t.Errorf("a taken slug is not explained on the form")
	}
	res = e.postForm(c, page, url.Values{"name": {"Renamed"}, "ios_url": {"data:text/html,x"}, "params": {"utm_source"}})
	wantStatus(t, "bad params", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `params: entry 1, &#34;utm_source&#34;, is not name=value`) || !strings.Contains(res.Body, `value="Renamed"`) {
		t.Errorf("bad params are not explained, or the typed name is lost")
	}
	res = e.postForm(c, page, url.Values{"name": {"Renamed"}, "ios_url": {"data:text/html,x"}})
	wantStatus(t, "bad url", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, "ios_url:") {
		t.Errorf("a bad destination is not explained")
	}

	// Edit, archive, restore.
	res = e.postForm(c, page, url.Values{"name": {"Spring FB"}, "params": {"utm_source=fb"}, "slug": {"ignored"}})
	wantStatus(t, "edit", res, http.StatusSeeOther)
	res = e.get(c, page)
	if !strings.Contains(res.Body, "<h1>Spring FB") || !strings.Contains(res.Body, ">utm_source=fb</textarea>") || !strings.Contains(res.Body, "/l/spring-fb<") {
		t.Errorf("the edit did not land, or the slug changed")
	}
	// The link's conversions and cohorts are a click away, filtered by it.
	id := page[strings.LastIndex(page, "/")+1:]
	for _, to := range []string{"/conversions?link=" + id, "/cohorts?link=" + id} {
		target := page[:strings.Index(page, "/links/")] + to
		if !strings.Contains(res.Body, `href="`+target+`"`) {
			t.Errorf("the link page does not lead to %s", target)
		}
		wantStatus(t, "the link's "+to, e.get(c, target), http.StatusOK)
	}
	wantStatus(t, "archive", e.postForm(c, page+"/archive", url.Values{"archive": {"1"}}), http.StatusSeeOther)
	res = e.get(c, links)
	if strings.Contains(res.Body, "Spring FB") || !strings.Contains(res.Body, "Archived (1)") {
		t.Errorf("an archived link is still listed")
	}
	if res = e.get(c, links+"?archived=1"); !strings.Contains(res.Body, "Spring FB") {
		t.Errorf("the archived list lacks the link")
	}
	wantStatus(t, "restore", e.postForm(c, page+"/archive", url.Values{"archive": {"0"}}), http.StatusSeeOther)
	if res = e.get(c, links); !strings.Contains(res.Body, "Spring FB") {
		t.Errorf("a restored link is not listed")
	}

	// Another account sees none of it.
	other := e.loggedIn(e.account("other").Name)
	for _, path := range []string{links, links + "/new", page, page + "/qr.png"} {
		wantStatus(t, "other account: "+path, e.get(other, path), http.StatusNotFound)
	}
	wantStatus(t, "other account edits", e.postForm(other, page, url.Values{"name": {"x"}}), http.StatusNotFound)
	// A link is not found under another app of the same account.
	acme, err := e.accounts.AccountByName(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	app2 := e.app(acme, "Other")
	wantStatus(t, "under another app", e.get(c, "/apps/"+strconv.FormatInt(app2.ID, 10)+"/links/"+page[strings.LastIndex(page, "/")+1:]), http.StatusNotFound)
	// A form from another site is refused.
	res = e.do(c, http.MethodPost, page, strings.NewReader("name=x"), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
	if res.Status != http.StatusForbidden {
		t.Errorf("cross-site form: status %d, want 403", res.Status)
	}
}

// TestLinkAPI creates and edits a link through the JSON API.
func TestLinkAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/links"
	send := func(method, path, body string) response {
		return e.do(c, method, path, strings.NewReader(body), map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL})
	}
	res := send(http.MethodPost, api, `{"slug":"spring","name":"Spring","params":{"utm_source":"facebook"},"deep_link":"acme://spring"}`)
	wantStatus(t, "create", res, http.StatusCreated)
	var l dashboard.LinkView
	if err := json.Unmarshal([]byte(res.Body), &l); err != nil || l.Link == nil || l.Params["utm_source"] != "facebook" || l.TrackingURL != collectorURL+"/l/spring" {
		t.Fatalf("created %s (%v)", res.Body, err)
	}
	path := api + "/" + strconv.FormatInt(l.ID, 10)
	res = send(http.MethodPatch, path, `{"archived":true,"web_url":"https://acme.example/"}`)
	wantStatus(t, "archive", res, http.StatusOK)
	if err := json.Unmarshal([]byte(e.get(c, path).Body), &l); err != nil || l.ArchivedAt == nil || l.WebURL != "https://acme.example/" || l.Name != "Spring" || l.DeepLink != "acme://spring" {
		t.Fatalf("after the patch: %+v (%v)", l.Link, err)
	}
	for _, tc := range []struct{ method, path, body, msg string }{
		{http.MethodPatch, path, `{"slug":"fall"}`, "slug: a link's slug cannot change"},
		{http.MethodPatch, path, `{"colour":"red"}`, "unknown field"},
		{http.MethodPost, api, `{"slug":"x","params":{"a=b":"c"}}`, "params:"},
		{http.MethodPost, api, `{"slug":"spring"}`, "exists already"},
	} {
		res := send(tc.method, tc.path, tc.body)
		if res.Status != http.StatusBadRequest && res.Status != http.StatusConflict || !strings.Contains(res.Body, tc.msg) {
			t.Errorf("%s %s: %d %s, want a 400 or 409 mentioning %q", tc.method, tc.body, res.Status, res.Body, tc.msg)
		}
	}
	// The list as CSV, the archived link too, a formula in a name defused.
	if res := send(http.MethodPost, api, `{"slug":"fall","name":"=cmd()"}`); res.Status != http.StatusCreated {
		t.Fatalf("create fall: %d %s", res.Status, res.Body)
	}
	res = e.get(c, api+".csv")
	wantStatus(t, "links csv", res, http.StatusOK)
	lines := strings.Split(strings.TrimSpace(res.Body), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "link_id,slug,name,tracking_url,params,") ||
		!strings.Contains(lines[1], ",spring,Spring,"+collectorURL+"/l/spring,utm_source=facebook,acme://spring,") || !strings.Contains(lines[1], "T") ||
		!strings.Contains(lines[2], ",fall,'=cmd(),") {
		t.Errorf("links csv:\n%s", res.Body)
	}
	other := e.loggedIn(e.account("other").Name)
	wantJSONError(t, "other account", e.get(other, path), http.StatusNotFound, "not_found", "not found")
	wantJSONError(t, "other account csv", e.get(other, api+".csv"), http.StatusNotFound, "not_found", "not found")
}

// TestLinkWindows sets a link's own click and fingerprint windows in the
// link editor and through the JSON API, sees them (and the app's, where the
// link has none) on the link page, in the JSON and in the CSV, has bad
// windows refused with the field named, and a viewer refused any change.
func TestLinkWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	c := e.loggedIn("acme")
	links := "/apps/" + strconv.FormatInt(app.ID, 10) + "/links"

	// The editor: a new link with its own click window.
	res := e.get(c, links+"/new")
	if !strings.Contains(res.Body, `name="click_window"`) || !strings.Contains(res.Body, `placeholder="7d (the app's)"`) {
		t.Errorf("the new-link form lacks the click window, or the app's as its placeholder")
	}
	res = e.postForm(c, links, url.Values{"slug": {"slow"}, "click_window": {"30d"}, "fingerprint_window": {""}})
	wantStatus(t, "create with a window", res, http.StatusSeeOther)
	page := strings.TrimSuffix(res.Header.Get("Location"), "?saved=created")
	id, err := strconv.ParseInt(page[strings.LastIndex(page, "/")+1:], 10, 64)
	if err != nil {
		t.Fatalf("created at %q", page)
	}
	stored := func() *tapline.Link {
		t.Helper()
		l, err := e.accounts.Link(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := stored(); l.ClickWindow != 30*24*time.Hour || l.FingerprintWindow != 0 {
		t.Fatalf("stored windows %v and %v, want 720h and none", l.ClickWindow, l.FingerprintWindow)
	}
	res = e.get(c, page)
	for _, want := range []string{`id="click-window">30d <span class="badge">this link's</span>`,
		`id="fingerprint-window">1d <span class="muted">(the app's)</span>`, `id="f-click-window" value="30d"`, `id="f-fingerprint-window" value=""`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("link page lacks %q", want)
		}
	}

	// Edited: the click window back to the app's, a fingerprint window.
	wantStatus(t, "edit windows", e.postForm(c, page, url.Values{"name": {"slow"}, "click_window": {""}, "fingerprint_window": {"90m"}}), http.StatusSeeOther)
	if l := stored(); l.ClickWindow != 0 || l.FingerprintWindow != 90*time.Minute {
		t.Fatalf("after the edit: windows %v and %v, want none and 1h30m", l.ClickWindow, l.FingerprintWindow)
	}
	if res = e.get(c, page); !strings.Contains(res.Body, `id="click-window">7d <span class="muted">`) || !strings.Contains(res.Body, `id="fingerprint-window">1h30m <span class="badge">`) {
		t.Errorf("the link page does not show the edited windows")
	}
	for _, tc := range []struct{ window, msg string }{
		{"soon", "click_window: &#34;soon&#34; is not a duration"},
		{"91d", "click_window: must be from one second to 90 days"},
		{"500ms", "click_window: &#34;500ms&#34; is not a duration of a second or more"},
	} {
		res := e.postForm(c, page, url.Values{"name": {"slow"}, "click_window": {tc.window}, "fingerprint_window": {"90m"}})
		wantStatus(t, "click window "+tc.window, res, http.StatusBadRequest)
		if !strings.Contains(res.Body, tc.msg) || !strings.Contains(res.Body, `id="f-click-window" value="`+tc.window+`"`) {
			t.Errorf("click window %q: the form does not say %q, or lost what was typed", tc.window, tc.msg)
		}
	}
	if l := stored(); l.ClickWindow != 0 || l.FingerprintWindow != 90*time.Minute {
		t.Errorf("refused edits changed the windows to %v and %v", l.ClickWindow, l.FingerprintWindow)
	}

	// The JSON API.
	api := "/api/v1" + links
	send := func(c *http.Client, method, path, body string) response {
		return e.do(c, method, path, strings.NewReader(body), map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL})
	}
	res = send(c, http.MethodPost, api, `{"slug":"quick","click_window":"12h","fingerprint_window":"2d"}`)
	wantStatus(t, "API create", res, http.StatusCreated)
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil || got["click_window"] != "12h0m0s" || got["fingerprint_window"] != "48h0m0s" {
		t.Fatalf("created %s (%v), want click_window 12h0m0s and fingerprint_window 48h0m0s", res.Body, err)
	}
	quick := api + "/" + strconv.FormatInt(int64(got["id"].(float64)), 10)
	res = send(c, http.MethodPatch, quick, `{"click_window":""}`)
	wantStatus(t, "API clear the click window", res, http.StatusOK)
	got = nil
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil || got["click_window"] != nil || got["fingerprint_window"] != "48h0m0s" {
		t.Errorf("after clearing the click window: %s (%v), want no click_window and fingerprint_window 48h0m0s", res.Body, err)
	}
	wantJSONError(t, "API window under a second", send(c, http.MethodPatch, quick, `{"fingerprint_window":"0.5s"}`), http.StatusBadRequest, "invalid", "fingerprint_window:")
	wantJSONError(t, "API window over the bound", send(c, http.MethodPost, api, `{"slug":"long","fingerprint_window":"100d"}`), http.StatusBadRequest, "invalid", "fingerprint_window: must be from one second to 90 days")
	wantJSONError(t, "API window of another type", send(c, http.MethodPatch, quick, `{"click_window":3600}`), http.StatusBadRequest, "invalid", "")

	res = e.get(c, api+".csv")
	wantStatus(t, "links csv", res, http.StatusOK)
	lines := strings.Split(strings.TrimSpace(res.Body), "\n")
	if !strings.HasSuffix(lines[0], ",click_window,fingerprint_window") || !strings.HasSuffix(lines[1], ",,1h30m") || !strings.HasSuffix(lines[2], ",,2d") {
		t.Errorf("links csv with windows:\n%s", res.Body)
	}

	// Owners only: a viewer changes nothing.
	viewer := e.join(c, "viewer@example.com", tapline.RoleViewer)
	if res := e.get(viewer, page); res.Status != http.StatusOK || strings.Contains(res.Body, `name="click_window"`) || !strings.Contains(res.Body, `id="fingerprint-window">1h30m`) {
		t.Errorf("the viewer's link page: status %d, with the editor or without the windows", res.Status)
	}
	wantStatus(t, "viewer edits the windows", e.postForm(viewer, page, url.Values{"name": {"slow"}, "click_window": {"1h"}}), http.StatusForbidden)
	wantJSONError(t, "viewer patches the windows", send(viewer, http.MethodPatch, quick, `{"click_window":"1h"}`), http.StatusForbidden, "forbidden", "viewer")
	if l := stored(); l.ClickWindow != 0 || l.FingerprintWindow != 90*time.Minute {
		t.Errorf("a viewer changed the windows to %v and %v", l.ClickWindow, l.FingerprintWindow)
	}
}
