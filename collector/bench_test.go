package collector_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"tapline/collector"
)

// BenchmarkRedirect measures a tap through Handler(): cached link, hit
// queued for the publisher.
func BenchmarkRedirect(b *testing.B) {
	e := newEnv(b, collector.Config{})
	h := e.h
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/l/demo?utm_source=bench&idfa=6D92078A-8246-4BA4-AE5B-76104861E7DC", nil)
			req.Header.Set("User-Agent", iphoneUA)
			req.RemoteAddr = "198.51.100.7:1234"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusFound {
				b.Fatalf("status = %d", rec.Code)
			}
		}
	})
}

// BenchmarkTapstreamEvent measures one Tapstream SDK install post,
// published to the pebble bus before the answer.
func BenchmarkTapstreamEvent(b *testing.B) {
	e := newEnv(b, collector.Config{})
	fixture := readFixture(b, filepath.Join("testdata", "tapstream", "ios_install.http"))
	body, _ := io.ReadAll(fixture.Body)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// A distinct created-ms per request, so each is a new event.
			bb := bytes.Replace(body, []byte("created-ms=1714564800000"), []byte("created-ms="+strconv.FormatInt(1714564800000+n.Add(1), 10)), 1)
			req := httptest.NewRequest(http.MethodPost, fixture.URL.Path, bytes.NewReader(bb))
			req.Header = fixture.Header.Clone()
			req.RemoteAddr = "203.0.113.9:5000"
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status = %d %s", rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkJSONBatch measures a JSON batch of 20 events.
func BenchmarkJSONBatch(b *testing.B) {
	e := newEnv(b, collector.Config{})
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := range 20 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":"ev-` + strconv.Itoa(i) + `","name":"level_up","time":"2024-05-01T11:00:00Z","install_id":"I","device":{"platform":"android","os_version":"14","model":"Pixel 7"},"params":{"level":"3"}}`)
	}
	sb.WriteString(`]}`)
	body := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, batchRequest(demoKey, body))
			if rec.Code != http.StatusOK {
				b.Fatalf("status = %d %s", rec.Code, rec.Body)
			}
		}
	})
}
