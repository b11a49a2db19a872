package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"tapline/pebble"
)

// registerPebbleMemory exports what an embedded pebble database (store
// "bus" or "raw") holds in memory and open, read from pebble's metrics at
// each scrape: the soak (bench/soak) judges resident memory and open
// files by them.
func registerPebbleMemory(reg prometheus.Registerer, store string, memory func() (pebble.Memory, bool)) {
	gauge := func(name, help string, v func(pebble.Memory) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"store": store}},
			func() float64 {
				m, ok := memory()
				if !ok {
					return 0
				}
				return float64(v(m))
			})
	}
	reg.MustRegister(
		gauge("tapline_pebble_block_cache_bytes", "Bytes held by the embedded store's pebble block cache.",
			func(m pebble.Memory) int64 { return m.CacheBytes }),
		gauge("tapline_pebble_block_cache_capacity_bytes", "Configured size of the embedded store's pebble block cache in bytes.",
			func(m pebble.Memory) int64 { return m.CacheCapacity }),
		gauge("tapline_pebble_memtable_bytes", "Bytes allocated by the embedded store's pebble memtables, zombie memtables included.",
			func(m pebble.Memory) int64 { return m.MemTableBytes }),
		gauge("tapline_pebble_memtable_size_bytes", "Configured size of one of the embedded store's pebble memtables in bytes.",
			func(m pebble.Memory) int64 { return m.MemTableSize }),
		gauge("tapline_pebble_open_tables", "Table files the embedded store's pebble file cache holds open.",
			func(m pebble.Memory) int64 { return m.OpenTables }),
	)
}
