package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// factTable describes one hourly fact table: its SQL name and the FactKey
// dimensions it keeps beyond app and hour.
type factTable struct {
	name   string
	dims   []string // among link_id, platform, event_name, method, currency
	upsert string   // the statement adding a batch of rows; see upsertSQL
}

// factTables lists the fact tables in the order ApplyFacts writes them; a
// fixed order keeps concurrent transactions from deadlocking.
var factTables = []tapline.FactTable{
	tapline.FactHits, tapline.FactEvents, tapline.FactInstalls, tapline.FactConversions, tapline.FactRevenue,
}

var factTableInfo = map[tapline.FactTable]*factTable{
	tapline.FactHits:        {name: "fact_hits", dims: []string{"link_id", "platform"}},
	tapline.FactEvents:      {name: "fact_events", dims: []string{"link_id", "event_name", "platform", "method"}},
	tapline.FactInstalls:    {name: "fact_installs", dims: []string{"link_id", "platform", "method"}},
	tapline.FactConversions: {name: "fact_conversions", dims: []string{"link_id", "platform", "method"}},
	tapline.FactRevenue:     {name: "fact_revenue", dims: []string{"link_id", "platform", "currency"}},
}

func init() {
	for _, t := range factTableInfo {
		t.upsert = t.upsertSQL()
	}
}

// upsertSQL returns the statement adding one batch of rows to t.
func (t factTable) upsertSQL() string {
	cols := append([]string{"app_id", "hour"}, t.dims...)
	types := []string{"bigint[]", "timestamptz[]"}
	for _, d := range t.dims {
		if d == "link_id" {
			types = append(types, "bigint[]")
		} else {
			types = append(types, "text[]")
		}
	}
	types = append(types, "bigint[]", "bigint[]")
	params := make([]string, len(types))
	for i, ty := range types {
		params[i] = fmt.Sprintf("$%d::%s", i+1, ty)
	}
	key := strings.Join(cols, ", ")
	return `INSERT INTO ` + t.name + ` AS t (` + key + `, count, sum)
		SELECT * FROM unnest(` + strings.Join(params, ", ") + `)
		ON CONFLICT (` + key + `) DO UPDATE SET count = t.count + excluded.count, sum = t.sum + excluded.sum`
}

// normalise zeroes the dimensions table t does not keep, so keys that
// differ only there aggregate into one row.
func normalise(k tapline.FactKey) tapline.FactKey {
	n := tapline.FactKey{Table: k.Table, Hour: k.Hour - k.Hour%3600, AppID: k.AppID, LinkID: k.LinkID, Platform: k.Platform}
	switch k.Table {
	case tapline.FactEvents:
		n.EventName, n.Method = k.EventName, k.Method
	case tapline.FactInstalls, tapline.FactConversions:
		n.Method = k.Method
	case tapline.FactRevenue:
		n.Currency = k.Currency
	}
	return n
}

// compareKeys orders keys of one table by its primary key.
func compareKeys(a, b tapline.FactKey) int {
	return cmp.Or(
		cmp.Compare(a.AppID, b.AppID),
		cmp.Compare(a.Hour, b.Hour),
		cmp.Compare(a.LinkID, b.LinkID),
		strings.Compare(a.EventName, b.EventName),
		strings.Compare(string(a.Platform), string(b.Platform)),
		strings.Compare(string(a.Method), string(b.Method)),
		strings.Compare(a.Currency, b.Currency),
	)
}

type factRow struct {
	key tapline.FactKey
	val tapline.FactValue
}

// FactStore keeps the hourly fact tables and consumer offsets in
// PostgreSQL.
type FactStore struct {
	db *DB
}

var _ tapline.FactStore = (*FactStore)(nil)

// NewFactStore returns a FactStore on an opened, migrated db.
func NewFactStore(db *DB) *FactStore { return &FactStore{db: db} }

// ApplyFacts adds deltas to the fact tables and stores offsets as the
// consumer's positions in one transaction. Zero deltas are skipped; rows
// are written in primary-key order, tables in a fixed order, so concurrent
// callers do not deadlock. An unknown table is EINVALID; a lost connection
// EUNAVAILABLE.
func (s *FactStore) ApplyFacts(ctx context.Context, consumer string, deltas map[tapline.FactKey]tapline.FactValue, offsets []tapline.Offset) error {
	if consumer == "" && len(offsets) > 0 {
		return tapline.Errorf(tapline.EINVALID, "consumer: required with offsets")
	}
	byTable := make(map[tapline.FactTable]map[tapline.FactKey]tapline.FactValue)
	for k, v := range deltas {
		if _, ok := factTableInfo[k.Table]; !ok {
			return tapline.Errorf(tapline.EINVALID, "table: unknown fact table %q", k.Table)
		}
		if v == (tapline.FactValue{}) {
			continue
		}
		n := normalise(k)
		m := byTable[k.Table]
		if m == nil {
			m = make(map[tapline.FactKey]tapline.FactValue)
			byTable[k.Table] = m
		}
		sum := m[n]
		sum.Count += v.Count
		sum.Sum += v.Sum
		m[n] = sum
	}
	offsets = dedupeOffsets(offsets)
	if len(byTable) == 0 && len(offsets) == 0 {
		return nil
	}

	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("apply facts: begin: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	for _, table := range factTables {
		m := byTable[table]
		if len(m) == 0 {
			continue
		}
		rows := make([]factRow, 0, len(m))
		for k, v := range m {
			if v != (tapline.FactValue{}) {
				rows = append(rows, factRow{k, v})
			}
		}
		if len(rows) == 0 {
			continue
		}
		slices.SortFunc(rows, func(a, b factRow) int { return compareKeys(a.key, b.key) })
		info := factTableInfo[table]
		if _, err := tx.Exec(ctx, info.upsert, info.args(rows)...); err != nil {
			return fmt.Errorf("apply facts to %s: %w", info.name, translate(err))
		}
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
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("apply facts: commit: %w", translate(err))
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

// args returns the column arrays of rows for upsertSQL.
func (t factTable) args(rows []factRow) []any {
	appIDs := make([]int64, len(rows))
	hours := make([]time.Time, len(rows))
	counts := make([]int64, len(rows))
	sums := make([]int64, len(rows))
	dims := make([]any, len(t.dims))
	for i, d := range t.dims {
		if d == "link_id" {
			dims[i] = make([]int64, len(rows))
		} else {
			dims[i] = make([]string, len(rows))
		}
	}
	for r, row := range rows {
		k := row.key
		appIDs[r] = k.AppID
		hours[r] = time.Unix(k.Hour, 0).UTC()
		counts[r], sums[r] = row.val.Count, row.val.Sum
		for i, d := range t.dims {
			switch d {
			case "link_id":
				dims[i].([]int64)[r] = k.LinkID
			case "platform":
				dims[i].([]string)[r] = string(k.Platform)
			case "event_name":
				dims[i].([]string)[r] = k.EventName
			case "method":
				dims[i].([]string)[r] = string(k.Method)
			case "currency":
				dims[i].([]string)[r] = k.Currency
			}
		}
	}
	args := append([]any{appIDs, hours}, dims...)
	return append(args, counts, sums)
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
