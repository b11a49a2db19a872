package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// TestFraudSettings edits an app's fraud policy on its settings page and
// through the API, and checks what each refuses and that a viewer cannot.
func TestFraudSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct := e.account("acme")
	app := e.app(acct, "Acme")
	c := e.loggedIn("acme")
	page := "/apps/" + strconv.FormatInt(app.ID, 10) + "/settings"

	res := e.get(c, page)
	wantStatus(t, "settings", res, http.StatusOK)
	for _, want := range []string{`id="s-fraud-click-injection"`, `<option value="flag" selected>`, `id="s-fraud-min-click-to-install" value="10s"`,
		`id="s-fraud-flood-min-taps" value="500"`, `id="s-fraud-flood-max-install-rate" value="0.1"`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the settings page lacks %s", want)
		}
	}
	res = e.postForm(c, page, url.Values{"name": {"Acme"}, "fraud_click_injection": {"reject"}, "fraud_datacenter": {"reject"},
		"fraud_min_click_to_install": {"1500ms"}, "fraud_flood_min_taps": {"80"}, "fraud_flood_max_install_rate": {"2.5"}})
	wantStatus(t, "save", res, http.StatusSeeOther)
	got, err := e.accounts.App(t.Context(), app.ID)
	want := tapline.FraudPolicy{ClickInjection: tapline.FraudReject, ClickFlooding: tapline.FraudFlag, Datacenter: tapline.FraudReject,
		TapAfterInstall: tapline.FraudFlag, MinClickToInstall: 1500 * time.Millisecond, FloodMinTaps: 80, FloodMaxInstallRate: 0.025}
	if err != nil || got.Fraud != want {
		t.Fatalf("stored fraud policy %+v (%v), want %+v", got.Fraud, err, want)
	}
	if res = e.get(c, page); !strings.Contains(res.Body, `id="s-fraud-flood-max-install-rate" value="2.5"`) ||
		!strings.Contains(res.Body, `<option value="reject" selected>`) {
		t.Errorf("the saved fraud policy is not shown")
	}
	res = e.postForm(c, page, url.Values{"fraud_tap_after_install": {"block"}, "fraud_flood_min_taps": {"80"}})
	wantStatus(t, "bad action", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, "fraud.tap_after_install") {
		t.Errorf("a bad action is not explained")
	}
	res = e.postForm(c, page, url.Values{"fraud_flood_min_taps": {"many"}})
	wantStatus(t, "bad count", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, "fraud.flood_min_taps") || !strings.Contains(res.Body, `value="many"`) {
		t.Errorf("a bad tap count is not explained, or what was typed is lost")
	}

	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10)
	patch := func(body string) response {
		return e.do(c, http.MethodPatch, api, strings.NewReader(body), map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL})
	}
	res = patch(`{"fraud":{"click_flooding":"reject","flood_max_install_rate":0.01}}`)
	wantStatus(t, "api patch", res, http.StatusOK)
	var v dashboard.AppView
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || v.Fraud.ClickFlooding != tapline.FraudReject || v.Fraud.FloodMaxInstallRate != 0.01 ||
		v.Fraud.ClickInjection != tapline.FraudReject || v.Fraud.MinClickToInstall != "1.5s" {
		t.Errorf("api patch answered %s (%v)", res.Body, err)
	}
	wantJSONError(t, "api bad rate", patch(`{"fraud":{"flood_max_install_rate":2}}`), http.StatusBadRequest, "invalid", "fraud.flood_max_install_rate")
	wantJSONError(t, "api bad duration", patch(`{"fraud":{"min_click_to_install":"soon"}}`), http.StatusBadRequest, "invalid", "fraud.min_click_to_install")

	// A viewer sees the rules, read-only, and cannot change them.
	viewer := e.join(c, "viewer@example.com", tapline.RoleViewer)
	if res := e.get(viewer, page); !strings.Contains(res.Body, `id="fraud-settings"`) || !strings.Contains(res.Body, `id="read-only"`) {
		t.Errorf("a viewer does not see the fraud rules read-only")
	}
	wantStatus(t, "viewer saves", e.postForm(viewer, page, url.Values{"fraud_datacenter": {"flag"}}), http.StatusForbidden)
	if got, _ := e.accounts.App(t.Context(), app.ID); got.Fraud.Datacenter != tapline.FraudReject {
		t.Errorf("a viewer changed the datacenter rule to %s", got.Fraud.Datacenter)
	}
}

// TestFraudShown checks that the app page counts the fraud signals next
// to the requests that were no taps, and the conversion page lists a
// rejected install's signals with the rule's decision.
func TestFraudShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	hour := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).Unix()
	key := func(s tapline.FraudSignal, a tapline.FraudAction) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactFraud, Hour: hour, AppID: app.ID, LinkID: spring.ID, Platform: tapline.PlatformIOS, Signal: s, Action: a}
	}
	conv := testConversion(app.ID, "rejected", 0)
	conv.Decision = &tapline.Decision{Rule: tapline.RuleFraud, Considered: 1,
		Reason: "Organic: the click injection rule rejected tap h-9, which the referrer rule chose (referrer match): first open 2s after the tap (limit 10s).",
		Fraud: []tapline.FraudFinding{
			{Signal: tapline.FraudClickInjection, HitID: "h-9", LinkID: spring.ID, Method: tapline.MethodReferrer, Value: "first open 2s after the tap", Threshold: "10s", Action: tapline.FraudReject},
			{Signal: tapline.FraudDatacenter, HitID: "h-9", LinkID: spring.ID, Method: tapline.MethodReferrer, Value: "3.5.140.0/24 in aws's range 3.5.140.0/22", Action: tapline.FraudFlag},
		}}
	if err := e.facts.ApplyFacts(ctx, "t", map[tapline.FactKey]tapline.FactValue{
		key(tapline.FraudClickInjection, tapline.FraudReject): {Count: 3},
		key(tapline.FraudDatacenter, tapline.FraudFlag):       {Count: 5},
	}, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{conv}}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10)
	day := "from=2026-03-10&to=2026-03-10"
	page := e.get(c, base+"?"+day)
	if !strings.Contains(page.Body, `id="fraud"`) || !strings.Contains(page.Body, "click injection 3 rejected, datacenter 5 flagged") {
		t.Errorf("the app page does not count the fraud signals:\n%s", page.Body)
	}
	var rep dashboard.DailyReport
	if err := json.Unmarshal([]byte(e.get(c, "/api/v1"+base+"/daily?"+day).Body), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Totals.Fraud) != 2 || rep.Totals.Fraud[0] != (tapline.FraudCount{Signal: tapline.FraudClickInjection, Action: tapline.FraudReject, Count: 3}) {
		t.Errorf("daily totals' fraud %+v", rep.Totals.Fraud)
	}
	if list := e.get(c, base+"/conversions"); !strings.Contains(list.Body, "fraud: rejected") || !strings.Contains(list.Body, "click injection: first open 2s after the tap (reject)") {
		t.Errorf("the conversions list does not mark the rejected install")
	}
	detail := e.get(c, base+"/conversions/"+conv.ID)
	wantStatus(t, "conversion", detail, http.StatusOK)
	for _, want := range []string{`id="fraud-signals"`, "click injection", "first open 2s after the tap", "rejected: install organic",
		"3.5.140.0/24 in aws&#39;s range 3.5.140.0/22", "flagged: attribution kept", "the click injection rule rejected tap h-9"} {
		if !strings.Contains(detail.Body, want) {
			t.Errorf("the conversion page lacks %q", want)
		}
	}
}
