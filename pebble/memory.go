package pebble

import (
	pdb "github.com/cockroachdb/pebble/v2"
)

// Memory is what a pebble database holds in memory and open, as pebble
// reports it (pebble.DB.Metrics): the bounded caches behind most of an
// embedded process's resident memory beyond the Go heap. With cgo, pebble
// allocates the block cache and the memtables outside the Go heap.
type Memory struct {
	// CacheBytes is what the block cache holds; CacheCapacity its
	// configured size (CacheSize), which CacheBytes does not exceed.
	CacheBytes, CacheCapacity int64
	// MemTableBytes is what the memtables (and large batches) have
	// allocated, zombie memtables (no longer current, still read by an
	// iterator or waiting to be recycled) included; MemTableSize is the
	// configured size of one memtable.
	MemTableBytes, MemTableSize int64
	// OpenTables is how many table files pebble's file cache holds open,
	// each an open file descriptor.
	OpenTables int64
}

// memoryOf reads db's metrics.
func memoryOf(db *pdb.DB, cacheSize, memTableSize int64) Memory {
	m := db.Metrics()
	if memTableSize <= 0 {
		memTableSize = DefaultMemTableSize
	}
	return Memory{
		CacheBytes: m.BlockCache.Size, CacheCapacity: cacheSize,
		MemTableBytes: int64(m.MemTable.Size + m.MemTable.ZombieSize), MemTableSize: memTableSize,
		OpenTables: m.FileCache.TableCount,
	}
}

// Memory reports the bus database's caches; ok is false when the bus is
// not open.
func (b *Bus) Memory() (mem Memory, ok bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed || b.db == nil {
		return Memory{}, false
	}
	return memoryOf(b.db, b.CacheSize, b.MemTableSize), true
}

// Memory reports the raw store database's caches; ok is false when the
// store is not open.
func (s *RawStore) Memory() (mem Memory, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.db == nil {
		return Memory{}, false
	}
	return memoryOf(s.db, s.CacheSize, s.MemTableSize), true
}
