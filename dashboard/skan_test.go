package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tapline"
	"tapline/dashboard"
	"tapline/internal/browsertest"
)

// skanAt is when the seeded postbacks came: 2026-03-10, UTC.
var skanAt = time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)

// seedPostbacks records postbacks of app through the store, as the
// collector does: per ad network and window, winning and not, one
// rejected and one duplicate. It returns what they add up to.
func seedPostbacks(t *testing.T, e *env, app *tapline.App) {
	t.Helper()
	yes, no := true, false
	n := 0
	record := func(network, source string, window int, value string, didWin *bool, status tapline.SKANStatus, redownload bool, tx string) {
		t.Helper()
		n++
		kind, version, conversion := tapline.SKANKindSKAdNetwork, "4.0", ""
		if strings.HasSuffix(network, "adattributionkit") {
			kind, version, conversion = tapline.SKANKindAdAttributionKit, "", tapline.SKANConversionReengagement
		}
		p := &tapline.SKANPostback{AppID: app.ID, Kind: kind, Version: version, ConversionType: conversion, Via: tapline.SKANViaDeveloper,
			AdNetworkID: network, SourceIdentifier: source, AppStoreID: 525463029, TransactionID: tx, Window: window, DidWin: didWin,
			FidelityType: 1, Redownload: redownload, Status: status, Key: fmt.Sprintf("skadnetwork:%s:%d", tx, window),
			ReceivedAt: skanAt.Add(time.Duration(n) * time.Minute), Raw: fmt.Appendf(nil, `{"transaction-id":%q,"n":%d}`, tx, n)}
		if status == tapline.SKANRejected {
			p.Reason = "skadnetwork: version 4.0 postback " + tx + ": the signature does not match."
		}
		if v := value; v != "" {
			var fine int
			if _, err := fmt.Sscan(v, &fine); err == nil {
				p.ConversionValue = &fine
			} else {
				p.CoarseValue = v
			}
		}
		if err := e.skan.RecordSKANPostback(context.Background(), p); err != nil {
			t.Fatalf("record %s: %v", tx, err)
		}
	}
	// Network A, source 42: three installs (fine 20, 20, 63), one of them
	// a redownload, and a later coarse high.
	record("a.skadnetwork", "42", 0, "20", &yes, tapline.SKANVerified, false, "a1")
	record("a.skadnetwork", "42", 0, "20", &yes, tapline.SKANVerified, true, "a2")
	record("a.skadnetwork", "42", 0, "63", &yes, tapline.SKANVerified, false, "a3")
	record("a.skadnetwork", "42", 1, "high", &yes, tapline.SKANVerified, false, "a1")
	// Network B, source 7: one install without value, one lost, one
	// window 2 low; its duplicate of a1 (a network's forward).
	record("b.skadnetwork", "7", 0, "", &yes, tapline.SKANVerified, false, "b1")
	record("b.skadnetwork", "7", 0, "", &no, tapline.SKANVerified, false, "b2")
	record("b.skadnetwork", "7", 2, "low", &yes, tapline.SKANVerified, false, "b1")
	record("a.skadnetwork", "42", 0, "20", &yes, tapline.SKANVerified, false, "a1")
	// An AdAttributionKit re-engagement: no install.
	record("c.adattributionkit", "1234", 0, "5", &yes, tapline.SKANVerified, false, "c1")
	// A forged one.
	record("evil.example", "1", 0, "63", &yes, tapline.SKANRejected, false, "x1")
}

func TestSKANReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	app.AppStoreID = 525463029
	app.ConversionSchema.Fine[20], app.ConversionSchema.Coarse[2] = "purchase", "paying user"
	if err := e.accounts.UpdateApp(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	seedPostbacks(t, e, app)
	c := e.loggedIn("acme")
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/skadnetwork"

	res := e.get(c, api+"?from=2026-03-01&to=2026-03-31")
	wantStatus(t, "report", res, http.StatusOK)
	var rep dashboard.SKANReport
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil {
		t.Fatal(err)
	}
	if want := (dashboard.SKANTotals{Installs: 4, Later: 2, Reengagements: 1, NotWon: 1, Rejected: 1, Duplicates: 1, Redownloads: 1}); rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	wantNetworks := []dashboard.SKANNetworkRow{
		{AdNetwork: "a.skadnetwork", SourceIdentifier: "42", SKANTotals: dashboard.SKANTotals{Installs: 3, Later: 1, Duplicates: 1, Redownloads: 1}},
		{AdNetwork: "b.skadnetwork", SourceIdentifier: "7", SKANTotals: dashboard.SKANTotals{Installs: 1, Later: 1, NotWon: 1}},
		{AdNetwork: "c.adattributionkit", SourceIdentifier: "1234", SKANTotals: dashboard.SKANTotals{Reengagements: 1}},
	}
	if !reflect.DeepEqual(rep.Networks, wantNetworks) {
		t.Errorf("networks %+v\nwant %+v", rep.Networks, wantNetworks)
	}
	wantWindows := []dashboard.SKANWindowRow{{Window: 0, Days: "0–2", Won: 4, Reengagements: 1, NotWon: 1, Duplicates: 1}, {Window: 1, Days: "3–7", Won: 1}, {Window: 2, Days: "8–35", Won: 1}}
	if !reflect.DeepEqual(rep.Windows, wantWindows) {
		t.Errorf("windows %+v\nwant %+v", rep.Windows, wantWindows)
	}
	wantValues := []dashboard.SKANValueRow{
		{Value: "20", Label: "purchase", ByWindow: [3]int64{2, 0, 0}, Total: 2},
		{Value: "63", Label: "value 63", ByWindow: [3]int64{1, 0, 0}, Total: 1},
		{Value: "low", Label: "low", ByWindow: [3]int64{0, 0, 1}, Total: 1},
		{Value: "high", Label: "paying user", ByWindow: [3]int64{0, 1, 0}, Total: 1},
		{Value: "", Label: "no value (withheld by Apple)", ByWindow: [3]int64{1, 0, 0}, Total: 1},
	}
	if !reflect.DeepEqual(rep.Values, wantValues) {
		t.Errorf("values %+v\nwant %+v", rep.Values, wantValues)
	}
	if rep.From != "2026-03-01" || rep.To != "2026-03-31" || rep.TZ != "UTC" || !strings.Contains(rep.Caveat, "not additive") || len(rep.Counts) == 0 {
		t.Errorf("report %s to %s in %s, caveat %q, %d counts", rep.From, rep.To, rep.TZ, rep.Caveat, len(rep.Counts))
	}

	// Another range: nothing.
	res = e.get(c, api+"?from=2026-03-11&to=2026-03-31")
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil || rep.Totals != (dashboard.SKANTotals{}) || len(rep.Networks) != 0 || len(rep.Values) != 0 {
		t.Errorf("after the day: %s", res.Body)
	}
	wantJSONError(t, "a time zone", e.get(c, api+"?tz=Europe/Berlin"), http.StatusBadRequest, tapline.EINVALID, "UTC")
	wantJSONError(t, "a bad range", e.get(c, api+"?from=2026-03-31&to=2026-03-01"), http.StatusBadRequest, tapline.EINVALID, "after")

	// The postbacks, newest first, a page at a time.
	var page dashboard.SKANPostbackPage
	res = e.get(c, api+"/postbacks?limit=6")
	if err := json.Unmarshal([]byte(res.Body), &page); err != nil || len(page.Postbacks) != 6 || page.Next == 0 {
		t.Fatalf("first page: %v, %s", err, res.Body)
	}
	if p := page.Postbacks[0]; p.TransactionID != "x1" || p.Status != tapline.SKANRejected || !strings.Contains(p.Reason, "signature") || p.Label != "value 63" {
		t.Errorf("newest %+v", p)
	}
	if p := page.Postbacks[1]; p.Kind != tapline.SKANKindAdAttributionKit || p.ConversionType != tapline.SKANConversionReengagement || p.Label != "value 5" {
		t.Errorf("second %+v", p)
	}
	if p := page.Postbacks[2]; p.Status != tapline.SKANDuplicate || p.Label != "purchase" || !strings.Contains(p.Reason, "counted") {
		t.Errorf("third %+v", p)
	}
	res = e.get(c, api+"/postbacks?limit=6&before="+strconv.FormatInt(page.Next, 10))
	page = dashboard.SKANPostbackPage{}
	if err := json.Unmarshal([]byte(res.Body), &page); err != nil || len(page.Postbacks) != 4 || page.Next != 0 || page.Postbacks[3].TransactionID != "a1" {
		t.Errorf("second page: %v, %s", err, res.Body)
	}
	res = e.get(c, api+"/postbacks?status=duplicate")
	if err := json.Unmarshal([]byte(res.Body), &page); err != nil || len(page.Postbacks) != 1 {
		t.Errorf("duplicates: %v, %s", err, res.Body)
	}
	wantJSONError(t, "a bad status", e.get(c, api+"/postbacks?status=odd"), http.StatusBadRequest, tapline.EINVALID, "status")
	wantJSONError(t, "a bad limit", e.get(c, api+"/postbacks?limit=501"), http.StatusBadRequest, tapline.EINVALID, "limit")

	// The page: its numbers, labels and the caveat.
	page2 := e.get(c, "/apps/"+strconv.FormatInt(app.ID, 10)+"/skadnetwork?from=2026-03-01&to=2026-03-31")
	wantStatus(t, "page", page2, http.StatusOK)
	for _, want := range []string{`id="skan-caveat"`, "not additive", `id="skan-installs">4<`, `id="skan-rejected">1<`, `id="skan-not-won">1<`, `id="skan-reengagements">1<`,
		"purchase", "paying user", "a.skadnetwork", "skadnetwork: version 4.0 postback x1: the signature does not match."} {
		if !strings.Contains(page2.Body, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if strings.Contains(page2.Body, `id="skan-setup"`) {
		t.Error("the page asks to set up an app with an App Store id")
	}

	// Without a store, 503.
	e.d.SKAN = nil
	wantJSONError(t, "no store", e.get(c, api), http.StatusServiceUnavailable, tapline.EUNAVAILABLE, "")
}

func TestSKANSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	other := e.app(e.account("other"), "Other")
	other.AppStoreID = 777
	if err := e.accounts.UpdateApp(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	id := strconv.FormatInt(app.ID, 10)
	patch := func(body string) response {
		return e.do(c, http.MethodPatch, "/api/v1/apps/"+id, strings.NewReader(body), map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL})
	}

	res := patch(`{"app_store_id":525463029,"conversion_schema":{"fine":{"20":" purchase "},"coarse":{"high":"paying"}}}`)
	wantStatus(t, "patch", res, http.StatusOK)
	var view dashboard.AppView
	if err := json.Unmarshal([]byte(res.Body), &view); err != nil {
		t.Fatal(err)
	}
	if view.AppStoreID != 525463029 || view.ConversionSchema.Label("20") != "purchase" || view.ConversionSchema.Label("high") != "paying" {
		t.Errorf("patched %+v", view)
	}
	if !strings.Contains(res.Body, `"conversion_schema": {`) || !strings.Contains(res.Body, `"20": "purchase"`) {
		t.Errorf("the schema's JSON: %s", res.Body)
	}
	wantJSONError(t, "another app's id", patch(`{"app_store_id":777}`), http.StatusConflict, tapline.ECONFLICT, "777")
	wantJSONError(t, "fine value 64", patch(`{"conversion_schema":{"fine":{"64":"x"}}}`), http.StatusBadRequest, tapline.EINVALID, "64")
	wantJSONError(t, "negative id", patch(`{"app_store_id":-1}`), http.StatusBadRequest, tapline.EINVALID, "app_store_id")

	// The settings form: lines, and the app's address for the id.
	form := func(storeID, schema string) response {
		v := url.Values{"name": {"Acme"}, "app_store_id": {storeID}, "conversion_schema": {schema}}
		return e.do(c, http.MethodPost, "/apps/"+id+"/settings", strings.NewReader(v.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
	}
	wantStatus(t, "form", form("https://apps.apple.com/us/app/acme/id1234567?mt=8", "# labels\n0 = opened\n20 = purchase\nHigh = paying user\n\n"), http.StatusSeeOther)
	got, err := e.accounts.App(context.Background(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AppStoreID != 1234567 || strings.Join(got.ConversionSchema.Values(), ",") != "0,20,high" || got.ConversionSchema.Label("high") != "paying user" {
		t.Errorf("saved %d, %v", got.AppStoreID, got.ConversionSchema)
	}
	page := e.get(c, "/apps/"+id+"/settings")
	if !strings.Contains(page.Body, "0 = opened\n20 = purchase\nhigh = paying user\n") || !strings.Contains(page.Body, `value="1234567"`) {
		t.Errorf("the settings page does not show the saved schema and id")
	}
	for _, tc := range []struct{ storeID, schema, msg string }{
		{"777", "", "another app has App Store id 777"},
		{"abc", "", "is not an App Store id"},
		{"", "70 = too high", "line 1"},
		{"", "purchase", "is not value = label"},
	} {
		res := form(tc.storeID, tc.schema)
		if res.Status != http.StatusBadRequest || !strings.Contains(res.Body, tc.msg) || !strings.Contains(res.Body, html.EscapeString(tc.schema)) {
			t.Errorf("form %q %q: %d, want 400 saying %q and keeping what was typed", tc.storeID, tc.schema, res.Status, tc.msg)
		}
	}
	// Cleared.
	wantStatus(t, "clear", form("", ""), http.StatusSeeOther)
	if got, _ := e.accounts.App(context.Background(), app.ID); got.AppStoreID != 0 || len(got.ConversionSchema.Values()) != 0 {
		t.Errorf("after clearing: %d, %v", got.AppStoreID, got.ConversionSchema)
	}
	// An app without an id is told how to set one up.
	if res := e.get(c, "/apps/"+id+"/skadnetwork"); !strings.Contains(res.Body, `id="skan-setup"`) || !strings.Contains(res.Body, collectorURL+"/.well-known/skadnetwork/report-attribution/") {
		t.Errorf("the page of an app without an App Store id shows no setup")
	}
}

// TestSKANBrowser opens the SKAdNetwork page in Chromium: the caveat is
// on screen, the values carry the app's labels, and a label changed on
// the settings page shows there.
func TestSKANBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme Shop")
	app.AppStoreID = 525463029
	app.ConversionSchema.Fine[20], app.ConversionSchema.Coarse[2] = "purchase", "paying user"
	if err := e.accounts.UpdateApp(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	seedPostbacks(t, e, app)
	b := newBrowser(t, e)
	page := e.srv.URL + "/apps/" + strconv.FormatInt(app.ID, 10) + "/skadnetwork?from=2026-03-01&to=2026-03-31"
	b.logIn(page, "#skan-values")

	if !browsertest.Eval[bool](b.Browser, `(() => { const c = document.getElementById('skan-caveat'); const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(c).visibility === 'visible'; })()`) {
		t.Error("the caveat is not on screen")
	}
	if got := b.Text("#skan-caveat"); !strings.Contains(got, "not additive") || !strings.Contains(got, "the same installs may appear in both") {
		t.Errorf("caveat %q", got)
	}
	rows := func(table string) string {
		return strings.Join(browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#`+table+` tbody tr')].map(r => [...r.cells].map(c => c.innerText.replace(/\s+/g, ' ').trim()).join('|'))`), "\n")
	}
	if got, want := rows("skan-values"), "purchase|20|2|0|0|2\nvalue 63|63|1|0|0|1\nlow|low|0|0|1|1\npaying user|high|0|1|0|1\nno value (withheld by Apple)|–|1|0|0|1"; got != want {
		t.Errorf("values:\n%s\nwant\n%s", got, want)
	}
	if got, want := rows("skan-networks"), "a.skadnetwork|42|3|1|0|0|1|1\nb.skadnetwork|7|1|1|0|1|0|0\nc.adattributionkit|1234|0|0|1|0|0|0"; got != want {
		t.Errorf("networks:\n%s\nwant\n%s", got, want)
	}
	for id, want := range map[string]string{"#skan-installs": "4", "#skan-later": "2", "#skan-not-won": "1", "#skan-rejected": "1", "#skan-duplicates": "1"} {
		if got := b.Text(id); got != want {
			t.Errorf("%s = %q, want %s", id, got, want)
		}
	}
	if got := b.Text("#skan-postbacks tbody tr:first-child .reason"); !strings.Contains(got, "signature does not match") {
		t.Errorf("the rejected postback's reason %q", got)
	}
	b.Screenshot("skadnetwork")

	// Rename a value on the settings page; the report says the new label.
	b.Do("edit the labels", chromedp.Click(chromedp.ID("edit-schema")), chromedp.WaitVisible(chromedp.ID("s-conversion-schema")))
	browsertest.Eval[chromedp.Void](b.Browser, `document.getElementById('s-conversion-schema').value = '20 = first purchase\nhigh = paying user\n63 = big spender'`)
	b.Do("save", chromedp.Click(chromedp.ID("save-settings")))
	b.WaitFor("saved", `document.getElementById('saved')`)
	b.Do("back to the report", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("skan-values")))
	if got := rows("skan-values"); !strings.HasPrefix(got, "first purchase|20|2|0|0|2\nbig spender|63|") {
		t.Errorf("values after the edit:\n%s", got)
	}
}
