package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/internal/httperr"
)

// apiRouter serves the customer JSON API, behind a session or the admin
// token. State-changing requests a browser sends from another site are
// refused, as the forms' are.
func (d *Dashboard) apiRouter() chi.Router {
	r := chi.NewRouter()
	r.Use(d.checkAPIOrigin, d.requireAPIAuth, d.readOnlyAPIViewers)
	r.Get("/apps", d.apiApps)
	r.Patch("/apps/{id}", d.apiUpdateApp)
	r.Get("/apps/{id}/daily", d.apiDaily)
	r.Get("/apps/{id}/live", d.apiLive)
	r.Get("/apps/{id}/cohorts", d.apiCohorts)
	r.Get("/apps/{id}/cohorts.csv", d.apiCohortsCSV)
	r.Get("/apps/{id}/conversions", d.apiConversions)
	r.Get("/apps/{id}/conversions.csv", d.apiConversionsCSV)
	r.Get("/apps/{id}/conversions/{cid}", d.apiConversion)
	r.Get("/apps/{id}/skadnetwork", d.apiSKAN)
	r.Get("/apps/{id}/skadnetwork/postbacks", d.apiSKANPostbacks)
	r.Get("/apps/{id}/links", d.apiLinks)
	r.Post("/apps/{id}/links", d.apiCreateLink)
	r.Get("/apps/{id}/links.csv", d.apiLinksCSV)
	r.Get("/apps/{id}/links/{lid}", d.apiGetLink)
	r.Patch("/apps/{id}/links/{lid}", d.apiUpdateLink)
	r.Get("/apps/{id}/breakdown", d.apiBreakdown)
	r.Get("/apps/{id}/breakdown.csv", d.apiBreakdownCSV)
	r.Get("/apps/{id}/funnel-options", d.apiFunnelOptions)
	r.Mount("/apps/{id}/funnels", d.funnelAPI())
	r.Delete("/apps/{id}/devices", d.apiEraseDevice)
	r.Get("/apps/{id}/erasures/{eid}", d.apiErasure)
	d.apiPostbackRoutes(r)
	d.apiWhatIfRoutes(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.ENOTFOUND, "No such API endpoint."))
	})
	r.MethodNotAllowed(d.methodNotAllowed)
	return r
}

// apiApps lists the apps of the logged-in account; the admin names the
// account with ?account=.
func (d *Dashboard) apiApps(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principalFrom(ctx)
	account := p.Account
	if p.Admin {
		name := r.URL.Query().Get("account")
		if name == "" {
			d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "account: with the admin token, name the account with ?account="))
			return
		}
		var err error
		if account, err = d.Accounts.AccountByName(ctx, name); err != nil {
			d.writeJSONError(w, r, err)
			return
		}
	}
	apps, err := d.Accounts.AppsByAccount(ctx, account.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	views := appViews(apps)
	if p.ReadOnly {
		// A reporting token reads reports, not the keys that send events.
		for i := range views {
			views[i].SDKSecret, views[i].SDKKey = "", ""
		}
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"apps": views})
}

// apiDaily answers an app's daily totals over a range.
func (d *Dashboard) apiDaily(w http.ResponseWriter, r *http.Request) {
	app, dr, ok := d.apiAppRange(w, r)
	if !ok {
		return
	}
	filters, err := parseFilters(r.URL.Query())
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	rep, err := d.dailyReport(r.Context(), app.ID, dr, filters)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	switch c := r.URL.Query().Get("compare"); c {
	case "":
	case "previous":
		if err := d.withPrevious(r.Context(), rep, dr); err != nil {
			d.writeJSONError(w, r, err)
			return
		}
	default:
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "compare: %q; want previous", c))
		return
	}
	d.writeJSON(w, http.StatusOK, rep)
}

// apiBreakdown answers an app's totals over a range grouped by one
// dimension (?by=), with filters.
func (d *Dashboard) apiBreakdown(w http.ResponseWriter, r *http.Request) {
	if rep, ok := d.apiBreakdownReport(w, r); ok {
		d.writeJSON(w, http.StatusOK, rep)
	}
}

// apiBreakdownCSV answers the same as CSV, to download.
func (d *Dashboard) apiBreakdownCSV(w http.ResponseWriter, r *http.Request) {
	rep, ok := d.apiBreakdownReport(w, r)
	if !ok {
		return
	}
	csvAttachment(w, fmt.Sprintf("app-%d-by-%s-%s-%s.csv", rep.AppID, rep.By, rep.From, rep.To))
	if err := writeBreakdownCSV(w, rep); err != nil {
		d.logger().WarnContext(r.Context(), "write breakdown csv", "err", err)
	}
}

// apiBreakdownReport reads the breakdown the path and query ask for,
// answering the error itself.
func (d *Dashboard) apiBreakdownReport(w http.ResponseWriter, r *http.Request) (*BreakdownReport, bool) {
	app, dr, ok := d.apiAppRange(w, r)
	if !ok {
		return nil, false
	}
	bq, err := parseBreakdown(r.URL.Query(), "")
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	rep, err := d.breakdownReport(r.Context(), app, dr, bq)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	return rep, true
}

// apiLinks answers an app's per-link totals over a range.
func (d *Dashboard) apiLinks(w http.ResponseWriter, r *http.Request) {
	app, dr, ok := d.apiAppRange(w, r)
	if !ok {
		return
	}
	rep, err := d.linksReport(r.Context(), app.ID, dr)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, rep)
}

// apiAppRange reads the app of the path and the range of the query,
// answering the error itself when either is bad.
func (d *Dashboard) apiAppRange(w http.ResponseWriter, r *http.Request) (*tapline.App, dayRange, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return nil, dayRange{}, false
	}
	dr, err := parseRange(r.URL.Query(), d.now())
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, dayRange{}, false
	}
	return app, dr, true
}

// writeJSON answers v as JSON with status.
func (d *Dashboard) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeJSONError answers err as JSON through httperr.
func (d *Dashboard) writeJSONError(w http.ResponseWriter, r *http.Request, err error) {
	httperr.Write(w, r, d.logger(), err)
}

// methodNotAllowed answers a known path with the wrong method.
func (d *Dashboard) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_ = json.NewEncoder(w).Encode(httperr.Body{Error: "method_not_allowed", Message: r.Method + " is not allowed here."})
}
