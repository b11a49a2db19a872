package pebble

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
	"tapline/internal/wire"
)

// bucketSet is what a RawStore knows of the time buckets an app has rows
// in: every bucket a put of this process wrote to, and, once loaded, every
// bucket the database held when it was read. Buckets are never taken out
// (an expired one is skipped by the watermark), so the set only errs on
// the side of a bucket with no rows, which costs a point read that finds
// nothing.
type bucketSet struct {
	loaded bool
	set    map[int64]struct{}
	newest []int64 // the set, newest first; rebuilt after a change
}

// noteBucket records that a row with Time t of the app is about to be
// written. It is called before the write commits, so a reader that lists
// the buckets after the row is visible always finds its bucket.
func (s *RawStore) noteBucket(appID, t int64) {
	b := floorDiv(t, int64(BucketWidth))
	s.bktMu.Lock()
	defer s.bktMu.Unlock()
	bs := s.bkts[appID]
	if bs == nil {
		bs = &bucketSet{set: map[int64]struct{}{}}
		s.bkts[appID] = bs
	}
	if _, ok := bs.set[b]; !ok {
		bs.set[b] = struct{}{}
		bs.newest = nil
	}
}

// storedBuckets returns the app's buckets, newest first. The slice is
// never changed afterwards: a change builds a new one.
func (s *RawStore) storedBuckets(appID int64) ([]int64, error) {
	s.bktMu.Lock()
	bs := s.bkts[appID]
	loaded := bs != nil && bs.loaded
	s.bktMu.Unlock()
	if !loaded {
		// Read outside the lock; notes made meanwhile are kept, and a row
		// committed before the read is in it.
		stored, err := s.buckets(appID, math.MinInt64)
		if err != nil {
			return nil, err
		}
		s.bktMu.Lock()
		if bs = s.bkts[appID]; bs == nil {
			bs = &bucketSet{set: map[int64]struct{}{}}
			s.bkts[appID] = bs
		}
		for _, b := range stored {
			if _, ok := bs.set[b]; !ok {
				bs.set[b] = struct{}{}
				bs.newest = nil
			}
		}
		bs.loaded = true
		s.bktMu.Unlock()
	}
	s.bktMu.Lock()
	defer s.bktMu.Unlock()
	if bs.newest == nil {
		bs.newest = make([]int64, 0, len(bs.set))
		for b := range bs.set {
			bs.newest = append(bs.newest, b)
		}
		slices.SortFunc(bs.newest, func(a, b int64) int { return cmp.Compare(b, a) })
	}
	return bs.newest, nil
}

// rowByID returns the value of the visible row id of table (tableHit or
// tableEvent), looking in the app's stored buckets newest first with one
// point read each (bloom filters make a read of a bucket without the row
// cheap), or ok false. fn receives the value while it is valid.
func (s *RawStore) rowByID(appID int64, table byte, id string, fn func(v []byte) error) (ok bool, err error) {
	wm, err := s.watermark(appID)
	if err != nil {
		return false, err
	}
	buckets, err := s.storedBuckets(appID)
	if err != nil {
		return false, err
	}
	wmBucket := floorDiv(wm, int64(BucketWidth))
	key := make([]byte, 0, 64)
	for _, b := range buckets {
		if wm != noWatermark && b < wmBucket {
			break // expired, and so is every older one
		}
		key = appendString(append(appendInt64(append(key[:0], appKey(spaceRaw, appID)...), b), table), id)
		v, closer, err := s.db.Get(key)
		if errors.Is(err, pdb.ErrNotFound) {
			continue
		} else if err != nil {
			return false, fmt.Errorf("get raw row: %w", err)
		}
		if wm != noWatermark && b == wmBucket {
			// Only this bucket can hold rows hidden by the watermark.
			t, err := rowTime(table, v)
			if err != nil {
				closer.Close()
				return false, err
			}
			if t < wm {
				closer.Close()
				continue
			}
		}
		err = fn(v)
		closer.Close()
		return err == nil, err
	}
	return false, nil
}

// hitRow and eventRow decode a row read by rowByID.
func hitRow(h *tapline.Hit) func([]byte) error {
	return func(v []byte) error { return wire.DecodeHit(v, h) }
}
func eventRow(e *tapline.Event) func([]byte) error {
	return func(v []byte) error { return wire.DecodeEvent(v, e) }
}
