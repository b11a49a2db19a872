package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tapline"
	"tapline/internal/disktest"
)

// TestBusDiskFull publishes to a bus on a 16 MiB tmpfs until its disk is
// below the reserve: Publish answers ErrStorageFull (pebble itself would
// end the process on the failed write-ahead log write), takes writes again
// once space returns, without a restart, and reopened the bus holds
// exactly the messages it acknowledged.
func TestBusDiskFull(t *testing.T) {
	dir := disktest.Small(t, 16)
	b := NewBus(filepath.Join(dir, "bus"))
	b.NumPartitions = 2
	b.MemTableSize = 1 << 20
	b.MinFreeBytes = 4 << 20
	if err := b.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // before the unmount
	ctx := context.Background()
	var acked [][]byte
	publish := func(i int) error {
		v := fmt.Appendf(nil, "message %d %s", i, bytes.Repeat([]byte{'x'}, 500))
		err := b.Publish(ctx, tapline.Message{Topic: "events", Key: fmt.Appendf(nil, "k%d", i), Value: v})
		if err == nil {
			acked = append(acked, v)
		}
		return err
	}
	for i := range 100 {
		if err := publish(i); err != nil {
			t.Fatalf("publish %d on an empty disk: %v", i, err)
		}
	}
	filler := disktest.Fill(t, dir, 3<<20)
	err := publish(100)
	if !errors.Is(err, tapline.ErrStorageFull) || tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Fatalf("publish on a full disk: %v, want ErrStorageFull (EUNAVAILABLE)", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 101; i < 200; i++ {
		if err := publish(i); err != nil {
			t.Fatalf("publish %d after space returned: %v", i, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = NewBus(filepath.Join(dir, "bus"))
	b.NumPartitions = 2
	if err := b.Open(); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	var got [][]byte
	for p := range 2 {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msgs, err := b.Fetch(fctx, "events", p, 0, 1000)
		cancel()
		if err != nil {
			t.Fatalf("fetch partition %d: %v", p, err)
		}
		for _, m := range msgs {
			got = append(got, m.Value)
		}
	}
	if len(got) != len(acked) {
		t.Fatalf("reopened bus holds %d messages, want the %d acknowledged", len(got), len(acked))
	}
	want := map[string]bool{}
	for _, v := range acked {
		want[string(v)] = true
	}
	for _, v := range got {
		if !want[string(v)] {
			t.Fatalf("reopened bus holds a message never acknowledged: %.20q", v)
		}
		delete(want, string(v))
	}
}

// TestRawStoreDiskFull: the raw store refuses a write below its reserve
// with ErrStorageFull and takes it once space returns.
func TestRawStoreDiskFull(t *testing.T) {
	dir := disktest.Small(t, 16)
	s := NewRawStore(filepath.Join(dir, "raw"))
	s.CacheSize, s.MemTableSize, s.MinFreeBytes = 1<<20, 1<<20, 4<<20
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	hit := func(id string) *tapline.Hit {
		return &tapline.Hit{ID: id, AppID: 1, LinkID: 1, Time: time.Now().UTC(), IP: "198.51.100.7", Platform: "ios"}
	}
	if _, err := s.PutHit(ctx, hit("h1")); err != nil {
		t.Fatal(err)
	}
	filler := disktest.Fill(t, dir, 3<<20)
	if _, err := s.PutHit(ctx, hit("h2")); !errors.Is(err, tapline.ErrStorageFull) {
		t.Fatalf("PutHit on a full disk: %v, want ErrStorageFull", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHit(ctx, hit("h2")); err != nil {
		t.Fatalf("PutHit after space returned: %v", err)
	}
}
