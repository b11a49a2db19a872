package cassandra

import "fmt"

// statements holds the CQL of the store, with table names qualified by the
// keyspace so one session serves any keyspace. Every statement binds all
// the partition-key columns of its table, so gocql routes it to a replica.
type statements struct {
	hits, events byIDTable

	hitsByFP, hitsByAdID         dayTable
	installsByFP, installsByAdID dayTable
	installsByVendorID           dayTable
	installsByRefHit             string
	selectRefHit                 string

	convInsert, convSelect   string
	convReplace              string
	convByHit, convByInstall convIndex

	cutoff, cutoffInsert, cutoffPrune string

	reengInsert      string // app_id, id, hit_id, data; IF NOT EXISTS
	reengSelect      string // app_id, id → data
	reengClaim       string // app_id, hit_id, id, data; IF NOT EXISTS
	reengClaimSelect string // app_id, hit_id → id, data

	scanEvents string // start, end → app_id, time_ns, data

	eventsByInstall string // app_id, install_id, time_ns, id, data
	selectByInstall string // app_id, install_id, lo → data
	scanInstalls    string // start, end → app_id, install_id, token, time_ns, data

	fsSelect  string // app_id, install_id → history_len, last_by, data
	fsInsert  string // app_id, install_id, history_len, last_by, data; IF NOT EXISTS
	fsReplace string // history_len, last_by, data, app_id, install_id; IF history_len, last_by

	// The deletes of EraseDevice, one row each.
	deleteRefHit    string // app_id, hit_id, time_ns, id
	deleteByInstall string // app_id, install_id, time_ns, id
	reengDelete     string // app_id, id
	reengClaimDel   string // app_id, hit_id; IF id = ?
}

// dayTable holds the statements of an index table partitioned by (app_id,
// day, key) and clustered by (time_ns, id).
type dayTable struct {
	insert    string // app_id, day, key, time_ns, id, data
	selectDay string // app_id, day, key, lo, hi → data
	delete    string // app_id, day, key, time_ns, id
}

// convIndex holds the statements of a conversion index table.
type convIndex struct {
	insert, delete string // app_id, value, id
	selectIDs      string // app_id, value → id
}

func newStatements(ks string) statements {
	byID := func(table, noun string) byIDTable {
		return byIDTable{
			noun: noun,
			insertIfAbsent: fmt.Sprintf(
				`INSERT INTO %s.%s (app_id, id, time_ns, data) VALUES (?, ?, ?, ?) IF NOT EXISTS`, ks, table),
			replace: fmt.Sprintf(
				`UPDATE %s.%s SET time_ns = ?, data = ? WHERE app_id = ? AND id = ? IF data = ?`, ks, table),
			selectByID: fmt.Sprintf(
				`SELECT time_ns, data FROM %s.%s WHERE app_id = ? AND id = ?`, ks, table),
			delete: fmt.Sprintf(`DELETE FROM %s.%s WHERE app_id = ? AND id = ?`, ks, table),
			scanFrom: fmt.Sprintf(
				`SELECT token(app_id, id), app_id, id, time_ns, data FROM %s.%s WHERE token(app_id, id) > ?`, ks, table),
			scanAfter: fmt.Sprintf(
				`SELECT token(app_id, id), app_id, id, time_ns, data FROM %s.%s WHERE token(app_id, id) > token(?, ?)`, ks, table),
			scanAt: fmt.Sprintf(
				`SELECT token(app_id, id), app_id, id, time_ns, data FROM %s.%s WHERE token(app_id, id) >= token(?, ?) AND token(app_id, id) <= token(?, ?)`, ks, table),
		}
	}
	day := func(table, key string) dayTable {
		return dayTable{
			insert: fmt.Sprintf(
				`INSERT INTO %s.%s (app_id, day, %s, time_ns, id, data) VALUES (?, ?, ?, ?, ?, ?)`, ks, table, key),
			selectDay: fmt.Sprintf(
				`SELECT data FROM %s.%s WHERE app_id = ? AND day = ? AND %s = ? AND time_ns >= ? AND time_ns <= ?`, ks, table, key),
			delete: fmt.Sprintf(
				`DELETE FROM %s.%s WHERE app_id = ? AND day = ? AND %s = ? AND time_ns = ? AND id = ?`, ks, table, key),
		}
	}
	index := func(table, col string) convIndex {
		return convIndex{
			insert:    fmt.Sprintf(`INSERT INTO %s.%s (app_id, %s, id) VALUES (?, ?, ?)`, ks, table, col),
			delete:    fmt.Sprintf(`DELETE FROM %s.%s WHERE app_id = ? AND %s = ? AND id = ?`, ks, table, col),
			selectIDs: fmt.Sprintf(`SELECT id FROM %s.%s WHERE app_id = ? AND %s = ?`, ks, table, col),
		}
	}
	return statements{
		hits:               byID("hits", "hit"),
		events:             byID("events", "event"),
		hitsByFP:           day("hits_by_fingerprint", "fingerprint"),
		hitsByAdID:         day("hits_by_ad_id", "ad_id"),
		installsByFP:       day("installs_by_fingerprint", "fingerprint"),
		installsByAdID:     day("installs_by_ad_id", "ad_id"),
		installsByVendorID: day("installs_by_vendor_id", "idfv"),
		installsByRefHit: fmt.Sprintf(
			`INSERT INTO %s.installs_by_referrer_hit (app_id, hit_id, time_ns, id, data) VALUES (?, ?, ?, ?, ?)`, ks),
		selectRefHit: fmt.Sprintf(
			`SELECT data FROM %s.installs_by_referrer_hit WHERE app_id = ? AND hit_id = ? AND time_ns >= ?`, ks),
		convInsert: fmt.Sprintf(
			`INSERT INTO %s.conversions (app_id, id, install_id, hit_id, data) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, ks),
		convReplace: fmt.Sprintf(
			`UPDATE %s.conversions SET install_id = ?, hit_id = ?, data = ? WHERE app_id = ? AND id = ? IF data = ?`, ks),
		convSelect:    fmt.Sprintf(`SELECT data FROM %s.conversions WHERE app_id = ? AND id = ?`, ks),
		convByHit:     index("conversions_by_hit", "hit_id"),
		convByInstall: index("conversions_by_install", "install_id"),
		cutoff:        fmt.Sprintf(`SELECT cutoff_ns FROM %s.app_cutoffs WHERE app_id = ? LIMIT 1`, ks),
		cutoffInsert:  fmt.Sprintf(`INSERT INTO %s.app_cutoffs (app_id, cutoff_ns) VALUES (?, ?)`, ks),
		cutoffPrune:   fmt.Sprintf(`DELETE FROM %s.app_cutoffs WHERE app_id = ? AND cutoff_ns < ?`, ks),
		reengInsert: fmt.Sprintf(
			`INSERT INTO %s.reengagements (app_id, id, hit_id, data) VALUES (?, ?, ?, ?) IF NOT EXISTS`, ks),
		reengSelect: fmt.Sprintf(`SELECT data FROM %s.reengagements WHERE app_id = ? AND id = ?`, ks),
		reengClaim: fmt.Sprintf(
			`INSERT INTO %s.reengagements_by_hit (app_id, hit_id, id, data) VALUES (?, ?, ?, ?) IF NOT EXISTS`, ks),
		reengClaimSelect: fmt.Sprintf(`SELECT id, data FROM %s.reengagements_by_hit WHERE app_id = ? AND hit_id = ?`, ks),
		scanEvents: fmt.Sprintf(
			`SELECT app_id, time_ns, data FROM %s.events WHERE token(app_id, id) > ? AND token(app_id, id) <= ?`, ks),
		eventsByInstall: fmt.Sprintf(
			`INSERT INTO %s.events_by_install (app_id, install_id, time_ns, id, data) VALUES (?, ?, ?, ?, ?)`, ks),
		selectByInstall: fmt.Sprintf(
			`SELECT data FROM %s.events_by_install WHERE app_id = ? AND install_id = ? AND time_ns >= ?`, ks),
		scanInstalls: fmt.Sprintf(
			`SELECT app_id, install_id, token(app_id, install_id), time_ns, data FROM %s.events_by_install WHERE token(app_id, install_id) > ? AND token(app_id, install_id) <= ?`, ks),
		fsSelect: fmt.Sprintf(
			`SELECT history_len, last_by, data FROM %s.funnel_states WHERE app_id = ? AND install_id = ?`, ks),
		fsInsert: fmt.Sprintf(
			`INSERT INTO %s.funnel_states (app_id, install_id, history_len, last_by, data) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, ks),
		fsReplace: fmt.Sprintf(
			`UPDATE %s.funnel_states SET history_len = ?, last_by = ?, data = ? WHERE app_id = ? AND install_id = ? IF history_len = ? AND last_by = ?`, ks),
		deleteRefHit: fmt.Sprintf(
			`DELETE FROM %s.installs_by_referrer_hit WHERE app_id = ? AND hit_id = ? AND time_ns = ? AND id = ?`, ks),
		deleteByInstall: fmt.Sprintf(
			`DELETE FROM %s.events_by_install WHERE app_id = ? AND install_id = ? AND time_ns = ? AND id = ?`, ks),
		reengDelete: fmt.Sprintf(`DELETE FROM %s.reengagements WHERE app_id = ? AND id = ?`, ks),
		reengClaimDel: fmt.Sprintf(
			`DELETE FROM %s.reengagements_by_hit WHERE app_id = ? AND hit_id = ? IF id = ?`, ks),
	}
}
