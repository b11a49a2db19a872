package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"tapline/postgres/pgtest"
)

// TestPebbleMemoryMetrics runs the all-in-one on the embedded bus and raw
// store with small caches and checks that /metrics reports each store's
// configured block cache and memtable sizes and what they hold.
func TestPebbleMemoryMetrics(t *testing.T) {
	cfg := NewConfig()
	cfg.Target = TargetAll
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RawCacheMB, cfg.MemTableMB = 24, 8
	n := New(cfg, nil)
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	res, err := http.Get(n.CollectorURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", res.StatusCode, err)
	}
	lines := strings.Split(string(body), "\n")
	for _, want := range []string{
		`tapline_pebble_block_cache_capacity_bytes{store="raw"} 2.5165824e+07`,
		`tapline_pebble_block_cache_capacity_bytes{store="bus"} 3.3554432e+07`,
		`tapline_pebble_memtable_size_bytes{store="raw"} 8.388608e+06`,
		`tapline_pebble_memtable_size_bytes{store="bus"} 8.388608e+06`,
	} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, store := range []string{"raw", "bus"} {
		prefix := `tapline_pebble_memtable_bytes{store="` + store + `"} `
		found := false
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				found = v != "0"
			}
		}
		if !found {
			t.Errorf("metrics lack a non-zero %s...", prefix)
		}
		for _, name := range []string{"tapline_pebble_block_cache_bytes", "tapline_pebble_open_tables"} {
			if !strings.Contains(string(body), name+`{store="`+store+`"} `) {
				t.Errorf("metrics lack %s for %s", name, store)
			}
		}
	}
}
