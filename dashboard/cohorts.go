package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// CohortDays are the days after the install the cohort table shows.
var CohortDays = []int{1, 3, 7, 14, 30, 60, 90}

// LTVDays are the days after the install the cohort table shows revenue
// per install up to (cumulative).
var LTVDays = []int{0, 7, 30, 90}

// DefaultCohortDays is the range of the cohorts page and API by default.
const DefaultCohortDays = 30

// CohortReport is the answer of GET /api/v1/apps/{id}/cohorts.
type CohortReport struct {
	AppID   int64               `json:"app_id"`
	TZ      string              `json:"tz"`
	From    string              `json:"from"`
	To      string              `json:"to"`
	By      string              `json:"by"`
	Split   string              `json:"split,omitempty"`
	Filters []tapline.DimFilter `json:"filters,omitempty"`
	// AsOf is when the report was made: day N of a cohort is complete
	// once AsOf is N+1 days past the cohort's last day.
	AsOf    time.Time        `json:"as_of"`
	loc     *time.Location   // TZ's location
	Cohorts []tapline.Cohort `json:"cohorts"`
}

// cohortQuery is what a cohort report is asked for beyond the range.
type cohortQuery struct {
	By      string // day or week
	Split   string // a ReportDim name, or ""
	Filters []tapline.DimFilter
}

// cohortSplits are the dimensions cohorts split by: every report dimension
// but the event, which the cohort tables do not keep.
var cohortSplits = func() []string {
	var out []string
	for _, d := range tapline.ReportDims {
		if tapline.FactCohortActivity.Desc().Keeps(d.Dim) {
			out = append(out, d.Name)
		}
	}
	return out
}()

// parseCohortQuery reads by (day or week), split and the filters of q.
func parseCohortQuery(q url.Values) (cohortQuery, error) {
	cq := cohortQuery{By: cmp.Or(q.Get("by"), tapline.ByDay), Split: q.Get("split")}
	if cq.By != tapline.ByDay && cq.By != tapline.ByWeek {
		return cohortQuery{}, tapline.Errorf(tapline.EINVALID, "by: %q is not a cohort grouping; want day or week", cq.By)
	}
	if cq.Split != "" && !slices.Contains(cohortSplits, cq.Split) {
		return cohortQuery{}, tapline.Errorf(tapline.EINVALID, "split: %q is not a dimension cohorts split by; want one of %s", cq.Split, strings.Join(cohortSplits, ", "))
	}
	var err error
	if cq.Filters, err = parseFilters(q); err != nil {
		return cohortQuery{}, err
	}
	for _, f := range cq.Filters {
		if f.Dim == "event" {
			return cohortQuery{}, tapline.Errorf(tapline.EINVALID, "event: cohorts count every event; they cannot be filtered by one")
		}
	}
	return cq, nil
}

func (d *Dashboard) cohortReport(ctx context.Context, appID int64, dr dayRange, cq cohortQuery) (*CohortReport, error) {
	f := dr.Filter(appID)
	f.Where = cq.Filters
	cohorts, err := d.Reports.Cohorts(ctx, f, cq.By, cq.Split)
	if err != nil {
		return nil, err
	}
	return &CohortReport{AppID: appID, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout), By: cq.By,
		Split: cq.Split, Filters: cq.Filters, AsOf: d.now().UTC(), Cohorts: cohorts, loc: dr.Location}, nil
}

// cohortLine is one line of the cohorts table and CSV: one cohort or,
// split by a dimension, every cohort of one value. A day's numbers count
// only the installs for which the day is over (mature), so a line mixing
// young and old cohorts never reads low.
type cohortLine struct {
	Name     string // the cohort, or the split's value
	Installs int64
	// Per index of CohortDays: mature installs and the active ones.
	Mature, Active []int64
	// Per index of LTVDays: mature installs, and per currency their
	// revenue up to the day.
	LTVMature []int64
	Revenue   map[string][]int64
}

// cohortLines returns the lines of rep: each cohort, newest first, or with
// a split each value, most installs first.
func cohortLines(rep *CohortReport) []*cohortLine {
	var lines []*cohortLine
	byName := map[string]*cohortLine{}
	for i := len(rep.Cohorts) - 1; i >= 0; i-- {
		c := rep.Cohorts[i]
		name := c.Cohort
		if rep.Split != "" {
			name = c.Value
		}
		l := byName[name]
		if l == nil {
			l = &cohortLine{Name: name, Mature: make([]int64, len(CohortDays)), Active: make([]int64, len(CohortDays)),
				LTVMature: make([]int64, len(LTVDays)), Revenue: map[string][]int64{}}
			byName[name] = l
			lines = append(lines, l)
		}
		l.Installs += c.Installs
		for i, n := range CohortDays {
			if cohortDayComplete(rep, c, n) {
				l.Mature[i] += c.Installs
				l.Active[i] += c.Active[n]
			}
		}
		for i, n := range LTVDays {
			if !cohortDayComplete(rep, c, n) {
				continue
			}
			l.LTVMature[i] += c.Installs
			for cur, days := range c.Revenue {
				if l.Revenue[cur] == nil {
					l.Revenue[cur] = make([]int64, len(LTVDays))
				}
				for _, m := range days[:n+1] {
					l.Revenue[cur][i] += m
				}
			}
		}
	}
	if rep.Split != "" {
		slices.SortStableFunc(lines, func(a, b *cohortLine) int { return cmp.Compare(b.Installs, a.Installs) })
	}
	return lines
}

// ltv returns the line's revenue per mature install in cur up to the
// i-th of LTVDays, in micros, and whether any install is mature.
func (l *cohortLine) ltv(cur string, i int) (int64, bool) {
	if l.LTVMature[i] <= 0 {
		return 0, false
	}
	var sum int64
	if days := l.Revenue[cur]; days != nil {
		sum = days[i]
	}
	return sum / l.LTVMature[i], true
}

func (d *Dashboard) apiCohortReport(w http.ResponseWriter, r *http.Request) (*CohortReport, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return nil, false
	}
	q := r.URL.Query()
	dr, err := parseRangeDays(q, d.now(), DefaultCohortDays)
	if err == nil {
		var cq cohortQuery
		if cq, err = parseCohortQuery(q); err == nil {
			var rep *CohortReport
			if rep, err = d.cohortReport(r.Context(), app.ID, dr, cq); err == nil {
				return rep, true
			}
		}
	}
	d.writeJSONError(w, r, err)
	return nil, false
}

func (d *Dashboard) apiCohorts(w http.ResponseWriter, r *http.Request) {
	if rep, ok := d.apiCohortReport(w, r); ok {
		d.writeJSON(w, http.StatusOK, rep)
	}
}

// apiCohortsCSV answers GET /api/v1/apps/{id}/cohorts.csv: the cohorts
// table: a row per cohort (newest first) or, split, per value, with its
// installs, mature installs, active installs and retention on each of
// CohortDays, and revenue per mature install up to each of LTVDays per
// currency; a day over for no install of the row is empty.
func (d *Dashboard) apiCohortsCSV(w http.ResponseWriter, r *http.Request) {
	rep, ok := d.apiCohortReport(w, r)
	if !ok {
		return
	}
	cw := csvAttachment(w, fmt.Sprintf("app-%d-cohorts-%s-%s.csv", rep.AppID, rep.From, rep.To))
	currencies := cohortCurrencies(rep.Cohorts)
	header := []string{"cohort", "installs"}
	if rep.Split != "" {
		header[0] = rep.Split
	}
	for _, n := range CohortDays {
		header = append(header, fmt.Sprintf("mature_day_%d", n), fmt.Sprintf("active_day_%d", n), fmt.Sprintf("retention_day_%d", n))
	}
	for _, c := range currencies {
		for _, n := range LTVDays {
			header = append(header, fmt.Sprintf("ltv_day_%d_%s", n, c))
		}
	}
	_ = cw.Write(header)
	for _, l := range cohortLines(rep) {
		row := []string{csvText(l.Name), strconv.FormatInt(l.Installs, 10)}
		for i := range CohortDays {
			if l.Mature[i] == 0 {
				row = append(row, "0", "", "")
				continue
			}
			row = append(row, strconv.FormatInt(l.Mature[i], 10), strconv.FormatInt(l.Active[i], 10),
				strconv.FormatFloat(rate(l.Active[i], l.Mature[i]), 'f', 4, 64))
		}
		for _, cur := range currencies {
			for i := range LTVDays {
				v, ok := l.ltv(cur, i)
				if !ok {
					row = append(row, "")
					continue
				}
				row = append(row, formatDecimalMicros(v))
			}
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}

// cohortCurrencies returns the currencies of the cohorts' revenue, sorted.
func cohortCurrencies(cs []tapline.Cohort) []string {
	set := map[string]bool{}
	for _, c := range cs {
		for cur := range c.Revenue {
			set[cur] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// rate returns n of of, 0 when of is 0.
func rate(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// cohortDayComplete reports whether day n of cohort c has ended for every
// install in it as of the report: its last install was n+1 days ago.
func cohortDayComplete(rep *CohortReport, c tapline.Cohort, n int) bool {
	start, err := time.Parse(dayLayout, c.Cohort)
	if err != nil {
		return false
	}
	span := 1
	if rep.By == tapline.ByWeek {
		span = 7
	}
	// Midnight after the cohort's last day, in the report's zone, then
	// n+1 days: the last install's day n is over.
	end := time.Date(start.Year(), start.Month(), start.Day()+span+n+1, 0, 0, 0, 0, rep.loc)
	return !end.After(rep.AsOf)
}

// cohortRow is one line of the cohorts table as shown.
type cohortRow struct {
	Name      string
	Installs  int64
	Retention []cohortCell // one per CohortDays
	LTV       []cohortCell // one per LTVDays, in the main currency
}

type cohortCell struct {
	Text  string // "" when the day is over for no install of the row
	Title string
	Level int // 0 to 5: how strong, for the cell's shade
}

// splitOption is one choice of the split menu.
type splitOption struct {
	Name, Label, URL string
	Current          bool
}

// cohortsData feeds the cohorts page.
type cohortsData struct {
	App       *tapline.App
	Report    *CohortReport
	Error     string
	Rows      []cohortRow
	Days      []int
	LTVDays   []int
	Currency  string // the one the LTV columns show: the largest
	Others    []string
	Chips     []filterChip
	ByDay     string
	ByWeek    string
	Splits    []splitOption
	SplitName string // the split's label, "" without one
	CSVURL    string
	RangeKeep []hiddenField // what the range form keeps: by, split and the filters
	From, To  string
	TZ        string
}

func (d *Dashboard) cohortsPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	status := http.StatusOK
	data := cohortsData{App: app, Days: CohortDays, LTVDays: LTVDays}
	dr, rerr := pageRange(q, d.now(), DefaultCohortDays)
	if rerr != nil {
		status, data.Error = http.StatusBadRequest, rerr.Message
		q = url.Values{}
	}
	cq, err := parseCohortQuery(q)
	if err != nil {
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		cq = cohortQuery{By: tapline.ByDay}
	}
	rep, err := d.cohortReport(r.Context(), app.ID, dr, cq)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data.Report = rep
	path := "/apps/" + strconv.FormatInt(app.ID, 10) + "/cohorts"
	self := url.Values{"from": {rep.From}, "to": {rep.To}, "tz": {rep.TZ}, "by": {cq.By}}
	if cq.Split != "" {
		self.Set("split", cq.Split)
	}
	for _, f := range cq.Filters {
		self.Set(f.Dim, f.Value)
	}
	data.Chips = filterChips(path, self, cq.Filters)
	data.RangeKeep = hiddenFields(self, "from", "to", "tz")
	data.From, data.To, data.TZ = rep.From, rep.To, rep.TZ
	with := func(k, v string) string {
		u := maps.Clone(self)
		if v == "" {
			u.Del(k)
		} else {
			u.Set(k, v)
		}
		return path + "?" + u.Encode()
	}
	data.ByDay, data.ByWeek = with("by", tapline.ByDay), with("by", tapline.ByWeek)
	data.Splits = append(data.Splits, splitOption{Label: "Install " + cq.By, URL: with("split", ""), Current: cq.Split == ""})
	for _, name := range cohortSplits {
		rd := tapline.ReportDimNamed(name)
		data.Splits = append(data.Splits, splitOption{Name: name, Label: rd.Label, URL: with("split", name), Current: name == cq.Split})
		if name == cq.Split {
			data.SplitName = rd.Label
		}
	}
	data.CSVURL = "/api/v1" + path + ".csv?" + self.Encode()

	currencies := cohortCurrencies(rep.Cohorts)
	totals := map[string]int64{}
	for _, c := range rep.Cohorts {
		for cur, days := range c.Revenue {
			for _, m := range days {
				totals[cur] += m
			}
		}
	}
	slices.SortStableFunc(currencies, func(a, b string) int { return cmp.Compare(totals[b], totals[a]) })
	if len(currencies) > 0 {
		data.Currency, data.Others = currencies[0], currencies[1:]
	}
	label := func(v string) string { return v }
	if cq.Split != "" {
		label = valueLabels(cq.Split)
		if cq.Split == "link" {
			names, err := d.linkNames(r.Context(), app.ID)
			if err != nil {
				d.writeError(w, r, err)
				return
			}
			plain := label
			label = func(v string) string {
				if id, err := strconv.ParseInt(v, 10, 64); err == nil && names[id] != "" {
					return names[id]
				}
				return plain(v)
			}
		}
	}
	for _, l := range cohortLines(rep) {
		row := cohortRow{Name: label(l.Name), Installs: l.Installs}
		for i, n := range CohortDays {
			cell := cohortCell{}
			if l.Mature[i] > 0 {
				p := rate(l.Active[i], l.Mature[i])
				cell = cohortCell{Text: formatPercent(p), Level: min(5, int(p*10+0.999)),
					Title: fmt.Sprintf("%s of %s installs active on day %d", formatCount(l.Active[i]), formatCount(l.Mature[i]), n)}
			}
			row.Retention = append(row.Retention, cell)
		}
		for i, n := range LTVDays {
			cell := cohortCell{}
			if v, ok := l.ltv(data.Currency, i); ok && data.Currency != "" {
				cell.Text = formatMicros(v) + " " + data.Currency
				cell.Title = fmt.Sprintf("revenue per install up to day %d, over %s installs", n, formatCount(l.LTVMature[i]))
			}
			row.LTV = append(row.LTV, cell)
		}
		data.Rows = append(data.Rows, row)
	}
	d.render(w, r, status, "cohorts", data)
}
