package pebble

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
)

// BenchmarkBusPublish publishes one message per call from many goroutines,
// which the writer groups into synced batches.
func BenchmarkBusPublish(b *testing.B) {
	bus := mustOpenBus(b, b.TempDir(), DefaultPartitions)
	value := make([]byte, 400) // about a hit's JSON
	var n atomic.Int64
	b.SetParallelism(32) // collectors publish from many request goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := strconv.AppendInt(nil, n.Add(1)%1024, 10)
			m := tapline.Message{Topic: tapline.TopicHits, Key: key, Value: value}
			if err := bus.Publish(b.Context(), m); err != nil {
				b.Fatalf("Publish: %v", err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func benchHit(i int, at time.Time) *tapline.Hit {
	return &tapline.Hit{
		ID:          fmt.Sprintf("hit-%09d", i),
		Time:        at,
		AppID:       1,
		LinkID:      7,
		IP:          "203.0.113.7",
		UserAgent:   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
		Params:      map[string]string{"utm_source": "ads", "utm_campaign": "spring"},
		Platform:    tapline.PlatformIOS,
		OSVersion:   "17.4",
		Fingerprint: fmt.Sprintf("fp-%04d", i%1000),
	}
}

// BenchmarkRawStorePutHit stores new hits, each with a synced write, on a
// store that already holds 60 days of hits.
func BenchmarkRawStorePutHit(b *testing.B) {
	s := mustOpenRawStore(b, b.TempDir())
	now := time.Now()
	fill(b, s, 6000, now, 14*time.Minute) // one hundred a day over 60 days
	var n atomic.Int64
	n.Store(6000)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.PutHit(b.Context(), benchHit(int(n.Add(1)), now)); err != nil {
				b.Fatalf("PutHit: %v", err)
			}
		}
	})
}

// BenchmarkHitsByFingerprint looks up one fingerprint over a day among
// 20,000 hits of 1,000 fingerprints spread over 20 days.
func BenchmarkHitsByFingerprint(b *testing.B) {
	s := mustOpenRawStore(b, b.TempDir())
	now := time.Now()
	fill(b, s, 20000, now, 86*time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	rows := 0
	for i := range b.N {
		hs, err := s.HitsByFingerprint(b.Context(), 1, fmt.Sprintf("fp-%04d", i%1000), now.Add(-24*time.Hour), now)
		if err != nil {
			b.Fatalf("HitsByFingerprint: %v", err)
		}
		rows += len(hs)
	}
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// fill stores n hits, every to apart back from now, from parallel writers so
// their syncs are grouped.
func fill(b *testing.B, s *RawStore, n int, now time.Time, every time.Duration) {
	b.Helper()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				if _, err := s.PutHit(b.Context(), benchHit(i, now.Add(-time.Duration(i)*every))); err != nil {
					b.Errorf("PutHit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkEraseDevice erases one device, with a tap and an installation
// of three events, from a store of 60 days of other devices' taps and
// installations, 80,000 rows over nine week buckets; each call erases
// another device.
func BenchmarkEraseDevice(b *testing.B) {
	dir := b.TempDir()
	l, err := OpenLoader(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	batch := l.NewBatch()
	const devices = 20_000
	for i := range devices {
		at := now.Add(-time.Duration(i) * 60 * 24 * time.Hour / devices)
		h := benchHit(i, at)
		h.AdID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		batch.Hit(h)
		for j, kind := range []tapline.EventKind{tapline.KindInstall, tapline.KindOpen, tapline.KindPurchase} {
			batch.Event(&tapline.Event{ID: fmt.Sprintf("ev-%d-%d", i, j), AppID: 1, Kind: kind, Time: at.Add(time.Duration(j+1) * time.Minute),
				InstallID: fmt.Sprintf("inst-%d", i), Device: tapline.Device{Platform: tapline.PlatformIOS, IDFA: h.AdID}, Fingerprint: h.Fingerprint})
		}
		if batch.Size() > 4<<20 {
			if err := batch.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	batch.Close()
	if err := l.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
	s := mustOpenRawStore(b, dir)
	b.ResetTimer()
	for i := range b.N {
		ad := fmt.Sprintf("%08x-0000-4000-8000-%012x", i%devices, i%devices)
		n, err := s.EraseDevice(b.Context(), &tapline.Erasure{AppID: 1, AdIDs: []string{ad}})
		if err != nil {
			b.Fatal(err)
		}
		if i < devices && (n.Hits != 1 || n.Events != 3) {
			b.Fatalf("erased %+v, want 1 hit and 3 events", n)
		}
	}
}
