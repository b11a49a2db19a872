package postgres

import (
	"time"

	"tapline"
)

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

// HourlyOnly returns reports on r's database that read no daily rollup.
func (r *Reports) HourlyOnly() *Reports { return &Reports{db: r.db, hourlyOnly: true} }

// SplitRange exposes splitRange: the span of f's days, divided.
func SplitRange(f tapline.StatsFilter, byDay bool) (weeks, days, hours [][2]time.Time, err error) {
	s, err := checkFilter(f)
	if err != nil {
		return nil, nil, nil, err
	}
	w, d, h := splitRange(s, byDay)
	pairs := func(rs []timeRange) [][2]time.Time {
		var out [][2]time.Time
		for _, r := range rs {
			out = append(out, [2]time.Time{r.from, r.to})
		}
		return out
	}
	return pairs(w), pairs(d), pairs(h), nil
}
