package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// factColumn is one column of a fact table as the schema has it.
type factColumn struct {
	name, typ string
	notNull   bool
}

// factSchema is the migrated fact tables: columns in order and primary keys,
// by table name.
type factSchema struct {
	columns map[string][]factColumn
	keys    map[string][]string
}

// readFactSchema reads every fact_* table of the migrated database at url.
func readFactSchema(t *testing.T, url string) factSchema {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := factSchema{columns: map[string][]factColumn{}, keys: map[string][]string{}}
	rows, err := conn.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname LIKE 'fact\_%'
		ORDER BY c.relname, a.attnum`)
	if err != nil {
		t.Fatal(err)
	}
	var table string
	var col factColumn
	if _, err := pgx.ForEachRow(rows, []any{&table, &col.name, &col.typ, &col.notNull}, func() error {
		s.columns[table] = append(s.columns[table], col)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(ctx, `
		SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord)
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, ord)
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE i.indisprimary AND n.nspname = current_schema() AND c.relname LIKE 'fact\_%'
		GROUP BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	var key []string
	if _, err := pgx.ForEachRow(rows, []any{&table, &key}, func() error {
		s.keys[table] = key
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// diff lists where declared disagrees with the schema: a declared table
// missing, a column missing, extra, nullable or of another type, a primary
// key in another order, or a fact_* table nobody declared.
func (s factSchema) diff(declared []*tapline.FactTableDesc) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range declared {
		name := postgres.FactTableName(d.Table)
		seen[name] = true
		got, ok := s.columns[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s: declared, but no such table", name))
			continue
		}
		timeCol := factColumn{"hour", "timestamp with time zone", true}
		if d.Period != tapline.PeriodHour {
			timeCol = factColumn{d.TimeColumn(), "date", true}
		}
		want := []factColumn{{"app_id", "bigint", true}, timeCol}
		for _, dim := range d.Dims {
			want = append(want, factColumn{dim.Column, string(dim.Type), true})
		}
		wantKey := d.Key()
		want = append(want, factColumn{"count", "bigint", true}, factColumn{"sum", "bigint", true})
		for _, w := range want {
			i := slices.IndexFunc(got, func(c factColumn) bool { return c.name == w.name })
			switch {
			case i < 0:
				out = append(out, fmt.Sprintf("%s: no column %s %s", name, w.name, w.typ))
			case got[i] != w:
				out = append(out, fmt.Sprintf("%s: column %s is %s (not null %v), declared %s not null", name, w.name, got[i].typ, got[i].notNull, w.typ))
			}
		}
		for _, g := range got {
			if !slices.ContainsFunc(want, func(c factColumn) bool { return c.name == g.name }) {
				out = append(out, fmt.Sprintf("%s: column %s %s is not declared", name, g.name, g.typ))
			}
		}
		if key := s.keys[name]; !slices.Equal(key, wantKey) {
			out = append(out, fmt.Sprintf("%s: primary key (%s), declared (%s)", name, strings.Join(key, ", "), strings.Join(wantKey, ", ")))
		}
	}
	for name := range s.columns {
		if !seen[name] {
			out = append(out, fmt.Sprintf("%s: table exists but no tapline.FactTables entry declares it", name))
		}
	}
	slices.Sort(out)
	return out
}

// TestFactTablesMatchSchema checks the migrations against the one
// declaration of the fact tables, tapline.FactTables.
func TestFactTablesMatchSchema(t *testing.T) {
	t.Parallel()
	s := readFactSchema(t, pgtest.URL(t))
	if len(s.columns) == 0 {
		t.Fatal("no fact_* tables in the migrated schema")
	}
	for _, d := range s.diff(tapline.FactTables) {
		t.Error(d)
	}
}

// TestFactSchemaDiff checks that the schema test fails on declarations that
// disagree with the migrations.
func TestFactSchemaDiff(t *testing.T) {
	t.Parallel()
	s := readFactSchema(t, pgtest.URL(t))
	// edit returns the declaration with table tt's copy changed by f.
	edit := func(tt tapline.FactTable, f func(d *tapline.FactTableDesc)) []*tapline.FactTableDesc {
		out := make([]*tapline.FactTableDesc, len(tapline.FactTables))
		for i, d := range tapline.FactTables {
			c := *d
			c.Dims = slices.Clone(d.Dims)
			if d.Table == tt {
				f(&c)
			}
			out[i] = &c
		}
		return out
	}
	retype := func(i int, typ tapline.FactColumnType) func(d *tapline.FactTableDesc) {
		return func(d *tapline.FactTableDesc) {
			dim := *d.Dims[i]
			dim.Type = typ
			d.Dims[i] = &dim
		}
	}
	tests := []struct {
		name     string
		declared []*tapline.FactTableDesc
		want     string
	}{
		{"primary key order", edit(tapline.FactFunnelSteps, func(d *tapline.FactTableDesc) {
			d.Dims[2], d.Dims[3] = d.Dims[3], d.Dims[2]
		}), "fact_funnel_steps: primary key"},
		{"column type", edit(tapline.FactFunnelSteps, retype(2, tapline.FactBigint)), "fact_funnel_steps: column step is integer"},
		{"text for bigint", edit(tapline.FactHits, retype(0, tapline.FactText)), "fact_hits: column link_id is bigint"},
		{"dimension missing from the schema", edit(tapline.FactHits, func(d *tapline.FactTableDesc) {
			d.Dims = append(d.Dims, tapline.FactEvents.Desc().Dims[1])
		}), "fact_hits: no column event_name"},
		{"dimension missing from the declaration", edit(tapline.FactRevenue, func(d *tapline.FactTableDesc) {
			d.Dims = d.Dims[:2]
		}), "fact_revenue: column currency text is not declared"},
		{"table not declared", slices.DeleteFunc(slices.Clone(tapline.FactTables), func(d *tapline.FactTableDesc) bool {
			return d.Table == tapline.FactFunnelSteps
		}), "fact_funnel_steps: table exists but no"},
		{"daily key order", edit(tapline.FactDaily, func(d *tapline.FactTableDesc) { d.TimeAt = 0 }), "fact_daily: primary key"},
		{"daily as hourly", edit(tapline.FactDaily, func(d *tapline.FactTableDesc) { d.Period = tapline.PeriodHour }), "fact_daily: no column hour"},
		{"weekly as daily", edit(tapline.FactWeekly, func(d *tapline.FactTableDesc) { d.Period = tapline.PeriodDay }), "fact_weekly: no column day"},
		{"table not migrated", append(slices.Clone(tapline.FactTables), &tapline.FactTableDesc{Table: "nope"}),
			"fact_nope: declared, but no such table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.diff(tt.declared)
			if !slices.ContainsFunc(got, func(d string) bool { return strings.HasPrefix(d, tt.want) }) {
				t.Errorf("diff = %q, want one starting %q", got, tt.want)
			}
		})
	}
}
