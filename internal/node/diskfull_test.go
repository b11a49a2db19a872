package node

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/internal/disktest"
	"tapline/postgres/pgtest"
)

// TestDiskFullAllInOne runs `tapline run` with its data directory on a
// 32 MiB tmpfs and fills the disk below -min-free-disk-mb: an SDK event
// answers 503 with Retry-After saying storage is full, a tap is still
// redirected, and once the filler is deleted the retried event is taken
// and both the event and the taps are counted, without a restart.
func TestDiskFullAllInOne(t *testing.T) {
	dir := disktest.Small(t, 32)
	token := strings.Repeat("t", 32)
	cfg := NewConfig()
	cfg.DatabaseURL, cfg.DataDir, cfg.Demo = pgtest.URL(t), filepath.Join(dir, "data"), true
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken = token
	cfg.MemTableMB, cfg.RawCacheMB, cfg.Partitions = 1, 1, 2
	cfg.MinFreeDiskMB = 4
	n := New(cfg, nil)
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // before the unmount

	tap := func() {
		t.Helper()
		req := mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug)
		req.Header.Set("User-Agent", iPhoneSafari)
		resp, err := demoClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("tap: %d, want 302", resp.StatusCode)
		}
	}
	form := url.Values{"secret": {DemoSDKSecret}, "uuid": {"7A1B2C3D-0000-4000-8000-00000000D15C"}, "platform": {"iOS"},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	install := func() (int, http.Header, string) {
		t.Helper()
		resp, err := demoClient.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/ios-demo-install/", form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, string(b)
	}
	tap() // warms the link cache

	filler := disktest.Fill(t, dir, 3<<20)
	status, h, body := install()
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "Storage is full") {
		t.Fatalf("install on a full disk: %d Retry-After %q %s, want 503 with Retry-After saying storage is full", status, h.Get("Retry-After"), body)
	}
	tap()
	if got := counter(t, n, "tapline_collector_storage_full_total"); got != 1 {
		t.Errorf("tapline_collector_storage_full_total = %v, want 1", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if status, _, body := install(); status != http.StatusOK {
		t.Fatalf("install after space returned: %d %s, want 200", status, body)
	}
	waitCounts(t, n, token, tapline.DailyStats{Hits: 2, Installs: 1, Events: eventsOfOneInstall(t, n, token)})
}

// eventsOfOneInstall returns what the events total counts for the one
// install of TestDiskFullAllInOne (an install may or may not count as an
// event), once the install is counted.
func eventsOfOneInstall(t *testing.T, n *Node, token string) int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, _ := today(t, n, token)
		if d.Installs == 1 {
			return d.Events
		}
		if time.Now().After(deadline) {
			t.Fatalf("install not counted after 15 s: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
