package cassandra

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"tapline"
)

// ScanHitRows calls fn with each of the app's visible hits whose Time lies
// in [from, to), in the order of the hits table's partitions: by the
// Murmur3 token of (app_id, id), hits whose tokens collide by id. The hits
// table is partitioned by (app_id, id) alone, so the scan reads the whole
// table a page (Config.PageSize rows) at a time, in token order, and skips
// other apps' rows in this process: its cost is the table's size, not the
// app's. It resumes after the row at after by the token of (appID,
// after.ID), which Cassandra computes; after.Time plays no part.
func (s *RawStore) ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(h *tapline.Hit) error) error {
	return scanTableRows(ctx, s, &s.stmt.hits, appID, from, to, after, fn)
}

// ScanEventRows is ScanHitRows for the events table.
func (s *RawStore) ScanEventRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(e *tapline.Event) error) error {
	return scanTableRows(ctx, s, &s.stmt.events, appID, from, to, after, fn)
}

// scannedRow is a row of a row scan not yet passed on: the rows of one
// token are gathered and ordered by id first.
type scannedRow struct {
	id   string
	data []byte
}

// rowScan is one row scan of a table keyed by (app_id, id).
type rowScan[T any] struct {
	tb     *byIDTable
	appID  int64
	lo, hi int64 // [lo, hi): Unix nanoseconds of the rows passed on
	fn     func(*T) error
	group  []scannedRow // the app's rows with the current token
}

func scanTableRows[T any](ctx context.Context, s *RawStore, tb *byIDTable, appID int64, from, to time.Time, after tapline.RowPos, fn func(*T) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	lo, hi := tapline.UnixNanos(from), tapline.UnixNanos(to)
	if lo >= hi {
		return nil
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return err
	}
	sc := &rowScan[T]{tb: tb, appID: appID, lo: max(lo, cut), hi: hi, fn: fn}
	if sc.lo >= sc.hi {
		return nil
	}
	if after.IsZero() {
		// Murmur3 never yields math.MinInt64: every partition's token is
		// greater.
		return sc.run(s.query(ctx, tb.scanFrom, true, int64(math.MinInt64)).Iter(), "")
	}
	// The rows sharing the position's token come after it by id; then
	// every greater token.
	if err := sc.run(s.query(ctx, tb.scanAt, true, appID, after.ID, appID, after.ID).Iter(), after.ID); err != nil {
		return err
	}
	return sc.run(s.query(ctx, tb.scanAfter, true, appID, after.ID).Iter(), "")
}

// run passes on the rows iter reads, by token, those of one token by id,
// skipping ids up to afterID.
func (sc *rowScan[T]) run(iter *gocql.Iter, afterID string) error {
	var (
		tok, app, t int64
		id          string
		data        []byte
		cur         int64
		err         error
	)
	sc.group = sc.group[:0]
	for iter.Scan(&tok, &app, &id, &t, &data) {
		if tok != cur && len(sc.group) > 0 {
			if err = sc.flush(); err != nil {
				break
			}
		}
		cur = tok
		if app != sc.appID || t < sc.lo || t >= sc.hi || (afterID != "" && id <= afterID) {
			continue
		}
		sc.group = append(sc.group, scannedRow{id: id, data: data})
	}
	if err == nil {
		err = sc.flush()
	}
	if cerr := iter.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("scan %ss: %w", sc.tb.noun, translate(cerr))
	}
	return err
}

// flush passes on the gathered rows of one token, by id.
func (sc *rowScan[T]) flush() error {
	slices.SortFunc(sc.group, func(a, b scannedRow) int { return strings.Compare(a.id, b.id) })
	for _, r := range sc.group {
		row := new(T)
		if err := json.Unmarshal(r.data, row); err != nil {
			return fmt.Errorf("decode %s %s: %w", sc.tb.noun, r.id, err)
		}
		if err := sc.fn(row); err != nil {
			return err
		}
	}
	sc.group = sc.group[:0]
	return nil
}
