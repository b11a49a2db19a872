package node

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"tapline/pebble"
)

// parseRun parses the flags of "tapline run" (and the environment) into
// a config with a database URL.
func parseRun(args ...string) (Config, error) {
	cfg := NewConfig()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	err := fs.Parse(args)
	cfg.DatabaseURL = "postgres://localhost/x"
	return cfg, err
}

// TestRawCacheSetting checks -raw-cache-mb from its default, the
// environment and the command line, and that Validate refuses what no
// cache can be.
func TestRawCacheSetting(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.RawCacheMB != pebble.DefaultRawCacheSize>>20 {
		t.Fatalf("default: %d MiB (%v), want %d", cfg.RawCacheMB, err, pebble.DefaultRawCacheSize>>20)
	}
	t.Setenv("TAPLINE_RAW_CACHE_MB", "48")
	if cfg, _ = parseRun(); cfg.RawCacheMB != 48 {
		t.Errorf("from the environment: %d MiB, want 48", cfg.RawCacheMB)
	}
	if cfg, _ = parseRun("-raw-cache-mb", "16"); cfg.RawCacheMB != 16 {
		t.Errorf("flag over environment: %d MiB, want 16", cfg.RawCacheMB)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("16 MiB: %v", err)
	}
	for _, bad := range []string{"0", "-5"} {
		cfg, _ = parseRun("-raw-cache-mb", bad)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-raw-cache-mb: must be 1..") {
			t.Errorf("-raw-cache-mb %s: error %v, want it refused by name", bad, err)
		}
	}
}

// TestMemTableSetting checks -memtable-mb the same way.
func TestMemTableSetting(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.MemTableMB != pebble.DefaultMemTableSize>>20 {
		t.Fatalf("default: %d MiB (%v), want %d", cfg.MemTableMB, err, pebble.DefaultMemTableSize>>20)
	}
	t.Setenv("TAPLINE_MEMTABLE_MB", "8")
	if cfg, _ = parseRun(); cfg.MemTableMB != 8 {
		t.Errorf("from the environment: %d MiB, want 8", cfg.MemTableMB)
	}
	if cfg, _ = parseRun("-memtable-mb", "4"); cfg.MemTableMB != 4 || cfg.Validate() != nil {
		t.Errorf("flag over environment: %d MiB (%v), want 4 and valid", cfg.MemTableMB, cfg.Validate())
	}
	for _, bad := range []string{"0", "2048"} {
		cfg, _ = parseRun("-memtable-mb", bad)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-memtable-mb: must be 1..") {
			t.Errorf("-memtable-mb %s: error %v, want it refused by name", bad, err)
		}
	}
}

// TestMatcherOrderedOnlyEmbedded: the ordered matcher orders one
// process's partitions, which a Kafka consumer group shares out.
func TestMatcherOrderedOnlyEmbedded(t *testing.T) {
	cfg, err := parseRun("-matcher-ordered")
	if err != nil || !cfg.MatcherOrdered || cfg.Validate() != nil {
		t.Fatalf("-matcher-ordered on the embedded bus: %v, %v", err, cfg.Validate())
	}
	cfg, _ = parseRun("-matcher-ordered", "-kafka-brokers", "127.0.0.1:9092")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-matcher-ordered") {
		t.Fatalf("-matcher-ordered with Kafka: %v, want it refused by name", err)
	}
}

// TestCollectorBinaryNeedsKafka: cmd/collector without -kafka-brokers
// refuses to start (it would record into a bus no matcher reads), while
// tapline run -target collector may collect onto the embedded bus.
func TestCollectorBinaryNeedsKafka(t *testing.T) {
	var stderr strings.Builder
	code := Main(TargetCollector, []string{"-database-url", "postgres://u@127.0.0.1:1/db", "-data-dir", t.TempDir()}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "-kafka-brokers is required") {
		t.Errorf("exit %d, stderr %q; want 2 and the missing flag named", code, stderr.String())
	}
	cfg, err := parseRun("-target", "collector", "-database-url", "postgres://u@127.0.0.1:1/db", "-data-dir", t.TempDir())
	if err != nil {
		t.Fatalf("tapline run -target collector without Kafka: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("tapline run -target collector without Kafka: %v", err)
	}
}

// TestFaultFlags checks -min-free-disk-mb and -clock-offset: defaults,
// the command line, and what Validate refuses.
func TestFaultFlags(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.MinFreeDiskMB != pebble.DefaultMinFreeBytes>>20 || cfg.ClockOffset != 0 || cfg.minFreeBytes() != pebble.DefaultMinFreeBytes {
		t.Fatalf("defaults: %d MiB, offset %s (%v)", cfg.MinFreeDiskMB, cfg.ClockOffset, err)
	}
	cfg, err = parseRun("-min-free-disk-mb", "0", "-clock-offset", "-5m")
	if err != nil || cfg.minFreeBytes() != -1 || cfg.ClockOffset != -5*time.Minute {
		t.Fatalf("-min-free-disk-mb 0 -clock-offset -5m: %d bytes, offset %s (%v)", cfg.minFreeBytes(), cfg.ClockOffset, err)
	}
	if d := time.Since(cfg.now()()); d < 5*time.Minute-time.Second || d > 5*time.Minute+time.Second {
		t.Errorf("a clock 5 minutes behind is %s behind", d)
	}
	cfg, _ = parseRun("-min-free-disk-mb", "-1")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-min-free-disk-mb") {
		t.Errorf("Validate of -min-free-disk-mb -1: %v, want an error naming the flag", err)
	}
}
