package postgres

// FactTableName exposes factTableName to the schema test.
var FactTableName = factTableName

// MigrateTo migrates up or down to version v, for tests of a migration's
// data changes.
func (db *DB) MigrateTo(v uint) error {
	m, closeFn, err := db.migrator()
	if err != nil {
		return err
	}
	defer closeFn()
	return m.Migrate(v)
}
