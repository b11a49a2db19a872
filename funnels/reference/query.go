package reference

import (
	"fmt"
	"strconv"
	"strings"

	"tapline"
)

// bucketBounds are the lower bounds in seconds of the buckets, as
// docs/funnels.md lists them ("Outcome and results"); a time falls in the
// last bucket whose bound is not above it.
var bucketBounds = []int64{
	0, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 10800, 21600, 43200,
	86400, 172800, 259200, 432000, 604800, 1209600, 2592000, 3888000, 5184000,
}

// defaultWindow is the window of a definition without one, in seconds
// (docs/funnels.md: 14 days).
const defaultWindow = 14 * 24 * 3600

// maxWindow bounds the window, in seconds (about 126 years), so that the
// end of the window fits in int64 nanoseconds.
const maxWindow = 4_000_000_000

// decimal is what strconv.ParseFloat accepts as a decimal number, less the
// infinities and NaN (which are not finite anyway): digits may be
// separated by single underscores, as in Go's literals.
const decimal = `[+-]?(D\.?(D)?|\.D)([eE][+-]?D)?`

// digits is D in decimal.
const digits = `[0-9](_?[0-9])*`

// renderer collects the query's string arguments; integers are written
// into the text.
type renderer struct {
	args []any
}

// str returns a placeholder for s.
func (r *renderer) str(s string) string {
	r.args = append(r.args, s)
	return fmt.Sprintf("$%d::VARCHAR", len(r.args))
}

// render returns the query of def over the tables of one Run, and its
// arguments. The query returns hour, breakdown, step, bucket, count and sum.
//
// Its CTEs, in order:
//
//	ev     the app's events with an installation (before the handoff)
//	inst   the app's installations (every stored event's install_id)
//	chg    each conversion's last change (made before the handoff)
//	conv   each installation's conversion and its attribution
//	tap    each installation's tap record: the attributed hit
//	rec    the records of every path: taps (ord 0) and events (ord 1)
//	mr     each record with m, the steps it matches (bit i: step i+1), and
//	       xl, the levels at which it disqualifies the path (bit L: an
//	       exclusion it matches has after <= L < before)
//	entry  each installation's entry record, the first in path order
//	       that may enter
//	walk   the walk: the records from the entry through the window, in
//	       path order, folded by list_reduce from the entry's state
//	       {lvl, sat, stop, ts} (ts: the time of the record of each level)
//	counted, steps  the outcome: hour, breakdown, seconds of each level
func render(def *tapline.FunnelDefinition, appID int64, handoff bool) (string, []any) {
	r := &renderer{}
	n := len(def.Steps)
	app := strconv.FormatInt(appID, 10)
	window := def.WindowSeconds
	if window == 0 {
		window = defaultWindow
	}
	// Beyond any stored time anyway; keeps t0 + window in an int64.
	window = min(window, maxWindow)
	order := def.Order
	if order == "" {
		order = tapline.OrderOrdered
	}

	var m []string
	for i := range def.Steps {
		m = append(m, fmt.Sprintf("CASE WHEN %s THEN %d ELSE 0 END", r.match(&def.Steps[i]), int64(1)<<i))
	}
	xl := []string{"0"}
	for i := range def.Exclusions {
		x := &def.Exclusions[i]
		var levels int64
		for l := x.After; l < x.Before; l++ {
			levels |= 1 << l
		}
		xl = append(xl, fmt.Sprintf("CASE WHEN %s THEN %d ELSE 0 END", r.match(&x.FunnelStep), levels))
	}

	// ep is the entry_param breakdown's parameter of a record.
	ep := "NULL::VARCHAR"
	if def.Breakdown.Kind == tapline.BreakdownEntryParam {
		p := def.Breakdown.Param
		ep = fmt.Sprintf("CASE WHEN is_tap THEN %s ELSE %s END", r.param(tapline.StepTap, p), r.eventString(p))
	}

	entry, sat0 := "(m & 1) <> 0", "1"
	if order == tapline.OrderAny {
		entry, sat0 = "m <> 0", "mr.m & -mr.m" // the lowest numbered step it matches
	}
	// first: the record is the entry (the first of its list).
	first := "(mr.t, mr.ord, mr.eid) = (en.e.t, en.e.ord, en.e.eid)"
	// Records that neither match a step nor disqualify change nothing in
	// ordered and any; in strict every record counts.
	keep := ""
	if order != tapline.OrderStrict {
		keep = "AND (mr.m <> 0 OR mr.xl <> 0)"
	}

	// The walk's step on accumulator a and the next record r.
	state := func(lvl, sat, stop, ts string) string {
		return fmt.Sprintf("{'t': a.t, 'm': a.m, 'xl': a.xl, 'lvl': %s, 'sat': %s, 'stop': %s, 'ts': %s}", lvl, sat, stop, ts)
	}
	stop := state("a.lvl", "a.sat", "TRUE", "a.ts")
	var raise string
	switch order {
	case tapline.OrderAny:
		next := "(r.m & ~a.sat)" // matched steps not yet satisfied
		raise = fmt.Sprintf("WHEN %[1]s <> 0 THEN %[2]s ELSE a", next,
			state("a.lvl + 1", fmt.Sprintf("a.sat | (%[1]s & -%[1]s)", next), "FALSE", "list_append(a.ts, r.t)"))
	case tapline.OrderStrict:
		raise = fmt.Sprintf("WHEN ((r.m >> a.lvl) & 1) = 1 THEN %s ELSE %s",
			state("a.lvl + 1", "a.sat", "FALSE", "list_append(a.ts, r.t)"), stop)
	default:
		raise = fmt.Sprintf("WHEN ((r.m >> a.lvl) & 1) = 1 THEN %s ELSE a",
			state("a.lvl + 1", "a.sat", "FALSE", "list_append(a.ts, r.t)"))
	}
	step := fmt.Sprintf(`CASE WHEN a.stop OR a.lvl >= %d THEN a
		WHEN ((r.xl >> a.lvl) & 1) = 1 THEN %s
		%s END`, n, stop, raise)

	var bd string
	switch b := def.Breakdown; b.Kind {
	case tapline.BreakdownLink:
		bd = "CASE WHEN c.install_id IS NULL OR c.method = 'organic' THEN '0' ELSE CAST(c.link_id AS VARCHAR) END"
	case tapline.BreakdownPlatform:
		bd = "CASE WHEN c.install_id IS NOT NULL THEN c.platform ELSE coalesce(fe.platform, '') END"
	case tapline.BreakdownMethod:
		bd = "CASE WHEN c.install_id IS NULL THEN 'organic' ELSE c.method END"
	case tapline.BreakdownLinkParam:
		bd = fmt.Sprintf("coalesce(tp.params[%s], '')", r.str(b.Param))
	case tapline.BreakdownEntryParam:
		bd = "coalesce(w.e.ep, '')"
	default:
		bd = "''"
	}

	const hourNS = 3600 * 1000000000
	var bucket strings.Builder
	bucket.WriteString("CASE")
	for i := len(bucketBounds) - 1; i > 0; i-- {
		fmt.Fprintf(&bucket, " WHEN secs >= %d THEN %d", bucketBounds[i], i)
	}
	bucket.WriteString(" ELSE 0 END")

	q := `WITH
ev AS (
	SELECT id, install_id, name, t, platform, params::JSON::MAP(VARCHAR, VARCHAR) AS params, rev_micros, currency
	FROM ref_events
	WHERE app_id = ` + app + ` AND install_id <> '' AND ` + before("source", handoff) + `
),
inst AS (
	SELECT DISTINCT install_id FROM ref_events WHERE app_id = ` + app + ` AND install_id <> ''
),
chg AS (
	SELECT conv_idx, arg_max({'hit_id': hit_id, 'link_id': link_id, 'method': method}, seq) AS a
	FROM ref_changes
	WHERE ` + before("by_pos", handoff) + `
	GROUP BY conv_idx
),
conv AS (
	SELECT cv.install_id, cv.event_id, cv.platform, chg.a.hit_id AS hit_id, chg.a.link_id AS link_id, chg.a.method AS method
	FROM ref_conversions cv JOIN chg ON chg.conv_idx = cv.idx
	WHERE cv.app_id = ` + app + ` AND cv.install_id IN (SELECT install_id FROM inst)
	QUALIFY row_number() OVER (PARTITION BY cv.install_id ORDER BY cv.install_t, cv.id) = 1
),
tap AS (
	SELECT conv.install_id, h.t, h.link_id, h.params::JSON::MAP(VARCHAR, VARCHAR) AS params
	FROM conv JOIN ref_hits h ON h.app_id = ` + app + ` AND h.id = conv.hit_id
	WHERE conv.method <> 'organic'
),
rec AS (
	SELECT install_id, t, 0 AS ord, '' AS eid, TRUE AS is_tap, link_id, NULL::VARCHAR AS name,
		FALSE AS is_install, params, NULL::BIGINT AS rev_micros, NULL::VARCHAR AS currency
	FROM tap
	UNION ALL
	SELECT ev.install_id, ev.t, 1, ev.id, FALSE, NULL::BIGINT, ev.name,
		coalesce(ev.id = conv.event_id, FALSE), ev.params, ev.rev_micros, ev.currency
	FROM ev LEFT JOIN conv ON conv.install_id = ev.install_id
),
mr AS (
	SELECT install_id, t, ord, eid,
		(` + strings.Join(m, " | ") + `)::BIGINT AS m,
		(` + strings.Join(xl, " | ") + `)::BIGINT AS xl,
		` + ep + ` AS ep
	FROM rec
),
entry AS (
	SELECT install_id, arg_min({'t': t, 'ord': ord, 'eid': eid, 'm': m, 'ep': ep}, (t, ord, eid)) AS e
	FROM mr WHERE ` + entry + `
	GROUP BY install_id
),
walk AS (
	SELECT en.install_id, any_value(en.e) AS e,
		list_reduce(list({
			't': mr.t, 'm': mr.m, 'xl': mr.xl,
			'lvl': CASE WHEN ` + first + ` THEN 1 ELSE 0 END::BIGINT,
			'sat': CASE WHEN ` + first + ` THEN ` + sat0 + ` ELSE 0 END::BIGINT,
			'stop': FALSE,
			'ts': CASE WHEN ` + first + ` THEN [mr.t] END
		} ORDER BY mr.t, mr.ord, mr.eid), lambda a, r: ` + step + `) AS s
	FROM entry en JOIN mr ON mr.install_id = en.install_id
		AND (mr.t, mr.ord, mr.eid) >= (en.e.t, en.e.ord, en.e.eid)
		AND mr.t <= en.e.t + ` + strconv.FormatInt(window*1000000000, 10) + `
		` + keep + `
	GROUP BY en.install_id
),
counted AS (
	SELECT w.s.ts AS ts, ` + bd + ` AS bd,
		(w.e.t - (((w.e.t % ` + strconv.Itoa(hourNS) + `) + ` + strconv.Itoa(hourNS) + `) % ` + strconv.Itoa(hourNS) + `)) // 1000000000 AS hour
	FROM walk w
	LEFT JOIN conv c ON c.install_id = w.install_id
	LEFT JOIN tap tp ON tp.install_id = w.install_id
	LEFT JOIN (SELECT install_id, arg_min(platform, (t, id)) AS platform FROM ev GROUP BY install_id) fe
		ON fe.install_id = w.install_id
),
steps AS (
	SELECT hour, bd, k, CASE WHEN k = 1 THEN 0 ELSE (ts[k] - ts[k - 1]) // 1000000000 END AS secs
	FROM counted CROSS JOIN unnest(range(1, len(ts) + 1)) AS u(k)
)
SELECT hour, bd, k::BIGINT, (` + bucket.String() + `)::BIGINT, count(*)::BIGINT, sum(secs)::BIGINT
FROM steps
GROUP BY ALL`
	return q, r.args
}

// before is the condition that the position in column col is before the
// handoff: no position, a position on a partition the handoff does not
// name or that does not parse, or an offset below the handoff's offset of
// its partition. Without a handoff every row is before.
func before(col string, handoff bool) string {
	if !handoff {
		return "TRUE"
	}
	return fmt.Sprintf(`(%[1]s = '' OR coalesce(TRY_CAST(regexp_extract(%[1]s, '/([^/]*)$', 1) AS BIGINT) <
		(SELECT ho.off FROM ref_handoff ho WHERE ho.part = regexp_extract(%[1]s, '^(.*)/[^/]*$', 1)), TRUE))`, col)
}

// match is the condition that a record of rec matches step s.
func (r *renderer) match(s *tapline.FunnelStep) string {
	var c []string
	switch s.Kind {
	case tapline.StepTap:
		c = append(c, "is_tap")
		if len(s.Links) > 0 {
			ids := make([]string, len(s.Links))
			for i, id := range s.Links {
				ids[i] = strconv.FormatInt(id, 10)
			}
			c = append(c, fmt.Sprintf("link_id IN (%s)", strings.Join(ids, ", ")))
		}
	case tapline.StepInstall:
		c = append(c, "NOT is_tap", "is_install")
	default:
		c = append(c, "NOT is_tap", fmt.Sprintf("name = %s", r.str(s.Event)))
	}
	for i := range s.Filters {
		c = append(c, fmt.Sprintf("coalesce(%s, FALSE)", r.filter(s.Kind, &s.Filters[i])))
	}
	return "(" + strings.Join(c, " AND ") + ")"
}

// filter is filter f on a record matched against a step of kind k; NULL
// counts as false.
func (r *renderer) filter(k tapline.StepKind, f *tapline.FunnelFilter) string {
	ops := map[tapline.FilterOp]string{tapline.OpGt: ">", tapline.OpGte: ">=", tapline.OpLt: "<", tapline.OpLte: "<="}
	if k != tapline.StepTap && f.Param == tapline.ParamRevenue {
		// Numeric only (Validate): the revenue in units, as a 64-bit float.
		return fmt.Sprintf("(rev_micros::DOUBLE / 1000000.0) %s %s", ops[f.Op], number(r.str(f.Value)))
	}
	p := r.param(k, f.Param)
	switch f.Op {
	case tapline.OpEq:
		return fmt.Sprintf("%s = %s", p, r.str(f.Value))
	case tapline.OpNe:
		return fmt.Sprintf("(%[1]s IS NULL OR %[1]s <> %[2]s)", p, r.str(f.Value))
	case tapline.OpIn:
		vs := make([]string, len(f.Values))
		for i, v := range f.Values {
			vs[i] = r.str(v)
		}
		return fmt.Sprintf("%s IN (%s)", p, strings.Join(vs, ", "))
	}
	return fmt.Sprintf("%s %s %s", number(p), ops[f.Op], number(r.str(f.Value)))
}

// param is the string value of parameter p of a record matched against a
// step of kind k (NULL: absent): the hit's link parameters for a tap, the
// event's parameters otherwise, where currency is the revenue's currency
// (absent without revenue). revenue is numeric, see filter.
func (r *renderer) param(k tapline.StepKind, p string) string {
	if k != tapline.StepTap && p == tapline.ParamCurrency {
		return "currency"
	}
	return fmt.Sprintf("params[%s]", r.str(p))
}

// eventString is the string parameter p of an event as filters read it:
// revenue is never a string.
func (r *renderer) eventString(p string) string {
	if p == tapline.ParamRevenue {
		return "NULL::VARCHAR"
	}
	return r.param(tapline.StepEvent, p)
}

// number reads string expression s as a finite decimal number (NULL: not
// one).
func number(s string) string {
	v := fmt.Sprintf("TRY_CAST(replace(%s, '_', '') AS DOUBLE)", s)
	return fmt.Sprintf("CASE WHEN regexp_full_match(%s, '%s') AND isfinite(%s) THEN %s END",
		s, strings.ReplaceAll(decimal, "D", digits), v, v)
}
