package cassandra

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// These split the store's statements into their clauses. They know only
// the shapes the store uses; a statement of another shape is a problem in
// itself.
var (
	selectRe   = regexp.MustCompile(`^SELECT ((?:\w+|token\([\w, ]+\))(?:, (?:\w+|token\([\w, ]+\)))*) FROM ks\.(\w+) WHERE (.+?)(?: ORDER BY ([\w, ]+))?(?: LIMIT (\d+))?$`)
	selectedRe = regexp.MustCompile(`token\([\w, ]+\)|\w+`)
	insertRe   = regexp.MustCompile(`^INSERT INTO ks\.(\w+) \(([\w, ]+)\) VALUES \(([?, ]+)\)( IF NOT EXISTS)?$`)
	updateRe   = regexp.MustCompile(`^UPDATE ks\.(\w+) SET (.+?) WHERE (.+?)(?: IF (.+))?$`)
	deleteRe   = regexp.MustCompile(`^DELETE FROM ks\.(\w+) WHERE (.+?)(?: IF (.+))?$`)
	condRe     = regexp.MustCompile(`^(\w+|token\([\w, ]+\)) (=|<|<=|>|>=) (\?|token\(\?(?:, \?)*\))$`)
)

// cqlProblems returns what a Cassandra 4/5 node would refuse in stmt, or
// what would make it scan more than the partitions it names: the whole
// partition key restricted by equality (or a token range over exactly the
// partition key, in order, for a scan), clustering columns restricted in
// order with a range on the last restricted one only, no restriction on
// another column, no ALLOW FILTERING, ORDER BY on clustering columns only,
// lightweight-transaction conditions only on single rows, INSERT naming
// the whole primary key, UPDATE setting no primary-key column.
func cqlProblems(stmt string, tables map[string]table) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if strings.Contains(strings.ToUpper(stmt), "ALLOW FILTERING") {
		bad("uses ALLOW FILTERING")
	}
	if strings.Contains(stmt, ";") {
		bad("contains ';'")
	}
	lookup := func(name string) (table, bool) {
		tb, ok := tables[name]
		if !ok {
			bad("no table %s", name)
		}
		return tb, ok
	}
	isKey := func(tb table, col string) bool {
		return slices.Contains(tb.partitionKey, col) || slices.Contains(tb.clustering, col)
	}
	// where checks a WHERE clause; it returns whether the clause selects
	// a single row (every primary-key column restricted by equality).
	where := func(tb table, clause string, allowToken bool) (singleRow bool) {
		eq := map[string]int{}
		ranged := map[string]int{}
		var tokens []string
		for cond := range strings.SplitSeq(clause, " AND ") {
			m := condRe.FindStringSubmatch(cond)
			if m == nil {
				bad("cannot read condition %q", cond)
				continue
			}
			col, op, value := m[1], m[2], m[3]
			if cols, ok := strings.CutPrefix(col, "token("); ok {
				tokens = append(tokens, strings.TrimSuffix(cols, ")"))
				if op == "=" {
					bad("restricts a token by equality")
				}
				// token(?, ?): the token of a partition key bound whole.
				if marks := strings.Count(value, "?"); value != "?" && marks != len(tb.partitionKey) {
					bad("compares a token with token() of %d values, not of the %d partition-key columns", marks, len(tb.partitionKey))
				}
				continue
			}
			if value != "?" {
				bad("compares column %s with %s", col, value)
			}
			if _, ok := tb.columns[col]; !ok {
				bad("no column %s", col)
			} else if !isKey(tb, col) {
				bad("restricts regular column %s (needs ALLOW FILTERING or an index)", col)
			}
			if slices.Contains(tb.partitionKey, col) && op != "=" {
				bad("restricts partition-key column %s with %s", col, op)
			}
			if op == "=" {
				eq[col]++
			} else {
				ranged[col]++
			}
		}
		if len(tokens) > 0 {
			if !allowToken {
				bad("restricts a token outside a scan")
			}
			for _, cols := range tokens {
				if cols != strings.Join(tb.partitionKey, ", ") {
					bad("token(%s) is not the token of the partition key (%s)", cols, strings.Join(tb.partitionKey, ", "))
				}
			}
			if len(eq)+len(ranged) > 0 {
				bad("mixes a token range with column restrictions")
			}
			return false
		}
		for _, k := range tb.partitionKey {
			if eq[k] != 1 {
				bad("restricts partition-key column %s %d times by equality, want once", k, eq[k])
			}
		}
		// Clustering columns: equalities, then at most one ranged column,
		// then nothing.
		done := false
		for _, c := range tb.clustering {
			switch {
			case done && (eq[c] > 0 || ranged[c] > 0):
				bad("restricts clustering column %s after an unrestricted or ranged one", c)
			case eq[c] > 0 && ranged[c] > 0:
				bad("restricts clustering column %s both by equality and by range", c)
			case eq[c] > 1 || ranged[c] > 2:
				bad("restricts clustering column %s too often", c)
			case eq[c] == 0:
				done = true
			}
		}
		for _, c := range tb.clustering {
			if eq[c] == 0 {
				return false
			}
		}
		return true
	}

	switch {
	case selectRe.MatchString(stmt):
		m := selectRe.FindStringSubmatch(stmt)
		tb, ok := lookup(m[2])
		if !ok {
			break
		}
		for _, col := range selectedRe.FindAllString(m[1], -1) {
			if cols, ok := strings.CutPrefix(col, "token("); ok {
				if cols = strings.TrimSuffix(cols, ")"); cols != strings.Join(tb.partitionKey, ", ") {
					bad("selects token(%s), not the token of the partition key (%s)", cols, strings.Join(tb.partitionKey, ", "))
				}
			} else if _, ok := tb.columns[col]; !ok {
				bad("selects unknown column %s", col)
			}
		}
		where(tb, m[3], true)
		if m[4] != "" {
			for ob := range strings.SplitSeq(m[4], ", ") {
				col, _, _ := strings.Cut(ob, " ")
				if !slices.Contains(tb.clustering, col) {
					bad("orders by %s, not a clustering column", col)
				}
			}
			if strings.Contains(m[3], "token(") {
				bad("orders a token scan")
			}
		}
	case insertRe.MatchString(stmt):
		m := insertRe.FindStringSubmatch(stmt)
		tb, ok := lookup(m[1])
		if !ok {
			break
		}
		cols := strings.Split(m[2], ", ")
		if marks := strings.Count(m[3], "?"); marks != len(cols) {
			bad("inserts %d columns with %d bind markers", len(cols), marks)
		}
		for _, c := range cols {
			if _, ok := tb.columns[c]; !ok {
				bad("inserts unknown column %s", c)
			}
		}
		for _, k := range slices.Concat(tb.partitionKey, tb.clustering) {
			if !slices.Contains(cols, k) {
				bad("inserts without primary-key column %s", k)
			}
		}
	case updateRe.MatchString(stmt):
		m := updateRe.FindStringSubmatch(stmt)
		tb, ok := lookup(m[1])
		if !ok {
			break
		}
		for set := range strings.SplitSeq(m[2], ", ") {
			col, ok := strings.CutSuffix(set, " = ?")
			if _, known := tb.columns[col]; !ok || !known {
				bad("cannot read assignment %q", set)
			} else if isKey(tb, col) {
				bad("sets primary-key column %s", col)
			}
		}
		if !where(tb, m[3], false) {
			bad("updates more than one row")
		}
		if m[4] != "" && !regexp.MustCompile(`^\w+ = \?( AND \w+ = \?)*$`).MatchString(m[4]) {
			bad("cannot read condition %q", m[4])
		} else if m[4] != "" {
			for cond := range strings.SplitSeq(m[4], " AND ") {
				col := strings.TrimSuffix(cond, " = ?")
				if _, ok := tb.columns[col]; !ok {
					bad("condition on unknown column %s", col)
				} else if isKey(tb, col) {
					bad("condition on primary-key column %s", col)
				}
			}
		}
	case deleteRe.MatchString(stmt):
		m := deleteRe.FindStringSubmatch(stmt)
		tb, ok := lookup(m[1])
		if !ok {
			break
		}
		single := where(tb, m[2], false)
		if m[3] != "" && !single {
			bad("a conditional delete must name one row")
		}
	default:
		bad("is not a statement shape the checker knows")
	}
	return problems
}

func TestStatementsAreValidCQL(t *testing.T) {
	t.Parallel()
	tables := schema(t)
	for name, stmt := range allStatements(newStatements("ks")) {
		t.Run(name, func(t *testing.T) {
			if p := cqlProblems(stmt, tables); len(p) > 0 {
				t.Errorf("%q:\n%s", stmt, strings.Join(p, "\n"))
			}
		})
	}
}

// TestCQLProblems shows the checker refuses what Cassandra would.
func TestCQLProblems(t *testing.T) {
	t.Parallel()
	tables := schema(t)
	tests := []struct {
		name, stmt string
		want       string // a substring of one problem; "" for none
	}{
		{"Fine", `SELECT data FROM ks.hits_by_fingerprint WHERE app_id = ? AND day = ? AND fingerprint = ? AND time_ns >= ? AND time_ns <= ?`, ""},
		{"OrderByClustering", `SELECT data FROM ks.installs_by_referrer_hit WHERE app_id = ? AND hit_id = ? ORDER BY time_ns ASC`, ""},
		{"RangeDelete", `DELETE FROM ks.app_cutoffs WHERE app_id = ? AND cutoff_ns < ?`, ""},
		{"PartialPartitionKey", `SELECT data FROM ks.hits_by_fingerprint WHERE app_id = ? AND fingerprint = ?`, "partition-key column day"},
		{"PartitionKeyRange", `SELECT data FROM ks.hits WHERE app_id = ? AND id > ?`, "partition-key column id with >"},
		{"RegularColumn", `SELECT data FROM ks.hits WHERE app_id = ? AND id = ? AND time_ns > ?`, "regular column time_ns"},
		{"SkippedClustering", `SELECT data FROM ks.hits_by_fingerprint WHERE app_id = ? AND day = ? AND fingerprint = ? AND id = ?`, "clustering column id after"},
		{"RangeThenEquality", `SELECT data FROM ks.hits_by_fingerprint WHERE app_id = ? AND day = ? AND fingerprint = ? AND time_ns > ? AND id = ?`, "clustering column id after"},
		{"AllowFiltering", `SELECT data FROM ks.hits WHERE app_id = ? AND id = ? ALLOW FILTERING`, "ALLOW FILTERING"},
		{"OrderByRegular", `SELECT data FROM ks.installs_by_referrer_hit WHERE app_id = ? AND hit_id = ? ORDER BY data DESC`, "not a clustering column"},
		{"TokenOfPart", `SELECT data FROM ks.events WHERE token(app_id) > ? AND token(app_id) <= ?`, "not the token of the partition key"},
		{"TokenOutOfOrder", `SELECT data FROM ks.events WHERE token(id, app_id) > ?`, "not the token of the partition key"},
		{"InsertWithoutClustering", `INSERT INTO ks.hits_by_ad_id (app_id, day, ad_id, id, data) VALUES (?, ?, ?, ?, ?)`, "primary-key column time_ns"},
		{"InsertMarkers", `INSERT INTO ks.hits (app_id, id, time_ns, data) VALUES (?, ?, ?) IF NOT EXISTS`, "4 columns with 3 bind markers"},
		{"UpdateKey", `UPDATE ks.hits SET id = ? WHERE app_id = ? AND id = ?`, "sets primary-key column id"},
		{"UpdateRange", `UPDATE ks.app_cutoffs SET cutoff_ns = ? WHERE app_id = ?`, "sets primary-key column cutoff_ns"},
		{"ConditionalRangeDelete", `DELETE FROM ks.app_cutoffs WHERE app_id = ? AND cutoff_ns < ? IF EXISTS`, "must name one row"},
		{"UnknownTable", `SELECT data FROM ks.nope WHERE app_id = ?`, "no table nope"},
		{"Semicolon", `SELECT data FROM ks.hits WHERE app_id = ? AND id = ?;`, "contains ';'"},
		{"TokenOfKey", `SELECT data FROM ks.events WHERE token(app_id, id) > token(?, ?)`, ""},
		{"TokenOfKeyPart", `SELECT data FROM ks.events WHERE token(app_id, id) > token(?)`, "token() of 1 values"},
		{"ColumnToken", `SELECT data FROM ks.events WHERE app_id = token(?, ?) AND id = ?`, "compares column app_id"},
		{"SelectToken", `SELECT app_id, token(app_id, id), data FROM ks.events WHERE token(app_id, id) > ? AND token(app_id, id) <= ?`, ""},
		{"SelectTokenOfPart", `SELECT token(app_id), data FROM ks.events WHERE token(app_id, id) > ?`, "selects token(app_id)"},
		{"SelectUnknown", `SELECT nope FROM ks.events WHERE app_id = ? AND id = ?`, "selects unknown column nope"},
		{"ConditionalUpdate", `UPDATE ks.funnel_states SET data = ? WHERE app_id = ? AND install_id = ? IF history_len = ? AND last_by = ?`, ""},
		{"ConditionOnKey", `UPDATE ks.funnel_states SET data = ? WHERE app_id = ? AND install_id = ? IF install_id = ?`, "condition on primary-key column install_id"},
		{"ConditionOnUnknown", `UPDATE ks.funnel_states SET data = ? WHERE app_id = ? AND install_id = ? IF nope = ?`, "condition on unknown column nope"},
		{"AscendingRange", `SELECT data FROM ks.events_by_install WHERE app_id = ? AND install_id = ? AND time_ns >= ?`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := cqlProblems(tt.stmt, tables)
			if tt.want == "" {
				if len(p) > 0 {
					t.Errorf("cqlProblems(%q) = %q, want none", tt.stmt, p)
				}
				return
			}
			if len(p) == 0 {
				t.Fatalf("cqlProblems(%q) = none, want one with %q", tt.stmt, tt.want)
			}
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("cqlProblems(%q) = %q, want one with %q", tt.stmt, p, tt.want)
			}
		})
	}
}
