package cassandra

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4/database/multistmt"

	"tapline/migrations"
)

// table is what the tests read of a CREATE TABLE statement.
type table struct {
	columns      map[string]string // name → type
	partitionKey []string
	clustering   []string // clustering columns, in order
	options      string   // the WITH clause
}

var (
	createRe = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\)\s*(?:WITH (.*))?$`)
	identRe  = regexp.MustCompile(`\b[a-z_][a-z0-9_]*\b`)
	keyEqRe  = regexp.MustCompile(`\b([a-z_]+) = \?`)
)

// statementsOf splits a migration the way golang-migrate's multi-statement
// mode does (on ';'), dropping comment lines and blank remainders.
func statementsOf(t *testing.T, name string) []string {
	t.Helper()
	b, err := fs.ReadFile(migrations.Cassandra, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var out []string
	for _, chunk := range strings.Split(string(b), ";") {
		var lines []string
		for _, l := range strings.Split(chunk, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}

// schema parses every .up.cql into its tables.
func schema(t *testing.T) map[string]table {
	t.Helper()
	ups, err := fs.Glob(migrations.Cassandra, "cassandra/*.up.cql")
	if err != nil || len(ups) == 0 {
		t.Fatalf("no up migrations: %v", err)
	}
	tables := map[string]table{}
	for _, up := range ups {
		for _, st := range statementsOf(t, up) {
			m := createRe.FindStringSubmatch(st)
			if m == nil {
				t.Fatalf("%s: statement is not a CREATE TABLE IF NOT EXISTS:\n%s", up, st)
			}
			tb := table{columns: map[string]string{}, options: m[3]}
			for _, l := range strings.Split(m[2], "\n") {
				l = strings.TrimSuffix(strings.TrimSpace(l), ",")
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, "PRIMARY KEY") {
					var ok bool
					tb.partitionKey, tb.clustering, ok = primaryKey(l)
					if !ok {
						t.Fatalf("%s: cannot read %q", m[1], l)
					}
					continue
				}
				f := strings.Fields(l)
				if len(f) != 2 {
					t.Fatalf("%s: cannot read column %q", m[1], l)
				}
				tb.columns[f[0]] = f[1]
			}
			if _, dup := tables[m[1]]; dup {
				t.Fatalf("table %s created twice", m[1])
			}
			tables[m[1]] = tb
		}
	}
	return tables
}

// primaryKey reads "PRIMARY KEY ((a, b), c, d)" or "PRIMARY KEY (a, c)".
func primaryKey(def string) (partition, clustering []string, ok bool) {
	inner, ok := strings.CutPrefix(def, "PRIMARY KEY (")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, nil, false
	}
	inner = strings.TrimSuffix(inner, ")")
	split := func(s string) []string {
		var out []string
		for c := range strings.SplitSeq(s, ",") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
		return out
	}
	if rest, ok := strings.CutPrefix(inner, "("); ok {
		pk, cl, ok := strings.Cut(rest, ")")
		if !ok {
			return nil, nil, false
		}
		return split(pk), split(cl), len(split(pk)) > 0
	}
	cols := split(inner)
	if len(cols) == 0 {
		return nil, nil, false
	}
	return cols[:1], cols[1:], true
}

func TestPrimaryKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		def                   string
		partition, clustering []string
	}{
		{"Composite", "PRIMARY KEY ((app_id, id))", []string{"app_id", "id"}, nil},
		{"CompositeClustered", "PRIMARY KEY ((app_id, day, fp), time_ns, id)", []string{"app_id", "day", "fp"}, []string{"time_ns", "id"}},
		{"Simple", "PRIMARY KEY (app_id, cutoff_ns)", []string{"app_id"}, []string{"cutoff_ns"}},
	}
	for _, tt := range tests {
		p, c, ok := primaryKey(tt.def)
		if !ok || !slices.Equal(p, tt.partition) || !slices.Equal(c, tt.clustering) {
			t.Errorf("%s: primaryKey(%q) = %v, %v, %v; want %v, %v", tt.name, tt.def, p, c, ok, tt.partition, tt.clustering)
		}
	}
}

func TestMigrationsSchema(t *testing.T) {
	t.Parallel()
	tables := schema(t)
	raw := []string{"hits", "hits_by_fingerprint", "hits_by_ad_id", "events",
		"installs_by_fingerprint", "installs_by_ad_id", "installs_by_referrer_hit", "events_by_install", "installs_by_vendor_id"}
	kept := []string{"app_cutoffs", "conversions", "conversions_by_install", "conversions_by_hit", "reengagements", "reengagements_by_hit"}
	// Replaced in place, expiring 60 days after the last write: not in
	// time windows, which overwrites would keep from expiring whole.
	replaced := []string{"funnel_states"}
	if got, want := slices.Sorted(maps.Keys(tables)), slices.Sorted(slices.Values(slices.Concat(raw, kept, replaced))); !slices.Equal(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
	for _, name := range replaced {
		tb := tables[name]
		if !strings.Contains(tb.options, "default_time_to_live = 5184000") || strings.Contains(tb.options, "TimeWindow") {
			t.Errorf("%s: options %q, want default_time_to_live = 5184000 without time windows", name, tb.options)
		}
	}
	for _, name := range raw {
		tb := tables[name]
		if !strings.Contains(tb.options, "default_time_to_live = 5184000") {
			t.Errorf("%s: options %q lack default_time_to_live = 5184000", name, tb.options)
		}
		if !strings.Contains(tb.options, "'class': 'TimeWindowCompactionStrategy'") ||
			!strings.Contains(tb.options, "'compaction_window_unit': 'DAYS'") {
			t.Errorf("%s: options %q lack TimeWindowCompactionStrategy in days", name, tb.options)
		}
		if pk := tb.partitionKey; pk[0] != "app_id" {
			t.Errorf("%s: partition key %v does not start with app_id", name, pk)
		}
		if strings.Contains(name, "_by_fingerprint") || strings.Contains(name, "_by_ad_id") {
			if !slices.Contains(tb.partitionKey, "day") {
				t.Errorf("%s: partition key %v has no day bucket", name, tb.partitionKey)
			}
		}
	}
	// Lookups return rows newest first by reading partitions in clustering
	// order, and the cut-off read takes the first row (LIMIT 1): both need
	// the time column first and descending. An installation's events are
	// read oldest first.
	oldestFirst := map[string]bool{"events_by_install": true}
	for name, tb := range tables {
		if len(tb.clustering) == 0 || !strings.HasSuffix(tb.clustering[0], "_ns") {
			continue
		}
		dir := " DESC"
		if oldestFirst[name] {
			dir = " ASC"
		}
		order := make([]string, len(tb.clustering))
		for i, c := range tb.clustering {
			order[i] = c + dir
		}
		if want := "CLUSTERING ORDER BY (" + strings.Join(order, ", ") + ")"; !strings.Contains(tb.options, want) {
			t.Errorf("%s: options %q lack %s", name, tb.options, want)
		}
	}
	for _, name := range kept {
		tb := tables[name]
		if strings.Contains(tb.options, "time_to_live") || strings.Contains(tb.options, "TimeWindow") {
			t.Errorf("%s: options %q must not expire rows", name, tb.options)
		}
	}
}

func TestMigrationsDown(t *testing.T) {
	t.Parallel()
	ups, _ := fs.Glob(migrations.Cassandra, "cassandra/*.up.cql")
	for _, up := range ups {
		down := strings.TrimSuffix(up, ".up.cql") + ".down.cql"
		var created, dropped []string
		for _, st := range statementsOf(t, up) {
			created = append(created, createRe.FindStringSubmatch(st)[1])
		}
		for _, st := range statementsOf(t, down) {
			name, ok := strings.CutPrefix(st, "DROP TABLE IF EXISTS ")
			if !ok {
				t.Errorf("%s: %q is not a DROP TABLE IF EXISTS", down, st)
			}
			dropped = append(dropped, name)
		}
		slices.Sort(created)
		slices.Sort(dropped)
		if !slices.Equal(created, dropped) {
			t.Errorf("%s drops %v, want what %s creates: %v", down, dropped, up, created)
		}
	}
}

// TestStatementsMatchSchema checks every statement of the store against the
// migrations: the tables and columns exist, and every statement but the
// token-range scan binds the whole partition key, so it is routed to a
// replica and stays within one partition.
func TestStatementsMatchSchema(t *testing.T) {
	t.Parallel()
	tables := schema(t)
	all := allStatements(newStatements("ks"))
	tableRe := regexp.MustCompile(`\bks\.(\w+)\b`)
	for name, stmt := range all {
		t.Run(name, func(t *testing.T) {
			m := tableRe.FindStringSubmatch(stmt)
			if m == nil {
				t.Fatalf("%q names no ks.table", stmt)
			}
			tb, ok := tables[m[1]]
			if !ok {
				t.Fatalf("%q: no table %s in the migrations", stmt, m[1])
			}
			rest := strings.Replace(stmt, m[0], "", 1)
			for _, id := range identRe.FindAllString(rest, -1) {
				if _, ok := tb.columns[id]; !ok && id != "token" {
					t.Errorf("%q: %s has no column %q", stmt, m[1], id)
				}
			}
			if strings.Contains(stmt, " WHERE token(") {
				if !strings.Contains(stmt, "token("+strings.Join(tb.partitionKey, ", ")+")") {
					t.Errorf("%q does not scan by the token of the partition key %v", stmt, tb.partitionKey)
				}
				return
			}
			bound := map[string]bool{}
			if cols, ok := strings.CutPrefix(stmt, "INSERT INTO "+m[0]+" ("); ok {
				for _, c := range strings.Split(cols[:strings.Index(cols, ")")], ",") {
					bound[strings.TrimSpace(c)] = true
				}
			} else {
				_, where, _ := strings.Cut(stmt, " WHERE ")
				for _, kv := range keyEqRe.FindAllStringSubmatch(where, -1) {
					bound[kv[1]] = true
				}
			}
			for _, k := range tb.partitionKey {
				if !bound[k] {
					t.Errorf("%q does not bind partition-key column %s", stmt, k)
				}
			}
		})
	}
}

// allStatements names every statement of st.
func allStatements(st statements) map[string]string {
	return map[string]string{
		"hits.insertIfAbsent": st.hits.insertIfAbsent, "hits.replace": st.hits.replace, "hits.selectByID": st.hits.selectByID,
		"events.insertIfAbsent": st.events.insertIfAbsent, "events.replace": st.events.replace, "events.selectByID": st.events.selectByID,
		"hitsByFP.insert": st.hitsByFP.insert, "hitsByFP.selectDay": st.hitsByFP.selectDay,
		"hitsByAdID.insert": st.hitsByAdID.insert, "hitsByAdID.selectDay": st.hitsByAdID.selectDay,
		"installsByFP.insert": st.installsByFP.insert, "installsByFP.selectDay": st.installsByFP.selectDay,
		"installsByAdID.insert": st.installsByAdID.insert, "installsByAdID.selectDay": st.installsByAdID.selectDay,
		"installsByVendorID.insert": st.installsByVendorID.insert, "installsByVendorID.selectDay": st.installsByVendorID.selectDay,
		"installsByRefHit": st.installsByRefHit, "selectRefHit": st.selectRefHit,
		"convInsert": st.convInsert, "convSelect": st.convSelect, "convReplace": st.convReplace,
		"convByHit.insert": st.convByHit.insert, "convByHit.delete": st.convByHit.delete, "convByHit.selectIDs": st.convByHit.selectIDs,
		"convByInstall.insert": st.convByInstall.insert, "convByInstall.delete": st.convByInstall.delete, "convByInstall.selectIDs": st.convByInstall.selectIDs,
		"cutoff": st.cutoff, "cutoffInsert": st.cutoffInsert, "cutoffPrune": st.cutoffPrune, "scanEvents": st.scanEvents,
		"eventsByInstall": st.eventsByInstall, "selectByInstall": st.selectByInstall, "scanInstalls": st.scanInstalls,
		"fsSelect": st.fsSelect, "fsInsert": st.fsInsert, "fsReplace": st.fsReplace,
		"reengInsert": st.reengInsert, "reengSelect": st.reengSelect, "reengClaim": st.reengClaim, "reengClaimSelect": st.reengClaimSelect,
		"hits.delete": st.hits.delete, "events.delete": st.events.delete,
		"hits.scanFrom": st.hits.scanFrom, "hits.scanAfter": st.hits.scanAfter, "hits.scanAt": st.hits.scanAt,
		"events.scanFrom": st.events.scanFrom, "events.scanAfter": st.events.scanAfter, "events.scanAt": st.events.scanAt,
		"hitsByFP.delete": st.hitsByFP.delete, "hitsByAdID.delete": st.hitsByAdID.delete,
		"installsByFP.delete": st.installsByFP.delete, "installsByAdID.delete": st.installsByAdID.delete,
		"deleteRefHit": st.deleteRefHit, "deleteByInstall": st.deleteByInstall,
		"reengDelete": st.reengDelete, "reengClaimDel": st.reengClaimDel,
	}
}

// TestMigrationsSplitByDriver splits every migration with golang-migrate's
// own multi-statement parser, as Migrate's driver does (MultiStatementEnabled),
// and checks that each piece the driver would send is one whole statement:
// not a comment alone (a syntax error on the server) and not a fragment of a
// statement cut at a ';' inside a comment.
func TestMigrationsSplitByDriver(t *testing.T) {
	t.Parallel()
	names, err := fs.Glob(migrations.Cassandra, "cassandra/*.cql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	stmtStart := regexp.MustCompile(`^(CREATE|DROP|ALTER) (TABLE|TYPE|INDEX|MATERIALIZED VIEW) `)
	for _, name := range names {
		f, err := migrations.Cassandra.Open(name)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		var pieces []string
		err = multistmt.Parse(f, []byte(";"), 1<<20, func(m []byte) bool {
			if q := strings.TrimSpace(string(m)); q != "" { // the driver skips blank pieces
				pieces = append(pieces, q)
			}
			return true
		})
		f.Close()
		if err != nil {
			t.Fatalf("split %s: %v", name, err)
		}
		if len(pieces) == 0 {
			t.Errorf("%s: no statements", name)
		}
		for i, q := range pieces {
			var code []string
			for l := range strings.SplitSeq(q, "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
					code = append(code, l)
				}
			}
			if len(code) == 0 || !stmtStart.MatchString(code[0]) || !strings.HasSuffix(q, ";") {
				t.Errorf("%s: piece %d the driver would send is not one statement:\n%s", name, i, q)
			}
		}
	}
}
