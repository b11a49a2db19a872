package node

import (
	"flag"
	"io"
	"os"
	"path/filepath"
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

// TestHTTPTimeoutAndHealthSettings checks the -http-*-timeout and
// -health-max-lag flags from their defaults, the environment and the
// command line, and that Validate refuses bad values by name.
func TestHTTPTimeoutAndHealthSettings(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.HTTPReadHeaderTimeout != 10*time.Second || cfg.HTTPReadTimeout != 30*time.Second ||
		cfg.HTTPWriteTimeout != 30*time.Second || cfg.HTTPIdleTimeout != 2*time.Minute || cfg.HealthMaxLag != 1_000_000 {
		t.Fatalf("defaults: %+v (%v)", cfg, err)
	}
	t.Setenv("TAPLINE_HTTP_IDLE_TIMEOUT", "5s")
	t.Setenv("TAPLINE_HEALTH_MAX_LAG", "500")
	cfg, err = parseRun("-http-read-header-timeout", "200ms", "-http-read-timeout", "300ms", "-http-write-timeout", "1s")
	if err != nil || cfg.HTTPReadHeaderTimeout != 200*time.Millisecond || cfg.HTTPReadTimeout != 300*time.Millisecond ||
		cfg.HTTPWriteTimeout != time.Second || cfg.HTTPIdleTimeout != 5*time.Second || cfg.HealthMaxLag != 500 {
		t.Fatalf("flags and environment: %+v (%v)", cfg, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"zero header timeout", []string{"-http-read-header-timeout", "0s"}, "-http-read-header-timeout: must be positive"},
		{"negative idle timeout", []string{"-http-idle-timeout", "-1s"}, "-http-idle-timeout: must be positive"},
		{"header timeout over read timeout", []string{"-http-read-header-timeout", "2s", "-http-read-timeout", "1s"}, "-http-read-header-timeout: must not exceed -http-read-timeout"},
		{"zero lag bound", []string{"-health-max-lag", "0"}, "-health-max-lag: must be at least 1"},
	} {
		cfg, err := parseRun(tt.args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// TestMatcherExpireEverySetting checks -matcher-expire-every from its
// default, the environment and the command line, that it reaches the
// matcher's configuration and that Validate refuses less than a second.
func TestMatcherExpireEverySetting(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.MatcherExpireEvery != time.Hour {
		t.Fatalf("default: %s (%v), want 1h", cfg.MatcherExpireEvery, err)
	}
	t.Setenv("TAPLINE_MATCHER_EXPIRE_EVERY", "5m")
	if cfg, _ = parseRun(); cfg.MatcherExpireEvery != 5*time.Minute {
		t.Errorf("from the environment: %s, want 5m", cfg.MatcherExpireEvery)
	}
	if cfg, _ = parseRun("-matcher-expire-every", "30s"); cfg.MatcherExpireEvery != 30*time.Second || cfg.Validate() != nil {
		t.Errorf("flag over environment: %s (%v), want 30s and valid", cfg.MatcherExpireEvery, cfg.Validate())
	}
	if got := MatcherConfig(&cfg).ExpireEvery; got != 30*time.Second {
		t.Errorf("matcher ExpireEvery %s, want 30s", got)
	}
	for _, bad := range []string{"0s", "500ms", "-1m"} {
		cfg, _ = parseRun("-matcher-expire-every", bad)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-matcher-expire-every: must be at least 1s") {
			t.Errorf("-matcher-expire-every %s: error %v, want it refused by name", bad, err)
		}
	}
}

// TestSKANLimitSettings checks -skan-rate, -skan-burst and
// -skan-max-rejected: the defaults (0, the components'), the environment,
// the command line, and what Validate refuses.
func TestSKANLimitSettings(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.SKANRate != 0 || cfg.SKANBurst != 0 || cfg.SKANMaxRejected != 0 || cfg.Validate() != nil {
		t.Fatalf("defaults: %g, %d, %d (%v, %v); want the components' (0) and valid", cfg.SKANRate, cfg.SKANBurst, cfg.SKANMaxRejected, err, cfg.Validate())
	}
	t.Setenv("TAPLINE_SKAN_RATE", "0.2")
	t.Setenv("TAPLINE_SKAN_BURST", "5")
	t.Setenv("TAPLINE_SKAN_MAX_REJECTED", "1000")
	if cfg, _ = parseRun(); cfg.SKANRate != 0.2 || cfg.SKANBurst != 5 || cfg.SKANMaxRejected != 1000 {
		t.Errorf("from the environment: %g, %d, %d; want 0.2, 5, 1000", cfg.SKANRate, cfg.SKANBurst, cfg.SKANMaxRejected)
	}
	if cfg, _ = parseRun("-skan-rate", "3", "-skan-max-rejected", "10"); cfg.SKANRate != 3 || cfg.SKANBurst != 5 || cfg.SKANMaxRejected != 10 || cfg.Validate() != nil {
		t.Errorf("flags over environment: %g, %d, %d (%v); want 3, 5, 10 and valid", cfg.SKANRate, cfg.SKANBurst, cfg.SKANMaxRejected, cfg.Validate())
	}
	for _, c := range []struct{ flag, value, want string }{
		{"-skan-rate", "-1", "-skan-rate: must not be negative"},
		{"-skan-burst", "-1", "-skan-burst: must not be negative"},
		{"-skan-max-rejected", "-1", "-skan-max-rejected: must not be negative"},
	} {
		cfg, _ = parseRun(c.flag, c.value)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.flag, c.value, err, c.want)
		}
	}
	t.Setenv("TAPLINE_SKAN_BURST", "many")
	if cfg, _ = parseRun(); cfg.Validate() == nil {
		t.Error("TAPLINE_SKAN_BURST=many was taken")
	}
}

// TestPostbackRetentionSetting checks -postback-retention: its default
// (30 days), the environment, the command line, that it reaches the
// matcher, and what Validate refuses.
func TestPostbackRetentionSetting(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.PostbackRetention != 30*24*time.Hour || MatcherConfig(&cfg).DeliveryRetention != 30*24*time.Hour {
		t.Fatalf("default: %s (%v), want 720h, the matcher's too", cfg.PostbackRetention, err)
	}
	t.Setenv("TAPLINE_POSTBACK_RETENTION", "168h")
	if cfg, _ = parseRun(); cfg.PostbackRetention != 7*24*time.Hour {
		t.Errorf("from the environment: %s, want 168h", cfg.PostbackRetention)
	}
	if cfg, _ = parseRun("-postback-retention", "2160h"); cfg.PostbackRetention != 90*24*time.Hour || cfg.Validate() != nil {
		t.Errorf("flag over environment: %s (%v), want 2160h and valid", cfg.PostbackRetention, cfg.Validate())
	}
	if got := MatcherConfig(&cfg).DeliveryRetention; got != 90*24*time.Hour {
		t.Errorf("matcher DeliveryRetention %s, want 2160h", got)
	}
	for _, bad := range []string{"0s", "59m", "-1h"} {
		cfg, _ = parseRun("-postback-retention", bad)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-postback-retention: must be at least 1h") {
			t.Errorf("-postback-retention %s: error %v, want it refused by name", bad, err)
		}
	}
}

// TestMatcherTimingFlags checks -matcher-offset-check and
// -matcher-collector-skew: defaults, the command line, that they reach the
// matcher's configuration, and what Validate refuses.
func TestMatcherTimingFlags(t *testing.T) {
	cfg, err := parseRun()
	if err != nil || cfg.Validate() != nil {
		t.Fatalf("defaults: %v, %v", err, cfg.Validate())
	}
	if mc := MatcherConfig(&cfg); mc.OffsetCheck != 2*time.Second || mc.CollectorSkew != 5*time.Second || mc.MaxPendingBytes != 256<<20 {
		t.Errorf("defaults reach the matcher as OffsetCheck %s, CollectorSkew %s, MaxPendingBytes %d; want 2s, 5s, 256 MiB", mc.OffsetCheck, mc.CollectorSkew, mc.MaxPendingBytes)
	}
	if cfg.HealthMaxBehind != 10*time.Minute || cfg.metricsAddr() != "" {
		t.Errorf("defaults: -health-max-behind %s, operator listener %q; want 10m and none", cfg.HealthMaxBehind, cfg.metricsAddr())
	}
	if cfg.Target = TargetMatcher; cfg.metricsAddr() != DefaultMatcherMetricsAddr {
		t.Errorf("a matcher-only process's operator listener: %q, want %s", cfg.metricsAddr(), DefaultMatcherMetricsAddr)
	}
	cfg, _ = parseRun("-matcher-offset-check", "10s", "-matcher-collector-skew", "1s", "-matcher-max-pending-mb", "64", "-health-max-behind", "90s", "-metrics-addr", "10.0.0.5:9464")
	if mc := MatcherConfig(&cfg); cfg.Validate() != nil || mc.OffsetCheck != 10*time.Second || mc.CollectorSkew != time.Second || mc.MaxPendingBytes != 64<<20 ||
		cfg.HealthMaxBehind != 90*time.Second || cfg.metricsAddr() != "10.0.0.5:9464" {
		t.Errorf("set: OffsetCheck %s, CollectorSkew %s, MaxPendingBytes %d, -health-max-behind %s, operator listener %q (%v); want 10s, 1s, 64 MiB, 90s, 10.0.0.5:9464",
			mc.OffsetCheck, mc.CollectorSkew, mc.MaxPendingBytes, cfg.HealthMaxBehind, cfg.metricsAddr(), cfg.Validate())
	}
	for _, c := range []struct{ flag, value, want string }{
		{"-matcher-offset-check", "50ms", "-matcher-offset-check: must be at least 100ms"},
		{"-matcher-collector-skew", "0s", "-matcher-collector-skew: must be positive"},
		{"-matcher-collector-skew", "-2s", "-matcher-collector-skew: must be positive"},
		{"-matcher-max-pending-mb", "8", "-matcher-max-pending-mb: must be at least 16"},
		{"-health-max-behind", "500ms", "-health-max-behind: must be at least 1s"},
		{"-metrics-addr", "nowhere", "-metrics-addr: want host:port"},
	} {
		cfg, _ = parseRun(c.flag, c.value)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.flag, c.value, err, c.want)
		}
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

// TestGroupInstanceIDSetting checks -group-instance-id: by default the
// host name and the absolute data directory, else the environment, else
// the flag; and that Validate refuses a name with a control character.
func TestGroupInstanceIDSetting(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, _ := parseRun("-data-dir", dir)
	if got, want := cfg.groupInstanceID(), host+":"+dir; got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	t.Chdir(dir)
	cfg, _ = parseRun("-data-dir", "data")
	if got, want := cfg.groupInstanceID(), host+":"+filepath.Join(dir, "data"); got != want {
		t.Errorf("relative data dir: %q, want %q", got, want)
	}
	t.Setenv("TAPLINE_GROUP_INSTANCE_ID", "matcher-a")
	if cfg, _ = parseRun(); cfg.groupInstanceID() != "matcher-a" {
		t.Errorf("from the environment: %q, want matcher-a", cfg.groupInstanceID())
	}
	if cfg, _ = parseRun("-group-instance-id", "matcher-b"); cfg.groupInstanceID() != "matcher-b" {
		t.Errorf("flag over environment: %q, want matcher-b", cfg.groupInstanceID())
	}
	cfg, _ = parseRun("-group-instance-id", "matcher\nb")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-group-instance-id:") {
		t.Errorf("a newline in the name: error %v, want it refused by name", err)
	}
}
