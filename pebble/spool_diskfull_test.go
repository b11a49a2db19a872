package pebble_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tapline"
	"tapline/bustest"
	"tapline/internal/disktest"
	"tapline/pebble"
)

// TestSpool_DiskFull spools during a Kafka outage onto a 16 MiB tmpfs and
// fills the disk below the spool's reserve: Publish answers
// ErrStorageFull (nothing acknowledged), takes messages again once space
// returns, and after the outage every acknowledged message, and only
// those, reaches the bus in order.
func TestSpool_DiskFull(t *testing.T) {
	dir := disktest.Small(t, 16)
	bus := newOutage(t)
	s := mustOpenSpool(t, bus, filepath.Join(dir, "spool"), func(s *pebble.Spool) { s.MinFreeBytes = 4 << 20 })
	topic := bustest.Topic(t)
	bus.down()

	var accepted []string
	publish := func(i int) error {
		v := fmt.Sprintf("%03d-%s", i, strings.Repeat("v", 200))
		err := s.Publish(testCtx(t), msg(topic, "k", v))
		if err == nil {
			accepted = append(accepted, v)
		}
		return err
	}
	for i := range 10 {
		if err := publish(i); err != nil {
			t.Fatalf("spool %d: %v", i, err)
		}
	}
	filler := disktest.Fill(t, dir, 3<<20)
	if err := publish(10); !errors.Is(err, tapline.ErrStorageFull) {
		t.Fatalf("spool on a full disk: %v, want ErrStorageFull", err)
	}
	if n := s.SpooledMessages(); n != int64(len(accepted)) {
		t.Errorf("SpooledMessages = %d after a refused write, want %d", n, len(accepted))
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 11; i < 20; i++ {
		if err := publish(i); err != nil {
			t.Fatalf("spool %d after space returned: %v", i, err)
		}
	}
	bus.up()
	waitDrained(t, s)
	checkKeys(t, collect(t, bus, topic, len(accepted)), map[string][]string{"k": accepted})
}
