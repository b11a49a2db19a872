package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tapline/postgres"
	"tapline/whatif"
)

// TestWhatIfPagesAndAPI requests what-ifs through the form and the API,
// shows a stored result (as a matcher process stores it), and keeps other
// accounts and viewers out of the writing.
func TestWhatIfPagesAndAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	store := postgres.NewWhatIfStore(e.db)
	e.d.WhatIfs = store
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	spring := e.link(app, "spring", "Spring")
	e.account("other")
	c := e.loggedIn("acme")
	page := fmt.Sprintf("/apps/%d/whatif", app.ID)
	res := e.get(c, page)
	wantStatus(t, "page", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="whatif-form"`) || !strings.Contains(res.Body, `id="no-whatifs"`) {
		t.Fatalf("the page lacks its form or its empty list")
	}
	post := func(form url.Values) response {
		return e.do(c, http.MethodPost, page, strings.NewReader(form.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
	}
	res = post(url.Values{"from": {"2026-11-01"}, "to": {"2026-11-08"}})
	wantStatus(t, "no rule changed", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `id="form-error"`) {
		t.Errorf("the refusal is not shown")
	}
	res = post(url.Values{"from": {"2026-11-01"}, "to": {"2026-11-08"}, "click_window": {"3d"}})
	wantStatus(t, "request", res, http.StatusSeeOther)
	loc := res.Header.Get("Location")
	if res := e.get(c, loc); !strings.Contains(res.Body, `id="whatif-status">pending`) {
		t.Errorf("a pending what-if's page: %.600s", res.Body)
	}

	// The API: a second request, the list, one.
	api := fmt.Sprintf("/api/v1/apps/%d/whatif", app.ID)
	res = e.sendJSON(c, http.MethodPost, api, `{"from":"2026-11-01","to":"2026-11-03","fingerprint_min_score":4}`)
	wantStatus(t, "API request", res, http.StatusAccepted)
	var v struct {
		ID      int64
		Status  string
		Request whatif.Request
	}
	decode(t, res, &v)
	if v.Status != "pending" || v.Request.Rules.FingerprintMinScore == nil || *v.Request.Rules.FingerprintMinScore != 4 {
		t.Errorf("requested %+v", v)
	}
	wantJSONError(t, "bad window", e.sendJSON(c, http.MethodPost, api, `{"from":"2026-11-01","to":"2026-11-03","click_window":"soon"}`), http.StatusBadRequest, "invalid", "click_window")

	// A matcher runs the first and stores its result.
	run, err := store.ClaimWhatIf(ctx, 0, time.Minute)
	if err != nil || run == nil {
		t.Fatal(run, err)
	}
	result := whatif.Result{Installs: 10, Moved: 2, StoredSame: 10, StoredCompared: 10,
		Counts: []whatif.Count{{LinkID: spring.ID, Method: "advertising_id", Today: 6, Hypothetical: 4}, {Method: "organic", Today: 4, Hypothetical: 6}},
		Moves:  []whatif.Move{{EventID: "e1", InstallID: "inst-1", Today: whatif.Answer{LinkID: spring.ID, Method: "advertising_id", HitID: "h1"}, Hyp: whatif.Answer{Method: "organic"}}}}
	body, _ := json.Marshal(result)
	if err := store.FinishWhatIf(ctx, run.ID, body, ""); err != nil {
		t.Fatal(err)
	}
	res = e.get(c, fmt.Sprintf("%s/%d", page, run.ID))
	for _, want := range []string{`id="whatif-moved">2<`, "10 of 10 installs replayed", "Spring", "-2", "&#43;2", "inst-1"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the result page lacks %q", want)
		}
	}
	res = e.get(c, api)
	if !strings.Contains(res.Body, `"status": "done"`) || !strings.Contains(res.Body, `"status": "pending"`) {
		t.Errorf("list %s", res.Body)
	}
	if res := e.get(c, fmt.Sprintf("%s/%d", api, run.ID)); !strings.Contains(res.Body, `"moved": 2`) {
		t.Errorf("one what-if %s", res.Body)
	}

	// Viewers read, do not run; other accounts see nothing.
	viewer := e.join(c, "viewer@acme.example", "viewer")
	wantStatus(t, "viewer reads", e.get(viewer, fmt.Sprintf("%s/%d", page, run.ID)), http.StatusOK)
	wantStatus(t, "viewer runs", e.sendJSON(viewer, http.MethodPost, api, `{"from":"2026-11-01","to":"2026-11-03","click_window":"1d"}`), http.StatusForbidden)
	o := e.loggedIn("other")
	wantStatus(t, "other reads", e.get(o, fmt.Sprintf("%s/%d", api, run.ID)), http.StatusNotFound)
	wantStatus(t, "other page", e.get(o, fmt.Sprintf("%s/%d", page, run.ID)), http.StatusNotFound)
}
