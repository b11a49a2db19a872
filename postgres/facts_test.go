package postgres_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/facts"
	"tapline/migrations"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

var hour0 = tapline.HourOf(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC))

// factRows returns every row of a table as text; a fact table's as
// "(app,hour,dims...,count,sum)" without its campaign dimensions (the
// campaign tests read those).
func factRows(t *testing.T, db *postgres.DB, table string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cols := "t.*"
	for _, d := range tapline.FactTables {
		if postgres.FactTableName(d.Table) != table {
			continue
		}
		names := []string{"app_id", "hour"}
		for _, dim := range d.Dims {
			if !slices.Contains(tapline.CampaignDims, dim) {
				names = append(names, dim.Column)
			}
		}
		cols = strings.Join(append(names, "count", "sum"), ", ")
	}
	rows, err := conn.Query(ctx, `SELECT row(`+cols+`)::text FROM `+table+` t ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestApplyFactsSums(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	hits := tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, LinkID: 7, Platform: tapline.PlatformIOS}
	conv := tapline.FactKey{Table: tapline.FactConversions, Hour: hour0, AppID: 1, LinkID: 7,
		Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}
	rev := tapline.FactKey{Table: tapline.FactRevenue, Hour: hour0, AppID: 1, Platform: tapline.PlatformAndroid, Currency: "EUR"}
	ev := tapline.FactKey{Table: tapline.FactEvents, Hour: hour0, AppID: 1, EventName: "level-up",
		Platform: tapline.PlatformWeb, Method: tapline.MethodOrganic}
	inst := tapline.FactKey{Table: tapline.FactInstalls, Hour: hour0, AppID: 1, Platform: tapline.PlatformIOS,
		Method: tapline.MethodOrganic}
	batches := []map[tapline.FactKey]tapline.FactValue{
		{hits: {Count: 2}, conv: {Count: 1, Sum: 30}, rev: {Count: 1, Sum: 990000}, ev: {Count: 1}, inst: {Count: 1}},
		{hits: {Count: 4}, conv: {Count: 2, Sum: 70}, rev: {Count: -1, Sum: -990000},
			// zero deltas create no rows
			{Table: tapline.FactHits, Hour: hour0, AppID: 2}: {}},
	}
	for i, b := range batches {
		if err := fs.ApplyFacts(ctx, "m1", b, nil, tapline.FlushRows{}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		table string
		want  []string
	}{
		{"fact_hits", []string{`(1,"2024-03-01 10:00:00+00",7,ios,6,0)`}},
		{"fact_conversions", []string{`(1,"2024-03-01 10:00:00+00",7,ios,fingerprint,3,100)`}},
		{"fact_revenue", []string{`(1,"2024-03-01 10:00:00+00",0,android,EUR,"",0,0)`}},
		{"fact_events", []string{`(1,"2024-03-01 10:00:00+00",0,level-up,web,organic,1,0)`}},
		{"fact_installs", []string{`(1,"2024-03-01 10:00:00+00",0,ios,organic,1,0)`}},
	} {
		t.Run(tc.table, func(t *testing.T) {
			if got := factRows(t, db, tc.table); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestApplyFactsInvalidKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	good := tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, LinkID: 7, Platform: tapline.PlatformIOS}
	for _, tc := range []struct {
		name string
		key  tapline.FactKey
		val  tapline.FactValue
	}{
		{"unknown table", tapline.FactKey{Table: "nope", Hour: hour0, AppID: 1}, tapline.FactValue{Count: 1}},
		{"hits with a method", tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, Method: tapline.MethodAdID}, tapline.FactValue{Count: 1}},
		{"installs with a funnel", tapline.FactKey{Table: tapline.FactInstalls, Hour: hour0, AppID: 1, Funnel: 3}, tapline.FactValue{Count: 1}},
		{"funnel steps with a link", tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: hour0, AppID: 1, Funnel: 3, Step: 1, LinkID: 7}, tapline.FactValue{Count: 1}},
		{"hour within the hour", tapline.FactKey{Table: tapline.FactHits, Hour: hour0 + 1, AppID: 1}, tapline.FactValue{Count: 1}},
		{"zero delta of revenue with an event name", tapline.FactKey{Table: tapline.FactRevenue, Hour: hour0, AppID: 1, EventName: "x"}, tapline.FactValue{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fs.ApplyFacts(ctx, "m1", map[tapline.FactKey]tapline.FactValue{good: {Count: 1}, tc.key: tc.val},
				[]tapline.Offset{{Topic: "hits", Partition: 0, Offset: 1}}, tapline.FlushRows{})
			wantCode(t, "ApplyFacts("+tc.name+")", err, tapline.EINVALID)
			t.Logf("ApplyFacts: %v", err)
		})
	}
	if rows := factRows(t, db, "fact_hits"); len(rows) != 0 {
		t.Errorf("fact_hits = %q after rejected batches, want none", rows)
	}
	if offs, err := fs.Offsets(ctx, "m1"); err != nil || len(offs) != 0 {
		t.Errorf("offsets = %v, %v after rejected batches, want none", offs, err)
	}
}

func TestApplyFactsFunnelSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	entered := &tapline.FunnelOutcome{Hour: hour0, Breakdown: "ios", Steps: []int64{0}}
	reached := &tapline.FunnelOutcome{Hour: hour0, Breakdown: "ios", Steps: []int64{0, 75, 90000}}
	batches := []facts.Batch{{}, {}, {}}
	batches[0].FunnelChange(1, 42, nil, entered)                                                       // installation A enters
	batches[0].FunnelChange(1, 42, nil, entered)                                                       // installation B enters
	batches[1].FunnelChange(1, 42, entered, reached)                                                   // A reaches step 3
	batches[1].FunnelChange(2, 43, nil, &tapline.FunnelOutcome{Hour: hour0 + 3600, Steps: []int64{0}}) // other app
	batches[2].FunnelChange(1, 42, nil, reached)                                                       // C reaches step 3
	for i, b := range batches {
		if err := fs.ApplyFacts(ctx, "m1", b, []tapline.Offset{{Topic: "events", Partition: 0, Offset: int64(i + 1)}}, tapline.FlushRows{}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	want := []string{
		`(1,"2024-03-01 10:00:00+00",42,ios,1,0,3,0)`,
		`(1,"2024-03-01 10:00:00+00",42,ios,2,3,2,150)`,
		`(1,"2024-03-01 10:00:00+00",42,ios,3,13,2,180000)`,
		`(2,"2024-03-01 11:00:00+00",43,"",1,0,1,0)`,
	}
	if got := factRows(t, db, "fact_funnel_steps"); !reflect.DeepEqual(got, want) {
		t.Errorf("fact_funnel_steps = %q, want %q", got, want)
	}
}

func TestOffsets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fs := postgres.NewFactStore(pgtest.Open(t))
	got, err := fs.Offsets(ctx, "m1")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Offsets before any = %v, %v, want an empty slice", got, err)
	}
	steps := []struct {
		name     string
		consumer string
		offsets  []tapline.Offset
	}{
		{"first", "m1", []tapline.Offset{{Topic: "hits", Partition: 1, Offset: 10}, {Topic: "events", Partition: 0, Offset: 5}}},
		{"update one, add one", "m1", []tapline.Offset{{Topic: "hits", Partition: 1, Offset: 20}, {Topic: "hits", Partition: 0, Offset: 3}}},
		{"last of duplicates wins", "m1", []tapline.Offset{{Topic: "events", Partition: 0, Offset: 6}, {Topic: "events", Partition: 0, Offset: 7}}},
		{"other consumer", "m2", []tapline.Offset{{Topic: "hits", Partition: 1, Offset: 99}}},
	}
	for _, st := range steps {
		if err := fs.ApplyFacts(ctx, st.consumer, nil, st.offsets, tapline.FlushRows{}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	for _, tc := range []struct {
		consumer string
		want     []tapline.Offset
	}{
		{"m1", []tapline.Offset{{Topic: "events", Partition: 0, Offset: 7}, {Topic: "hits", Partition: 0, Offset: 3}, {Topic: "hits", Partition: 1, Offset: 20}}},
		{"m2", []tapline.Offset{{Topic: "hits", Partition: 1, Offset: 99}}},
		{"m3", []tapline.Offset{}},
	} {
		got, err := fs.Offsets(ctx, tc.consumer)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Offsets(%s) = %v, want %v", tc.consumer, got, tc.want)
		}
	}
}

func TestApplyFactsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	hits := tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, LinkID: 7, Platform: tapline.PlatformIOS}
	rev := tapline.FactKey{Table: tapline.FactRevenue, Hour: hour0, AppID: 1, LinkID: 7, Platform: tapline.PlatformIOS, Currency: "USD"}
	before := []tapline.Offset{{Topic: "hits", Partition: 0, Offset: 1}}
	if err := fs.ApplyFacts(ctx, "m1", map[tapline.FactKey]tapline.FactValue{
		hits: {Count: 1},
		rev:  {Count: 1, Sum: math.MaxInt64 - 1},
	}, before, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	wantHits := factRows(t, db, "fact_hits")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{
		// The hits upsert succeeds, then the revenue sum overflows.
		{"failing upsert", ctx},
		{"cancelled context", cancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fs.ApplyFacts(tc.ctx, "m1", map[tapline.FactKey]tapline.FactValue{
				hits: {Count: 5},
				rev:  {Count: 1, Sum: 10},
			}, []tapline.Offset{{Topic: "hits", Partition: 0, Offset: 2}}, tapline.FlushRows{})
			if err == nil {
				t.Fatal("ApplyFacts succeeded, want an error")
			}
			t.Logf("ApplyFacts: %v", err)
			if got := factRows(t, db, "fact_hits"); !reflect.DeepEqual(got, wantHits) {
				t.Errorf("fact_hits = %q after a failed batch, want %q", got, wantHits)
			}
			got, err := fs.Offsets(ctx, "m1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, before) {
				t.Errorf("offsets = %v after a failed batch, want %v", got, before)
			}
		})
	}
}

func TestApplyFactsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	const workers, batches, links = 6, 15, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				deltas := make(map[tapline.FactKey]tapline.FactValue)
				for l := range links {
					// Every worker touches the same keys; map order
					// differs from batch to batch.
					deltas[tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, LinkID: int64(l), Platform: tapline.PlatformIOS}] = tapline.FactValue{Count: 1}
					deltas[tapline.FactKey{Table: tapline.FactConversions, Hour: hour0 + int64(l%3)*3600, AppID: 1, LinkID: int64(l),
						Platform: tapline.PlatformAndroid, Method: tapline.MethodReferrer}] = tapline.FactValue{Count: 1, Sum: 2}
				}
				offsets := []tapline.Offset{{Topic: "hits", Partition: w, Offset: int64(b + 1)}}
				if err := fs.ApplyFacts(ctx, "m", deltas, offsets, tapline.FlushRows{}); err != nil {
					errs <- fmt.Errorf("worker %d batch %d: %w", w, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tc := range []struct {
		table            string
		rows, count, sum int64
	}{
		{"fact_hits", links, workers * batches * links, 0},
		{"fact_conversions", links, workers * batches * links, 2 * workers * batches * links},
	} {
		var rows, count, sum int64
		if err := conn.QueryRow(ctx, `SELECT count(*), sum(count), sum(sum) FROM `+tc.table+
			` WHERE count = $1`, workers*batches).Scan(&rows, &count, &sum); err != nil {
			t.Fatal(err)
		}
		if rows != tc.rows || count != tc.count || sum != tc.sum {
			t.Errorf("%s: %d rows with count %d, total count %d, sum %d; want %d rows, %d, %d",
				tc.table, rows, workers*batches, count, sum, tc.rows, tc.count, tc.sum)
		}
	}
	got, err := fs.Offsets(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != workers {
		t.Fatalf("Offsets = %v, want %d partitions", got, workers)
	}
	for _, o := range got {
		if o.Offset != batches {
			t.Errorf("offset of partition %d = %d, want %d", o.Partition, o.Offset, batches)
		}
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	for i := range 2 {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d on a migrated database: %v", i+1, err)
		}
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version int64
	var dirty bool
	if err := conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil {
		t.Fatal(err)
	}
	if want := latestMigration(t); version != want || dirty {
		t.Errorf("schema_migrations = version %d dirty %v, want %d clean", version, dirty, want)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// latestMigration returns the highest version among the embedded
// PostgreSQL migrations.
func latestMigration(t *testing.T) int64 {
	t.Helper()
	entries, err := migrations.Postgres.ReadDir("postgres")
	if err != nil {
		t.Fatal(err)
	}
	var latest int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".up.sql") {
			continue
		}
		n, err := strconv.ParseInt(strings.SplitN(e.Name(), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		latest = max(latest, n)
	}
	return latest
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	// Start from an empty schema so that every process has work to do.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := postgres.NewDB(url)
			if errs[i] = db.Open(ctx); errs[i] == nil {
				errs[i] = db.Migrate(ctx)
			}
			db.Close()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM consumer_offsets`).Scan(&n); err != nil {
		t.Errorf("schema not migrated: %v", err)
	}
}

func BenchmarkApplyFacts(b *testing.B) {
	ctx := context.Background()
	fs := postgres.NewFactStore(pgtest.Open(b))
	const perBatch = 1000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		deltas := make(map[tapline.FactKey]tapline.FactValue, perBatch)
		for j := range perBatch {
			table := []tapline.FactTable{tapline.FactHits, tapline.FactEvents, tapline.FactInstalls, tapline.FactConversions}[j%4]
			k := tapline.FactKey{Hour: hour0 + int64(i%24)*3600, AppID: 1, LinkID: int64(j % 250),
				Platform: tapline.PlatformIOS, EventName: "open", Method: tapline.MethodFingerprint}
			deltas[k.For(table)] = tapline.FactValue{Count: 1, Sum: 3}
		}
		if err := fs.ApplyFacts(ctx, "bench", deltas, []tapline.Offset{{Topic: "t", Partition: 0, Offset: int64(i)}}, tapline.FlushRows{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(perBatch), "deltas/op")
}
