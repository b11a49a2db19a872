package postgres

// FactTableName exposes factTableName to the schema test.
var FactTableName = factTableName

// MigrateSteps applies n migrations up (n > 0) or down (n < 0), for tests of
// a migration's data changes.
func (db *DB) MigrateSteps(n int) error {
	m, closeFn, err := db.migrator()
	if err != nil {
		return err
	}
	defer closeFn()
	return m.Steps(n)
}
