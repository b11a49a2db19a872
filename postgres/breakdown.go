package postgres

import (
	"cmp"
	"context"
	"fmt"
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
// dimension; the other measures are reported Missing.
func (r *Reports) Breakdown(ctx context.Context, f tapline.StatsFilter, by string) (*tapline.Breakdown, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	if err := r.checkZone(ctx, s); err != nil {
		return nil, err
	}
	args := []any{s.appID, s.from, s.to}
	var group, timeFormat string
	var groupDim *tapline.FactDim
	switch by {
	case tapline.ByDay:
		args = append(args, s.loc.String())
		timeFormat = "YYYY-MM-DD"
	case tapline.ByHour:
		args = append(args, s.loc.String())
		timeFormat = "YYYY-MM-DD HH24:00"
	default:
		rd := tapline.ReportDimNamed(by)
		if rd == nil {
			return nil, tapline.Errorf(tapline.EINVALID, "by: %q is not a breakdown; want day, hour or one of %s", by, tapline.ReportDimNames())
		}
		groupDim = rd.Dim
		group = rd.Dim.Column + "::text"
	}
	conds, args, err := filterConds(s, f.Where, args)
	if err != nil {
		return nil, err
	}
	out := &tapline.Breakdown{By: by, Rows: []tapline.BreakdownRow{}}
	var parts []string
	fromTotals := timeFormat != "" && len(conds) == 0
	if fromTotals {
		// Days or hours of everything: the hourly totals hold it in a
		// few rows an hour, where the tables hold one per link, platform
		// and campaign.
		parts = append(parts, fmt.Sprintf(`SELECT measure, to_char(h AT TIME ZONE $4, '%s'), k, sum(c)::bigint, sum(s)::bigint FROM (
			SELECT measure, hour AS h,
				CASE WHEN measure = 'installs' AND method = 'organic' THEN 'organic' WHEN measure = 'revenue' THEN currency ELSE '' END AS k,
				sum(count) AS c, sum(sum) AS s
			FROM %s WHERE app_id = $1 AND hour >= $2 AND hour < $3 AND NOT (measure = 'conversions' AND method = 'organic')
			GROUP BY 1, 2, 3) hours GROUP BY 1, 2, 3`, timeFormat, factTableName(tapline.FactTotals)))
	}
	for _, m := range breakdownMeasures {
		if fromTotals {
			break // the totals hold every measure
		}
		d := m.table.Desc()
		kept := groupDim == nil || d.Keeps(groupDim)
		clauses := []string{"app_id = $1", "hour >= $2", "hour < $3"}
		for _, c := range conds {
			kept = kept && d.Keeps(c.dim)
			clauses = append(clauses, c.sql)
		}
		if !kept {
			out.Missing = append(out.Missing, m.measure)
			continue
		}
		if m.where != "" {
			clauses = append(clauses, m.where)
		}
		if timeFormat != "" {
			// Sum each hour first, then name its day or hour in the zone:
			// the conversion runs once an hour, not once a row.
			parts = append(parts, fmt.Sprintf(`SELECT '%s', to_char(h AT TIME ZONE $4, '%s'), k, sum(c)::bigint, sum(s)::bigint
				FROM (SELECT hour AS h, %s AS k, sum(count) AS c, sum(sum) AS s FROM %s WHERE %s GROUP BY 1, 2) hours GROUP BY 2, 3`,
				m.measure, timeFormat, m.key, factTableName(m.table), strings.Join(clauses, " AND ")))
			continue
		}
		parts = append(parts, fmt.Sprintf(`SELECT '%s', %s, %s, sum(count)::bigint, sum(sum)::bigint FROM %s WHERE %s GROUP BY 2, 3`,
			m.measure, group, m.key, factTableName(m.table), strings.Join(clauses, " AND ")))
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
		if !zeroRow(row) {
			out.Rows = append(out.Rows, *row)
		}
	}
	numeric := groupDim != nil && groupDim.Type != tapline.FactText
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

// cond is one filter of a report: a dimension's column equal to a
// parameter.
type cond struct {
	dim *tapline.FactDim
	sql string
}

// filterConds returns the conditions of the span's link and the filters
// where, appending their values to args.
func filterConds(s *span, where []tapline.DimFilter, args []any) ([]cond, []any, error) {
	var conds []cond
	if s.linkID != 0 {
		where = append([]tapline.DimFilter{{Dim: "link", Value: strconv.FormatInt(s.linkID, 10)}}, where...)
	}
	for _, w := range where {
		rd := tapline.ReportDimNamed(w.Dim)
		if rd == nil {
			return nil, nil, tapline.Errorf(tapline.EINVALID, "filter: %q is not a dimension; want one of %s", w.Dim, tapline.ReportDimNames())
		}
		if rd.Dim.Type == tapline.FactText {
			args = append(args, w.Value)
		} else {
			n, err := strconv.ParseInt(w.Value, 10, 64)
			if err != nil || n < 0 {
				return nil, nil, tapline.Errorf(tapline.EINVALID, "filter %s: %q is not an id", w.Dim, w.Value)
			}
			args = append(args, n)
		}
		conds = append(conds, cond{rd.Dim, fmt.Sprintf("%s = $%d::%s", rd.Dim.Column, len(args), rd.Dim.Type)})
	}
	return conds, args, nil
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
