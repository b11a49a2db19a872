package export_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
	"tapline/export"
	"tapline/pebble"
)

// countSink counts a download's rows and bytes and keeps nothing.
type countSink struct{ rows, bytes int64 }

func (s *countSink) Header(line []byte) error { s.bytes += int64(len(line)); return nil }
func (s *countSink) Row(line []byte, _ string) error {
	s.rows++
	s.bytes += int64(len(line))
	return nil
}

// TestConstantMemory exports 200,000 hits (TAPLINE_EXPORT_ROWS more) through the HTTP API and a
// Client in this process and checks that the heap in use stays within a
// bound far below the export's size: neither side holds the export. It
// runs alone (not in parallel), so the heap is the export's.
func TestConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 200,000 hits")
	}
	rows := 200_000
	if s := os.Getenv("TAPLINE_EXPORT_ROWS"); s != "" {
		// A bigger run on demand: TAPLINE_EXPORT_ROWS=1000000.
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TAPLINE_EXPORT_ROWS=%q: want a row count", s)
		}
		rows = n
	}
	e := newEnv(t)

	// Load the hits with a Loader, in a store of their own.
	dir := t.TempDir()
	l, err := pebble.OpenLoader(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Within the retention (60 days), however many.
	step := min(20*time.Second, 50*24*time.Hour/time.Duration(rows))
	b := l.NewBatch()
	for i := range rows {
		b.Hit(&tapline.Hit{ID: fmt.Sprintf("h-%07d-%08x", i, uint32(i)*2654435761), AppID: e.app.ID, LinkID: int64(i % 50),
			Time: e.now.Add(-time.Duration(i) * step), IP: "198.51.100.23", Platform: tapline.PlatformAndroid,
			OSVersion: "14", Model: "Pixel 7", AcceptLanguage: "de-DE,de;q=0.9,en;q=0.8", Fingerprint: "198.51.100.23|android",
			Params: map[string]string{"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": fmt.Sprintf("week-%d", i%52)}})
		if b.Size() >= 4<<20 {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	raw := pebble.NewRawStore(dir)
	raw.CacheSize = 8 << 20
	if err := raw.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	api := export.New(e.accounts, e.reports)
	api.Raw, api.Logger = raw, e.api.Logger
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	for _, format := range []string{export.FormatNDJSON, export.FormatCSV} {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		var sink countSink
		start := time.Now()
		c := &export.Client{BaseURL: srv.URL, Token: e.token}
		_, err := c.Download(t.Context(), export.Request{AppID: e.app.ID, Kind: export.KindHits, Format: format}, &sink)
		took := time.Since(start)
		close(stop)
		<-sampled
		if err != nil {
			t.Fatal(err)
		}
		if sink.rows != int64(rows) {
			t.Fatalf("%s: exported %d hits, want %d", format, sink.rows, rows)
		}
		grew := int64(peak.Load()) - int64(before.HeapInuse)
		t.Logf("%s: %d rows, %.1f MB in %s (%.0f rows/s); heap in use %.1f MB before, peak %.1f MB (+%.1f MB)", format, sink.rows,
			float64(sink.bytes)/1e6, took.Round(time.Millisecond), float64(rows)/took.Seconds(),
			float64(before.HeapInuse)/1e6, float64(peak.Load())/1e6, float64(grew)/1e6)
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "VmHWM:") {
					t.Logf("%s: the test process's peak RSS so far, %s", format, strings.Join(strings.Fields(line)[1:], " "))
				}
			}
		}
		// The export is some 50 MB; both ends together may hold a few
		// batches of rows, their buffers and the garbage between two
		// collections.
		if limit := int64(24 << 20); grew > limit || grew > sink.bytes/2 {
			t.Errorf("%s: the heap in use grew by %.1f MB while %.1f MB streamed, over %.0f MB", format, float64(grew)/1e6, float64(sink.bytes)/1e6, float64(limit)/1e6)
		}
	}
}
