package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// breakdownMeasures are a breakdown's measures: the table each comes from,
// what its rows' key column says, and a condition of its own.
var breakdownMeasures = []struct {
	measure string
	table   tapline.FactTable
	key     string // the query's third column
	where   string // ANDed to the filter
}{
	{tapline.MeasureHits, tapline.FactHits, "''", ""},
	{tapline.MeasureInstalls, tapline.FactInstalls, "CASE WHEN link_id = 0 THEN 'organic' ELSE '' END", ""},
	{tapline.MeasureConversions, tapline.FactConversions, "''", "method <> 'organic'"},
	{tapline.MeasureEvents, tapline.FactEvents, "''", ""},
	{tapline.MeasureRevenue, tapline.FactRevenue, "currency", ""},
}

// Breakdown groups the filter's facts by a ReportDim, day or hour: one
// query over the tables whose rows keep the grouping and every filtered
// dimension; the other measures are reported Missing. Whole UTC days of
// the range come from the daily rollup, whole weeks from the weekly one,
// when they can answer (see splitRange and rollupDim), the rest from the
// hourly rows.
func (r *Reports) Breakdown(ctx context.Context, f tapline.StatsFilter, by string) (*tapline.Breakdown, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	if err := r.checkZone(ctx, s); err != nil {
		return nil, err
	}
	args := []any{s.appID}
	arg := func(v any, typ string) string {
		args = append(args, v)
		return fmt.Sprintf("$%d::%s", len(args), typ)
	}
	var group, timeFormat string
	var groupDim *tapline.ReportDim
	switch by {
	case tapline.ByDay:
		timeFormat = "YYYY-MM-DD"
	case tapline.ByHour:
		timeFormat = "YYYY-MM-DD HH24:00"
	default:
		groupDim = tapline.ReportDimNamed(by)
		if groupDim == nil {
			return nil, tapline.Errorf(tapline.EINVALID, "by: %q is not a breakdown; want day, hour or one of %s", by, tapline.ReportDimNames())
		}
		group = groupDim.Dim.Column + "::text"
	}
	conds, err := parseConds(s, f.Where)
	if err != nil {
		return nil, err
	}
	out := &tapline.Breakdown{By: by, Rows: []tapline.BreakdownRow{}}
	var kept []string // the measures not Missing
	for _, m := range breakdownMeasures {
		d := m.table.Desc()
		ok := groupDim == nil || d.Keeps(groupDim.Dim)
		for _, c := range conds {
			ok = ok && d.Keeps(c.dim.Dim)
		}
		if ok {
			kept = append(kept, m.measure)
		} else {
			out.Missing = append(out.Missing, m.measure)
		}
	}
	if len(kept) == 0 {
		return out, nil
	}

	var weeks, days []timeRange
	hours := []timeRange{{s.from, s.to}}
	dim, rolled := rollupDim(groupDim, conds)
	if rolled && by != tapline.ByHour && !r.hourlyOnly {
		weeks, days, hours = splitRange(s, by == tapline.ByDay)
	}
	var parts []string
	for _, p := range []struct {
		table  tapline.FactTable
		ranges []timeRange
	}{{tapline.FactWeekly, weeks}, {tapline.FactDaily, days}} {
		if len(p.ranges) == 0 {
			continue
		}
		// Whole UTC weeks or days from a rollup: one range of its index
		// per period, which = ANY walks (where ranges ORed would have the
		// planner scan the table).
		desc := p.table.Desc()
		col := desc.TimeColumn()
		var starts []time.Time
		for _, r := range p.ranges {
			for t := r.from; t.Before(r.to); t = t.Add(time.Duration(desc.Period.Seconds()) * time.Second) {
				starts = append(starts, t)
			}
		}
		label := "value"
		if by == tapline.ByDay {
			label = "to_char(" + col + ", 'YYYY-MM-DD')" // the local day: see splitRange
		}
		// (Only the tables that keep dim have its rows: the measures
		// reported Missing have none here.)
		clauses := []string{"app_id = $1", "dim = " + arg(dim, "text"), col + " = ANY(" + arg(starts, "date[]") + ")",
			"NOT (measure = 'conversions' AND method = 'organic')"}
		for _, c := range conds {
			clauses = append(clauses, "value = "+arg(c.value, "text"))
		}
		parts = append(parts, fmt.Sprintf(`SELECT measure, %s, %s, sum(count)::bigint, sum(sum)::bigint FROM %s WHERE %s GROUP BY 1, 2, 3`,
			label, rollupKey, factTableName(p.table), strings.Join(clauses, " AND ")))
	}
	if len(hours) > 0 {
		inRange := rangesSQL("hour", hours, "timestamptz", arg)
		var zone string
		if timeFormat != "" {
			zone = arg(s.loc.String(), "text")
		}
		var condSQL []string
		for _, c := range conds {
			condSQL = append(condSQL, fmt.Sprintf("%s = %s", c.dim.Dim.Column, arg(c.arg, string(c.dim.Dim.Type))))
		}
		if timeFormat != "" && len(conds) == 0 {
			// Days or hours of everything: the hourly totals hold it in a
			// few rows an hour, where the tables hold one per link,
			// platform and campaign.
			parts = append(parts, fmt.Sprintf(`SELECT measure, to_char(h AT TIME ZONE %s, '%s'), k, sum(c)::bigint, sum(s)::bigint FROM (
				SELECT measure, hour AS h, %s AS k, sum(count) AS c, sum(sum) AS s
				FROM %s WHERE app_id = $1 AND %s AND NOT (measure = 'conversions' AND method = 'organic')
				GROUP BY 1, 2, 3) hours GROUP BY 1, 2, 3`, zone, timeFormat, rollupKey, factTableName(tapline.FactTotals), inRange))
		} else {
			for _, m := range breakdownMeasures {
				if !slices.Contains(kept, m.measure) {
					continue
				}
				clauses := append([]string{"app_id = $1", inRange}, condSQL...)
				if m.where != "" {
					clauses = append(clauses, m.where)
				}
				if timeFormat != "" {
					// Sum each hour first, then name its day or hour in the
					// zone: the conversion runs once an hour, not once a row.
					parts = append(parts, fmt.Sprintf(`SELECT '%s', to_char(h AT TIME ZONE %s, '%s'), k, sum(c)::bigint, sum(s)::bigint
						FROM (SELECT hour AS h, %s AS k, sum(count) AS c, sum(sum) AS s FROM %s WHERE %s GROUP BY 1, 2) hours GROUP BY 2, 3`,
						m.measure, zone, timeFormat, m.key, factTableName(m.table), strings.Join(clauses, " AND ")))
					continue
				}
				parts = append(parts, fmt.Sprintf(`SELECT '%s', %s, %s, sum(count)::bigint, sum(sum)::bigint FROM %s WHERE %s GROUP BY 2, 3`,
					m.measure, group, m.key, factTableName(m.table), strings.Join(clauses, " AND ")))
			}
		}
	}
	if len(parts) == 0 {
		return out, nil
	}
	rows, err := r.db.pool.Query(ctx, strings.Join(parts, "\nUNION ALL\n"), args...)
	if err != nil {
		return nil, reportError("breakdown", err)
	}
	defer rows.Close()
	byValue := make(map[string]*tapline.BreakdownRow)
	for rows.Next() {
		var measure, value, key string
		var count, sum int64
		if err := rows.Scan(&measure, &value, &key, &count, &sum); err != nil {
			return nil, reportError("breakdown", err)
		}
		row := byValue[value]
		if row == nil {
			row = &tapline.BreakdownRow{Value: value}
			byValue[value] = row
		}
		switch measure {
		case tapline.MeasureHits:
			row.Hits += count
		case tapline.MeasureInstalls:
			row.Installs += count
			if key == "organic" {
				row.OrganicInstalls += count
			}
		case tapline.MeasureConversions:
			row.Conversions += count
			row.ClickToInstallMillis += sum
		case tapline.MeasureEvents:
			row.Events += count
		case tapline.MeasureRevenue:
			row.Add(&tapline.BreakdownRow{RevenueMicros: map[string]int64{key: sum}})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("breakdown", err)
	}
	for _, row := range byValue {
		// A currency whose purchases cancelled out is not shown: the
		// daily rollup keeps no row for it where the hours may.
		maps.DeleteFunc(row.RevenueMicros, func(_ string, m int64) bool { return m == 0 })
		if len(row.RevenueMicros) == 0 {
			row.RevenueMicros = nil
		}
		if !zeroRow(row) {
			out.Rows = append(out.Rows, *row)
		}
	}
	numeric := groupDim != nil && groupDim.Dim.Type != tapline.FactText
	slices.SortFunc(out.Rows, func(a, b tapline.BreakdownRow) int {
		if numeric {
			x, _ := strconv.ParseInt(a.Value, 10, 64)
			y, _ := strconv.ParseInt(b.Value, 10, 64)
			return cmp.Compare(x, y)
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out, nil
}

// rollupKey is the third column of a breakdown query over the totals or
// the daily rollup, whose rows keep an install's method as organic (no
// link) or attributed, and revenue's currency.
const rollupKey = `CASE WHEN measure = 'installs' AND method = 'organic' THEN 'organic' WHEN measure = 'revenue' THEN currency ELSE '' END`

// cond is a report's filter on a dimension.
type cond struct {
	dim   *tapline.ReportDim
	value string // as the daily rollup has it
	arg   any    // as the hourly tables have it: text, or an int64
}

// tableClauses appends to args and clauses the conditions conds set on
// the columns of table t; a filter on a dimension t does not keep is
// EINVALID, told as what cannot be filtered by it.
// spanClauses returns the arguments and WHERE clauses of a fact table's
// rows of s ($1 app, $2 and $3 the hours), extra arguments after them,
// with conds applied to table t (tableClauses).
func spanClauses(s *span, t tapline.FactTable, conds []cond, what string, extra ...any) ([]any, []string, error) {
	args := append([]any{s.appID, s.from, s.to}, extra...)
	return tableClauses(t, conds, args, []string{"app_id = $1", "hour >= $2", "hour < $3"}, what)
}

func tableClauses(t tapline.FactTable, conds []cond, args []any, clauses []string, what string) ([]any, []string, error) {
	for _, c := range conds {
		if !t.Desc().Keeps(c.dim.Dim) {
			return nil, nil, tapline.Errorf(tapline.EINVALID, "filter: %s cannot be filtered by %s", what, c.dim.Name)
		}
		args = append(args, c.arg)
		clauses = append(clauses, fmt.Sprintf("%s = $%d::%s", c.dim.Dim.Column, len(args), c.dim.Dim.Type))
	}
	return args, clauses, nil
}

// parseConds returns the filters of a report: the span's link and where.
func parseConds(s *span, where []tapline.DimFilter) ([]cond, error) {
	if s.linkID != 0 {
		where = append([]tapline.DimFilter{{Dim: "link", Value: strconv.FormatInt(s.linkID, 10)}}, where...)
	}
	var conds []cond
	for _, w := range where {
		rd := tapline.ReportDimNamed(w.Dim)
		if rd == nil {
			return nil, tapline.Errorf(tapline.EINVALID, "filter: %q is not a dimension; want one of %s", w.Dim, tapline.ReportDimNames())
		}
		c := cond{dim: rd, value: w.Value, arg: w.Value}
		if rd.Dim.Type != tapline.FactText {
			n, err := strconv.ParseInt(w.Value, 10, 64)
			if err != nil || n < 0 {
				return nil, tapline.Errorf(tapline.EINVALID, "filter %s: %q is not an id", w.Dim, w.Value)
			}
			c.value, c.arg = strconv.FormatInt(n, 10), n // the rollup spells it in decimal
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// rollupDim returns the dimension whose rollup rows answer a breakdown
// grouped by groupDim (nil: by time) with conds, and whether there is one:
// the rollups sum one dimension at a time, so every filter must be on the
// grouping's dimension, or, by time, all on one dimension ("" without
// filters: the period's totals).
func rollupDim(groupDim *tapline.ReportDim, conds []cond) (string, bool) {
	dim := ""
	if groupDim != nil {
		dim = groupDim.Name
	}
	for _, c := range conds {
		if dim == "" && groupDim == nil {
			dim = c.dim.Name
		}
		if c.dim.Name != dim {
			return "", false
		}
	}
	return dim, true
}

// timeRange is the instants from from up to and excluding to.
type timeRange struct{ from, to time.Time }

// splitRange divides the span between the weekly rollup (whole UTC weeks
// from Monday), the daily rollup (whole UTC days) and the hourly rows, by
// this rule: a rollup row stands for its hours only where all of them fall
// in one bucket of the breakdown.
//
//   - By a dimension (byDay false) the bucket is the whole range, so every
//     UTC week, then every other UTC day, wholly inside it comes from the
//     rollups, in any zone; the hours at its edges (a local midnight in New
//     York or Kolkata is no UTC midnight) come from the hourly rows.
//   - By local day (byDay), no week fits in one, and a UTC day comes from
//     the daily rollup only when each of its 24 hours begins on the same
//     date in the zone as in UTC: every day in UTC (and in a zone while its
//     offset is zero, London in winter, or on a 25-hour day around a DST
//     change). In New York or Kolkata a UTC day straddles two local days,
//     so all their hours come from the hourly rows (or the hourly totals).
//   - By hour nothing can come from the rollups; the caller asks for none.
//
// Each list is in time order, adjacent ranges merged; the periods are
// given as their first instants.
func splitRange(s *span, byDay bool) (weeks, days, hours []timeRange) {
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	from, to := s.from.UTC(), s.to.UTC()
	next := from // the first instant not yet given to any
	add := func(rs []timeRange, a, b time.Time) []timeRange {
		if n := len(rs); n > 0 && rs[n-1].to.Equal(a) {
			rs[n-1].to = b
			return rs
		}
		return append(rs, timeRange{a, b})
	}
	take := func(rs []timeRange, a, b time.Time) []timeRange {
		if next.Before(a) {
			hours = add(hours, next, a)
		}
		next = b
		return add(rs, a, b)
	}
	d := from.Truncate(day) // a UTC midnight: days since year 1 UTC
	if d.Before(from) {
		d = d.Add(day)
	}
	for !d.Add(day).After(to) {
		switch {
		case !byDay && d.Weekday() == time.Monday && !d.Add(week).After(to):
			weeks = take(weeks, d, d.Add(week))
			d = d.Add(week)
			continue
		case !byDay || sameDate(d, s.loc):
			days = take(days, d, d.Add(day))
		}
		d = d.Add(day)
	}
	if next.Before(to) {
		hours = add(hours, next, to)
	}
	return weeks, days, hours
}

// sameDate reports whether each hour of the UTC day from midnight d begins
// on d's date in loc.
func sameDate(d time.Time, loc *time.Location) bool {
	y, m, day := d.Date()
	for h := range 24 {
		if y2, m2, d2 := d.Add(time.Duration(h) * time.Hour).In(loc).Date(); y2 != y || m2 != m || d2 != day {
			return false
		}
	}
	return true
}

// rangesSQL returns the condition that column col, of SQL type typ, is in
// one of rs, its bounds added as arguments with arg. (PostgreSQL reads
// ORed ranges of hours as a bitmap of index ranges.)
func rangesSQL(col string, rs []timeRange, typ string, arg func(any, string) string) string {
	or := make([]string, len(rs))
	for i, r := range rs {
		or[i] = fmt.Sprintf("%s >= %s AND %s < %s", col, arg(r.from, typ), col, arg(r.to, typ))
	}
	if len(or) == 1 {
		return or[0]
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// zeroRow reports whether every count of r is zero: rows whose deltas
// cancelled out (a re-attributed install) are not shown.
func zeroRow(r *tapline.BreakdownRow) bool {
	for _, m := range r.RevenueMicros {
		if m != 0 {
			return false
		}
	}
	return r.Hits == 0 && r.Installs == 0 && r.OrganicInstalls == 0 && r.Conversions == 0 && r.ClickToInstallMillis == 0 && r.Events == 0
}

// checkZone checks the filter's time zone in PostgreSQL up front: a query
// only evaluates it on rows.
func (r *Reports) checkZone(ctx context.Context, s *span) error {
	tz := s.loc.String()
	if tz == "UTC" {
		return nil
	}
	var local time.Time
	if err := r.db.pool.QueryRow(ctx, `SELECT $1::timestamptz AT TIME ZONE $2`, s.from, tz).Scan(&local); err != nil {
		return reportError("time zone", err)
	}
	return nil
}
