package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// TestReengagementLinkEditing marks a link as a re-engagement link through
// the link form and the API, and sets the app's re-engagement and
// reinstall rules through the settings form and the API.
func TestReengagementLinkEditing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	links := "/apps/" + strconv.FormatInt(app.ID, 10) + "/links"

	res := e.postForm(c, links, url.Values{"slug": {"winback"}, "name": {"Win back"}, "reengagement": {"1"}})
	wantStatus(t, "create", res, http.StatusSeeOther)
	page := strings.TrimSuffix(res.Header.Get("Location"), "?saved=created")
	res = e.get(c, page)
	if !strings.Contains(res.Body, `id="f-reengagement" value="1" checked`) || !strings.Contains(res.Body, `id="link-reengagement"`) {
		t.Errorf("the link page does not show the re-engagement link as one")
	}
	l, err := e.accounts.LinkBySlug(context.Background(), "winback")
	if err != nil || !l.Reengagement {
		t.Fatalf("stored link %+v (%v), want a re-engagement link", l, err)
	}
	// Saving the form without the box unticks it.
	wantStatus(t, "save", e.postForm(c, page, url.Values{"name": {"Win back"}}), http.StatusSeeOther)
	if l, _ = e.accounts.Link(context.Background(), l.ID); l.Reengagement {
		t.Errorf("the untick was not saved")
	}

	api := "/api/v1" + links + "/" + strconv.FormatInt(l.ID, 10)
	h := map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL}
	res = e.do(c, http.MethodPatch, api, strings.NewReader(`{"reengagement":true}`), h)
	wantStatus(t, "api patch", res, http.StatusOK)
	var v dashboard.LinkView
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || !v.Reengagement || v.Name != "Win back" {
		t.Fatalf("api patch answered %s (%v)", res.Body, err)
	}
	res = e.do(c, http.MethodPost, "/api/v1"+links, strings.NewReader(`{"slug":"plain"}`), h)
	wantStatus(t, "api create", res, http.StatusCreated)
	if strings.Contains(res.Body, `"reengagement"`) {
		t.Errorf("an ordinary link shows reengagement: %s", res.Body)
	}

	// The app's rules: defaults, the form, the API.
	settings := "/apps/" + strconv.FormatInt(app.ID, 10) + "/settings"
	res = e.get(c, settings)
	if !strings.Contains(res.Body, `id="s-reengagement-window" value="7d"`) || !strings.Contains(res.Body, `id="s-reinstall-window" value="60d"`) ||
		strings.Contains(res.Body, `id="s-reattribute-reinstalls" value="1" checked`) {
		t.Errorf("the settings page does not show the default rules")
	}
	res = e.postForm(c, settings, url.Values{"reengagement_window": {"3d"}, "reinstall_window": {"30d"}, "reinstall_rules": {"1"}, "reattribute_reinstalls": {"1"}})
	wantStatus(t, "save settings", res, http.StatusSeeOther)
	got, err := e.accounts.App(context.Background(), app.ID)
	if err != nil || got.ReengagementWindow != 72*time.Hour || got.ReinstallWindow != 30*24*time.Hour || !got.ReattributeReinstalls {
		t.Fatalf("stored %+v (%v)", got, err)
	}
	res = e.do(c, http.MethodPatch, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10), strings.NewReader(`{"reattribute_reinstalls":false,"reinstall_window":"90d"}`), h)
	wantStatus(t, "api app patch", res, http.StatusOK)
	var av dashboard.AppView
	if err := json.Unmarshal([]byte(res.Body), &av); err != nil || av.ReattributeReinstalls || av.ReinstallWindow != "2160h0m0s" || av.ReengagementWindow != "72h0m0s" {
		t.Fatalf("api app patch answered %s (%v)", res.Body, err)
	}
	wantJSONError(t, "bad window", e.do(c, http.MethodPatch, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10), strings.NewReader(`{"reengagement_window":"0s"}`), h),
		http.StatusBadRequest, "invalid", "reengagement_window:")
}

// TestReturningShown checks that re-engagements and reinstalls show on the
// app page, the link page and the daily report's totals, apart from the
// installs, and that a filter their tables cannot answer leaves them out.
func TestReturningShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	e.clock.Store(time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC).UnixNano())
	hour := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).Unix()
	k := func(table tapline.FactTable, link int64, source string) tapline.FactKey {
		return tapline.FactKey{Table: table, Hour: hour, AppID: app.ID, LinkID: link, Platform: tapline.PlatformIOS, Method: tapline.MethodAdID, Source: source}
	}
	if err := e.facts.ApplyFacts(context.Background(), "t", map[tapline.FactKey]tapline.FactValue{
		k(tapline.FactReengagements, spring.ID, "facebook"): {Count: 4},
		k(tapline.FactReinstalls, spring.ID, "google"):      {Count: 2},
		k(tapline.FactReinstalls, 0, ""):                    {Count: 3},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10)
	day := "from=2026-03-10&to=2026-03-10"
	page := e.get(c, base+"?"+day)
	for _, want := range []string{`id="total-reinstalls">5<`, `id="total-reengagements">4<`, `id="total-installs">18<`} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the app page lacks %s", want)
		}
	}
	daily := func(q string) dashboard.DailyReport {
		t.Helper()
		var rep dashboard.DailyReport
		if err := json.Unmarshal([]byte(e.get(c, "/api/v1"+base+"/daily?"+day+q).Body), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := daily(""); rep.Totals.Reengagements != 4 || rep.Totals.Reinstalls != 5 || rep.Totals.Installs != 18 {
		t.Errorf("daily totals %+v, want 4 re-engagements and 5 reinstalls apart from 18 installs", rep.Totals)
	}
	if rep := daily("&link=" + strconv.FormatInt(spring.ID, 10) + "&source=facebook"); rep.Totals.Reengagements != 4 || rep.Totals.Reinstalls != 0 {
		t.Errorf("filtered totals %+v, want 4 re-engagements and no reinstall", rep.Totals)
	}
	if rep := daily("&event=purchase"); rep.Totals.Reengagements != 0 || !slices.Contains(rep.Missing, "reengagements") || !slices.Contains(rep.Missing, "reinstalls") {
		t.Errorf("filtered by event: totals %+v missing %v, want both left out", rep.Totals, rep.Missing)
	}
	res := e.get(c, base+"/links/"+strconv.FormatInt(spring.ID, 10))
	if !strings.Contains(res.Body, "4 re-engagements") || !strings.Contains(res.Body, "2 reinstalls") {
		t.Errorf("the link page does not show its re-engagements and reinstalls")
	}
}

// TestReinstallConversionPage checks that a reinstall's conversion page
// and JSON say it is one, and of which install.
func TestReinstallConversionPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	first := testConversion(app.ID, "inst-1", 0)
	re := testConversion(app.ID, "inst-2", 0)
	re.Reinstall = &tapline.Reinstall{Of: first.ID, By: tapline.ReinstallByVendorID}
	if err := e.facts.ApplyFacts(context.Background(), "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{first, re}}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10) + "/conversions/"
	res := e.get(c, base+re.ID)
	wantStatus(t, "reinstall page", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="reinstall"`) || !strings.Contains(res.Body, "vendor id (IDFV)") || !strings.Contains(res.Body, "keeping that install's attribution") ||
		!strings.Contains(res.Body, `href="`+base+first.ID+`"`) {
		t.Errorf("the reinstall's page does not say it is one")
	}
	if res := e.get(c, base+first.ID); strings.Contains(res.Body, `id="reinstall"`) {
		t.Errorf("a first install's page calls it a reinstall")
	}
	res = e.get(c, "/api/v1"+base+re.ID)
	var v dashboard.ConversionView
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || v.Reinstall == nil || v.Reinstall.Of != first.ID {
		t.Fatalf("api answered %s (%v)", res.Body, err)
	}
}
