package dashboard

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"tapline"
	"tapline/internal/httperr"
)

// pages holds one template set per page, each with the shared layout: one
// for visitors who may change things (pages[true]) and one for those who
// may only read, whose canEdit is false, so a viewer sees no controls that
// would only answer 403.
var pages = map[bool]map[string]*template.Template{true: parsePages(true), false: parsePages(false)}

// parsePages parses every page with canEdit answering canEdit.
func parsePages(canEdit bool) map[string]*template.Template {
	funcs := template.FuncMap{
		"num":       formatCount,
		"pct":       formatPercent,
		"money":     formatRevenue,
		"seconds":   formatSeconds,
		"duration":  formatDuration,
		"progress":  progressPercent,
		"status":    statusLabel,
		"rate":      rateOf,
		"first":     firstOf,
		"last":      lastOf,
		"title":     titleCase,
		"inc":       func(i int) int { return i + 1 },
		"sub":       func(a, b int) int { return a - b },
		"lower":     strings.ToLower,
		"change":    changeOf,
		"ppchange":  pointsChange,
		"join":      strings.Join,
		"row":       breakdownRow,
		"methods":   func() []string { return matchMethods },
		"botagents": topAgents,
		"fraudfield": func(form map[string]string, name, label string) fraudField {
			return fraudField{Name: name, ID: strings.ReplaceAll(name, "_", "-"), Label: label, Value: form[name]}
		},
		"fraudlabel": fraudLabel,
		"method":     methodLabel,
		"signal":     signalLabel,
		"millis":     formatMillis,
		"score":      formatScore,
		"weight":     formatWeight,
		"linkname":   func(v ConversionView, id int64) string { return v.linkName(id) },
		"linkform": func(app *tapline.App, f linkForm, isNew bool) linkFormView {
			return linkFormView{App: app, Form: f, New: isNew}
		},
		"tab": func(app *tapline.App, active string) appTab { return appTab{App: app, Active: active} },
		// canEdit reports whether the visitor may change things.
		"canEdit": func() bool { return canEdit },
	}
	m := map[string]*template.Template{}
	for _, name := range []string{"login", "apps", "app", "error", "funnels", "funnel", "funnel_edit", "links", "link", "link_new", "settings", "account", "live", "conversions", "conversion", "cohorts", "team", "invite", "integrations", "whatif", "whatif_result", "skadnetwork"} {
		m[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return m
}

// fraudField is one fraud action select of the settings form.
type fraudField struct{ Name, ID, Label, Value string }

// fraudLabel names a fraud signal for people: "click injection".
func fraudLabel(s tapline.FraudSignal) string { return strings.ReplaceAll(string(s), "_", " ") }

// topAgents names the three agents with the most requests that were no
// taps, with their counts: "facebookexternalhit 120".
func topAgents(m map[string]int64) []string {
	agents := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b)) })
	var out []string
	for _, a := range agents[:min(3, len(agents))] {
		out = append(out, a+" "+formatCount(m[a]))
	}
	return out
}

// periodChange is how a tile's number moved since the previous period.
type periodChange struct {
	Text  string // "+12.5%", "−3.0%", "new", "±0%"
	Class string // up, down or flat
	Title string // what it compares with
}

// changeOf compares a count with the previous period's.
func changeOf(cur, prev int64) periodChange {
	c := periodChange{Title: fmt.Sprintf("previous period: %s", formatCount(prev))}
	switch {
	case cur == prev:
		c.Text, c.Class = "±0%", "flat"
	case prev == 0:
		c.Text, c.Class = "new", "up"
	default:
		pct := float64(cur-prev) / float64(prev) * 100
		c.Text, c.Class = signed(pct, 1)+"%", "up"
		if pct < 0 {
			c.Class = "down"
		}
	}
	return c
}

// pointsChange compares a rate with the previous period's, in
// percentage points; nothing when either has no base.
func pointsChange(cur, prev float64, curBase, prevBase int64) periodChange {
	if curBase == 0 || prevBase == 0 {
		return periodChange{}
	}
	c := periodChange{Title: "previous period: " + formatPercent(prev), Class: "flat", Text: "±0 pp"}
	if d := (cur - prev) * 100; math.Abs(d) >= 0.05 {
		c.Text, c.Class = signed(d, 1)+" pp", "up"
		if d < 0 {
			c.Class = "down"
		}
	}
	return c
}

// signed writes x with its sign, a minus sign for negatives.
func signed(x float64, prec int) string {
	if x < 0 {
		return "−" + strconv.FormatFloat(-x, 'f', prec, 64)
	}
	return "+" + strconv.FormatFloat(x, 'f', prec, 64)
}

// linkFormView feeds the link form partial.
type linkFormView struct {
	App  *tapline.App
	Form linkForm
	New  bool
}

// breakdownRowData feeds one row of the breakdown table.
type breakdownRowData struct {
	Page  appData
	Entry BreakdownEntry
}

// breakdownRow is the data of one breakdown row template: an entry (or a
// pointer to one) of the page's breakdown.
func breakdownRow(p appData, e any) breakdownRowData {
	switch e := e.(type) {
	case *BreakdownEntry:
		return breakdownRowData{Page: p, Entry: *e}
	case BreakdownEntry:
		return breakdownRowData{Page: p, Entry: e}
	}
	panic(fmt.Sprintf("breakdown row of a %T", e))
}

// appTab feeds the app's section tabs: the app and the active section.
type appTab struct {
	App    *tapline.App
	Active string
}

// pageData is what every page template receives.
type pageData struct {
	Title   string
	Account *tapline.Account // nil when logged out
	User    *tapline.User    // nil when logged out
	Data    any
}

// render answers the named page with status, in the set of pages for what
// the visitor may do.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	pd := pageData{Data: data}
	p := principalFrom(r.Context())
	if p != nil {
		pd.Account, pd.User = p.Account, p.User
	}
	switch v := data.(type) {
	case loginData:
		pd.Title = "Log in"
	case appsData:
		pd.Title = "Apps"
	case appData:
		pd.Title = v.App.Name
	case funnelsData:
		pd.Title = "Funnels · " + v.App.Name
	case funnelData:
		pd.Title = v.Report.Funnel.Name + " · " + v.App.Name
	case builderData:
		pd.Title = "New funnel · " + v.App.Name
		if v.Funnel != nil {
			pd.Title = "Edit " + v.Funnel.Name + " · " + v.App.Name
		}
	case liveData:
		pd.Title = "Live · " + v.App.Name
	case accountData:
		pd.Title = "Account"
	case teamData:
		pd.Title = "Team"
	case inviteData:
		pd.Title = "Join " + v.Account.Name
	case settingsData:
		pd.Title = "Settings · " + v.App.Name
	case integrationsData:
		pd.Title = "Integrations · " + v.App.Name
	case whatIfData:
		pd.Title = "What-if · " + v.App.Name
	case skanData:
		pd.Title = "SKAdNetwork · " + v.App.Name
	case linksData:
		pd.Title = "Links · " + v.App.Name
	case linkFormData:
		pd.Title = "New link · " + v.App.Name
	case linkData:
		pd.Title = v.Link.Name + " · " + v.App.Name
	case errorData:
		pd.Title = http.StatusText(v.Status)
	}
	var buf bytes.Buffer
	if err := pages[p.canWrite()][name].Execute(&buf, pd); err != nil {
		d.logger().ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// errorData feeds the error page.
type errorData struct {
	Status  int
	Message string
}

// writeError answers err as an HTML page with the status its code maps to;
// internal errors are logged and shown as a generic message.
func (d *Dashboard) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := tapline.ErrorCode(err)
	if code == tapline.EINTERNAL {
		d.logger().ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	status := httperr.Status(code)
	d.render(w, r, status, "error", errorData{Status: status, Message: tapline.ErrorMessage(err)})
}

// appsData feeds the apps page.
type appsData struct {
	Apps []*tapline.App
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	apps, err := d.Accounts.AppsByAccount(r.Context(), p.Account.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "apps", appsData{Apps: apps})
}

// appData feeds the app page.
type appData struct {
	App          *tapline.App
	From, To     string
	TZ           string
	RangeError   *rangeError // the range asked for, refused; the page shows the default
	Presets      []preset
	Daily        *DailyReport
	DailyRows    []dailyRow // newest first, runs of empty days folded
	Chart        chart
	Breakdown    *BreakdownReport
	Filters      []filterChip
	ByOptions    []byOption
	Hidden       []hiddenField             // the breakdown form's other parameters
	RangeKeep    []hiddenField             // the range form's other parameters: filters, breakdown
	DailyCSV     string                    // the daily table as CSV
	BreakdownCSV string                    // the breakdown table as CSV
	Sorts        map[string]string         // the breakdown sorted by each measure
	Drill        func(value string) string // the page filtered by a breakdown value
	SDK          sdkInfo
	// NoTraffic is set when the app has no hits, installs or events in
	// the range: the page shows how to get some.
	NoTraffic bool
	// FirstLink is the tracking URL of the app's first link, "" when it
	// has none.
	FirstLink string
	// CanExport is set when the visitor may download raw data (the export
	// form); ExportKinds are its choices.
	CanExport   bool
	ExportKinds []exportOption
}

// dailyRow is a row of the app page's daily table: one day, or a run of
// days without hits, installs or events.
type dailyRow struct {
	tapline.DailyStats
	// EmptyFrom and EmptyTo are set on a folded run: its first and last
	// day; EmptyDays counts them.
	EmptyFrom, EmptyTo string
	EmptyDays          int
}

// minEmptyRun is the shortest run of empty days the daily table folds into
// one row; shorter runs keep a row per day.
const minEmptyRun = 3

// dailyRows returns days newest first, each run of at least minEmptyRun
// days without hits, installs or events folded into one row.
func dailyRows(days []tapline.DailyStats) []dailyRow {
	empty := func(s tapline.DailyStats) bool {
		return s.Hits == 0 && s.Installs == 0 && s.Events == 0 && s.Conversions == 0 && len(s.RevenueMicros) == 0
	}
	var rows []dailyRow
	for i := len(days) - 1; i >= 0; {
		j := i
		for j >= 0 && empty(days[j]) {
			j--
		}
		if n := i - j; n >= minEmptyRun {
			rows = append(rows, dailyRow{EmptyFrom: days[j+1].Day, EmptyTo: days[i].Day, EmptyDays: n})
			i = j
			continue
		}
		rows = append(rows, dailyRow{DailyStats: days[i]})
		i--
	}
	return rows
}

// preset is a quick range link on the app page.
type preset struct {
	Label string
	URL   string
}

// sdkInfo is what an app developer configures in the SDK.
type sdkInfo struct {
	Account       string
	CollectorURL  string
	EventEndpoint string
	BatchEndpoint string
	PixelPattern  string
	LinkPattern   string
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principalFrom(ctx)
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	app, err := d.ownedApp(ctx, p, id)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	dr, rangeErr := pageRange(q, d.now(), DefaultDays)
	bq, err := parseBreakdown(q, "link")
	if err != nil {
		// Shown like a bad range, above the unfiltered page.
		rangeErr = cmp.Or(rangeErr, &rangeError{Message: tapline.ErrorMessage(err)})
		bq, _ = parseBreakdown(url.Values{}, "link")
	}
	// The page's three reports are independent: ask for them at once.
	var daily, prev *DailyReport
	var bd *BreakdownReport
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { daily, err = d.dailyReport(gctx, app.ID, dr, bq.Filters); return err })
	g.Go(func() (err error) { prev, err = d.dailyReport(gctx, app.ID, previousRange(dr), bq.Filters); return err })
	g.Go(func() (err error) { bd, err = d.breakdownReport(gctx, app, dr, bq); return err })
	if err := g.Wait(); err != nil {
		d.writeError(w, r, err)
		return
	}
	daily.Previous = &PreviousPeriod{From: prev.From, To: prev.To, Totals: prev.Totals}
	base := d.collectorBase()
	t := daily.Totals
	path := "/apps/" + strconv.FormatInt(app.ID, 10)
	// The page's own query: its range, filters and breakdown, which every
	// link on it keeps unless it changes them.
	self := rangeQuery(dr)
	for _, f := range bq.Filters {
		self.Set(f.Dim, f.Value)
	}
	if bq.By != "link" {
		self.Set("by", bq.By)
	}
	data := appData{
		App: app, From: daily.From, To: daily.To, TZ: dr.TZ, RangeError: rangeErr,
		Daily: daily, DailyRows: dailyRows(daily.Days), Chart: buildChart(daily.Days), Breakdown: bd,
		NoTraffic: t.Hits == 0 && t.Installs == 0 && t.Events == 0 && len(bq.Filters) == 0,
		Filters:   filterChips(path, self, bq.Filters),
		ByOptions: byOptions(bq.By),
		Hidden:    hiddenFields(self, "by", "sort"),
		RangeKeep: hiddenFields(self, "from", "to", "tz"),
		CanExport: p.canExport(), ExportKinds: exportKinds(),
		SDK: sdkInfo{
			Account:       p.Account.Name,
			CollectorURL:  base,
			EventEndpoint: base + "/" + url.PathEscape(p.Account.Name) + "/event/{event-name}",
			BatchEndpoint: base + "/v1/events",
			PixelPattern:  base + "/" + url.PathEscape(p.Account.Name) + "/hit/{tracker}.gif",
			LinkPattern:   base + "/l/{slug}",
		},
	}
	data.Sorts = sortLinks(path, self)
	csvQuery := maps.Clone(self)
	csvQuery.Set("by", tapline.ByDay)
	data.DailyCSV = "/api/v1" + path + "/breakdown.csv?" + csvQuery.Encode()
	csvQuery.Set("by", bq.By)
	if bq.Sort != "" {
		csvQuery.Set("sort", bq.Sort)
	}
	data.BreakdownCSV = "/api/v1" + path + "/breakdown.csv?" + csvQuery.Encode()
	data.Drill = func(value string) string {
		q := maps.Clone(self)
		q.Set(bq.By, value)
		q.Del("sort")
		if next := drillNext[bq.By]; next != "" {
			q.Set("by", next)
		}
		return path + "?" + q.Encode()
	}
	if data.NoTraffic {
		links, err := d.Accounts.LinksByApp(ctx, app.ID)
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		if len(links) > 0 {
			data.FirstLink = d.trackingURL(links[0].Slug)
		}
	}
	data.Presets = rangePresets(path, dr, self, 7, 14, 30, 90)
	status := http.StatusOK
	if rangeErr != nil {
		status = http.StatusBadRequest
	}
	d.render(w, r, status, "app", data)
}

// drillNext is the breakdown a click on a value switches to, filtered by
// that value: from the widest campaign dimension towards the narrowest,
// then to days.
var drillNext = map[string]string{
	"source": "campaign", "medium": "campaign", "campaign": "adgroup", "adgroup": "creative", "creative": "site",
	"site": "link", "link": "platform", "platform": "method", "method": "source", "event": tapline.ByDay,
}

// filterChip is an active filter and the page without it.
type filterChip struct {
	Label     string // "Source: facebook"
	RemoveURL string
}

func filterChips(path string, self url.Values, filters []tapline.DimFilter) []filterChip {
	var out []filterChip
	for _, f := range filters {
		q := maps.Clone(self)
		q.Del(f.Dim)
		rd := tapline.ReportDimNamed(f.Dim)
		out = append(out, filterChip{Label: rd.Label + ": " + valueLabels(f.Dim)(f.Value), RemoveURL: path + "?" + q.Encode()})
	}
	return out
}

// byOption is a choice of the breakdown selector.
type byOption struct {
	Value, Label string
	Selected     bool
}

func byOptions(by string) []byOption {
	out := []byOption{}
	for _, d := range tapline.ReportDims {
		out = append(out, byOption{d.Name, d.Label, d.Name == by})
	}
	return append(out, byOption{tapline.ByDay, "Day", by == tapline.ByDay}, byOption{tapline.ByHour, "Hour", by == tapline.ByHour})
}

// hiddenField is a query parameter a form carries along.
type hiddenField struct{ Name, Value string }

func hiddenFields(q url.Values, except ...string) []hiddenField {
	var out []hiddenField
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(except, k) {
			out = append(out, hiddenField{k, q.Get(k)})
		}
	}
	return out
}

// sortLinks are the URLs of the breakdown sorted by each measure.
func sortLinks(path string, self url.Values) map[string]string {
	out := make(map[string]string, len(breakdownSorts))
	for _, s := range breakdownSorts {
		q := maps.Clone(self)
		q.Set("sort", s)
		out[s] = path + "?" + q.Encode()
	}
	return out
}

// chart is a server-rendered SVG bar chart of hits and installs per day.
type chart struct {
	Width, Height int
	Left, Bottom  int // plot area edges
	Bars          []bar
	Grid          []gridLine
	Labels        []axisLabel
	Empty         bool
}

type bar struct {
	X, Y, W, H string
	Class      string
	Title      string
}

type gridLine struct {
	Y     string
	Label string
}

type axisLabel struct {
	X     string
	Label string
}

// chartLabelGap is the least distance, in the chart's units, between the
// centres of two day labels: a label such as "Jan 13" is about 32 wide.
const chartLabelGap = 40

// buildChart lays out two bars per day, hits and installs, on a scale
// rounded up to 1, 2 or 5 times a power of ten.
func buildChart(days []tapline.DailyStats) chart {
	const width, height, left, right, top, bottom = 760, 220, 56, 8, 12, 28
	c := chart{Width: width, Height: height, Left: left, Bottom: height - bottom}
	var peak int64
	for _, d := range days {
		peak = max(peak, d.Hits, d.Installs)
	}
	c.Empty = peak == 0
	scale := niceCeil(peak)
	plotW, plotH := float64(width-left-right), float64(height-top-bottom)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for i := 0; i <= 4; i++ {
		v := scale * int64(i) / 4
		c.Grid = append(c.Grid, gridLine{Y: f(float64(top) + plotH*(1-float64(v)/float64(scale))), Label: formatCount(v)})
	}
	if len(days) == 0 {
		return c
	}
	slot := plotW / float64(len(days))
	barW := math.Max(slot*0.38, 0.5)
	every := (len(days) + 9) / 10
	for i, d := range days {
		x := float64(left) + slot*float64(i) + slot*0.1
		for j, v := range []int64{d.Hits, d.Installs} {
			h := plotH * float64(v) / float64(scale)
			class, what := "hits", "hits"
			if j == 1 {
				class, what = "installs", "installs"
			}
			c.Bars = append(c.Bars, bar{
				X: f(x + float64(j)*barW), Y: f(float64(top) + plotH - h), W: f(barW), H: f(h),
				Class: class, Title: fmt.Sprintf("%s: %s %s", d.Day, formatCount(v), what),
			})
		}
		// Every every-th day has a label, and the last day always: the
		// label before it gives way when the two would touch.
		last := i == len(days)-1
		if last && i%every != 0 && slot*float64(i%every) < chartLabelGap {
			c.Labels = c.Labels[:len(c.Labels)-1]
		}
		if i%every == 0 || last {
			label := d.Day
			if t, err := time.Parse(dayLayout, d.Day); err == nil {
				label = t.Format("Jan 2")
			}
			c.Labels = append(c.Labels, axisLabel{X: f(float64(left) + slot*(float64(i)+0.5)), Label: label})
		}
	}
	return c
}

// niceCeil returns the smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4,
// 5, 6 or 8 times a power of ten) that is at least v, and at least 4 so the
// four grid steps are whole.
func niceCeil(v int64) int64 {
	if v <= 4 {
		return 4
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{10, 12, 15, 20, 25, 30, 40, 50, 60, 80} {
			if n := m * p / 10; n >= v && n%4 == 0 {
				return n
			}
		}
	}
}

// formatCount writes n with thousands separators: 1,234,567.
func formatCount(n int64) string { return english.Sprintf("%d", n) }

// english formats numbers the way the pages show them.
var english = message.NewPrinter(language.English)

// formatPercent writes a 0..1 rate as a percentage with one decimal.
func formatPercent(rate float64) string {
	return strconv.FormatFloat(rate*100, 'f', 1, 64) + "%"
}

// formatRevenue writes micros per currency as "12.34 USD", sorted by
// currency, or "–" when there is none.
func formatRevenue(m map[string]int64) string {
	if len(m) == 0 {
		return "–"
	}
	var parts []string
	for _, cur := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, formatMicros(m[cur])+" "+cur)
	}
	return strings.Join(parts, ", ")
}

// formatMicros writes an amount in millionths as a decimal rounded to
// cents, with thousands separators.
func formatMicros(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	cents := (micros + 5000) / 10000
	return fmt.Sprintf("%s%s.%02d", sign, formatCount(cents/100), cents%100)
}

// formatSeconds writes a time in seconds briefly, to a tenth of a second
// under ten seconds and in two units above a minute: "0.4s", "12s",
// "3m 20s", "2h 5m", "1d 3h". Zero is "0.0s": the caller shows "–" where
// there is no time at all.
func formatSeconds(s float64) string {
	switch {
	case s < 0:
		return "–"
	case s < 9.95:
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	case s < 59.5:
		return strconv.FormatFloat(s, 'f', 0, 64) + "s"
	}
	n := int64(math.Round(s))
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return strconv.FormatInt(a, 10) + ua
		}
		return strconv.FormatInt(a, 10) + ua + " " + strconv.FormatInt(b, 10) + ub
	}
	switch {
	case n < 3600:
		return two(n/60, "m", n%60, "s")
	case n < 86400:
		n = (n + 30) / 60 // minutes
		return two(n/60, "h", n%60, "m")
	}
	n = (n + 1800) / 3600 // hours
	return two(n/24, "d", n%24, "h")
}

// formatDuration writes d in the largest whole units: "7d", "24h", "1h30m".
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
