package postgres

import (
	"context"
	"fmt"
	"time"

	"tapline"
)

// MaxReportDays bounds the days one report covers.
const MaxReportDays = 1000

// Reports answers the dashboard's questions from the fact tables.
type Reports struct {
	db *DB

	hourlyOnly bool // read no daily rollup (tests compare the two)
}

var _ tapline.Reports = (*Reports)(nil)

// NewReports returns Reports on an opened, migrated db.
func NewReports(db *DB) *Reports { return &Reports{db: db} }

// span is a validated StatsFilter: midnights in loc and the days between.
type span struct {
	appID, linkID int64
	from, to      time.Time // midnights in loc
	loc           *time.Location
	days          []string // YYYY-MM-DD of each day in [from, to)
}

// checkFilter validates f. A nil Location is UTC; From and To are taken at
// the start of their day, and a To past midnight includes its day.
func checkFilter(f tapline.StatsFilter) (*span, error) {
	if f.AppID <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "app_id: required")
	}
	if f.LinkID < 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "link_id: must not be negative")
	}
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	if loc.String() == "Local" || loc.String() == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "location: must be UTC or an IANA time zone")
	}
	if f.From.IsZero() || f.To.IsZero() {
		return nil, tapline.Errorf(tapline.EINVALID, "from, to: required")
	}
	midnight := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	s := &span{appID: f.AppID, linkID: f.LinkID, loc: loc, from: midnight(f.From), to: midnight(f.To)}
	if s.to.Before(f.To) {
		s.to = s.to.AddDate(0, 0, 1)
	}
	if !s.to.After(s.from) {
		return nil, tapline.Errorf(tapline.EINVALID, "to: must be after from")
	}
	for d := s.from; d.Before(s.to); d = d.AddDate(0, 0, 1) {
		if len(s.days) == MaxReportDays {
			return nil, tapline.Errorf(tapline.EINVALID, "to: at most %d days per report", MaxReportDays)
		}
		s.days = append(s.days, d.Format(time.DateOnly))
	}
	return s, nil
}

// factFilter is the WHERE clause of the report queries: $1 app, $2 and $3
// the instants bounding the hours, $4 the link or 0.
const factFilter = `WHERE app_id = $1 AND hour >= $2 AND hour < $3 AND ($4::bigint = 0 OR link_id = $4::bigint)`

// DailyStats returns one entry per day of the filter, in its Location,
// zero days included: Breakdown by day. Conversions exclude the organic
// method; organic installs are those without a link.
func (r *Reports) DailyStats(ctx context.Context, f tapline.StatsFilter) ([]tapline.DailyStats, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	b, err := r.Breakdown(ctx, f, tapline.ByDay)
	if err != nil {
		return nil, err
	}
	stats := make([]tapline.DailyStats, len(s.days))
	index := make(map[string]*tapline.DailyStats, len(s.days))
	for i, d := range s.days {
		stats[i].Day = d
		index[d] = &stats[i]
	}
	for _, row := range b.Rows {
		if st := index[row.Value]; st != nil { // not: an hour straddling the range in a zone with a sub-hour offset
			*st = row.DailyStats(row.Value)
		}
	}
	return stats, nil
}

// LinkStats returns the totals over the filter's days of every link of the
// app (or of the filter's link), ordered by link id, links without
// activity included. Conversions exclude the organic method.
func (r *Reports) LinkStats(ctx context.Context, f tapline.StatsFilter) ([]tapline.LinkStats, error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, err
	}
	rows, err := r.db.pool.Query(ctx, `
		WITH h AS (
			SELECT link_id, sum(count)::bigint AS hits FROM fact_hits `+factFilter+` AND link_id <> 0 GROUP BY link_id
		), c AS (
			SELECT link_id, method, sum(count)::bigint AS n, sum(sum)::bigint AS millis FROM fact_conversions `+factFilter+`
				AND link_id <> 0 AND method <> 'organic' GROUP BY link_id, method
		), ids AS (
			SELECT id AS link_id FROM links WHERE app_id = $1 AND ($4::bigint = 0 OR id = $4::bigint)
			UNION SELECT link_id FROM h
			UNION SELECT link_id FROM c
		)
		SELECT ids.link_id, COALESCE(h.hits, 0), COALESCE(c.method, ''), COALESCE(c.n, 0), COALESCE(c.millis, 0)
		FROM ids LEFT JOIN h USING (link_id) LEFT JOIN c USING (link_id)
		ORDER BY ids.link_id, c.method`,
		s.appID, s.from, s.to, s.linkID)
	if err != nil {
		return nil, reportError("link stats", err)
	}
	defer rows.Close()
	var stats []tapline.LinkStats
	var millis []int64 // total click-to-install time of stats[i]
	for rows.Next() {
		var id, hits, n, ms int64
		var method string
		if err := rows.Scan(&id, &hits, &method, &n, &ms); err != nil {
			return nil, reportError("link stats", err)
		}
		if len(stats) == 0 || stats[len(stats)-1].LinkID != id {
			stats = append(stats, tapline.LinkStats{LinkID: id, Hits: hits})
			millis = append(millis, 0)
		}
		st := &stats[len(stats)-1]
		if method != "" {
			if st.ByMethod == nil {
				st.ByMethod = make(map[string]int64)
			}
			st.ByMethod[method] += n
			st.Conversions += n
			millis[len(millis)-1] += ms
		}
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("link stats", err)
	}
	for i := range stats {
		stats[i].ConversionRate = rate(stats[i].Conversions, stats[i].Hits)
		if stats[i].Conversions > 0 {
			stats[i].MeanClickToInstall = float64(millis[i]) / 1000 / float64(stats[i].Conversions)
		}
	}
	if stats == nil {
		stats = []tapline.LinkStats{}
	}
	return stats, nil
}

// reportError wraps a query error; an unknown time zone is EINVALID.
func reportError(what string, err error) error {
	if pgCode(err) == codeInvalidParameter {
		return tapline.Errorf(tapline.EINVALID, "location: unknown time zone")
	}
	return fmt.Errorf("%s: %w", what, translate(err))
}

// rate returns n/d, or 0 when d is 0.
func rate(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

var _ tapline.FunnelReports = (*Reports)(nil)

// FunnelRows returns a funnel version's result rows summed per entry day
// in the filter's time zone, breakdown value, step and bucket.
func (r *Reports) FunnelRows(ctx context.Context, f tapline.ResultsFilter) ([]tapline.FunnelRow, error) {
	s, err := checkFilter(tapline.StatsFilter{AppID: f.AppID, From: f.From, To: f.To, Location: f.Location})
	if err != nil {
		return nil, err
	}
	if f.VersionID <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "version_id: required")
	}
	rows, err := r.db.pool.Query(ctx, `
		SELECT to_char(hour AT TIME ZONE $5, 'YYYY-MM-DD'), breakdown, step, bucket, sum(count)::bigint, sum(sum)::bigint
		FROM fact_funnel_steps
		WHERE app_id = $1 AND hour >= $2 AND hour < $3 AND funnel_version = $4
		GROUP BY 1, 2, 3, 4 HAVING sum(count) <> 0
		ORDER BY 1, 2, 3, 4`,
		s.appID, s.from, s.to, f.VersionID, s.loc.String())
	if err != nil {
		return nil, reportError("funnel rows", err)
	}
	defer rows.Close()
	var out []tapline.FunnelRow
	for rows.Next() {
		var row tapline.FunnelRow
		var step, bucket int32
		if err := rows.Scan(&row.Day, &row.Breakdown, &step, &bucket, &row.Count, &row.Sum); err != nil {
			return nil, reportError("funnel rows", err)
		}
		row.Step, row.Bucket = int(step), int(bucket)
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, reportError("funnel rows", err)
	}
	return out, nil
}
