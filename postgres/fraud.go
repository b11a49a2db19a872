package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"tapline"
)

// Fraud sums the filter's fraud signals by signal and action.
func (r *Reports) Fraud(ctx context.Context, f tapline.StatsFilter) ([]tapline.FraudCount, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	conds, err := parseConds(s, f.Where)
	if err != nil {
		return nil, err
	}
	args, clauses, err := spanClauses(s, tapline.FactFraud, conds, "fraud signals")
	if err != nil {
		return nil, err
	}
	rows, err := r.db.pool.Query(ctx, `SELECT signal, action, sum(count)::bigint FROM `+factTableName(tapline.FactFraud)+`
		WHERE `+strings.Join(clauses, " AND ")+` GROUP BY 1, 2 HAVING sum(count) <> 0`, args...)
	if err != nil {
		return nil, reportError("fraud signals", err)
	}
	defer rows.Close()
	var out []tapline.FraudCount
	for rows.Next() {
		var c tapline.FraudCount
		if err := rows.Scan(&c.Signal, &c.Action, &c.Count); err != nil {
			return nil, reportError("fraud signals", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("fraud signals", err)
	}
	order := func(s tapline.FraudSignal) int {
		if i := slices.Index(tapline.FraudSignals, s); i >= 0 {
			return i
		}
		return len(tapline.FraudSignals)
	}
	slices.SortFunc(out, func(a, b tapline.FraudCount) int {
		return cmp.Or(cmp.Compare(order(a.Signal), order(b.Signal)), strings.Compare(string(a.Signal), string(b.Signal)),
			strings.Compare(string(a.Action), string(b.Action)))
	})
	return out, nil
}
