package pebble

import (
	"fmt"

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
// The free space is measured (statfs, about a microsecond) before every
// write, not cached: another process filling the disk must be seen at
// once. A write larger than the reserve, or a filesystem filled between
// the check and the write, can still reach pebble's fatal path; the
// reserve is sized for what pebble writes after the check (memtable
// flushes, compactions).
type diskReserve struct {
	dir string
	min int64
}

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
	var st unix.Statfs_t
	if err := unix.Statfs(r.dir, &st); err != nil {
		return fmt.Errorf("measure free space of %s: %w", r.dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
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
