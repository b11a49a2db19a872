package dashboard

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"tapline"
)

// Breakdown sizes: how many values a breakdown lists before it sums the
// rest as "other", by default and at most.
const (
	DefaultBreakdownLimit = 20
	MaxBreakdownLimit     = 500
)

// breakdownSorts are the orders a breakdown takes (?sort=): a measure,
// largest first, or the value.
var breakdownSorts = []string{"hits", "installs", "conversions", "events", "value"}

// breakdownQuery is what a breakdown is asked for beyond the range.
type breakdownQuery struct {
	By      string
	Filters []tapline.DimFilter
	Sort    string // "" for the default
	Limit   int
}

// parseFilters reads the dimension filters of q: a parameter named after a
// ReportDim (?source=facebook, ?link=7, ?campaign= for none), in
// ReportDims order.
func parseFilters(q url.Values) ([]tapline.DimFilter, error) {
	var out []tapline.DimFilter
	for _, d := range tapline.ReportDims {
		vals, ok := q[d.Name]
		if !ok {
			continue
		}
		if len(vals) > 1 {
			return nil, tapline.Errorf(tapline.EINVALID, "%s: give one value, not %d", d.Name, len(vals))
		}
		if len(vals[0]) > tapline.MaxCampaignValue+10 {
			return nil, tapline.Errorf(tapline.EINVALID, "%s: at most %d characters", d.Name, tapline.MaxCampaignValue)
		}
		if !utf8.ValidString(vals[0]) || strings.ContainsFunc(vals[0], unicode.IsControl) {
			return nil, tapline.Errorf(tapline.EINVALID, "%s: not valid text (control characters or bytes that are not UTF-8)", d.Name)
		}
		out = append(out, tapline.DimFilter{Dim: d.Name, Value: vals[0]})
	}
	return out, nil
}

// parseBreakdown reads by (default def), sort, limit and the filters of q.
func parseBreakdown(q url.Values, def string) (breakdownQuery, error) {
	bq := breakdownQuery{By: cmp.Or(q.Get("by"), def), Sort: q.Get("sort"), Limit: DefaultBreakdownLimit}
	if bq.By == "" {
		return bq, tapline.Errorf(tapline.EINVALID, "by: required; want day, hour, %s", tapline.ReportDimNames())
	}
	if !isTime(bq.By) && tapline.ReportDimNamed(bq.By) == nil {
		return bq, tapline.Errorf(tapline.EINVALID, "by: %q is not a breakdown; want day, hour, %s", bq.By, tapline.ReportDimNames())
	}
	if bq.Sort != "" && !slices.Contains(breakdownSorts, bq.Sort) {
		return bq, tapline.Errorf(tapline.EINVALID, "sort: %q; want one of %s", bq.Sort, strings.Join(breakdownSorts, ", "))
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxBreakdownLimit {
			return bq, tapline.Errorf(tapline.EINVALID, "limit: a number from 1 to %d, not %q", MaxBreakdownLimit, s)
		}
		bq.Limit = n
	}
	var err error
	bq.Filters, err = parseFilters(q)
	return bq, err
}

// BreakdownEntry is one value of a breakdown, with what people read.
type BreakdownEntry struct {
	tapline.BreakdownRow
	Label              string  `json:"label"`
	ConversionRate     float64 `json:"conversion_rate"`               // conversions / hits, 0 without hits
	MeanClickToInstall float64 `json:"mean_click_to_install_seconds"` // 0 without conversions
	TrackingURL        string  `json:"tracking_url,omitempty"`        // by link
	// Kind is "" for a value's row, "other" for the values past the
	// limit, "total" for the total.
	Kind string `json:"-"`
}

// BreakdownReport is the answer of GET /api/v1/apps/{id}/breakdown.
type BreakdownReport struct {
	AppID   int64               `json:"app_id"`
	TZ      string              `json:"tz"`
	From    string              `json:"from"`
	To      string              `json:"to"` // inclusive
	By      string              `json:"by"`
	Filters []tapline.DimFilter `json:"filters"`
	Sort    string              `json:"sort"`
	Limit   int                 `json:"limit"`
	// Missing names the measures this breakdown and its filters cannot
	// have (their counts are zero): hits have no match method, only
	// events an event name.
	Missing []string         `json:"missing"`
	Rows    []BreakdownEntry `json:"rows"`
	// Other sums the values past Limit, OtherValues counts them.
	Other       *BreakdownEntry `json:"other,omitempty"`
	OtherValues int             `json:"other_values,omitempty"`
	Total       BreakdownEntry  `json:"total"`
}

// Drillable reports whether the breakdown's values can filter the page: a
// dimension's, not days or hours.
func (b *BreakdownReport) Drillable() bool { return !isTime(b.By) }

// isTime reports whether a breakdown is by day or hour, not a dimension.
func isTime(by string) bool { return by == tapline.ByDay || by == tapline.ByHour }

// Has reports whether the breakdown counts measure.
func (b *BreakdownReport) Has(measure string) bool { return !slices.Contains(b.Missing, measure) }

// breakdownReport asks Reports for the breakdown and makes it readable:
// labels, links without facts (by link, unfiltered by link), the order,
// the top Limit values and the rest summed.
func (d *Dashboard) breakdownReport(ctx context.Context, app *tapline.App, dr dayRange, bq breakdownQuery) (*BreakdownReport, error) {
	f := dr.Filter(app.ID)
	f.Where = bq.Filters
	b, err := d.Reports.Breakdown(ctx, f, bq.By)
	if err != nil {
		return nil, err
	}
	rep := &BreakdownReport{AppID: app.ID, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout),
		By: bq.By, Filters: bq.Filters, Sort: bq.Sort, Limit: bq.Limit, Missing: b.Missing, Rows: []BreakdownEntry{}}
	if rep.Filters == nil {
		rep.Filters = []tapline.DimFilter{}
	}
	if rep.Missing == nil {
		rep.Missing = []string{}
	}
	labels := valueLabels(bq.By)
	var links map[string]*tapline.Link
	if bq.By == "link" {
		ls, err := d.Accounts.LinksByApp(ctx, app.ID)
		if err != nil {
			return nil, fmt.Errorf("links of app %d: %w", app.ID, err)
		}
		links = make(map[string]*tapline.Link, len(ls))
		for _, l := range ls {
			links[strconv.FormatInt(l.ID, 10)] = l
		}
	}
	entry := func(row tapline.BreakdownRow) BreakdownEntry {
		e := BreakdownEntry{BreakdownRow: row, Label: labels(row.Value), ConversionRate: row.ConversionRate(), MeanClickToInstall: row.MeanClickToInstall()}
		if l := links[row.Value]; l != nil {
			e.Label, e.TrackingURL = cmp.Or(l.Name, l.Slug), d.trackingURL(l.Slug)
		}
		return e
	}
	seen := make(map[string]bool, len(b.Rows))
	for _, row := range b.Rows {
		rep.Rows = append(rep.Rows, entry(row))
		rep.Total.Add(&row)
		seen[row.Value] = true
	}
	if bq.By == tapline.ByDay {
		// Every day of the range, as the daily table has them.
		for _, day := range dr.Days() {
			if !seen[day] {
				rep.Rows = append(rep.Rows, entry(tapline.BreakdownRow{Value: day}))
			}
		}
	}
	if links != nil && !slices.ContainsFunc(bq.Filters, func(f tapline.DimFilter) bool { return f.Dim == "link" }) {
		for id := range links {
			if !seen[id] {
				rep.Rows = append(rep.Rows, entry(tapline.BreakdownRow{Value: id}))
			}
		}
	}
	rep.Total = entry(rep.Total.BreakdownRow)
	rep.Total.Label, rep.Total.Kind = "Total", "total"
	sortEntries(rep.Rows, bq, rep)
	if !isTime(bq.By) && len(rep.Rows) > bq.Limit {
		var other tapline.BreakdownRow
		for _, e := range rep.Rows[bq.Limit:] {
			other.Add(&e.BreakdownRow)
		}
		rep.OtherValues = len(rep.Rows) - bq.Limit
		o := entry(other)
		o.Label, o.Kind = fmt.Sprintf("%d other values", rep.OtherValues), "other"
		rep.Other, rep.Rows = &o, rep.Rows[:bq.Limit]
	}
	return rep, nil
}

// sortEntries orders a breakdown: days and hours newest first unless
// sorted by a measure; values by the measure asked for, else by the first
// of hits, installs and events the breakdown counts; largest first, ties
// by value.
func sortEntries(rows []BreakdownEntry, bq breakdownQuery, rep *BreakdownReport) {
	timed := isTime(bq.By)
	measure := bq.Sort
	if measure == "" && !timed {
		measure = "value"
		for _, m := range []string{tapline.MeasureHits, tapline.MeasureInstalls, tapline.MeasureEvents} {
			if rep.Has(m) {
				measure = m
				break
			}
		}
		rep.Sort = measure
	}
	of := func(e *BreakdownEntry) int64 {
		switch measure {
		case "hits":
			return e.Hits
		case "installs":
			return e.Installs
		case "conversions":
			return e.Conversions
		case "events":
			return e.Events
		}
		return 0
	}
	byValue := func(a, b *BreakdownEntry) int {
		if bq.By == "link" {
			x, _ := strconv.ParseInt(a.Value, 10, 64)
			y, _ := strconv.ParseInt(b.Value, 10, 64)
			return cmp.Compare(x, y)
		}
		return strings.Compare(a.Value, b.Value)
	}
	slices.SortStableFunc(rows, func(a, b BreakdownEntry) int {
		switch {
		case timed && (measure == "" || measure == "value"):
			return -strings.Compare(a.Value, b.Value)
		case measure == "value":
			return byValue(&a, &b)
		}
		return cmp.Or(-cmp.Compare(of(&a), of(&b)), byValue(&a, &b))
	})
}

// valueLabels returns how the values of dimension by read.
func valueLabels(by string) func(string) string {
	named := map[string]map[string]string{
		"method": {
			string(tapline.MethodReferrer): "Install referrer", string(tapline.MethodAdID): "Advertising id",
			string(tapline.MethodFingerprint): "Fingerprint", string(tapline.MethodOrganic): "Organic", "": "Unknown (counted before it was kept)",
		},
		"platform": {string(tapline.PlatformIOS): "iOS", string(tapline.PlatformAndroid): "Android", string(tapline.PlatformWeb): "Web", "": "Unknown"},
		"link":     {"0": "No link (organic)"},
		"event":    {"": "(no name)"},
	}
	return func(v string) string {
		if m, ok := named[by]; ok {
			if l, ok := m[v]; ok {
				return l
			}
			if by == "link" {
				return "Link " + v
			}
			return v
		}
		switch v {
		case "":
			if isTime(by) {
				return v
			}
			return "(none)"
		case tapline.CampaignOther:
			return fmt.Sprintf("(other: past %d values)", tapline.CampaignValueCap)
		}
		return v
	}
}

// writeBreakdownCSV writes rep as CSV: a row per value, then the other
// values summed and the total (column row: value, other, total); the
// counts of measures the breakdown cannot have are empty, revenue has a
// column per currency.
func writeBreakdownCSV(w io.Writer, rep *BreakdownReport) error {
	curs := slices.Sorted(maps.Keys(rep.Total.RevenueMicros))
	header := []string{"row", rep.By, "label", "hits", "installs", "organic_installs", "conversions", "conversion_rate",
		"mean_click_to_install_seconds", "events"}
	for _, cur := range curs {
		header = append(header, "revenue_"+cur)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	count := func(measure string, n int64) string {
		if !rep.Has(measure) {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	write := func(kind string, e *BreakdownEntry) error {
		rate, mean := "", ""
		if rep.Has(tapline.MeasureHits) && rep.Has(tapline.MeasureConversions) && e.Hits > 0 {
			rate = strconv.FormatFloat(e.ConversionRate, 'f', 4, 64)
		}
		if e.Conversions > 0 {
			mean = strconv.FormatFloat(e.MeanClickToInstall, 'f', 3, 64)
		}
		rec := []string{kind, csvText(e.Value), csvText(e.Label),
			count(tapline.MeasureHits, e.Hits), count(tapline.MeasureInstalls, e.Installs), count(tapline.MeasureInstalls, e.OrganicInstalls),
			count(tapline.MeasureConversions, e.Conversions), rate, mean, count(tapline.MeasureEvents, e.Events)}
		for _, cur := range curs {
			rec = append(rec, formatDecimalMicros(e.RevenueMicros[cur]))
		}
		return cw.Write(rec)
	}
	for i := range rep.Rows {
		if err := write("value", &rep.Rows[i]); err != nil {
			return err
		}
	}
	if rep.Other != nil {
		if err := write("other", rep.Other); err != nil {
			return err
		}
	}
	if err := write("total", &rep.Total); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// formatDecimalMicros writes millionths as a plain decimal: 12.345 for
// 12,345,000.
func formatDecimalMicros(m int64) string {
	s := strconv.FormatFloat(float64(m)/1e6, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
