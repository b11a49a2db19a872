package dashboard

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// funnelPages serves /apps/{id}/funnels: the list, the builder and the
// funnel view, behind the page session.
func (d *Dashboard) funnelPages() chi.Router {
	r := chi.NewRouter()
	r.Get("/", d.funnelsPage)
	r.Get("/new", d.funnelBuilderPage)
	r.Get("/{fid}", d.funnelPage)
	r.Get("/{fid}/edit", d.funnelBuilderPage)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		d.writeError(w, r, tapline.Errorf(tapline.ENOTFOUND, "Page not found."))
	})
	return r
}

// pageApp reads the app of the path for the logged-in account, answering
// the error page itself.
func (d *Dashboard) pageApp(w http.ResponseWriter, r *http.Request) (*tapline.App, bool) {
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err == nil {
		var app *tapline.App
		if app, err = d.ownedApp(r.Context(), principalFrom(r.Context()), id); err == nil {
			return app, true
		}
	}
	d.writeError(w, r, err)
	return nil, false
}

// pageFunnelID reads the funnel id of the path.
func pageFunnelID(r *http.Request) (int64, error) {
	return parseID(chi.URLParam(r, "fid"), "funnel")
}

// funnelsData feeds the funnel list.
type funnelsData struct {
	App     *tapline.App
	Funnels []funnelRow
	Running bool // a version is on its way to live: the page refreshes
}

// funnelRow is a funnel of the list: its summary and its steps in words.
type funnelRow struct {
	FunnelSummary
	Path string // "Tap on Spring sale → Install → purchase"
}

func (d *Dashboard) funnelsPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	fs, list, err := d.funnelSummaries(r.Context(), app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	links, err := d.linkNames(r.Context(), app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := funnelsData{App: app}
	for i, s := range list {
		titles := make([]string, len(fs[i].Steps))
		for j := range fs[i].Steps {
			titles[j] = stepTitle(&fs[i].Steps[j], links)
		}
		data.Funnels = append(data.Funnels, funnelRow{FunnelSummary: s, Path: strings.Join(titles, " → ")})
		data.Running = data.Running || s.Running()
	}
	d.render(w, r, http.StatusOK, "funnels", data)
}

// builderData feeds the funnel builder; Init is the JSON its script
// starts from.
type builderData struct {
	App    *tapline.App
	Funnel *tapline.Funnel // nil for a new funnel
	Init   builderInit
}

// builderInit is what the builder script reads: where to save, what to
// offer, and the definition to start from.
type builderInit struct {
	AppID      int64                     `json:"app_id"`
	FunnelID   int64                     `json:"funnel_id,omitempty"`
	Method     string                    `json:"method"`
	SaveURL    string                    `json:"save_url"`
	ViewURL    string                    `json:"view_url"` // with {id} for the saved funnel's id
	Options    *FunnelOptions            `json:"options"`
	Definition *tapline.FunnelDefinition `json:"definition,omitempty"`
}

func (d *Dashboard) funnelBuilderPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	opts, err := d.funnelOptions(r, app)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := builderData{App: app, Init: builderInit{
		AppID: app.ID, Method: http.MethodPost, Options: opts,
		SaveURL: fmt.Sprintf("/api/v1/apps/%d/funnels", app.ID),
		ViewURL: fmt.Sprintf("/apps/%d/funnels/{id}", app.ID),
	}}
	if chi.URLParam(r, "fid") != "" {
		fid, err := pageFunnelID(r)
		if err == nil {
			data.Funnel, err = d.appFunnel(r.Context(), app, fid)
		}
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		data.Init.FunnelID, data.Init.Method = fid, http.MethodPut
		data.Init.SaveURL += "/" + strconv.FormatInt(fid, 10)
		data.Init.Definition = &data.Funnel.FunnelDefinition
	}
	d.render(w, r, http.StatusOK, "funnel_edit", data)
}

// funnelData feeds the funnel view.
type funnelData struct {
	App      *tapline.App
	Report   *FunnelReport
	From, To string
	TZ       string
	// RangeError is the range asked for, refused; the page shows the
	// default one.
	RangeError *rangeError
	RangeKeep  []hiddenField // none: the funnel view has no filters
	Presets    []preset
	Steps      []stepView
	Summary    []string // the definition in words
	Columns    []string // step titles for the tables' headers
	Entered    int64
	Complete   int64
	Rate       float64
	Banner     *banner
	CSVURL     string
	APIURL     string
	Empty      bool
}

// stepView is one step's bar and numbers.
type stepView struct {
	tapline.FunnelStepResult
	Fill, Prev string // bar widths in percent of the first step
	Median     string
	P90        string
}

// banner explains results that are not the newest version's complete ones.
type banner struct {
	Class    string // "info" or "warn"
	Text     string
	Progress float64 // of the newest version's backfill; shown when Bar
	Bar      bool
}

func (d *Dashboard) funnelPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	fid, err := pageFunnelID(r)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	dr, rangeErr := pageRange(r.URL.Query(), d.now(), DefaultFunnelDays)
	rep, err := d.funnelReport(r.Context(), app, fid, dr)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	links, err := d.linkNames(r.Context(), app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	path := fmt.Sprintf("/apps/%d/funnels/%d", app.ID, fid)
	data := funnelData{
		App: app, Report: rep, From: rep.From, To: rep.To, TZ: dr.TZ, RangeError: rangeErr,
		Presets: rangePresets(path, dr, nil, 7, 30, 90),
		Summary: definitionSummary(&rep.Funnel.FunnelDefinition, links),
		Banner:  resultsBanner(rep),
		APIURL:  fmt.Sprintf("/api/v1/apps/%d/funnels/%d", app.ID, fid),
	}
	data.CSVURL = data.APIURL + "/results.csv?" + rangeQuery(dr).Encode()
	n := len(rep.Steps)
	data.Entered, data.Complete = rep.Steps[0].Count, rep.Steps[n-1].Count
	data.Rate = rep.Steps[n-1].TotalConversion
	data.Empty = data.Entered == 0
	for i, s := range rep.Steps {
		v := stepView{FunnelStepResult: s, Fill: barWidth(s.TotalConversion), Prev: barWidth(s.TotalConversion)}
		if i > 0 {
			v.Prev = barWidth(rep.Steps[i-1].TotalConversion)
		}
		if s.MedianSeconds != nil {
			v.Median = humanSeconds(*s.MedianSeconds)
		}
		if s.P90Seconds != nil {
			v.P90 = humanSeconds(*s.P90Seconds)
		}
		data.Steps = append(data.Steps, v)
		data.Columns = append(data.Columns, s.Title)
	}
	status := http.StatusOK
	if rangeErr != nil {
		status = http.StatusBadRequest
	}
	d.render(w, r, status, "funnel", data)
}

// barWidth writes a 0..1 share as an SVG width in percent.
func barWidth(x float64) string {
	return strconv.FormatFloat(math.Max(0, math.Min(1, x))*100, 'f', 2, 64)
}

// resultsBanner says why the results shown are not the newest version's
// complete ones, or nil when they are.
func resultsBanner(rep *FunnelReport) *banner {
	n := rep.Newest
	pct := progressPercent(n.Progress)
	switch {
	case rep.OlderVersion() && n.Status == tapline.FunnelCancelled:
		return &banner{Class: "info", Text: fmt.Sprintf(
			"Showing version %d: version %d was cancelled before it went live.", rep.Funnel.Version, n.Version)}
	case rep.OlderVersion():
		b := &banner{Class: "info", Text: fmt.Sprintf(
			"Showing version %d while the edited version %d is %s. The results switch to it once it is live.",
			rep.Funnel.Version, n.Version, statusPhrase(n))}
		b.Bar, b.Progress = n.Status == tapline.FunnelBackfilling, n.Progress
		return b
	case !rep.Partial:
		return nil
	case n.Status == tapline.FunnelPending:
		return &banner{Class: "warn", Text: "Pending handoff: the matchers are fixing where live counting starts. " +
			"The backfill starts right after; results appear as it runs."}
	case n.Status == tapline.FunnelBackfilling:
		return &banner{Class: "warn", Bar: true, Progress: n.Progress, Text: fmt.Sprintf(
			"Backfilling %s: these results are partial and grow until the backfill has counted every stored event.", pct)}
	}
	return &banner{Class: "warn", Text: "This version was cancelled before it went live; its results were dropped."}
}

// statusPhrase describes a version on its way to live.
func statusPhrase(s FunnelSummary) string {
	switch s.Status {
	case tapline.FunnelPending:
		return "pending its handoff"
	case tapline.FunnelBackfilling:
		return "backfilling (" + progressPercent(s.Progress) + ")"
	}
	return string(s.Status)
}

// progressPercent writes a 0..1 progress as a whole percentage, rounded
// down so 100% means done.
func progressPercent(p float64) string {
	return strconv.Itoa(int(math.Floor(math.Max(0, math.Min(1, p))*100))) + "%"
}

// statusLabel is a version's status as the list shows it.
func statusLabel(s tapline.FunnelStatus) string {
	if s == tapline.FunnelPending {
		return "pending handoff"
	}
	return string(s)
}

// humanSeconds writes a time between steps in its two largest units:
// "45s", "7m 18s", "5h 12m", "3d 4h".
func humanSeconds(s float64) string {
	d := time.Duration(math.Round(s)) * time.Second
	if d < time.Second {
		return "0s"
	}
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units {
		if d < u.d {
			continue
		}
		out := strconv.FormatInt(int64(d/u.d), 10) + u.name
		if i+1 < len(units) {
			if rest := (d % u.d) / units[i+1].d; rest > 0 {
				out += " " + strconv.FormatInt(int64(rest), 10) + units[i+1].name
			}
		}
		return out
	}
	return "0s"
}

// definitionSummary describes a definition's order, window, exclusions and
// breakdown in words, one phrase each.
func definitionSummary(def *tapline.FunnelDefinition, links map[int64]string) []string {
	var out []string
	switch def.Order {
	case tapline.OrderStrict:
		out = append(out, "Strict order: each step right after the previous one")
	case tapline.OrderAny:
		out = append(out, "Steps in any order")
	default:
		out = append(out, "Steps in order")
	}
	out = append(out, "within "+humanSeconds(def.Window().Seconds())+" of the first step")
	for _, x := range def.Exclusions {
		out = append(out, fmt.Sprintf("excluding %s between steps %d and %d", stepTitle(&x.FunnelStep, links), x.After, x.Before))
	}
	switch def.Breakdown.Kind {
	case tapline.BreakdownNone:
	case tapline.BreakdownLinkParam:
		out = append(out, fmt.Sprintf("broken down by the link parameter %q", def.Breakdown.Param))
	case tapline.BreakdownEntryParam:
		out = append(out, fmt.Sprintf("broken down by the first step's parameter %q", def.Breakdown.Param))
	default:
		out = append(out, "broken down by "+string(def.Breakdown.Kind))
	}
	return out
}

// rangeQuery is the query naming dr.
func rangeQuery(dr dayRange) url.Values {
	q := url.Values{"from": {dr.From.Format(dayLayout)}, "to": {dr.To.Format(dayLayout)}}
	if dr.TZ != "UTC" {
		q.Set("tz", dr.TZ)
	}
	return q
}

// rangePresets are quick links to path over the last n days up to dr's
// last day, for each n, keeping the other parameters of keep (may be nil).
func rangePresets(path string, dr dayRange, keep url.Values, days ...int) []preset {
	var out []preset
	for _, n := range days {
		q := maps.Clone(keep)
		if q == nil {
			q = url.Values{}
		}
		q.Set("from", dr.To.AddDate(0, 0, -(n-1)).Format(dayLayout))
		q.Set("to", dr.To.Format(dayLayout))
		q.Del("tz")
		if dr.TZ != "UTC" {
			q.Set("tz", dr.TZ)
		}
		out = append(out, preset{Label: fmt.Sprintf("%d days", n), URL: path + "?" + q.Encode()})
	}
	return out
}

// rateOf returns n/d, 0 when d is 0.
func rateOf(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// lastOf returns the last count of steps.
func lastOf(steps []int64) int64 {
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1]
}

// firstOf returns the first count of steps.
func firstOf(steps []int64) int64 {
	if len(steps) == 0 {
		return 0
	}
	return steps[0]
}

// titleCase upper-cases the first letter of s.
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
