package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"tapline"
)

// Cohorts groups the filter's installs by the day or week of their install
// in the filter's zone: each hour of installs is summed first, then named
// by its day or week in the zone. A cohort without installs is left out.
func (r *Reports) Cohorts(ctx context.Context, f tapline.StatsFilter, by, split string) ([]tapline.Cohort, error) {
	unit := map[string]string{tapline.ByDay: "day", tapline.ByWeek: "week"}[by]
	if unit == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "by: %q is not a cohort grouping; want day or week", by)
	}
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	if err := r.checkZone(ctx, s); err != nil {
		return nil, err
	}
	conds, err := parseConds(s, f.Where)
	if err != nil {
		return nil, err
	}
	args, clauses, err := spanClauses(s, tapline.FactCohortActivity, conds, "cohorts", s.loc.String(), unit)
	if err != nil {
		return nil, err
	}
	value := "''"
	if split != "" {
		rd := tapline.ReportDimNamed(split)
		if rd == nil || !tapline.FactCohortActivity.Desc().Keeps(rd.Dim) {
			return nil, tapline.Errorf(tapline.EINVALID, "split: %q is not a dimension cohorts keep", split)
		}
		value = rd.Dim.Column + "::text"
	}
	where := strings.Join(clauses, " AND ")
	query := fmt.Sprintf(`
		SELECT to_char(date_trunc($5, h AT TIME ZONE $4), 'YYYY-MM-DD'), v, day_n, '', sum(c)::bigint, 0::bigint FROM (
			SELECT hour AS h, %[1]s AS v, day_n, sum(count) AS c FROM %[2]s WHERE %[3]s GROUP BY 1, 2, 3) a GROUP BY 1, 2, 3
		UNION ALL
		SELECT to_char(date_trunc($5, h AT TIME ZONE $4), 'YYYY-MM-DD'), v, day_n, currency, sum(c)::bigint, sum(s)::bigint FROM (
			SELECT hour AS h, %[1]s AS v, day_n, currency, sum(count) AS c, sum(sum) AS s FROM %[4]s WHERE %[3]s GROUP BY 1, 2, 3, 4) r GROUP BY 1, 2, 3, 4`,
		value, factTableName(tapline.FactCohortActivity), where, factTableName(tapline.FactCohortRevenue))
	rows, err := r.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, reportError("cohorts", err)
	}
	defer rows.Close()
	type key struct{ cohort, value string }
	byCohort := map[key]*tapline.Cohort{}
	for rows.Next() {
		var name, value, currency string
		var day int
		var count, sum int64
		if err := rows.Scan(&name, &value, &day, &currency, &count, &sum); err != nil {
			return nil, reportError("cohorts", err)
		}
		if day < 0 || day > tapline.MaxCohortDay {
			continue
		}
		c := byCohort[key{name, value}]
		if c == nil {
			c = &tapline.Cohort{Cohort: name, Value: value, Active: make([]int64, tapline.MaxCohortDay+1), Purchases: make([]int64, tapline.MaxCohortDay+1)}
			byCohort[key{name, value}] = c
		}
		if currency == "" { // activity
			c.Active[day] += count
			continue
		}
		if c.Revenue == nil {
			c.Revenue = map[string][]int64{}
		}
		if c.Revenue[currency] == nil {
			c.Revenue[currency] = make([]int64, tapline.MaxCohortDay+1)
		}
		c.Revenue[currency][day] += sum
		c.Purchases[day] += count
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("cohorts", err)
	}
	out := make([]tapline.Cohort, 0, len(byCohort))
	for _, c := range byCohort {
		c.Installs = c.Active[0]
		if c.Installs <= 0 {
			// No install to follow: a re-attributed install moved out of
			// the filter, or installs matched before the cohort tables
			// existed (their later days count, their size does not).
			continue
		}
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b tapline.Cohort) int {
		return cmp.Or(strings.Compare(a.Cohort, b.Cohort), strings.Compare(a.Value, b.Value))
	})
	return out, nil
}
