package pebble

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"tapline"
)

// TestDiskReserveMeasures checks when the reserve measures the free space:
// with room to spare it reuses a fresh measurement, less what was written
// since; near the reserve it measures before every write and refuses one
// that would go below it.
func TestDiskReserveMeasures(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < 3*roomyFree {
		t.Skipf("%d MiB free in %s: too little to test a roomy disk", free>>20, dir)
	}

	roomy := newDiskReserve(dir, 1<<20)
	if err := roomy.check(100); err != nil {
		t.Fatal(err)
	}
	at, left := roomy.measuredAt.Load(), roomy.free.Load()
	if err := roomy.check(100); err != nil {
		t.Fatal(err)
	}
	if got := roomy.measuredAt.Load(); got != at {
		t.Errorf("a roomy disk was measured again at once")
	}
	if got := roomy.free.Load(); got != left-100 {
		t.Errorf("free after a reused measurement %d, want %d (the write taken off)", got, left-100)
	}

	// A reserve just under the free space: not roomy, so every check
	// measures, and a write past the reserve is refused.
	tight := newDiskReserve(dir, free-roomyFree/2)
	if err := tight.check(1); err != nil {
		t.Fatal(err)
	}
	at = tight.measuredAt.Load()
	if err := tight.check(1); err != nil {
		t.Fatal(err)
	}
	if tight.measuredAt.Load() == at {
		t.Errorf("a disk near its reserve was not measured again")
	}
	if err := tight.check(roomyFree); !errors.Is(err, tapline.ErrStorageFull) {
		t.Errorf("a write past the reserve: %v, want ErrStorageFull", err)
	}
}
