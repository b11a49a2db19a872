package pebble

import (
	"fmt"
	"testing"
)

// TestBusMemory checks what Memory reports of a bus: the configured
// sizes, memtables holding the published messages, once flushed a table
// file open and blocks in the cache after a fetch reads it, and nothing
// once closed.
func TestBusMemory(t *testing.T) {
	t.Parallel()
	b := mustOpenBus(t, t.TempDir(), 1)
	for i := range 100 {
		mustPublish(t, b, msg("hits", fmt.Sprint(i), fmt.Sprintf("value %d with some bytes", i)))
	}
	m, ok := b.Memory()
	if !ok || m.CacheCapacity != DefaultCacheSize || m.MemTableSize != DefaultMemTableSize || m.MemTableBytes <= 0 {
		t.Fatalf("open bus: %+v ok %v, want cache capacity %d, memtable size %d and memtable bytes", m, ok, DefaultCacheSize, DefaultMemTableSize)
	}
	if err := b.db.Flush(); err != nil {
		t.Fatal(err)
	}
	fetchAll(t, b, "hits", 0, 0, 100)
	m, _ = b.Memory()
	if m.OpenTables < 1 || m.CacheBytes <= 0 {
		t.Errorf("after a flush and a fetch: %+v, want a table open and cached blocks", m)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if m, ok := b.Memory(); ok || m != (Memory{}) {
		t.Errorf("closed bus: %+v ok %v, want nothing", m, ok)
	}
}

// TestRawStoreMemory checks the raw store's configured sizes, and
// nothing once closed.
func TestRawStoreMemory(t *testing.T) {
	t.Parallel()
	s := NewRawStore(t.TempDir())
	s.CacheSize, s.MemTableSize = 8<<20, 4<<20
	if _, ok := s.Memory(); ok {
		t.Error("a store not open reports memory")
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	m, ok := s.Memory()
	if !ok || m.CacheCapacity != 8<<20 || m.MemTableSize != 4<<20 || m.MemTableBytes <= 0 {
		t.Errorf("open store: %+v ok %v, want cache capacity 8 MiB, memtable size 4 MiB and memtable bytes", m, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Memory(); ok {
		t.Error("a closed store reports memory")
	}
}
