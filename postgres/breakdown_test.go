package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// TestBreakdown groups seeded facts by campaign dimensions, method, event,
// link and hour, with filters, and checks which measures a grouping
// cannot have.
func TestBreakdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	h := func(s string) int64 { return at(t, s) }
	key := func(table tapline.FactTable, hour string, link int64, method tapline.MatchMethod, source, campaign string) tapline.FactKey {
		return tapline.FactKey{Table: table, Hour: h(hour), AppID: 1, LinkID: link, Platform: tapline.PlatformIOS, Method: method,
			Source: source, Campaign: campaign}
	}
	ev := func(k tapline.FactKey, name string) tapline.FactKey { k.EventName = name; return k }
	cur := func(k tapline.FactKey, c string) tapline.FactKey { k.Currency = c; return k }
	fb, gg := "facebook", "google"
	deltas := map[tapline.FactKey]tapline.FactValue{
		key(tapline.FactHits, "2024-03-01 10", 7, "", fb, "spring"):                                          {Count: 10},
		key(tapline.FactHits, "2024-03-01 11", 7, "", fb, "fall"):                                            {Count: 5},
		key(tapline.FactHits, "2024-03-01 11", 12, "", gg, "spring"):                                         {Count: 20},
		key(tapline.FactHits, "2024-03-01 11", 12, "", "", ""):                                               {Count: 1},
		key(tapline.FactInstalls, "2024-03-01 11", 7, tapline.MethodFingerprint, fb, "spring"):               {Count: 3},
		key(tapline.FactConversions, "2024-03-01 11", 7, tapline.MethodFingerprint, fb, "spring"):            {Count: 3, Sum: 90_000},
		key(tapline.FactInstalls, "2024-03-01 11", 12, tapline.MethodReferrer, gg, "spring"):                 {Count: 2},
		key(tapline.FactConversions, "2024-03-01 11", 12, tapline.MethodReferrer, gg, "spring"):              {Count: 2, Sum: 1_000},
		key(tapline.FactInstalls, "2024-03-01 12", 0, tapline.MethodOrganic, "", ""):                         {Count: 4},
		ev(key(tapline.FactEvents, "2024-03-01 12", 7, tapline.MethodFingerprint, fb, "spring"), "purchase"): {Count: 2},
		ev(key(tapline.FactEvents, "2024-03-01 12", 0, tapline.MethodOrganic, "", ""), "open"):               {Count: 7},
		cur(key(tapline.FactRevenue, "2024-03-01 12", 7, tapline.MethodFingerprint, fb, "spring"), "USD"):    {Count: 2, Sum: 5_000_000},
		// Cancelled out: no row in any breakdown.
		key(tapline.FactHits, "2024-03-01 13", 7, "", "bing", ""): {Count: 0},
	}
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	// A delta and its retraction in two batches leave a zero row.
	for _, n := range []int64{1, -1} {
		if err := postgres.NewFactStore(db).ApplyFacts(ctx, "", map[tapline.FactKey]tapline.FactValue{key(tapline.FactHits, "2024-03-01 13", 7, "", "bing", ""): {Count: n}}, nil, tapline.FlushRows{}); err != nil {
			t.Fatal(err)
		}
	}
	r := postgres.NewReports(db)
	day := tapline.StatsFilter{AppID: 1, From: date(time.UTC, 2024, 3, 1), To: date(time.UTC, 2024, 3, 2)}
	show := func(b *tapline.Breakdown) string {
		var rows []string
		for _, row := range b.Rows {
			s := fmt.Sprintf("%q h%d i%d o%d c%d e%d", row.Value, row.Hits, row.Installs, row.OrganicInstalls, row.Conversions, row.Events)
			if row.Conversions > 0 {
				s += fmt.Sprintf(" t%.1f", row.MeanClickToInstall())
			}
			if row.RevenueMicros["USD"] != 0 {
				s += fmt.Sprintf(" $%d", row.RevenueMicros["USD"])
			}
			rows = append(rows, s)
		}
		return strings.Join(rows, "; ") + " missing " + strings.Join(b.Missing, ",")
	}
	for _, tc := range []struct {
		name  string
		by    string
		where []tapline.DimFilter
		tz    string
		want  string
	}{
		{"by source", "source", nil, "",
			`"" h1 i4 o4 c0 e7; "facebook" h15 i3 o0 c3 e2 t30.0 $5000000; "google" h20 i2 o0 c2 e0 t0.5 missing `},
		{"by campaign, facebook only", "campaign", []tapline.DimFilter{{Dim: "source", Value: fb}}, "",
			`"fall" h5 i0 o0 c0 e0; "spring" h10 i3 o0 c3 e2 t30.0 $5000000 missing `},
		// Hits are not attributed: no method.
		{"by method", "method", nil, "",
			`"fingerprint" h0 i3 o0 c3 e2 t30.0 $5000000; "organic" h0 i4 o4 c0 e7; "referrer" h0 i2 o0 c2 e0 t0.5 missing hits`},
		// Only events have a name.
		{"by event", "event", nil, "",
			`"open" h0 i0 o0 c0 e7; "purchase" h0 i0 o0 c0 e2 missing hits,installs,conversions,revenue`},
		{"filtered by event", "source", []tapline.DimFilter{{Dim: "event", Value: "purchase"}}, "",
			`"facebook" h0 i0 o0 c0 e2 missing hits,installs,conversions,revenue`},
		// Links in numeric order: 7 before 12.
		{"by link", "link", nil, "",
			`"0" h0 i4 o4 c0 e7; "7" h15 i3 o0 c3 e2 t30.0 $5000000; "12" h21 i2 o0 c2 e0 t0.5 missing `},
		{"by link, organic only", "link", []tapline.DimFilter{{Dim: "link", Value: "0"}}, "",
			`"0" h0 i4 o4 c0 e7 missing `},
		{"by hour in New York", "hour", []tapline.DimFilter{{Dim: "campaign", Value: "spring"}}, "America/New_York",
			`"2024-03-01 05:00" h10 i0 o0 c0 e0; "2024-03-01 06:00" h20 i5 o0 c5 e0 t18.2; "2024-03-01 07:00" h0 i0 o0 c0 e2 $5000000 missing `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := day
			f.Where = tc.where
			if tc.tz != "" {
				loc, err := time.LoadLocation(tc.tz)
				if err != nil {
					t.Fatal(err)
				}
				f.Location, f.From, f.To = loc, date(loc, 2024, 3, 1), date(loc, 2024, 3, 2)
			}
			b, err := r.Breakdown(ctx, f, tc.by)
			if err != nil {
				t.Fatal(err)
			}
			if got := show(b); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		by    string
		where []tapline.DimFilter
		msg   string
	}{
		{"colour", nil, `by: "colour" is not a breakdown`},
		{"source", []tapline.DimFilter{{Dim: "colour", Value: "red"}}, `filter: "colour" is not a dimension`},
		{"source", []tapline.DimFilter{{Dim: "link", Value: "seven"}}, `filter link: "seven" is not an id`},
	} {
		f := day
		f.Where = tc.where
		if _, err := r.Breakdown(ctx, f, tc.by); tapline.ErrorCode(err) != tapline.EINVALID || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("by %s where %v: error %v, want EINVALID %q", tc.by, tc.where, err, tc.msg)
		}
	}
}

// TestBreakdownTotalsEqualTables checks the hourly totals against the
// tables they sum: days and hours read from the totals equal the sum over
// platforms read from the tables, for random deltas with retractions, in
// a zone with a half-hour offset; and the totals a migration fills from
// rows already there equal those kept since.
func TestBreakdownTotalsEqualTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, conn := migrationDB(t)
	if err := db.MigrateTo(10); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	platforms := []tapline.Platform{tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb}
	methods := []tapline.MatchMethod{tapline.MethodFingerprint, tapline.MethodReferrer, tapline.MethodOrganic}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	batch := func() map[tapline.FactKey]tapline.FactValue {
		deltas := map[tapline.FactKey]tapline.FactValue{}
		for range 300 {
			k := tapline.FactKey{Hour: tapline.HourOf(base.Add(time.Duration(rnd.IntN(72)) * time.Hour)), AppID: 1,
				LinkID: int64(rnd.IntN(3)), Platform: platforms[rnd.IntN(3)], Source: []string{"", "fb"}[rnd.IntN(2)]}
			n := int64(rnd.IntN(5) - 1) // retractions too
			switch rnd.IntN(5) {
			case 0:
				k.Table = tapline.FactHits
			case 1:
				k.Table, k.Method = tapline.FactInstalls, methods[rnd.IntN(3)]
			case 2:
				k.Table, k.Method = tapline.FactConversions, methods[rnd.IntN(2)]
			case 3:
				k.Table, k.Method, k.EventName = tapline.FactEvents, methods[rnd.IntN(3)], "open"
			case 4:
				k.Table, k.Method, k.Currency = tapline.FactRevenue, methods[rnd.IntN(3)], []string{"USD", "EUR"}[rnd.IntN(2)]
			}
			k = k.Normalise()
			v := deltas[k]
			v.Count += n
			v.Sum += n * 1000
			deltas[k] = v
		}
		return deltas
	}
	// Rows from before the totals existed, written as the old store did.
	for k, v := range batch() {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%[1]s, $1)`, postgres.FactTableName(k.Table)),
			factRowJSON(k, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "", batch(), nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReports(db)
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	f := tapline.StatsFilter{AppID: 1, From: date(kolkata, 2024, 2, 29), To: date(kolkata, 2024, 3, 5), Location: kolkata}
	for _, by := range []string{tapline.ByDay, tapline.ByHour} {
		totals, err := r.Breakdown(ctx, f, by)
		if err != nil {
			t.Fatal(err)
		}
		sum := map[string]*tapline.BreakdownRow{}
		for _, p := range platforms {
			pf := f
			pf.Where = []tapline.DimFilter{{Dim: "platform", Value: string(p)}}
			b, err := r.Breakdown(ctx, pf, by)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range b.Rows {
				if sum[row.Value] == nil {
					sum[row.Value] = &tapline.BreakdownRow{Value: row.Value}
				}
				sum[row.Value].Add(&row)
			}
		}
		if len(totals.Rows) == 0 || len(totals.Rows) != len(sum) {
			t.Fatalf("by %s: %d rows from the totals, %d from the tables", by, len(totals.Rows), len(sum))
		}
		noZeros := func(r *tapline.BreakdownRow) {
			maps.DeleteFunc(r.RevenueMicros, func(_ string, m int64) bool { return m == 0 })
		}
		for _, row := range totals.Rows {
			noZeros(&row)
			noZeros(sum[row.Value])
			if got, want := fmt.Sprint(row), fmt.Sprint(*sum[row.Value]); got != want {
				t.Errorf("by %s, %s: totals %s, tables %s", by, row.Value, got, want)
			}
		}
	}
}

// factRowJSON is a fact row as JSON for jsonb_populate_record.
func factRowJSON(k tapline.FactKey, v tapline.FactValue) map[string]any {
	row := map[string]any{"app_id": k.AppID, "hour": time.Unix(k.Hour, 0).UTC(), "count": v.Count, "sum": v.Sum}
	for _, d := range k.Table.Desc().Dims {
		if d.Type == tapline.FactText {
			row[d.Column] = d.Text(k)
		} else {
			row[d.Column] = d.Int(k)
		}
	}
	return row
}
