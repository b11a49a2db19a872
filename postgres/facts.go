package postgres

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// factTableName returns the SQL table holding fact table t.
func factTableName(t tapline.FactTable) string { return "fact_" + string(t) }

// factUpserts holds, per fact table, the statement adding a batch of rows,
// rendered from its declaration in tapline.FactTables.
var factUpserts = func() map[tapline.FactTable]string {
	m := make(map[tapline.FactTable]string, len(tapline.FactTables))
	for _, d := range tapline.FactTables {
		m[d.Table] = upsertSQL(d)
	}
	return m
}()

// upsertSQL returns the statement adding one batch of rows to table d: its
// parameters are the column arrays args returns.
func upsertSQL(d *tapline.FactTableDesc) string {
	timeType := "timestamptz"
	if d.Period != tapline.PeriodHour {
		timeType = "date"
	}
	cols := []string{"app_id", d.TimeColumn()}
	params := []string{"$1::bigint[]", "$2::" + timeType + "[]"}
	for _, dim := range d.Dims {
		cols = append(cols, dim.Column)
		params = append(params, fmt.Sprintf("$%d::%s[]", len(params)+1, dim.Type))
	}
	n := len(params)
	params = append(params, fmt.Sprintf("$%d::bigint[]", n+1), fmt.Sprintf("$%d::bigint[]", n+2))
	return `INSERT INTO ` + factTableName(d.Table) + ` AS t (` + strings.Join(cols, ", ") + `, count, sum)
		SELECT * FROM unnest(` + strings.Join(params, ", ") + `)
		ON CONFLICT (` + strings.Join(d.Key(), ", ") + `) DO UPDATE SET count = t.count + excluded.count, sum = t.sum + excluded.sum`
}

// args returns the column arrays of rows of table d for upsertSQL: app,
// hour (or day), each dimension (int64s for integer columns, strings for text),
// count and sum.
func args(d *tapline.FactTableDesc, rows []factRow) []any {
	appIDs := make([]int64, len(rows))
	hours := make([]time.Time, len(rows))
	counts := make([]int64, len(rows))
	sums := make([]int64, len(rows))
	for r, row := range rows {
		appIDs[r] = row.key.AppID
		hours[r] = time.Unix(row.key.Hour, 0).UTC()
		counts[r], sums[r] = row.val.Count, row.val.Sum
	}
	out := make([]any, 0, len(d.Dims)+4)
	out = append(out, appIDs, hours)
	for _, dim := range d.Dims {
		if dim.Type == tapline.FactText {
			col := make([]string, len(rows))
			for r, row := range rows {
				col[r] = dim.Text(row.key)
			}
			out = append(out, col)
			continue
		}
		col := make([]int64, len(rows))
		for r, row := range rows {
			col[r] = dim.Int(row.key)
		}
		out = append(out, col)
	}
	return append(out, counts, sums)
}

type factRow struct {
	key tapline.FactKey
	val tapline.FactValue
}

// FactStore keeps the hourly fact tables and consumer offsets in
// PostgreSQL.
type FactStore struct {
	db *DB

	// CampaignCap is how many distinct values of a campaign dimension an
	// app's facts keep; 0 means tapline.CampaignValueCap.
	CampaignCap int

	mu     sync.Mutex
	pruned time.Time              // when cohort_seen was last pruned
	known  map[campaignValue]bool // committed decisions: admitted or not
}

var _ tapline.FactStore = (*FactStore)(nil)

// NewFactStore returns a FactStore on an opened, migrated db.
func NewFactStore(db *DB) *FactStore { return &FactStore{db: db} }

// ApplyFacts adds deltas to the fact tables and stores offsets as the
// consumer's positions in one transaction, with the funnel handoffs (see
// storeHandoffs), conversions (storeConversions) and cohort activity
// (countActivity) of rows. Every key must be a row of a declared table
// (tapline.FactKey.Validate): an unknown table, an hour that is not the
// start of one or a dimension the table does not keep is EINVALID. Zero deltas are skipped; rows are written in primary-key order,
// tables in the order of tapline.FactTables, so concurrent callers do not
// deadlock. A lost connection is EUNAVAILABLE.
func (s *FactStore) ApplyFacts(ctx context.Context, consumer string, deltas map[tapline.FactKey]tapline.FactValue, offsets []tapline.Offset, rows tapline.FlushRows) error {
	if consumer == "" && len(offsets) > 0 {
		return tapline.Errorf(tapline.EINVALID, "consumer: required with offsets")
	}
	byTable, err := factRows(deltas)
	if err != nil {
		return fmt.Errorf("apply facts: %w", err)
	}
	for _, a := range rows.Activity {
		if err := a.Key.Validate(); err != nil || a.Key.Table != tapline.FactCohortActivity || a.InstallID == "" {
			return tapline.Errorf(tapline.EINVALID, "apply facts: activity of install %q: want a cohort activity row (%v)", a.InstallID, err)
		}
	}
	offsets = dedupeOffsets(offsets)
	if len(byTable) == 0 && len(offsets) == 0 && rows.Empty() {
		return nil
	}

	var h *hasher
	if len(rows.Conversions) > 0 {
		if h, err = s.db.hasher(ctx); err != nil {
			return fmt.Errorf("apply facts: %w", err)
		}
	}
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("apply facts: begin: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if len(rows.Activity) > 0 {
		counted, err := countActivity(ctx, tx, rows.Activity)
		if err != nil {
			return err
		}
		if len(counted) > 0 {
			merged := make(map[tapline.FactKey]tapline.FactValue, len(deltas)+len(counted))
			maps.Copy(merged, deltas)
			for _, k := range counted {
				v := merged[k]
				v.Count++
				merged[k] = v
			}
			if byTable, err = factRows(merged); err != nil {
				return fmt.Errorf("apply facts: %w", err)
			}
		}
	}
	decided, err := s.capCampaigns(ctx, tx, byTable)
	if err != nil {
		return err
	}
	addTotals(byTable)
	addRollups(byTable)
	if err := upsertRows(ctx, tx, byTable); err != nil {
		return err
	}
	if err := storeFencedOffsets(ctx, tx, consumer, offsets); err != nil {
		return err
	}
	offsets = slices.DeleteFunc(offsets, func(o tapline.Offset) bool { return o.Fenced })
	if len(offsets) > 0 {
		topics := make([]string, len(offsets))
		partitions := make([]int32, len(offsets))
		next := make([]int64, len(offsets))
		for i, o := range offsets {
			topics[i], partitions[i], next[i] = o.Topic, int32(o.Partition), o.Offset
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO consumer_offsets AS o (consumer, topic, partition, next_offset, updated_at)
			SELECT $1, t, p, n, now() FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u (t, p, n)
			ON CONFLICT (consumer, topic, partition)
			DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at`,
			consumer, topics, partitions, next); err != nil {
			return fmt.Errorf("store offsets: %w", translate(err))
		}
	}
	if err := storeHandoffs(ctx, tx, rows.Handoffs); err != nil {
		return err
	}
	if err := storeConversions(ctx, tx, h, rows.Conversions); err != nil {
		return err
	}
	if err := storeDeliveries(ctx, tx, rows.Deliveries); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("apply facts: commit: %w", translate(err))
	}
	s.remember(decided)
	if s.pruneDue() {
		go s.pruneCohortSeen(context.WithoutCancel(ctx))
	}
	return nil
}

// countActivity stores each installation's day in cohort_seen unless it
// is there, and returns the cohort rows of the ones it stored: those count
// now. Rows are inserted in primary-key order, so concurrent flushes do
// not deadlock; of two flushes storing one installation's day, the second
// waits for the first and counts nothing.
func countActivity(ctx context.Context, tx pgx.Tx, acts []tapline.CohortActivity) ([]tapline.FactKey, error) {
	// An install older than cohort_seen keeps may have been pruned from
	// it: its late activity is not counted rather than counted twice.
	cut := time.Now().Add(-CohortSeenKept).Unix()
	acts = slices.DeleteFunc(slices.Clone(acts), func(a tapline.CohortActivity) bool { return a.Key.Hour < cut })
	if len(acts) == 0 {
		return nil, nil
	}
	slices.SortFunc(acts, func(a, b tapline.CohortActivity) int {
		return cmp.Or(cmp.Compare(a.Key.AppID, b.Key.AppID), strings.Compare(a.InstallID, b.InstallID), cmp.Compare(a.Key.DayN, b.Key.DayN))
	})
	acts = slices.CompactFunc(acts, func(a, b tapline.CohortActivity) bool {
		return a.Key.AppID == b.Key.AppID && a.InstallID == b.InstallID && a.Key.DayN == b.Key.DayN
	})
	apps, installs, days, hours := make([]int64, len(acts)), make([]string, len(acts)), make([]int32, len(acts)), make([]time.Time, len(acts))
	for i, a := range acts {
		apps[i], installs[i], days[i], hours[i] = a.Key.AppID, pgText(a.InstallID), int32(a.Key.DayN), time.Unix(a.Key.Hour, 0).UTC()
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO cohort_seen (app_id, install_id, day_n, install_hour)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[])
		ON CONFLICT DO NOTHING
		RETURNING app_id, install_id, day_n`, apps, installs, days, hours)
	if err != nil {
		return nil, fmt.Errorf("store cohort activity: %w", translate(err))
	}
	type seen struct {
		app     int64
		install string
		day     int32
	}
	stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seen, error) {
		var s seen
		return s, r.Scan(&s.app, &s.install, &s.day)
	})
	if err != nil {
		return nil, fmt.Errorf("store cohort activity: %w", translate(err))
	}
	var keys []tapline.FactKey
	for _, st := range stored {
		i, ok := slices.BinarySearchFunc(acts, st, func(a tapline.CohortActivity, st seen) int {
			return cmp.Or(cmp.Compare(a.Key.AppID, st.app), strings.Compare(a.InstallID, st.install), cmp.Compare(int32(a.Key.DayN), st.day))
		})
		if ok {
			keys = append(keys, acts[i].Key)
		}
	}
	return keys, nil
}

// CohortSeenKept is how long cohort_seen keeps an installation's days after
// its install: twice the days a cohort counts, for events that arrive
// late. Activity of an older install is not counted (countActivity).
const CohortSeenKept = 2 * tapline.MaxCohortDay * 24 * time.Hour

// pruneCohortSeen drops the cohort_seen rows of installs older than
// CohortSeenKept. ApplyFacts runs it on its own goroutine, outside any
// flush's transaction, when pruneDue says; a failure is logged and retried
// an hour later.
func (s *FactStore) pruneCohortSeen(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM cohort_seen WHERE install_hour < $1`, time.Now().Add(-CohortSeenKept)); err != nil {
		slog.Warn("prune cohort_seen", "err", err)
	}
}

// pruneDue reports whether cohort_seen is due for pruning, an hour after
// the last time, and takes the turn.
func (s *FactStore) pruneDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.pruned) < time.Hour {
		return false
	}
	s.pruned = time.Now()
	return true
}

// factRows validates deltas and groups the non-zero ones by table.
func factRows(deltas map[tapline.FactKey]tapline.FactValue) (map[tapline.FactTable][]factRow, error) {
	byTable := make(map[tapline.FactTable][]factRow)
	for k, v := range deltas {
		if err := k.Validate(); err != nil {
			return nil, err
		}
		if v != (tapline.FactValue{}) {
			byTable[k.Table] = append(byTable[k.Table], factRow{k, v})
		}
	}
	return byTable, nil
}

// addTotals adds to byTable the FactTotals rows its rows add up to (see
// tapline.FactKey.Total), in the same transaction as they: the totals
// are exactly as exact as the tables they sum. Totals given directly are
// kept (and summed with).
func addTotals(byTable map[tapline.FactTable][]factRow) {
	sums := map[tapline.FactKey]tapline.FactValue{}
	for _, r := range byTable[tapline.FactTotals] {
		v := sums[r.key]
		v.Count, v.Sum = v.Count+r.val.Count, v.Sum+r.val.Sum
		sums[r.key] = v
	}
	for t, rows := range byTable {
		if t == tapline.FactTotals {
			continue
		}
		for _, r := range rows {
			if k, ok := r.key.Total(); ok {
				v := sums[k]
				v.Count, v.Sum = v.Count+r.val.Count, v.Sum+r.val.Sum
				sums[k] = v
			}
		}
	}
	totals := byTable[tapline.FactTotals][:0]
	for k, v := range sums {
		if v != (tapline.FactValue{}) {
			totals = append(totals, factRow{k, v})
		}
	}
	if len(totals) > 0 {
		byTable[tapline.FactTotals] = totals
	} else {
		delete(byTable, tapline.FactTotals)
	}
}

// addRollups adds to byTable the rows of the daily and weekly rollups
// that the rows of the five measure tables add up to (see
// tapline.FactKey.Rollups), in the same transaction as they: a replay
// that is refused refuses them too, so the rollups are exactly as exact as
// the hours they sum. The weekly rows are summed from the daily sums, a
// few per day, not from every hourly row. Rollup rows given directly are
// kept (and summed with).
func addRollups(byTable map[tapline.FactTable][]factRow) {
	sums := make(map[tapline.FactTable]map[tapline.FactKey]tapline.FactValue, len(tapline.Rollups))
	for _, t := range tapline.Rollups {
		sums[t] = map[tapline.FactKey]tapline.FactValue{}
		for _, r := range byTable[t] {
			addTo(sums[t], r.key, r.val)
		}
		delete(byTable, t)
	}
	// Daily keys differ from the total's only in Dim and Value: sum per
	// total, then per dimension and value, on small map keys.
	type dimValue struct{ dim, value string }
	daily := map[tapline.FactKey]map[dimValue]tapline.FactValue{}
	for _, rows := range byTable {
		for _, r := range rows {
			var m map[dimValue]tapline.FactValue
			for k := range r.key.Daily() {
				if m == nil { // the first is the total (Dim "")
					if m = daily[k]; m == nil {
						m = map[dimValue]tapline.FactValue{}
						daily[k] = m
					}
				}
				dv := dimValue{k.Dim, k.Value}
				s := m[dv]
				s.Count, s.Sum = s.Count+r.val.Count, s.Sum+r.val.Sum
				m[dv] = s
			}
		}
	}
	for total, m := range daily {
		for dv, v := range m {
			k := total
			k.Dim, k.Value = dv.dim, dv.value
			for _, t := range tapline.Rollups {
				addTo(sums[t], k.For(t), v)
			}
		}
	}
	for _, t := range tapline.Rollups {
		for k, v := range sums[t] {
			if v != (tapline.FactValue{}) {
				byTable[t] = append(byTable[t], factRow{k, v})
			}
		}
	}
}

// addTo adds v to m[k].
func addTo(m map[tapline.FactKey]tapline.FactValue, k tapline.FactKey, v tapline.FactValue) {
	s := m[k]
	s.Count, s.Sum = s.Count+v.Count, s.Sum+v.Sum
	m[k] = s
}

// upsertRows adds rows to their tables in tx: tables in declaration order,
// rows in primary-key order, so concurrent writers do not deadlock.
func upsertRows(ctx context.Context, tx pgx.Tx, byTable map[tapline.FactTable][]factRow) error {
	for _, d := range tapline.FactTables {
		rows := byTable[d.Table]
		if len(rows) == 0 {
			continue
		}
		slices.SortFunc(rows, func(a, b factRow) int { return d.Compare(a.key, b.key) })
		if _, err := tx.Exec(ctx, factUpserts[d.Table], args(d, rows)...); err != nil {
			return fmt.Errorf("apply facts to %s: %w", factTableName(d.Table), translate(err))
		}
	}
	return nil
}

// storeFencedOffsets stores the fenced offsets, each only where the stored
// offset is still its From (no row for NoOffset), in one statement. Any
// other outcome is ECONFLICT: another consumer moved the partition on.
func storeFencedOffsets(ctx context.Context, tx pgx.Tx, consumer string, offsets []tapline.Offset) error {
	var topics []string
	var partitions []int32
	var from, next []int64
	for _, o := range offsets {
		if o.Fenced {
			topics = append(topics, o.Topic)
			partitions = append(partitions, int32(o.Partition))
			from = append(from, o.From)
			next = append(next, o.Offset)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	var stored int
	err := tx.QueryRow(ctx, `
		WITH want (t, p, f, n) AS (
			SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[])
		), moved AS (
			UPDATE consumer_offsets AS o SET next_offset = w.n, updated_at = now()
			FROM want AS w
			WHERE o.consumer = $1 AND o.topic = w.t AND o.partition = w.p AND w.f >= 0 AND o.next_offset = w.f
			RETURNING 1
		), created AS (
			INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, updated_at)
			SELECT $1, t, p, n, now() FROM want WHERE f < 0
			ON CONFLICT (consumer, topic, partition) DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM created)`,
		consumer, topics, partitions, from, next).Scan(&stored)
	if err != nil {
		return fmt.Errorf("store fenced offsets: %w", translate(err))
	}
	if stored != len(topics) {
		return tapline.Errorf(tapline.ECONFLICT, "The offsets of consumer %s moved since this consumer last stored them: another member of its group owns the partitions now.", consumer)
	}
	return nil
}

// dedupeOffsets keeps the last offset given for each partition and sorts
// them by topic and partition.
func dedupeOffsets(offsets []tapline.Offset) []tapline.Offset {
	if len(offsets) == 0 {
		return nil
	}
	type tp struct {
		topic     string
		partition int
	}
	last := make(map[tp]tapline.Offset, len(offsets))
	for _, o := range offsets {
		last[tp{o.Topic, o.Partition}] = o
	}
	out := make([]tapline.Offset, 0, len(last))
	for _, o := range last {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b tapline.Offset) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// Offsets returns the consumer's stored positions ordered by topic and
// partition; none is an empty slice.
func (s *FactStore) Offsets(ctx context.Context, consumer string) ([]tapline.Offset, error) {
	rows, err := s.db.pool.Query(ctx,
		`SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = $1 ORDER BY topic, partition`, consumer)
	if err != nil {
		return nil, fmt.Errorf("get offsets: %w", translate(err))
	}
	offsets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tapline.Offset, error) {
		var o tapline.Offset
		var p int32
		err := r.Scan(&o.Topic, &p, &o.Offset)
		o.Partition = int(p)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("get offsets: %w", translate(err))
	}
	if offsets == nil {
		offsets = []tapline.Offset{}
	}
	return offsets, nil
}
