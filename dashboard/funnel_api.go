package dashboard

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/internal/httperr"
)

// funnelAPI serves /api/v1/apps/{id}/funnels: the app's funnels, their
// versions and results, for the logged-in account (or the admin).
func (d *Dashboard) funnelAPI() chi.Router {
	r := chi.NewRouter()
	r.Get("/", d.apiFunnels)
	r.Post("/", d.apiCreateFunnel)
	r.Get("/{fid}", d.apiFunnel)
	r.Put("/{fid}", d.apiEditFunnel)
	r.Delete("/{fid}", d.apiDeleteFunnel)
	r.Get("/{fid}/results", d.apiFunnelResults)
	r.Get("/{fid}/results.csv", d.apiFunnelCSV)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.ENOTFOUND, "No such API endpoint."))
	})
	r.MethodNotAllowed(d.methodNotAllowed)
	return r
}

// apiApp reads the app of the path and checks the principal may see it,
// answering the error itself.
func (d *Dashboard) apiApp(w http.ResponseWriter, r *http.Request) (*tapline.App, bool) {
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	app, err := d.ownedApp(r.Context(), principalFrom(r.Context()), id)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	return app, true
}

// apiAppFunnelID reads the app and the funnel id of the path, answering
// the error itself.
func (d *Dashboard) apiAppFunnelID(w http.ResponseWriter, r *http.Request) (*tapline.App, int64, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return nil, 0, false
	}
	fid, err := parseID(chi.URLParam(r, "fid"), "funnel")
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, 0, false
	}
	return app, fid, true
}

// apiAppFunnel reads the app and the funnel of the path; another app's
// funnel is not found.
func (d *Dashboard) apiAppFunnel(w http.ResponseWriter, r *http.Request) (*tapline.App, *tapline.Funnel, bool) {
	app, fid, ok := d.apiAppFunnelID(w, r)
	if !ok {
		return nil, nil, false
	}
	f, err := d.appFunnel(r.Context(), app, fid)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, nil, false
	}
	return app, f, true
}

// funnelSaved tells OnFunnelSaved that a version waits for its backfill.
func (d *Dashboard) funnelSaved() {
	if d.OnFunnelSaved != nil {
		d.OnFunnelSaved()
	}
}

// FunnelList is the answer of GET /api/v1/apps/{id}/funnels.
type FunnelList struct {
	AppID   int64           `json:"app_id"`
	Funnels []FunnelSummary `json:"funnels"`
}

func (d *Dashboard) apiFunnels(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.apiApp(w, r); ok {
		d.writeFunnels(w, r, app)
	}
}

// writeFunnels answers the app's funnel list.
func (d *Dashboard) writeFunnels(w http.ResponseWriter, r *http.Request, app *tapline.App) {
	_, list, err := d.funnelSummaries(r.Context(), app.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, FunnelList{AppID: app.ID, Funnels: list})
}

// createFunnel decodes a definition from the body and stores it as a new
// funnel of app, answering the funnel (201) or the error.
func (d *Dashboard) createFunnel(w http.ResponseWriter, r *http.Request, app *tapline.App, location string) {
	var def tapline.FunnelDefinition
	if !d.decodeJSON(w, r, &def) {
		return
	}
	f, err := d.Funnels.CreateFunnel(r.Context(), app.ID, def)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.funnelSaved()
	w.Header().Set("Location", fmt.Sprintf(location, app.ID, f.ID))
	d.writeJSON(w, http.StatusCreated, f)
}

func (d *Dashboard) apiCreateFunnel(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.apiApp(w, r); ok {
		d.createFunnel(w, r, app, "/api/v1/apps/%d/funnels/%d")
	}
}

// FunnelDetail is the answer of GET /api/v1/apps/{id}/funnels/{fid}: the
// newest version with its definition and status, and every version.
type FunnelDetail struct {
	*tapline.Funnel
	Versions []FunnelSummary `json:"versions"`
}

func (d *Dashboard) apiFunnel(w http.ResponseWriter, r *http.Request) {
	app, fid, ok := d.apiAppFunnelID(w, r)
	if !ok {
		return
	}
	vs, err := d.appFunnelVersions(r.Context(), app, fid)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	detail := FunnelDetail{Funnel: vs[0], Versions: make([]FunnelSummary, len(vs))}
	for i, v := range vs {
		detail.Versions[i] = funnelSummary(v)
	}
	d.writeJSON(w, http.StatusOK, detail)
}

func (d *Dashboard) apiEditFunnel(w http.ResponseWriter, r *http.Request) {
	_, f, ok := d.apiAppFunnel(w, r)
	if !ok {
		return
	}
	var def tapline.FunnelDefinition
	if !d.decodeJSON(w, r, &def) {
		return
	}
	next, err := d.Funnels.EditFunnel(r.Context(), f.ID, def)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.funnelSaved()
	d.writeJSON(w, http.StatusOK, next)
}

func (d *Dashboard) apiDeleteFunnel(w http.ResponseWriter, r *http.Request) {
	_, f, ok := d.apiAppFunnel(w, r)
	if !ok {
		return
	}
	if err := d.Funnels.DeleteFunnel(r.Context(), f.ID); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiFunnelReport reads the results the path and query ask for, answering
// the error itself.
func (d *Dashboard) apiFunnelReport(w http.ResponseWriter, r *http.Request) (*FunnelReport, bool) {
	app, fid, ok := d.apiAppFunnelID(w, r)
	if !ok {
		return nil, false
	}
	dr, err := parseRangeDays(r.URL.Query(), d.now(), DefaultFunnelDays)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	rep, err := d.funnelReport(r.Context(), app, fid, dr)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	return rep, true
}

func (d *Dashboard) apiFunnelResults(w http.ResponseWriter, r *http.Request) {
	if rep, ok := d.apiFunnelReport(w, r); ok {
		d.writeJSON(w, http.StatusOK, rep)
	}
}

// csvHeader is the header of the results CSV.
var csvHeader = []string{
	"section", "value", "label", "step", "step_title", "count",
	"conversion_from_previous", "conversion_from_first", "drop_off",
	"median_seconds", "p90_seconds", "mean_seconds",
}

// apiFunnelCSV answers the results as CSV: one row per step of the totals
// (section "total"), then one per breakdown value and step ("breakdown"),
// then one per day and step ("day").
func (d *Dashboard) apiFunnelCSV(w http.ResponseWriter, r *http.Request) {
	rep, ok := d.apiFunnelReport(w, r)
	if !ok {
		return
	}
	cw := csvAttachment(w, fmt.Sprintf("funnel-%d-%s-%s.csv", rep.FunnelID, rep.From, rep.To))
	_ = cw.Write(csvHeader)
	rate := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
	secs := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', 1, 64)
	}
	for _, s := range rep.Steps {
		_ = cw.Write([]string{"total", "", "", strconv.Itoa(s.Step), csvText(s.Title), strconv.FormatInt(s.Count, 10),
			rate(s.Conversion), rate(s.TotalConversion), strconv.FormatInt(s.DropOff, 10),
			secs(s.MedianSeconds), secs(s.P90Seconds), secs(s.MeanSeconds)})
	}
	counts := func(section, value, label string, steps []int64) {
		for i, c := range steps {
			var prev, first float64
			var drop int64
			if i == 0 {
				if c > 0 {
					prev = 1
				}
			} else {
				drop = steps[i-1] - c
				if steps[i-1] > 0 {
					prev = float64(c) / float64(steps[i-1])
				}
			}
			if steps[0] > 0 {
				first = float64(c) / float64(steps[0])
			}
			_ = cw.Write([]string{section, csvText(value), csvText(label), strconv.Itoa(i + 1), csvText(rep.Steps[i].Title),
				strconv.FormatInt(c, 10), rate(prev), rate(first), strconv.FormatInt(drop, 10), "", "", ""})
		}
	}
	for _, b := range rep.Breakdown {
		counts("breakdown", b.Value, b.Label, b.Steps)
	}
	for _, day := range rep.Days {
		counts("day", day.Day, "", day.Steps)
	}
	cw.Flush()
}

// csvText keeps a text cell from being read as a formula by spreadsheets:
// breakdown values come from link parameters anyone can set.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvAttachment starts w as a CSV file to download under filename and
// returns a writer of its rows.
func csvAttachment(w http.ResponseWriter, filename string) *csv.Writer {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	return csv.NewWriter(w)
}

// FunnelOptions is the answer of GET /api/v1/apps/{id}/funnel-options:
// what the funnel builder offers.
type FunnelOptions struct {
	AppID int64        `json:"app_id"`
	Links []LinkOption `json:"links"`
	// Events are the event names counted over the app's raw retention,
	// most frequent first (at most 500).
	Events []string `json:"events"`
	// DefaultWindowSeconds is the window of a funnel that names none;
	// MaxWindowSeconds the app's raw retention, the longest window.
	DefaultWindowSeconds int64 `json:"default_window_seconds"`
	MinWindowSeconds     int64 `json:"min_window_seconds"`
	MaxWindowSeconds     int64 `json:"max_window_seconds"`
	MinSteps             int   `json:"min_steps"`
	MaxSteps             int   `json:"max_steps"`
	MaxExclusions        int   `json:"max_exclusions"`
	MaxFilters           int   `json:"max_filters"`
}

// LinkOption is a link the builder offers for tap steps.
type LinkOption struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Slug string `json:"slug"`
}

func (d *Dashboard) apiFunnelOptions(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	opts, err := d.funnelOptions(r, app)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, opts)
}

// funnelOptions gathers the app's links and the event names of its facts
// over its raw retention.
func (d *Dashboard) funnelOptions(r *http.Request, app *tapline.App) (*FunnelOptions, error) {
	ctx := r.Context()
	retention := app.Retention
	if retention <= 0 {
		retention = tapline.DefaultRetention
	}
	links, err := d.Accounts.LinksByApp(ctx, app.ID)
	if err != nil {
		return nil, fmt.Errorf("links of app %d: %w", app.ID, err)
	}
	events, err := d.FunnelReports.EventNames(ctx, app.ID, d.now().Add(-retention), maxEventNames)
	if err != nil {
		return nil, fmt.Errorf("event names of app %d: %w", app.ID, err)
	}
	opts := &FunnelOptions{
		AppID: app.ID, Links: make([]LinkOption, 0, len(links)), Events: events,
		DefaultWindowSeconds: int64(min(tapline.DefaultFunnelWindow, retention).Seconds()),
		MinWindowSeconds:     int64(tapline.MinFunnelWindow.Seconds()),
		MaxWindowSeconds:     int64(retention.Seconds()),
		MinSteps:             tapline.FunnelMinSteps, MaxSteps: tapline.FunnelMaxSteps,
		MaxExclusions: tapline.FunnelMaxExclusions, MaxFilters: tapline.FunnelMaxFilters,
	}
	if opts.Events == nil {
		opts.Events = []string{}
	}
	for _, l := range links {
		opts.Links = append(opts.Links, LinkOption{ID: l.ID, Name: l.Name, Slug: l.Slug})
	}
	return opts, nil
}
