package pebble

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"tapline"
)

// DefaultMinFreeBytes is the free space below which a store made by this
// package refuses writes, when its MinFreeBytes is zero: room for pebble
// to flush its memtables and compact after the last write it took.
const DefaultMinFreeBytes = 256 << 20

// diskReserve refuses writes that would leave less than min bytes free
// on the filesystem of dir. Pebble cannot take a failed write of its
// write-ahead log: it calls Logger.Fatalf ("fatal commit error"), which
// ends the process. So the stores check the free space before every
// write instead, and answer tapline.ErrStorageFull while it is short.
//
// The free space is measured with statfs. Near the reserve (within
// roomyFree of it) every write measures it, so that another process
// filling the disk is seen at once; with more room than that, a
// measurement less than remeasureAfter old is reused, less the bytes
// written since, which keeps the syscall off the raw store's per-message
// path. A write larger than the reserve, or a filesystem filled between
// the check and the write, can still reach pebble's fatal path; the
// reserve is sized for what pebble writes after the check (memtable
// flushes, compactions).
type diskReserve struct {
	dir string
	min int64

	measuredAt atomic.Int64 // unix nanos of the last statfs, 0 for none
	free       atomic.Int64 // free bytes it found, less the bytes checked since
}

// roomyFree is how far above the reserve the free space must be for a
// measurement to be reused; remeasureAfter how long it is reused at most.
// Filling a gigabyte within a tenth of a second is beyond other writers.
const (
	roomyFree      = 1 << 30
	remeasureAfter = 100 * time.Millisecond
)

func newDiskReserve(dir string, minFree int64) *diskReserve {
	return &diskReserve{dir: dir, min: minFree}
}

// check returns an error wrapping tapline.ErrStorageFull when writing need
// bytes would leave less than the reserve free; nil when it would not or
// the reserve is off (negative).
func (r *diskReserve) check(need int) error {
	if r == nil || r.min < 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if at := r.measuredAt.Load(); at != 0 && now-at < int64(remeasureAfter) {
		if r.free.Add(-int64(need)) >= r.min+roomyFree {
			return nil
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(r.dir, &st); err != nil {
		return fmt.Errorf("measure free space of %s: %w", r.dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	r.free.Store(free - int64(need))
	r.measuredAt.Store(now)
	if free-int64(need) < r.min {
		return fmt.Errorf("%w (%s: %d MiB free, the reserve is %d MiB)", tapline.ErrStorageFull, r.dir, free>>20, r.min>>20)
	}
	return nil
}

// minFree returns v, or DefaultMinFreeBytes when v is zero.
func minFree(v int64) int64 {
	if v == 0 {
		return DefaultMinFreeBytes
	}
	return v
}
