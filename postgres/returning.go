package postgres

import (
	"context"
	"strings"

	"tapline"
)

// Returning sums the filter's re-engagements and reinstalls.
func (r *Reports) Returning(ctx context.Context, f tapline.StatsFilter) (tapline.Returning, error) {
	var out tapline.Returning
	s, err := checkFilter(f)
	if err != nil {
		return out, err
	}
	conds, err := parseConds(s, f.Where)
	if err != nil {
		return out, err
	}
	for _, t := range []struct {
		table tapline.FactTable
		what  string
		n     *int64
	}{
		{tapline.FactReengagements, "re-engagements", &out.Reengagements},
		{tapline.FactReinstalls, "reinstalls", &out.Reinstalls},
	} {
		args, clauses, err := spanClauses(s, t.table, conds, t.what)
		if err != nil {
			return tapline.Returning{}, err
		}
		err = r.db.pool.QueryRow(ctx, `SELECT coalesce(sum(count), 0)::bigint FROM `+factTableName(t.table)+`
			WHERE `+strings.Join(clauses, " AND "), args...).Scan(t.n)
		if err != nil {
			return tapline.Returning{}, reportError(t.what, err)
		}
	}
	return out, nil
}
