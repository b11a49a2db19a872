package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/funnels"
	"tapline/funnels/reference"
)

// The funnel benchmark's PostgreSQL competitor: the same raw rows in plain
// tables (no indexes: the query reads everything anyway and joins by hash),
// and one query with window functions that computes the fact_funnel_steps
// rows of an ordered funnel (pgFunnelQuery).

// pgFunnelSchema creates the plain tables. Times are Unix nanoseconds;
// bus positions ("topic/partition/offset") are split into columns when
// loading; params are the rows' parameters as jsonb.
var pgFunnelSchema = []string{
	`CREATE TABLE fb_events (app_id bigint, id text, install_id text, name text, time_ns bigint,
		platform text, params jsonb, revenue_micros bigint, currency text,
		src_topic text, src_partition int, src_offset bigint)`,
	`CREATE TABLE fb_hits (app_id bigint, id text, link_id bigint, time_ns bigint, params jsonb,
		src_topic text, src_partition int, src_offset bigint)`,
	`CREATE TABLE fb_conversions (app_id bigint, id text, install_id text, event_id text,
		install_time_ns bigint, platform text)`,
	// One row per change of a conversion's attribution history; seq is its
	// index in the history, by_* the position of the record that made it.
	`CREATE TABLE fb_changes (app_id bigint, conversion_id text, seq int,
		by_topic text, by_partition int, by_offset bigint, hit_id text, link_id bigint, method text)`,
	`CREATE TABLE fb_handoff (topic text, partition int, next_offset bigint)`,
}

// pgFunnelTables are the tables of pgFunnelSchema.
var pgFunnelTables = []string{"fb_events", "fb_hits", "fb_conversions", "fb_changes", "fb_handoff"}

// pgPosition splits a bus position into the columns topic, partition and
// offset (all NULL for a row without a position or one that does not
// parse, which counts as before any handoff).
func pgPosition(pos string) (any, any, any) {
	p, off, ok := funnels.ParsePosition(pos)
	if pos == "" || !ok {
		return nil, nil, nil
	}
	return p.Topic, int32(p.Partition), off
}

func pgParams(p map[string]string) any {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(p)
	return b
}

// pgRows converts one installation's rows into the tables' rows.
func pgRows(g *genInstall) (events, hits, convs, changes [][]any) {
	for _, e := range g.Events {
		var micros, currency any
		if e.Revenue != nil {
			micros, currency = e.Revenue.Micros, e.Revenue.Currency
		}
		t, p, o := pgPosition(e.Source)
		events = append(events, []any{e.AppID, e.ID, e.InstallID, e.Name, tapline.UnixNanos(e.Time),
			string(e.Device.Platform), pgParams(e.Params), micros, currency, t, p, o})
	}
	for _, h := range g.Hits {
		t, p, o := pgPosition(h.Source)
		hits = append(hits, []any{h.AppID, h.ID, h.LinkID, tapline.UnixNanos(h.Time), pgParams(h.Params), t, p, o})
	}
	if c := g.Conversion; c != nil {
		convs = append(convs, []any{c.AppID, c.ID, c.InstallID, c.EventID, tapline.UnixNanos(c.InstallTime), string(c.Platform)})
		for i, ch := range c.History {
			t, p, o := pgPosition(ch.By)
			changes = append(changes, []any{c.AppID, c.ID, int32(i), t, p, o, ch.To.HitID, ch.To.LinkID, string(ch.To.Method)})
		}
	}
	return events, hits, convs, changes
}

// chanSource feeds CopyFrom from a channel of row chunks.
type chanSource struct {
	ch  <-chan [][]any
	cur [][]any
	row []any
}

func (s *chanSource) Next() bool {
	for len(s.cur) == 0 {
		c, ok := <-s.ch
		if !ok {
			return false
		}
		s.cur = c
	}
	s.row, s.cur = s.cur[0], s.cur[1:]
	return true
}

func (s *chanSource) Values() ([]any, error) { return s.row, nil }
func (s *chanSource) Err() error             { return nil }

var pgFunnelColumns = [][]string{
	{"app_id", "id", "install_id", "name", "time_ns", "platform", "params", "revenue_micros", "currency", "src_topic", "src_partition", "src_offset"},
	{"app_id", "id", "link_id", "time_ns", "params", "src_topic", "src_partition", "src_offset"},
	{"app_id", "id", "install_id", "event_id", "install_time_ns", "platform"},
	{"app_id", "conversion_id", "seq", "by_topic", "by_partition", "by_offset", "hit_id", "link_id", "method"},
}

// loadPGFunnel creates the tables in the database of pool and copies the
// installations each yields into them, one COPY per table running side by
// side, then stores handoff and vacuums and analyzes the tables.
func loadPGFunnel(ctx context.Context, pool *pgxpool.Pool, each func(fn func(*genInstall) error) error, handoff func() []tapline.FunnelHandoff) error {
	for _, t := range pgFunnelTables {
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return err
		}
	}
	for _, s := range pgFunnelSchema {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create funnel tables: %w", err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chans := make([]chan [][]any, 4)
	errs := make(chan error, len(chans))
	for i := range chans {
		chans[i] = make(chan [][]any, 16)
		go func() {
			_, err := pool.CopyFrom(cctx, pgx.Identifier{pgFunnelTables[i]}, pgFunnelColumns[i], &chanSource{ch: chans[i]})
			if err != nil {
				cancel()
				for range chans[i] { // drain
				}
				err = fmt.Errorf("copy into %s: %w", pgFunnelTables[i], err)
			}
			errs <- err
		}()
	}
	bufs := make([][][]any, len(chans))
	send := func(i int, rows [][]any, force bool) error {
		bufs[i] = append(bufs[i], rows...)
		if len(bufs[i]) < 2000 && !force {
			return nil
		}
		select {
		case chans[i] <- bufs[i]:
			bufs[i] = nil
			return nil
		case <-cctx.Done():
			return cctx.Err()
		}
	}
	err := each(func(g *genInstall) error {
		ev, hi, cv, ch := pgRows(g)
		for i, rows := range [][][]any{ev, hi, cv, ch} {
			if err := send(i, rows, false); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range chans {
		if err == nil {
			err = send(i, nil, true)
		}
		close(chans[i])
	}
	for range chans {
		if cerr := <-errs; cerr != nil && (err == nil || errors.Is(err, context.Canceled)) {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	for _, h := range handoff() {
		if _, err := pool.Exec(ctx, "INSERT INTO fb_handoff (topic, partition, next_offset) VALUES ($1, $2, $3)",
			h.Topic, int32(h.Partition.Partition), h.Offset); err != nil {
			return err
		}
	}
	for _, t := range pgFunnelTables {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// pgFunnelSettings are the session settings the query runs with: memory
// for its sorts and hashes in one go (the machine has it; the default 4 MB
// would spill to disk; 2 GB was no faster), and no JIT compilation (at 5
// million rows it made no difference, 18 to 20 s either way).
var pgFunnelSettings = []string{"SET work_mem = '512MB'", "SET jit = off"}

// runPGFunnel runs the query of def on one connection of pool and returns
// its rows.
func runPGFunnel(ctx context.Context, pool *pgxpool.Pool, def *tapline.FunnelDefinition, appID int64) (map[reference.Key]reference.Value, error) {
	q, args, err := pgFunnelQuery(def, appID)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	for _, s := range pgFunnelSettings {
		if _, err := conn.Exec(ctx, s); err != nil {
			return nil, err
		}
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("funnel query: %w", err)
	}
	defer rows.Close()
	out, err := reference.ReadResults(rows)
	if err != nil {
		return nil, fmt.Errorf("funnel query: %w", err)
	}
	return out, nil
}

// pgQuery collects a query's string arguments.
type pgQuery struct{ args []any }

func (q *pgQuery) str(s string) string {
	q.args = append(q.args, s)
	return fmt.Sprintf("$%d::text", len(q.args))
}

// pgFunnelQuery renders one PostgreSQL query computing the rows of
// fact_funnel_steps (hour, breakdown, step, bucket, count, sum) of an
// ordered funnel whose first step is a tap, with install and event steps
// after it, any exclusions, and no breakdown or the link breakdown, as of
// the handoff in fb_handoff, following docs/funnels.md:
//
//	chg    each conversion's last attribution change before the handoff
//	conv   each installation's conversion (earliest install, then id)
//	entry  installations whose tap matches step 1: the tap is the entry,
//	       t0 its hit's time (installations are those with stored events)
//	rec    the path from the entry through the window: the tap, then the
//	       events before the handoff with t0 <= time <= t0 + window,
//	       each with the steps and exclusions it matches
//	l1     rn, the record's place in path order (time, the tap first,
//	       event id as bytes); the tap is 1
//	l2…    the ordered walk is greedy: the record of level k is the first
//	       record after the record of level k-1 that matches step k, so
//	       each level adds p_k = min(rn) over the installation's records
//	       matching step k after p_(k-1), with a window over the
//	       installation's partition, and the time of p_(k-1); an exclusion
//	       between steps a and b adds the first record after p_a it matches
//	path   one row per installation (its tap's)
//	lvl    the level reached: the greedy level, unless an exclusion's
//	       record comes at or before p_b; then the level at that record
//	       (the walk checks exclusions before steps)
//
// then one row per level reached with its whole seconds since the previous
// level and its bucket (width_bucket over tapline.FunnelBuckets), grouped.
func pgFunnelQuery(def *tapline.FunnelDefinition, appID int64) (string, []any, error) {
	n := len(def.Steps)
	switch {
	case def.Order != "" && def.Order != tapline.OrderOrdered:
		return "", nil, fmt.Errorf("postgres funnel query: ordered funnels only, not %s", def.Order)
	case n < 2 || def.Steps[0].Kind != tapline.StepTap:
		return "", nil, fmt.Errorf("postgres funnel query: the first step must be a tap")
	case def.Breakdown.Kind != tapline.BreakdownNone && def.Breakdown.Kind != tapline.BreakdownLink:
		return "", nil, fmt.Errorf("postgres funnel query: breakdown by link or none, not %s", def.Breakdown.Kind)
	}
	for i := range def.Steps[1:] {
		if def.Steps[i+1].Kind == tapline.StepTap {
			return "", nil, fmt.Errorf("postgres funnel query: only step 1 may be a tap")
		}
	}
	q := &pgQuery{}
	app := strconv.FormatInt(appID, 10)
	window := def.WindowSeconds
	if window == 0 {
		window = int64(tapline.DefaultFunnelWindow.Seconds())
	}
	// before: the row's position is before the handoff (no position, a
	// partition the handoff does not name, or an offset below its).
	before := func(alias, prefix, ho string) string {
		return fmt.Sprintf("(%[1]s.%[2]s_offset IS NULL OR %[3]s.next_offset IS NULL OR %[1]s.%[2]s_offset < %[3]s.next_offset)", alias, prefix, ho)
	}
	handoffJoin := func(alias, prefix, ho string) string {
		return fmt.Sprintf("LEFT JOIN fb_handoff %[3]s ON %[3]s.topic = %[1]s.%[2]s_topic AND %[3]s.partition = %[1]s.%[2]s_partition", alias, prefix, ho)
	}

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`WITH
chg AS (
	SELECT DISTINCT ON (c.conversion_id) c.conversion_id, c.hit_id, c.link_id, c.method
	FROM fb_changes c %[4]s
	WHERE c.app_id = %[1]s AND %[2]s
	ORDER BY c.conversion_id, c.seq DESC
),
conv AS (
	SELECT DISTINCT ON (cv.install_id) cv.install_id, cv.event_id, chg.hit_id, chg.link_id, chg.method
	FROM fb_conversions cv JOIN chg ON chg.conversion_id = cv.id
	WHERE cv.app_id = %[1]s AND cv.install_id <> ''
	ORDER BY cv.install_id, cv.install_time_ns, cv.id COLLATE "C"
),
entry AS (
	SELECT conv.install_id, conv.event_id, conv.link_id, h.time_ns AS t0
	FROM conv JOIN fb_hits h ON h.app_id = %[1]s AND h.id = conv.hit_id
	WHERE conv.method <> 'organic' AND %[3]s
		AND conv.install_id IN (SELECT install_id FROM fb_events WHERE app_id = %[1]s)
),
`, app, before("c", "by", "ho"), q.match(&def.Steps[0], "h"), handoffJoin("c", "by", "ho"))

	// rec: flags m2..mn and x1..xe per record.
	var tapFlags, evFlags []string
	for k := 2; k <= n; k++ {
		tapFlags = append(tapFlags, fmt.Sprintf("FALSE AS m%d", k))
		evFlags = append(evFlags, fmt.Sprintf("%s AS m%d", q.match(&def.Steps[k-1], "ev"), k))
	}
	for i := range def.Exclusions {
		tapFlags = append(tapFlags, fmt.Sprintf("FALSE AS x%d", i+1))
		evFlags = append(evFlags, fmt.Sprintf("%s AS x%d", q.match(&def.Exclusions[i].FunnelStep, "ev"), i+1))
	}
	bd := "''"
	if def.Breakdown.Kind == tapline.BreakdownLink {
		bd = "en.link_id::text"
	}
	w(`rec AS (
	SELECT en.install_id, en.t0 AS t, TRUE AS is_tap, ''::text AS eid, %[1]s AS bd, %[2]s
	FROM entry en
	UNION ALL
	SELECT ev.install_id, ev.time_ns, FALSE, ev.id, NULL, %[3]s
	FROM fb_events ev JOIN entry en ON en.install_id = ev.install_id %[7]s
	WHERE ev.app_id = %[4]s AND ev.time_ns >= en.t0 AND ev.time_ns <= en.t0 + %[5]d
		AND %[6]s
),
l1 AS (
	SELECT r.*, row_number() OVER (PARTITION BY install_id ORDER BY t, is_tap DESC, eid COLLATE "C") AS rn
	FROM rec r
),
`, bd, strings.Join(tapFlags, ", "), strings.Join(evFlags, ", "), app, window*1_000_000_000, before("ev", "src", "ho"), handoffJoin("ev", "src", "ho"))

	p := func(k int) string {
		if k == 1 {
			return "1"
		}
		return fmt.Sprintf("p%d", k)
	}
	for k := 2; k <= n+1; k++ {
		var cols []string
		if k <= n {
			cols = append(cols, fmt.Sprintf("min(rn) FILTER (WHERE m%d AND rn > %s) OVER w AS p%d", k, p(k-1), k))
		}
		if k > 2 {
			cols = append(cols, fmt.Sprintf("max(t) FILTER (WHERE rn = p%d) OVER w AS t%d", k-1, k-1))
		}
		for i, x := range def.Exclusions {
			if x.After == k-1 {
				cols = append(cols, fmt.Sprintf("min(rn) FILTER (WHERE x%d AND rn > %s) OVER w AS xp%d", i+1, p(k-1), i+1))
			}
		}
		w(`l%d AS (
	SELECT l.*, %s
	FROM l%d l WINDOW w AS (PARTITION BY install_id)
),
`, k, strings.Join(cols, ", "), k-1)
	}

	// lvl: the greedy level, cut by exclusions.
	var greedy strings.Builder
	greedy.WriteString("CASE")
	for k := 2; k <= n; k++ {
		fmt.Fprintf(&greedy, " WHEN p%d IS NULL THEN %d", k, k-1)
	}
	fmt.Fprintf(&greedy, " ELSE %d END", n)
	levels := []string{greedy.String()}
	for i, x := range def.Exclusions {
		at := []string{strconv.Itoa(x.After)}
		for k := x.After + 1; k < x.Before; k++ {
			at = append(at, fmt.Sprintf("coalesce(p%d < xp%d, FALSE)::int", k, i+1))
		}
		levels = append(levels, fmt.Sprintf("CASE WHEN xp%[1]d IS NOT NULL AND (p%[2]d IS NULL OR xp%[1]d <= p%[2]d) THEN %[3]s END",
			i+1, x.Before, strings.Join(at, " + ")))
	}
	level := levels[0]
	if len(levels) > 1 {
		level = "LEAST(" + strings.Join(levels, ", ") + ")"
	}
	var values []string
	values = append(values, "(1, 0::bigint)")
	for k := 2; k <= n; k++ {
		prev := fmt.Sprintf("t%d", k-1)
		if k == 2 {
			prev = "t"
		}
		values = append(values, fmt.Sprintf("(%d, (t%d - %s) / 1000000000)", k, k, prev))
	}
	bounds := make([]string, len(tapline.FunnelBuckets))
	for i, v := range tapline.FunnelBuckets {
		bounds[i] = strconv.FormatInt(v, 10)
	}
	const hourNS = "3600000000000"
	w(`lvl AS (
	SELECT *, %[1]s AS reached
	FROM l%[2]d WHERE rn = 1
)
SELECT (t - ((t %% %[3]s) + %[3]s) %% %[3]s) / 1000000000 AS hour, bd, s.k,
	width_bucket(s.secs, ARRAY[%[4]s]::bigint[]) - 1 AS bucket, count(*), sum(s.secs)::bigint
FROM lvl CROSS JOIN LATERAL (VALUES %[5]s) AS s (k, secs)
WHERE s.k <= lvl.reached
GROUP BY 1, 2, 3, 4`, level, n+1, hourNS, strings.Join(bounds, ", "), strings.Join(values, ", "))
	return b.String(), q.args, nil
}

// match is the condition that a row of alias (fb_hits h for a tap step,
// fb_events ev otherwise) matches step s.
func (q *pgQuery) match(s *tapline.FunnelStep, alias string) string {
	var c []string
	switch s.Kind {
	case tapline.StepTap:
		if len(s.Links) > 0 {
			ids := make([]string, len(s.Links))
			for i, id := range s.Links {
				ids[i] = strconv.FormatInt(id, 10)
			}
			c = append(c, fmt.Sprintf("%s.link_id IN (%s)", alias, strings.Join(ids, ", ")))
		}
	case tapline.StepInstall:
		c = append(c, fmt.Sprintf("%s.id = en.event_id", alias))
	default:
		c = append(c, fmt.Sprintf("%s.name = %s", alias, q.str(s.Event)))
	}
	for i := range s.Filters {
		c = append(c, fmt.Sprintf("coalesce(%s, FALSE)", q.filter(s.Kind, &s.Filters[i], alias)))
	}
	if len(c) == 0 {
		return "TRUE"
	}
	return "(" + strings.Join(c, " AND ") + ")"
}

// filter is filter f on a row of alias matched against a step of kind k;
// NULL counts as false.
func (q *pgQuery) filter(k tapline.StepKind, f *tapline.FunnelFilter, alias string) string {
	ops := map[tapline.FilterOp]string{tapline.OpGt: ">", tapline.OpGte: ">=", tapline.OpLt: "<", tapline.OpLte: "<="}
	y, _ := tapline.ParseFunnelNumber(f.Value)
	lit := strconv.FormatFloat(y, 'g', -1, 64) + "::float8"
	if k != tapline.StepTap && f.Param == tapline.ParamRevenue {
		return fmt.Sprintf("(%s.revenue_micros::float8 / 1000000.0) %s %s", alias, ops[f.Op], lit)
	}
	p := alias + ".currency"
	if k == tapline.StepTap || f.Param != tapline.ParamCurrency {
		p = fmt.Sprintf("(%s.params ->> %s)", alias, q.str(f.Param))
	}
	switch f.Op {
	case tapline.OpEq:
		return fmt.Sprintf("%s = %s", p, q.str(f.Value))
	case tapline.OpNe:
		return fmt.Sprintf("(%[1]s IS NULL OR %[1]s <> %[2]s)", p, q.str(f.Value))
	case tapline.OpIn:
		vs := make([]string, len(f.Values))
		for i, v := range f.Values {
			vs[i] = q.str(v)
		}
		return fmt.Sprintf("%s IN (%s)", p, strings.Join(vs, ", "))
	}
	return fmt.Sprintf("%s %s %s", pgNumber(p), ops[f.Op], lit)
}

// pgDecimal is a decimal number as strconv.ParseFloat reads one: digits
// may be separated by single underscores.
const pgDecimal = `^[+-]?(D\.?(D)?|\.D)([eE][+-]?D)?$`

// pgNumber reads text expression v as strconv.ParseFloat does a decimal
// number, NULL when it is not one or not finite: the text must be a decimal
// number; underscores are dropped; values that round beyond the largest
// float64 are infinite (NULL) and those below half the smallest round to 0,
// as in Go, where PostgreSQL's float8 input would raise an error; exponents
// of a thousand or more (beyond numeric's input) are decided by their sign.
func pgNumber(v string) string {
	re := strings.ReplaceAll(pgDecimal, "D", `[0-9](_?[0-9])*`)
	u := fmt.Sprintf("replace(%s, '_', '')", v)
	return fmt.Sprintf(`CASE WHEN %[1]s ~ '%[2]s' THEN
		CASE WHEN %[3]s ~ '^[+-]?[0.]*([eE].*)?$' THEN 0::float8
			WHEN %[3]s ~ '[eE][+-]?0*[1-9][0-9]{3,}$' THEN CASE WHEN %[3]s ~ '[eE]-' THEN 0::float8 END
			WHEN abs(%[3]s::numeric) >= 1.797693134862315807937289714053e308 THEN NULL
			WHEN abs(%[3]s::numeric) <= 2.4703282292062327208828439643411e-324 THEN 0::float8
			ELSE %[3]s::numeric::float8 END
	END`, v, re, u)
}
