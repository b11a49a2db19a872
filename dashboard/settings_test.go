package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline/dashboard"
)

// TestAppSettings edits an app's settings on its settings page, through
// the customer API and the admin API, and checks what each refuses.
func TestAppSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	page := "/apps/" + strconv.FormatInt(app.ID, 10) + "/settings"

	res := e.get(c, page)
	wantStatus(t, "settings", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="s-click-window" value="7d"`) || !strings.Contains(res.Body, `id="s-retention" value="60d"`) {
		t.Errorf("the settings page does not show the windows as durations")
	}
	res = e.postForm(c, page, url.Values{"name": {"Acme Shop"}, "click_window": {"3d"}, "fingerprint_window": {"6h"}, "web_url": {"https://acme.example/"}})
	wantStatus(t, "save", res, http.StatusSeeOther)
	if res = e.get(c, res.Header.Get("Location")); !strings.Contains(res.Body, "installs attributed before keep their attribution") ||
		!strings.Contains(res.Body, `value="Acme Shop"`) || !strings.Contains(res.Body, `id="s-fingerprint-window" value="6h"`) {
		t.Errorf("the saved settings are not shown with their effect")
	}
	got, err := e.accounts.App(t.Context(), app.ID)
	if err != nil || got.ClickWindow != 72*time.Hour || got.FingerprintWindow != 6*time.Hour || got.WebURL != "https://acme.example/" ||
		got.Retention != app.Retention || got.SDKKey != app.SDKKey {
		t.Fatalf("stored %+v (%v): want the new windows and URL, the rest kept", got, err)
	}
	res = e.postForm(c, page, url.Values{"name": {"Renamed"}, "lateness_horizon": {"soon"}})
	wantStatus(t, "bad window", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `lateness_horizon: &#34;soon&#34; is not a duration`) || !strings.Contains(res.Body, `value="Renamed"`) {
		t.Errorf("a bad window is not explained, or what was typed is lost")
	}
	if got, _ := e.accounts.App(t.Context(), app.ID); got.Name != "Acme Shop" {
		t.Errorf("a refused form changed the name to %q", got.Name)
	}

	// The fingerprint's minimum score: a number, within bounds.
	res = e.postForm(c, page, url.Values{"fingerprint_min_score": {"3.75"}})
	wantStatus(t, "min score", res, http.StatusSeeOther)
	if got, _ := e.accounts.App(t.Context(), app.ID); got.FingerprintMinScore != 3.75 {
		t.Errorf("stored fingerprint_min_score %v, want 3.75", got.FingerprintMinScore)
	}
	if res = e.get(c, page); !strings.Contains(res.Body, `id="s-fingerprint-min-score" inputmode="decimal" value="3.75"`) {
		t.Errorf("the settings page does not show the stored minimum score")
	}
	for _, bad := range []string{"sure", "NaN", "99"} {
		res = e.postForm(c, page, url.Values{"fingerprint_min_score": {bad}})
		wantStatus(t, "bad min score "+bad, res, http.StatusBadRequest)
		if !strings.Contains(res.Body, "fingerprint_min_score:") {
			t.Errorf("min score %q refused without naming the field", bad)
		}
	}
	if got, _ := e.accounts.App(t.Context(), app.ID); got.FingerprintMinScore != 3.75 {
		t.Errorf("a refused minimum score changed it to %v", got.FingerprintMinScore)
	}

	// The customer API and the admin API.
	patch := func(c *http.Client, path, body string, header map[string]string) response {
		h := map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL}
		for k, v := range header {
			h[k] = v
		}
		return e.do(c, http.MethodPatch, path, strings.NewReader(body), h)
	}
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10)
	res = patch(c, api, `{"retention":"30d","ios_url":"https://apps.apple.com/app/id7"}`, nil)
	wantStatus(t, "api patch", res, http.StatusOK)
	var v dashboard.AppView
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || v.Retention != "720h0m0s" || v.IOSURL != "https://apps.apple.com/app/id7" || v.Name != "Acme Shop" {
		t.Errorf("api patch answered %s (%v)", res.Body, err)
	}
	wantJSONError(t, "api bad window", patch(c, api, `{"click_window":"-1h"}`, nil), http.StatusBadRequest, "invalid", "click_window:")
	res = patch(c, api, `{"fingerprint_min_score":-1.5}`, nil)
	if err := json.Unmarshal([]byte(res.Body), &v); res.Status != http.StatusOK || err != nil || v.FingerprintMinScore != -1.5 {
		t.Errorf("api patch of the minimum score answered %d %s", res.Status, res.Body)
	}
	wantJSONError(t, "api bad min score", patch(c, api, `{"fingerprint_min_score":21}`, nil), http.StatusBadRequest, "invalid", "fingerprint_min_score:")
	res = patch(e.client(), "/admin/v1/apps/"+strconv.FormatInt(app.ID, 10), `{"name":"By the admin"}`, map[string]string{"Authorization": "Bearer " + adminToken})
	wantStatus(t, "admin patch", res, http.StatusOK)
	if !strings.Contains(res.Body, `"name": "By the admin"`) {
		t.Errorf("admin patch answered %s", res.Body)
	}
}
