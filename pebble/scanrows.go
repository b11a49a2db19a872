package pebble

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
	"tapline/internal/wire"
)

// Bounds of one batch of a row scan (ScanHitRows, ScanEventRows): the rows
// it delivers, and the keys it visits (rows outside the time range are
// visited and skipped). A batch reads under the store's lock with one
// iterator, which it closes before fn sees the rows, so a slow consumer
// pins no memtable or sstable and never holds up Close.
const (
	scanRowsBatch = 512
	scanRowsVisit = 8 * scanRowsBatch
)

// ScanHitRows calls fn with each of the app's visible hits whose Time lies
// in [from, to), week bucket by week bucket, within a bucket by id: the
// order of the hits' keys, R app bucket h id. It starts after the row at
// after (its bucket from its Time, then its id). Within a week rows are
// keyed by id, not by time, so a range reads every row of the weeks it
// touches and skips those outside it.
func (s *RawStore) ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(h *tapline.Hit) error) error {
	return scanTableRows(ctx, s, appID, tableHit, from, to, after, wire.DecodeHit,
		func(h *tapline.Hit) int64 { return tapline.UnixNanos(h.Time) }, fn)
}

// ScanEventRows is ScanHitRows for events (R app bucket e id).
func (s *RawStore) ScanEventRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(e *tapline.Event) error) error {
	return scanTableRows(ctx, s, appID, tableEvent, from, to, after, wire.DecodeEvent,
		func(e *tapline.Event) int64 { return tapline.UnixNanos(e.Time) }, fn)
}

// rowsCursor is where a row scan goes on: the bucket, and the encoded id
// of the last key visited in it (nil: from the bucket's first row).
type rowsCursor struct {
	bucket int64
	last   []byte
	done   bool
}

// scanTableRows runs a row scan of table, a batch at a time.
func scanTableRows[T any](ctx context.Context, s *RawStore, appID int64, table byte, from, to time.Time, after tapline.RowPos,
	decode func([]byte, *T) error, timeOf func(*T) int64, fn func(*T) error) error {
	lo, hi := tapline.UnixNanos(from), tapline.UnixNanos(to)
	if lo >= hi {
		return nil
	}
	cur := rowsCursor{bucket: floorDiv(lo, int64(BucketWidth))}
	if !after.IsZero() {
		if b := floorDiv(tapline.UnixNanos(after.Time), int64(BucketWidth)); b >= cur.bucket {
			cur.bucket, cur.last = b, appendString(nil, after.ID)
		}
	}
	for !cur.done {
		// Each batch decodes into fresh rows: fn may not keep them, but a
		// row it kept by mistake is not overwritten.
		batch, err := readRowsBatch(ctx, s, appID, table, lo, hi, &cur, make([]T, 0, scanRowsBatch), decode, timeOf)
		if err != nil {
			return err
		}
		for i := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(&batch[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// readRowsBatch reads the next batch of a row scan into batch from cur on,
// and moves cur past the keys it visited.
func readRowsBatch[T any](ctx context.Context, s *RawStore, appID int64, table byte, lo, hi int64, cur *rowsCursor,
	batch []T, decode func([]byte, *T) error, timeOf func(*T) int64) ([]T, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	wm, err := s.watermark(appID)
	if err != nil {
		return nil, err
	}
	lo = max(lo, wm)
	last := floorDiv(hi-1, int64(BucketWidth))
	if first := floorDiv(lo, int64(BucketWidth)); cur.bucket < first {
		// The watermark moved past the cursor's bucket since the last batch.
		cur.bucket, cur.last = first, nil
	}
	if lo >= hi || cur.bucket > last {
		cur.done = true
		return batch, nil
	}
	base := appKey(spaceRaw, appID)
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: base, UpperBound: prefixEnd(base)})
	if err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	defer it.Close()

	var prefix, seek []byte
	visited := 0
	for cur.bucket <= last {
		prefix = append(appendInt64(append(prefix[:0], base...), cur.bucket), table)
		seek = append(append(seek[:0], prefix...), cur.last...)
		if cur.last != nil {
			seek = append(seek, 0) // the key after the last one visited
		}
		if !it.SeekGE(seek) {
			break
		}
		if b := readInt64(it.Key()[len(base):]); b != cur.bucket {
			// No more rows of the table in this bucket: on to the next
			// stored bucket.
			if b < cur.bucket {
				return nil, fmt.Errorf("raw store: key %x sorts before bucket %d", it.Key(), cur.bucket)
			}
			cur.bucket, cur.last = b, nil
			continue
		}
		for ; it.Valid() && bytes.HasPrefix(it.Key(), prefix); it.Next() {
			if visited == scanRowsVisit || len(batch) == scanRowsBatch {
				return batch, nil
			}
			visited++
			cur.last = append(cur.last[:0], it.Key()[len(prefix):]...)
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("read raw row: %w", err)
			}
			batch = append(batch, *new(T))
			row := &batch[len(batch)-1]
			if err := decode(v, row); err != nil {
				return nil, err
			}
			if t := timeOf(row); t < lo || t >= hi {
				batch = batch[:len(batch)-1]
			}
		}
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("raw store iterator: %w", err)
		}
		if cur.bucket == math.MaxInt64 {
			break
		}
		cur.bucket, cur.last = cur.bucket+1, nil
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	cur.done = true
	return batch, nil
}
