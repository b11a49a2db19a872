package dashboard

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	Filters []tapline.DimFilter `json:"filters,omitempty"`
	// AsOf is when the report was made: day N of a cohort is complete
	// once AsOf is N+1 days past the cohort's last day.
	AsOf    time.Time        `json:"as_of"`
	Cohorts []tapline.Cohort `json:"cohorts"`
}

// cohortQuery reads by (day or week) and the filters of q.
func cohortQuery(q url.Values) (string, []tapline.DimFilter, error) {
	by := cmp.Or(q.Get("by"), tapline.ByDay)
	if by != tapline.ByDay && by != tapline.ByWeek {
		return "", nil, tapline.Errorf(tapline.EINVALID, "by: %q is not a cohort grouping; want day or week", by)
	}
	filters, err := parseFilters(q)
	if err != nil {
		return "", nil, err
	}
	for _, f := range filters {
		if f.Dim == "event" {
			return "", nil, tapline.Errorf(tapline.EINVALID, "event: cohorts count every event; they cannot be filtered by one")
		}
	}
	return by, filters, nil
}

func (d *Dashboard) cohortReport(ctx context.Context, appID int64, dr dayRange, by string, filters []tapline.DimFilter) (*CohortReport, error) {
	f := dr.Filter(appID)
	f.Where = filters
	cohorts, err := d.Reports.Cohorts(ctx, f, by)
	if err != nil {
		return nil, err
	}
	return &CohortReport{AppID: appID, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout), By: by,
		Filters: filters, AsOf: d.now().UTC(), Cohorts: cohorts}, nil
}

func (d *Dashboard) apiCohortReport(w http.ResponseWriter, r *http.Request) (*CohortReport, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return nil, false
	}
	q := r.URL.Query()
	dr, err := parseRangeDays(q, d.now(), DefaultCohortDays)
	if err == nil {
		var by string
		var filters []tapline.DimFilter
		if by, filters, err = cohortQuery(q); err == nil {
			var rep *CohortReport
			if rep, err = d.cohortReport(r.Context(), app.ID, dr, by, filters); err == nil {
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

// apiCohortsCSV answers GET /api/v1/apps/{id}/cohorts.csv: one row per
// cohort with its installs, active installs and retention on each of
// CohortDays, and revenue per install up to each of LTVDays per currency;
// a day not yet over for the whole cohort is empty.
func (d *Dashboard) apiCohortsCSV(w http.ResponseWriter, r *http.Request) {
	rep, ok := d.apiCohortReport(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="app-%d-cohorts-%s-%s.csv"`, rep.AppID, rep.From, rep.To))
	cw := csv.NewWriter(w)
	currencies := cohortCurrencies(rep.Cohorts)
	header := []string{"cohort", "installs"}
	for _, n := range CohortDays {
		header = append(header, fmt.Sprintf("active_day_%d", n), fmt.Sprintf("retention_day_%d", n))
	}
	for _, c := range currencies {
		for _, n := range LTVDays {
			header = append(header, fmt.Sprintf("ltv_day_%d_%s", n, c))
		}
	}
	_ = cw.Write(header)
	for _, c := range rep.Cohorts {
		row := []string{c.Cohort, strconv.FormatInt(c.Installs, 10)}
		for _, n := range CohortDays {
			if !cohortDayComplete(rep, c, n) {
				row = append(row, "", "")
				continue
			}
			row = append(row, strconv.FormatInt(c.Active[n], 10), strconv.FormatFloat(rate(c.Active[n], c.Installs), 'f', 4, 64))
		}
		for _, cur := range currencies {
			for _, n := range LTVDays {
				if !cohortDayComplete(rep, c, n) {
					row = append(row, "")
					continue
				}
				row = append(row, formatDecimalMicros(ltv(c, cur, n)))
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

// ltv returns the cohort's revenue per install in cur up to day n after
// the install, in micros.
func ltv(c tapline.Cohort, cur string, n int) int64 {
	days := c.Revenue[cur]
	if c.Installs <= 0 || len(days) <= n {
		return 0
	}
	var sum int64
	for _, m := range days[:n+1] {
		sum += m
	}
	return sum / c.Installs
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
	loc, err := time.LoadLocation(rep.TZ)
	if err != nil {
		loc = time.UTC
	}
	end := time.Date(start.Year(), start.Month(), start.Day()+span+n+1, 0, 0, 0, 0, loc)
	return !end.After(rep.AsOf)
}

// cohortRow is one line of the cohorts table.
type cohortRow struct {
	Cohort    string
	Installs  int64
	Retention []cohortCell // one per CohortDays
	LTV       []cohortCell // one per LTVDays, in the main currency
}

type cohortCell struct {
	Text  string // "" when the day is not over yet
	Title string
	Level int // 0 to 5: how strong, for the cell's shade
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
	CSVURL    string
	APIURL    string
	Query     url.Values
	RangeKeep []hiddenField // what the range form keeps: by and the filters
	From, To  string
	TZ        string
	HasCohort bool
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
	by, filters, err := cohortQuery(q)
	if err != nil {
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		by, filters = tapline.ByDay, nil
	}
	rep, err := d.cohortReport(r.Context(), app.ID, dr, by, filters)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data.Report = rep
	path := "/apps/" + strconv.FormatInt(app.ID, 10) + "/cohorts"
	self := url.Values{"from": {rep.From}, "to": {rep.To}, "tz": {rep.TZ}, "by": {by}}
	for _, f := range filters {
		self.Set(f.Dim, f.Value)
	}
	data.Query = self
	data.Chips = filterChips(path, self, filters)
	data.RangeKeep = hiddenFields(self, "from", "to", "tz")
	data.From, data.To, data.TZ = rep.From, rep.To, rep.TZ
	withBy := func(b string) string {
		v := maps.Clone(self)
		v.Set("by", b)
		return path + "?" + v.Encode()
	}
	data.ByDay, data.ByWeek = withBy(tapline.ByDay), withBy(tapline.ByWeek)
	data.CSVURL = "/api/v1" + path + ".csv?" + self.Encode()
	data.APIURL = "/api/v1" + path + "?" + self.Encode()

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
	for i := len(rep.Cohorts) - 1; i >= 0; i-- { // newest first
		c := rep.Cohorts[i]
		row := cohortRow{Cohort: c.Cohort, Installs: c.Installs}
		for _, n := range CohortDays {
			cell := cohortCell{}
			if cohortDayComplete(rep, c, n) && c.Installs > 0 {
				p := rate(c.Active[n], c.Installs)
				cell = cohortCell{Text: formatPercent(p), Title: fmt.Sprintf("%s of %s installs active on day %d", formatCount(c.Active[n]), formatCount(c.Installs), n),
					Level: min(5, int(p*10+0.999))}
			}
			row.Retention = append(row.Retention, cell)
		}
		for _, n := range LTVDays {
			cell := cohortCell{}
			if data.Currency != "" && cohortDayComplete(rep, c, n) && c.Installs > 0 {
				cell.Text = formatMicros(ltv(c, data.Currency, n)) + " " + data.Currency
				cell.Title = fmt.Sprintf("revenue per install up to day %d", n)
			}
			row.LTV = append(row.LTV, cell)
		}
		data.Rows = append(data.Rows, row)
		data.HasCohort = true
	}
	d.render(w, r, status, "cohorts", data)
}
