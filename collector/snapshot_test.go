package collector_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapline/collector"
)

// TestSnapshotWrittenSoonAfterANewLink checks that a link served for the
// first time reaches the snapshot within seconds, not at the next
// SnapshotInterval: a collector killed soon after must find it when it
// restarts while PostgreSQL is down.
func TestSnapshotWrittenSoonAfterANewLink(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "snapshot.json")
	e := newEnv(t, collector.Config{SnapshotPath: path, SnapshotInterval: time.Hour})
	req := httptest.NewRequest(http.MethodGet, "/l/demo", nil)
	req.Header.Set("User-Agent", iphoneUA)
	if rec := e.do(req, "198.51.100.7:4000"); rec.Code != http.StatusFound {
		t.Fatalf("tap: %d %s", rec.Code, rec.Body)
	}
	// Well under the hour, and long enough for a synced write on a loaded
	// machine under the race detector.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), `"demo"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot holds no link demo 20 s after its first tap, with an hour's SnapshotInterval (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
