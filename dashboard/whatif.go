package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/whatif"
)

// whatIfRequest is a what-if as the form and the JSON API take it: days
// (2026-11-01) or RFC 3339 times, windows as durations ("3d", "6h").
type whatIfRequest struct {
	From                string   `json:"from"`
	To                  string   `json:"to"`
	ClickWindow         string   `json:"click_window"`
	FingerprintWindow   string   `json:"fingerprint_window"`
	FingerprintMinScore *float64 `json:"fingerprint_min_score"`
}

// request validates q into a what-if of app.
func (q *whatIfRequest) request(appID int64) (*whatif.Request, error) {
	req := &whatif.Request{AppID: appID}
	var err error
	day := func(field, s string) (time.Time, error) {
		s = strings.TrimSpace(s)
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t, nil
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), nil
		}
		return time.Time{}, tapline.Errorf(tapline.EINVALID, "%s: %q is not a day (2026-11-01) or an RFC 3339 time", field, s)
	}
	if req.From, err = day("from", q.From); err != nil {
		return nil, err
	}
	if req.To, err = day("to", q.To); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(q.ClickWindow); s != "" {
		if req.Rules.ClickWindow, err = tapline.ParseWindow("click_window", s); err != nil {
			return nil, err
		}
	}
	if s := strings.TrimSpace(q.FingerprintWindow); s != "" {
		if req.Rules.FingerprintWindow, err = tapline.ParseWindow("fingerprint_window", s); err != nil {
			return nil, err
		}
	}
	req.Rules.FingerprintMinScore = q.FingerprintMinScore
	return req, req.Validate()
}

// whatIfView is a stored what-if as the API and the pages show it.
type whatIfView struct {
	ID          int64                `json:"id"`
	AppID       int64                `json:"app_id"`
	Status      tapline.WhatIfStatus `json:"status"`
	Request     whatif.Request       `json:"request"`
	Result      *whatif.Result       `json:"result,omitempty"`
	Error       string               `json:"error,omitempty"`
	RequestedBy string               `json:"requested_by"`
	CreatedAt   time.Time            `json:"created_at"`
	FinishedAt  *time.Time           `json:"finished_at,omitempty"`
}

func whatIfViewOf(run *tapline.WhatIfRun) (whatIfView, error) {
	v := whatIfView{ID: run.ID, AppID: run.AppID, Status: run.Status, Error: run.Error, RequestedBy: run.RequestedBy,
		CreatedAt: run.CreatedAt, FinishedAt: run.FinishedAt}
	if err := json.Unmarshal(run.Request, &v.Request); err != nil {
		return v, fmt.Errorf("what-if %d: request: %w", run.ID, err)
	}
	if len(run.Result) > 0 {
		v.Result = new(whatif.Result)
		if err := json.Unmarshal(run.Result, v.Result); err != nil {
			return v, fmt.Errorf("what-if %d: result: %w", run.ID, err)
		}
	}
	return v, nil
}

// requestWhatIf stores q as a pending what-if of app, by the principal.
func (d *Dashboard) requestWhatIf(r *http.Request, store tapline.WhatIfStore, app *tapline.App, q *whatIfRequest) (*tapline.WhatIfRun, error) {
	req, err := q.request(app.ID)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	by := "admin"
	if p := principalFrom(r.Context()); p != nil && p.User != nil {
		by = p.User.Email
	}
	run := &tapline.WhatIfRun{AppID: app.ID, Request: body, RequestedBy: by}
	return run, store.RequestWhatIf(r.Context(), run)
}

func (d *Dashboard) apiWhatIfRoutes(r chi.Router) {
	r.Get("/apps/{id}/whatif", d.apiWhatIfs)
	r.Post("/apps/{id}/whatif", d.apiRequestWhatIf)
	r.Get("/apps/{id}/whatif/{rid}", d.apiWhatIf)
}

func (d *Dashboard) apiWhatIfs(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	store := d.WhatIfs
	runs, err := store.WhatIfRuns(r.Context(), app.ID, 50)
	views := make([]whatIfView, 0, len(runs))
	for _, run := range runs {
		if err != nil {
			break
		}
		var v whatIfView
		v, err = whatIfViewOf(run)
		v.Result = nil // the list says how each stands; GET …/whatif/{rid} has the result
		views = append(views, v)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"whatifs": views})
}

func (d *Dashboard) apiRequestWhatIf(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	store := d.WhatIfs
	var q whatIfRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		d.writeJSONError(w, r, bodyError(err, 16<<10, "The body is not a what-if: %v."))
		return
	}
	run, err := d.requestWhatIf(r, store, app, &q)
	var v whatIfView
	if err == nil {
		v, err = whatIfViewOf(run)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusAccepted, v)
}

// pathWhatIf returns what-if {rid} of app.
func pathWhatIf(r *http.Request, store tapline.WhatIfStore, appID int64) (whatIfView, error) {
	id, err := parseID(chi.URLParam(r, "rid"), "what-if")
	if err != nil {
		return whatIfView{}, err
	}
	run, err := store.WhatIf(r.Context(), appID, id)
	if err != nil {
		return whatIfView{}, err
	}
	return whatIfViewOf(run)
}

func (d *Dashboard) apiWhatIf(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	store := d.WhatIfs
	v, err := pathWhatIf(r, store, app.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, v)
}

// whatIfData feeds the what-if pages.
type whatIfData struct {
	App   *tapline.App
	Runs  []whatIfView
	Run   *whatIfView
	Links map[int64]string // link names
	Form  map[string]string
	Error string
}

// linkName names link id of data's app.
func (w whatIfData) LinkName(id int64) string {
	if id == 0 {
		return "no link"
	}
	if n, ok := w.Links[id]; ok {
		return n
	}
	return "link " + strconv.FormatInt(id, 10)
}

func (d *Dashboard) whatIfPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	today := d.now().UTC().Truncate(24 * time.Hour)
	d.renderWhatIfs(w, r, http.StatusOK, &whatIfData{App: app, Form: map[string]string{
		"from": today.Add(-7 * 24 * time.Hour).Format(time.DateOnly), "to": today.Format(time.DateOnly)}})
}

func (d *Dashboard) renderWhatIfs(w http.ResponseWriter, r *http.Request, status int, data *whatIfData) {
	runs, err := d.WhatIfs.WhatIfRuns(r.Context(), data.App.ID, 50)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	for _, run := range runs {
		v, err := whatIfViewOf(run)
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		data.Runs = append(data.Runs, v)
	}
	d.render(w, r, status, "whatif", *data)
}

func (d *Dashboard) requestWhatIfForm(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	store := d.WhatIfs
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	form := map[string]string{}
	for _, k := range []string{"from", "to", "click_window", "fingerprint_window", "fingerprint_min_score"} {
		form[k] = r.PostForm.Get(k)
	}
	q := &whatIfRequest{From: form["from"], To: form["to"], ClickWindow: form["click_window"], FingerprintWindow: form["fingerprint_window"]}
	var err error
	if s := strings.TrimSpace(form["fingerprint_min_score"]); s != "" {
		var v float64
		if v, err = parseMinScore(s); err == nil {
			q.FingerprintMinScore = &v
		}
	}
	var run *tapline.WhatIfRun
	if err == nil {
		run, err = d.requestWhatIf(r, store, app, q)
	}
	if err != nil {
		if tapline.ErrorCode(err) != tapline.EINVALID {
			d.writeError(w, r, err)
			return
		}
		d.renderWhatIfs(w, r, http.StatusBadRequest, &whatIfData{App: app, Form: form, Error: tapline.ErrorMessage(err)})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/apps/%d/whatif/%d", app.ID, run.ID), http.StatusSeeOther)
}

func (d *Dashboard) whatIfResultPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.WhatIfs != nil, "What-ifs")
	if !ok {
		return
	}
	store := d.WhatIfs
	v, err := pathWhatIf(r, store, app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	links, err := d.Accounts.LinksByApp(r.Context(), app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := whatIfData{App: app, Run: &v, Links: map[int64]string{}}
	for _, l := range links {
		data.Links[l.ID] = l.Name
	}
	d.render(w, r, http.StatusOK, "whatif_result", data)
}
