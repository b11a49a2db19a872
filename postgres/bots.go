package postgres

import (
	"context"
	"strings"

	"tapline"
)

// BotHits sums the filter's requests that were no taps, by agent.
func (r *Reports) BotHits(ctx context.Context, f tapline.StatsFilter) (map[string]int64, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	conds, err := parseConds(s, f.Where)
	if err != nil {
		return nil, err
	}
	args, clauses, err := spanClauses(s, tapline.FactBotHits, conds, "requests that were no taps")
	if err != nil {
		return nil, err
	}
	rows, err := r.db.pool.Query(ctx, `SELECT agent, sum(count)::bigint FROM `+factTableName(tapline.FactBotHits)+`
		WHERE `+strings.Join(clauses, " AND ")+` GROUP BY 1 HAVING sum(count) <> 0`, args...)
	if err != nil {
		return nil, reportError("bot hits", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var agent string
		var n int64
		if err := rows.Scan(&agent, &n); err != nil {
			return nil, reportError("bot hits", err)
		}
		out[agent] = n
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("bot hits", err)
	}
	return out, nil
}
