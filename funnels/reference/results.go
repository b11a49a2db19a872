package reference

import (
	"fmt"
	"slices"
	"strings"
)

// FactQuery selects the results of a funnel version ($1) from tapline's
// fact_funnel_steps in the shape ReadResults reads: the rows summed over
// whatever wrote them (backfill commits, live flushes), those that sum to
// nothing left out, as Run leaves them out.
const FactQuery = `
	SELECT extract(epoch FROM hour)::bigint, breakdown, step, bucket, sum(count)::bigint, sum(sum)::bigint
	FROM fact_funnel_steps WHERE funnel_version = $1 GROUP BY 1, 2, 3, 4 HAVING sum(count) <> 0 OR sum(sum) <> 0`

// Rows are the rows of a query, from database/sql or pgx.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ReadResults reads rows of (hour, breakdown, step, bucket, count, sum):
// the reference's own query, FactQuery, or any query of that shape.
func ReadResults(rows Rows) (map[Key]Value, error) {
	out := map[Key]Value{}
	for rows.Next() {
		var k Key
		var v Value
		var step, bucket int64
		if err := rows.Scan(&k.Hour, &k.Breakdown, &step, &bucket, &v.Count, &v.Sum); err != nil {
			return nil, fmt.Errorf("scan funnel row: %w", err)
		}
		k.Step, k.Bucket = int(step), int(bucket)
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("funnel rows: %w", err)
	}
	return out, nil
}

// Diff says where got differs from want: "" when they are equal, else how
// many rows differ and the first few of them, in order.
func Diff(got, want map[Key]Value) string {
	var diffs []string
	for k, w := range want {
		if g := got[k]; g != w {
			diffs = append(diffs, fmt.Sprintf("%+v: got %+v, want %+v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%+v: got %+v, want none", k, g))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	slices.Sort(diffs)
	return fmt.Sprintf("%d of %d rows differ: %s", len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 10)], "; "))
}
