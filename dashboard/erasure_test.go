package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

// TestEraseDeviceAPI checks DELETE /api/v1/apps/{id}/devices and the
// status of the request it records: an owner's request is accepted (202)
// with its status URL, pending until the matcher finishes it; a viewer
// and an API token are refused; bad input is 400, another account's or
// an unknown app 404.
func TestEraseDeviceAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	other := e.app(e.account("other"), "Other")
	owner := e.loggedIn("acme")
	path := fmt.Sprintf("/api/v1/apps/%d/devices", app.ID)
	const ad = "6D9C5B8E-1F2A-4C3B-9D8E-7F6A5B4C3D2E"

	res := e.sendJSON(owner, http.MethodDelete, path, `{"ad_id":"`+ad+`"}`)
	wantStatus(t, "owner erases by advertising id", res, http.StatusAccepted)
	var v struct {
		ID          int64
		AppID       int64 `json:"app_id"`
		Kind        string
		Status      string
		RequestedBy string `json:"requested_by"`
		StatusURL   string `json:"status_url"`
		Counts      tapline.ErasureCounts
	}
	decode(t, res, &v)
	wantURL := fmt.Sprintf("/api/v1/apps/%d/erasures/%d", app.ID, v.ID)
	if v.ID == 0 || v.AppID != app.ID || v.Kind != "ad_id" || v.Status != "pending" || v.RequestedBy != "acme@example.com" ||
		v.StatusURL != wantURL || res.Header.Get("Location") != wantURL {
		t.Errorf("accepted request = %+v (Location %q); want a pending ad_id request by acme@example.com at %s", v, res.Header.Get("Location"), wantURL)
	}
	if strings.Contains(strings.ToLower(res.Body), strings.ToLower(ad)) {
		t.Errorf("the answer shows the advertising id: %s", res.Body)
	}
	status := e.get(owner, v.StatusURL)
	wantStatus(t, "status while pending", status, http.StatusOK)
	if !strings.Contains(status.Body, `"status": "pending"`) {
		t.Errorf("status while pending: %s", status.Body)
	}

	// The matcher's part, as it does it: claim, finish.
	es := postgres.NewErasureStore(e.db)
	r, err := es.ClaimErasure(context.Background(), time.Minute)
	if err != nil || r == nil || r.ID != v.ID || r.Key != strings.ToLower(ad) {
		t.Fatalf("ClaimErasure = %+v, %v; want request %d with the normalised id", r, err, v.ID)
	}
	if err := es.FinishErasure(context.Background(), r, nil, tapline.ErasureCounts{Hits: 2, Events: 1}); err != nil {
		t.Fatal(err)
	}
	status = e.get(owner, v.StatusURL)
	wantStatus(t, "status when done", status, http.StatusOK)
	decode(t, status, &v)
	if v.Status != "done" || v.Counts.Hits != 2 || v.Counts.Events != 1 || !strings.Contains(status.Body, `"done_at"`) {
		t.Errorf("status when done: %s", status.Body)
	}

	res = e.sendJSON(owner, http.MethodDelete, path, `{"install_id":" inst-42 "}`)
	wantStatus(t, "owner erases by install id", res, http.StatusAccepted)
	if !strings.Contains(res.Body, `"kind": "install_id"`) {
		t.Errorf("install id request: %s", res.Body)
	}

	for _, tc := range []struct{ name, body, msg string }{
		{"neither id", `{}`, "ad_id or install_id"},
		{"both ids", `{"ad_id":"` + ad + `","install_id":"x"}`, "not both"},
		{"not an advertising id", `{"ad_id":"idfa-please"}`, "ad_id"},
		{"all-zero advertising id", `{"ad_id":"00000000-0000-0000-0000-000000000000"}`, "ad_id"},
		{"unknown field", `{"email":"a@b.c"}`, "email"},
		{"install id too long", `{"install_id":"` + strings.Repeat("x", tapline.MaxInstallIDLen+1) + `"}`, "install_id"},
	} {
		wantJSONError(t, tc.name, e.sendJSON(owner, http.MethodDelete, path, tc.body), http.StatusBadRequest, "invalid", tc.msg)
	}
	wantJSONError(t, "another account's app", e.sendJSON(owner, http.MethodDelete, fmt.Sprintf("/api/v1/apps/%d/devices", other.ID), `{"ad_id":"`+ad+`"}`),
		http.StatusNotFound, "not_found", "")
	wantJSONError(t, "unknown app", e.sendJSON(owner, http.MethodDelete, "/api/v1/apps/999999999/devices", `{"ad_id":"`+ad+`"}`),
		http.StatusNotFound, "not_found", "")
	wantJSONError(t, "another app's request", e.get(owner, fmt.Sprintf("/api/v1/apps/%d/erasures/%d", other.ID, v.ID)), http.StatusNotFound, "not_found", "")
	wantJSONError(t, "unknown request", e.get(owner, fmt.Sprintf("/api/v1/apps/%d/erasures/%d", app.ID, v.ID+1000)), http.StatusNotFound, "not_found", "")

	viewer := e.join(owner, "viewer@example.com", tapline.RoleViewer)
	wantJSONError(t, "viewer erases", e.sendJSON(viewer, http.MethodDelete, path, `{"ad_id":"`+ad+`"}`), http.StatusForbidden, "forbidden", "viewer")
	wantStatus(t, "viewer reads a status", e.get(viewer, v.StatusURL), http.StatusOK)

	_, secret, err := e.accounts.CreateAPIToken(context.Background(), acme.ID, "reports")
	if err != nil {
		t.Fatal(err)
	}
	wantJSONError(t, "API token erases", e.do(e.client(), http.MethodDelete, path, strings.NewReader(`{"ad_id":"`+ad+`"}`),
		map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}), http.StatusForbidden, "forbidden", "read-only")
	wantStatus(t, "API token reads a status", e.do(e.client(), http.MethodGet, v.StatusURL, nil,
		map[string]string{"Authorization": "Bearer " + secret}), http.StatusOK)
	res = e.do(e.client(), http.MethodDelete, path, strings.NewReader(`{"install_id":"from-admin"}`),
		map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"})
	wantStatus(t, "admin erases", res, http.StatusAccepted)

	// Only the two install id requests are pending: the refused ones
	// were not recorded.
	var keys []string
	for {
		r, err := es.ClaimErasure(context.Background(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			break
		}
		keys = append(keys, r.Key)
	}
	if strings.Join(keys, ",") != "inst-42,from-admin" {
		t.Errorf("pending requests hold %q, want inst-42 and from-admin", keys)
	}
}
