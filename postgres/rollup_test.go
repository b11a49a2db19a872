package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// measureTables are the tables the totals and the daily rollup sum.
var measureTables = []tapline.FactTable{tapline.FactHits, tapline.FactEvents, tapline.FactInstalls, tapline.FactConversions, tapline.FactRevenue}

// randomDeltas returns n random deltas of app's measure tables in the
// hours from base up to base+hours, retractions among them, over a few
// links, platforms, methods, events, currencies and campaign values.
func randomDeltas(rnd *rand.Rand, app int64, base time.Time, hours, n int) map[tapline.FactKey]tapline.FactValue {
	pick := func(s ...string) string { return s[rnd.IntN(len(s))] }
	platforms := []tapline.Platform{tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb}
	methods := []tapline.MatchMethod{tapline.MethodFingerprint, tapline.MethodReferrer, tapline.MethodAdID, tapline.MethodOrganic}
	deltas := map[tapline.FactKey]tapline.FactValue{}
	for range n {
		k := tapline.FactKey{Table: measureTables[rnd.IntN(len(measureTables))], AppID: app,
			Hour:     tapline.HourOf(base.Add(time.Duration(rnd.IntN(hours)) * time.Hour)),
			LinkID:   int64(rnd.IntN(4)),
			Platform: platforms[rnd.IntN(len(platforms))], Method: methods[rnd.IntN(len(methods))],
			EventName: pick("open", "purchase"), Currency: pick("USD", "EUR"),
			Source: pick("", "fb", "google"), Campaign: pick("", "spring", "fall"), Creative: pick("", "a"), Site: pick("", "s1")}
		k = k.Normalise()
		v := deltas[k]
		c := int64(rnd.IntN(5) - 1) // retractions too
		v.Count += c
		v.Sum += c * int64(1+rnd.IntN(5000))
		deltas[k] = v
	}
	return deltas
}

// rollupFromHours returns what rollup table must hold, summed in SQL from
// the hourly tables alone (apart from tapline.FactKey.Rollups and the
// migration): per app, UTC day or week from Monday, report dimension and
// value, measure, method and currency, the non-zero sums, as
// "app|day|dim|value|measure|method|currency" → count, sum.
func rollupFromHours(t *testing.T, conn *pgx.Conn, table tapline.FactTable) map[string]tapline.FactValue {
	t.Helper()
	period := "(hour AT TIME ZONE 'UTC')::date"
	if table == tapline.FactWeekly {
		period = "date_trunc('week', hour AT TIME ZONE 'UTC')::date"
	}
	var parts []string
	for _, measure := range measureTables {
		d := measure.Desc()
		method, currency := "method", "''"
		switch measure {
		case tapline.FactHits:
			method = "''"
		case tapline.FactInstalls:
			method = "CASE WHEN link_id = 0 THEN 'organic' ELSE 'attributed' END"
		case tapline.FactRevenue:
			currency = "currency"
		}
		dims := []string{"('', '')"}
		for _, rd := range tapline.ReportDims {
			if d.Keeps(rd.Dim) {
				dims = append(dims, fmt.Sprintf("('%s', %s::text)", rd.Name, rd.Dim.Column))
			}
		}
		parts = append(parts, fmt.Sprintf(`SELECT app_id, %s AS day, d.dim, d.value, '%s' AS measure,
			%s AS method, %s AS currency, count, sum FROM %s CROSS JOIN LATERAL (VALUES %s) AS d (dim, value)`,
			period, measure, method, currency, postgres.FactTableName(measure), strings.Join(dims, ", ")))
	}
	return readSums(t, conn, `SELECT concat_ws('|', app_id, day, dim, value, measure, method, currency), sum(count)::bigint, sum(sum)::bigint
		FROM (`+strings.Join(parts, "\nUNION ALL\n")+`) r GROUP BY 1`)
}

// rollupRows returns a rollup table's non-zero rows keyed as
// rollupFromHours.
func rollupRows(t *testing.T, conn *pgx.Conn, table tapline.FactTable) map[string]tapline.FactValue {
	t.Helper()
	col := table.Desc().TimeColumn()
	return readSums(t, conn, `SELECT concat_ws('|', app_id, `+col+`, dim, value, measure, method, currency), count, sum FROM `+postgres.FactTableName(table))
}

// equalRollups checks both rollup tables against the hourly rows.
func equalRollups(t *testing.T, conn *pgx.Conn, when string) {
	t.Helper()
	for _, table := range tapline.Rollups {
		equalSums(t, fmt.Sprintf("%s rollup %s", table, when), rollupRows(t, conn, table), rollupFromHours(t, conn, table))
	}
}

// readSums reads rows of key, count and sum, leaving out zeros.
func readSums(t *testing.T, conn *pgx.Conn, query string) map[string]tapline.FactValue {
	t.Helper()
	rows, err := conn.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tapline.FactValue{}
	var key string
	var v tapline.FactValue
	if _, err := pgx.ForEachRow(rows, []any{&key, &v.Count, &v.Sum}, func() error {
		if v != (tapline.FactValue{}) {
			out[key] = v
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// hourlyRows returns the non-zero rows of the measure tables as
// "table|app|hour|dims..." → count, sum.
func hourlyRows(t *testing.T, conn *pgx.Conn) map[string]tapline.FactValue {
	t.Helper()
	out := map[string]tapline.FactValue{}
	for _, table := range measureTables {
		cols := []string{"'" + string(table) + "'", "app_id", "extract(epoch FROM hour)::bigint"}
		for _, dim := range table.Desc().Dims {
			cols = append(cols, dim.Column)
		}
		for k, v := range readSums(t, conn, `SELECT concat_ws('|', `+strings.Join(cols, ", ")+`), count, sum FROM `+postgres.FactTableName(table)) {
			out[k] = v
		}
	}
	return out
}

// modelKey is k as hourlyRows keys it.
func modelKey(k tapline.FactKey) string {
	s := []string{string(k.Table), fmt.Sprint(k.AppID), fmt.Sprint(k.Hour)}
	for _, dim := range k.Table.Desc().Dims {
		s = append(s, dim.String(k))
	}
	return strings.Join(s, "|")
}

// equalSums reports the differences between got and want.
func equalSums(t *testing.T, what string, got, want map[string]tapline.FactValue) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	var diffs []string
	for k, w := range want {
		if g := got[k]; g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want none", k, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %d of %d rows differ:\n%s", what, len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
	}
}

// TestDailyRollupsEqualHours (daily and weekly) applies random batches with fenced offsets,
// replaying some of them at offsets already stored (refused, as the
// matcher's late flush is), and checks that the hourly rows hold exactly
// the accepted batches and the daily rollup exactly their sums per UTC
// day, dimension and value.
func TestDailyRollupsEqualHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := migrationDB(t)
	fs := postgres.NewFactStore(db)
	rnd := rand.New(rand.NewPCG(15, 1))
	base := time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC) // a Saturday
	model := map[string]tapline.FactValue{}
	next := int64(tapline.NoOffset)
	var last map[tapline.FactKey]tapline.FactValue
	var lastFrom int64
	accepted, refused := 0, 0
	for i := range 40 {
		if last != nil && rnd.IntN(3) == 0 {
			// The same batch again from the offset it started at.
			err := fs.ApplyFacts(ctx, "m", last, []tapline.Offset{{Topic: "hits", Offset: lastFrom + 1, Fenced: true, From: lastFrom}}, tapline.FlushRows{})
			if tapline.ErrorCode(err) != tapline.ECONFLICT {
				t.Fatalf("replay of batch %d: %v, want ECONFLICT", i, err)
			}
			refused++
			continue
		}
		deltas := randomDeltas(rnd, 1+int64(rnd.IntN(2)), base, 10*24, 60)
		if err := fs.ApplyFacts(ctx, "m", deltas, []tapline.Offset{{Topic: "hits", Offset: next + 1, Fenced: true, From: next}}, tapline.FlushRows{}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		accepted++
		for k, v := range deltas {
			m := model[modelKey(k)]
			m.Count, m.Sum = m.Count+v.Count, m.Sum+v.Sum
			model[modelKey(k)] = m
		}
		last, lastFrom, next = deltas, next, next+1
	}
	if refused == 0 || accepted == 0 {
		t.Fatalf("%d batches accepted, %d refused: want both", accepted, refused)
	}
	for k, v := range model {
		if v == (tapline.FactValue{}) {
			delete(model, k)
		}
	}
	equalSums(t, "hourly rows against the accepted batches", hourlyRows(t, conn), model)
	equalRollups(t, conn, "against the hourly rows")
}

// TestDailyRollupsMigration checks migration 15: the rollup it fills from
// rows already there, and keeps with later batches, equals the sums of the
// hourly rows; down and up again gives the same.
func TestDailyRollupsMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := migrationDB(t)
	if err := db.MigrateTo(11); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(15, 2))
	base := time.Date(2024, 10, 26, 0, 0, 0, 0, time.UTC)
	for k, v := range randomDeltas(rnd, 1, base, 14*24, 400) {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%[1]s, $1)`, postgres.FactTableName(k.Table)),
			factRowJSON(k, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	equalRollups(t, conn, "filled by the migration")
	filled := rollupRows(t, conn, tapline.FactWeekly)
	if err := db.MigrateTo(11); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	equalSums(t, "weekly rollup after down and up", rollupRows(t, conn, tapline.FactWeekly), filled)
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "", randomDeltas(rnd, 1, base, 14*24, 400), nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	equalRollups(t, conn, "after a batch")
}

// rollupZones are the zones the breakdown comparison reads in: UTC, whole
// and half hours off it, with and without DST, London's zero offset in
// winter, Lord Howe's half-hour DST and Chatham's 45 minutes.
var rollupZones = []string{"UTC", "America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham"}

// TestBreakdownRollupsEqualHours checks that Breakdown answers the same
// with the daily rollup as from the hourly rows alone, for random
// groupings, filters and ranges of local days around the DST changes of
// 2024, in zones whose midnights are not UTC's.
func TestBreakdownRollupsEqualHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	rnd := rand.New(rand.NewPCG(15, 3))
	fs := postgres.NewFactStore(db)
	// Around the spring changes (New York 10 March, London 31 March, Lord
	// Howe and Chatham 7 April) and the autumn ones (27 October, 3
	// November).
	windows := []time.Time{time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 10, 20, 0, 0, 0, 0, time.UTC)}
	for range 6 {
		for _, w := range windows {
			if err := fs.ApplyFacts(ctx, "", randomDeltas(rnd, 1, w, 42*24, 1500), nil, tapline.FlushRows{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := postgres.NewReports(db)
	hourly := r.HourlyOnly()
	values := map[string][]string{
		"link": {"0", "1", "3"}, "platform": {"ios", "web"}, "method": {"organic", "referrer"}, "event": {"open", "purchase"},
		"source": {"", "fb"}, "campaign": {"spring", "fall"}, "creative": {"a"}, "site": {"", "s1"}, "medium": {""}, "adgroup": {""},
	}
	bys := []string{tapline.ByDay, tapline.ByHour}
	for _, d := range tapline.ReportDims {
		bys = append(bys, d.Name)
	}
	split, weekly, rows := 0, 0, 0
	for i := range 400 {
		loc, err := time.LoadLocation(rollupZones[i%len(rollupZones)])
		if err != nil {
			t.Fatal(err)
		}
		w := windows[rnd.IntN(len(windows))]
		from := w.AddDate(0, 0, rnd.IntN(38)).Add(time.Duration(rnd.IntN(24)) * time.Hour)
		to := from.Add(time.Duration(1+rnd.IntN(14*24)) * time.Hour) // not a midnight: its day is in
		f := tapline.StatsFilter{AppID: 1, From: from, To: to, Location: loc}
		by := bys[rnd.IntN(len(bys))]
		switch rnd.IntN(4) {
		case 0: // none
		case 1: // on the grouping's dimension (or, by time, on one): the rollup answers
			dim := by
			if vs := values[dim]; vs == nil {
				dim = tapline.ReportDims[rnd.IntN(len(tapline.ReportDims))].Name
			}
			f.Where = []tapline.DimFilter{{Dim: dim, Value: values[dim][rnd.IntN(len(values[dim]))]}}
			if dim == "link" && rnd.IntN(2) == 0 {
				f.Where, f.LinkID = nil, int64(1+rnd.IntN(3))
			}
		default: // any one or two
			for range 1 + rnd.IntN(2) {
				d := tapline.ReportDims[rnd.IntN(len(tapline.ReportDims))].Name
				f.Where = append(f.Where, tapline.DimFilter{Dim: d, Value: values[d][rnd.IntN(len(values[d]))]})
			}
		}
		got, err := r.Breakdown(ctx, f, by)
		if err != nil {
			t.Fatalf("%s by %s %v: %v", loc, by, f.Where, err)
		}
		want, err := hourly.Breakdown(ctx, f, by)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s..%s by %s where %v link %d:\nwith the rollup %+v\nhourly only      %+v",
				loc, from.In(loc).Format(time.DateOnly), to.In(loc).Format(time.DateOnly), by, f.Where, f.LinkID, got, want)
		}
		if weeks, days, _, _ := postgres.SplitRange(f, by == tapline.ByDay); (len(weeks) > 0 || len(days) > 0) && by != tapline.ByHour {
			split++
			if len(weeks) > 0 {
				weekly++
			}
		}
		rows += len(got.Rows)
	}
	if split < 100 || weekly < 30 || rows < 1000 {
		t.Errorf("%d breakdowns had whole UTC days or weeks to read from the rollups (%d weeks), %d rows in all: want at least 100 (30), 1000",
			split, weekly, rows)
	}
}

// TestBreakdownReadsRollup checks that breakdowns read the rollups where
// splitRange says, and only there: hits put in a rollup alone show in a
// UTC day's breakdowns and in New York's by dimension, the weekly ones
// only by dimension over the whole week, not in New York's days, nor by
// hour, nor with filters on two dimensions.
func TestBreakdownReadsRollup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := migrationDB(t)
	k := tapline.FactKey{Table: tapline.FactHits, Hour: at(t, "2024-03-05 12"), AppID: 1, LinkID: 7, Platform: tapline.PlatformIOS, Campaign: "spring"}
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "", map[tapline.FactKey]tapline.FactValue{k: {Count: 10}}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	// 5 more hits of spring on 5 March in the daily rollup only, 7 in the
	// weekly one (the week from Monday 4 March).
	if _, err := conn.Exec(ctx, `UPDATE fact_daily SET count = count + 5 WHERE app_id = 1 AND dim IN ('', 'campaign')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE fact_weekly SET count = count + 7 WHERE app_id = 1 AND dim IN ('', 'campaign')`); err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReports(db)
	for _, tc := range []struct {
		name  string
		loc   *time.Location
		by    string
		where []tapline.DimFilter
		to    int   // the day after the last, in March; 10 unless given
		want  int64 // hits
	}{
		{"utc by campaign", time.UTC, "campaign", nil, 0, 15},
		{"utc by day", time.UTC, tapline.ByDay, nil, 0, 15},
		{"utc by day, one campaign", time.UTC, tapline.ByDay, []tapline.DimFilter{{Dim: "campaign", Value: "spring"}}, 0, 15},
		{"utc by campaign, one campaign", time.UTC, "campaign", []tapline.DimFilter{{Dim: "campaign", Value: "spring"}}, 0, 15},
		{"utc by hour", time.UTC, tapline.ByHour, nil, 0, 10},
		{"utc by campaign, one link", time.UTC, "campaign", []tapline.DimFilter{{Dim: "link", Value: "7"}}, 0, 10},
		{"utc by day, campaign and link", time.UTC, tapline.ByDay, []tapline.DimFilter{{Dim: "campaign", Value: "spring"}, {Dim: "link", Value: "7"}}, 0, 10},
		{"new york by campaign", ny, "campaign", nil, 0, 15},
		{"new york by day", ny, tapline.ByDay, nil, 0, 10},
		{"utc by campaign, the whole week", time.UTC, "campaign", nil, 12, 17},
		{"utc by day, the whole week", time.UTC, tapline.ByDay, nil, 12, 15},
		{"new york by campaign, the whole week", ny, "campaign", nil, 12, 17},
		{"new york by hour, the whole week", ny, tapline.ByHour, nil, 12, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := cmp.Or(tc.to, 10)
			f := tapline.StatsFilter{AppID: 1, From: date(tc.loc, 2024, 3, 1), To: date(tc.loc, 2024, 3, to), Location: tc.loc, Where: tc.where}
			b, err := r.Breakdown(ctx, f, tc.by)
			if err != nil {
				t.Fatal(err)
			}
			var hits int64
			for _, row := range b.Rows {
				hits += row.Hits
			}
			if hits != tc.want {
				t.Errorf("hits %d, want %d (%+v)", hits, tc.want, b.Rows)
			}
			h, err := r.HourlyOnly().Breakdown(ctx, f, tc.by)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Rows) != 1 || h.Rows[0].Hits != 10 {
				t.Errorf("hourly only: %+v, want one row of 10 hits", h.Rows)
			}
		})
	}
}

// TestSplitRange checks the rule dividing a range between daily and
// hourly rows.
func TestSplitRange(t *testing.T) {
	t.Parallel()
	zone := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	ny, kolkata, london := zone("America/New_York"), zone("Asia/Kolkata"), zone("Europe/London")
	show := func(rs [][2]time.Time) string {
		var out []string
		for _, r := range rs {
			out = append(out, r[0].UTC().Format("01-02 15:04")+".."+r[1].UTC().Format("01-02 15:04"))
		}
		return strings.Join(out, ", ")
	}
	for _, tc := range []struct {
		name                       string
		loc                        *time.Location
		from, to                   time.Time // local midnights
		byDay                      bool
		wantWeeks, wantDays, wantH string
	}{
		{"utc by dimension", time.UTC, date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 4), false, "", "03-01 00:00..03-04 00:00", ""},
		{"utc by day", time.UTC, date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 4), true, "", "03-01 00:00..03-04 00:00", ""},
		{"new york by dimension, across DST", ny, date(ny, 2024, 3, 9), date(ny, 2024, 3, 12), false,
			"", "03-10 00:00..03-12 00:00", "03-09 05:00..03-10 00:00, 03-12 00:00..03-12 04:00"},
		{"new york by day", ny, date(ny, 2024, 3, 9), date(ny, 2024, 3, 12), true, "", "", "03-09 05:00..03-12 04:00"},
		{"new york, one day: no whole UTC day", ny, date(ny, 2024, 3, 9), date(ny, 2024, 3, 10), false, "", "", "03-09 05:00..03-10 05:00"},
		{"kolkata by dimension", kolkata, date(kolkata, 2024, 3, 1), date(kolkata, 2024, 3, 3), false,
			"", "03-01 00:00..03-02 00:00", "02-29 18:30..03-01 00:00, 03-02 00:00..03-02 18:30"},
		{"kolkata by day", kolkata, date(kolkata, 2024, 3, 1), date(kolkata, 2024, 3, 3), true, "", "", "02-29 18:30..03-02 18:30"},
		// Zero offset until 31 March 01:00 UTC, then an hour.
		{"london by day across DST", london, date(london, 2024, 3, 29), date(london, 2024, 4, 2), true,
			"", "03-29 00:00..03-31 00:00", "03-31 00:00..04-01 23:00"},
		// 27 October is 25 hours long, from 26 October 23:00 UTC: it
		// holds the whole UTC day.
		{"london by day, the long day", london, date(london, 2024, 10, 26), date(london, 2024, 10, 29), true,
			"", "10-27 00:00..10-29 00:00", "10-25 23:00..10-27 00:00"},
		// Weeks from Monday 4 and 11 March; days around them.
		{"utc by dimension, weeks", time.UTC, date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 20), false,
			"03-04 00:00..03-18 00:00", "03-01 00:00..03-04 00:00, 03-18 00:00..03-20 00:00", ""},
		{"utc by day, no weeks", time.UTC, date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 20), true,
			"", "03-01 00:00..03-20 00:00", ""},
		{"utc by dimension, a week exactly", time.UTC, date(time.UTC, 2024, 3, 4), date(time.UTC, 2024, 3, 11), false,
			"03-04 00:00..03-11 00:00", "", ""},
		{"new york by dimension, weeks across DST", ny, date(ny, 2024, 3, 3), date(ny, 2024, 3, 19), false,
			"03-04 00:00..03-18 00:00", "03-18 00:00..03-19 00:00", "03-03 05:00..03-04 00:00, 03-19 00:00..03-19 04:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			weeks, days, hours, err := postgres.SplitRange(tapline.StatsFilter{AppID: 1, From: tc.from, To: tc.to, Location: tc.loc}, tc.byDay)
			if err != nil {
				t.Fatal(err)
			}
			if got := show(weeks); got != tc.wantWeeks {
				t.Errorf("weeks %s, want %s", got, tc.wantWeeks)
			}
			if got := show(days); got != tc.wantDays {
				t.Errorf("days %s, want %s", got, tc.wantDays)
			}
			if got := show(hours); got != tc.wantH {
				t.Errorf("hours %s, want %s", got, tc.wantH)
			}
		})
	}
}
