package bench

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"tapline/internal/faults"
	"tapline/postgres/pgtest"
)

// TestBinaryTimeouts builds cmd/tapline, starts it as a child process (the
// all-in-one, and a matcher-only process on kfake) with short
// -http-*-timeout flags, and plays the misbehaving clients of package
// faults against every listener: each must hang up after about the
// timeout the flags set. It also reads the matcher's /healthz.
func TestBinaryTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts tapline")
	}
	ctx := t.Context()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tapline")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "tapline/cmd/tapline").CombinedOutput(); err != nil {
		t.Fatalf("build tapline: %v\n%s", err, out)
	}
	const header, read, idle = 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond
	timeouts := []string{"-http-read-header-timeout", header.String(), "-http-read-timeout", read.String(), "-http-idle-timeout", idle.String(), "-log-level", "warn"}
	dbURL := pgtest.URL(t)
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = a
	}
	coll, dash, metrics := addrs[0], addrs[1], addrs[2]
	all, err := startExec(ctx, "tapline-all", dir, "http://"+coll, "/healthz", bin, append([]string{"run", "-database-url", dbURL,
		"-data-dir", filepath.Join(dir, "all"), "-collector-addr", coll, "-dashboard-addr", dash, "-demo"}, timeouts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := all.Stop(); err != nil {
			t.Error(err)
		}
	})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	match, err := startExec(ctx, "tapline-matcher", dir, "http://"+metrics, "/healthz", bin, append([]string{"run", "-target", "matcher",
		"-database-url", dbURL, "-data-dir", filepath.Join(dir, "matcher"), "-kafka-brokers", strings.Join(cluster.ListenAddrs(), ","),
		"-metrics-addr", metrics, "-partitions", "2"}, timeouts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := match.Stop(); err != nil {
			t.Error(err)
		}
	})

	res, err := http.Get("http://" + metrics + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status string `json:"status"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	err = json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || h.Status != "ok" || len(h.Checks) != 3 {
		t.Errorf("matcher healthz: %d %+v %v, want 200 ok with 3 checks", res.StatusCode, h, err)
	}

	about := func(t *testing.T, got, want time.Duration, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("hung up after %s (timeout %s)", got.Round(time.Millisecond), want)
		// The server starts its clock before the client can (at accept,
		// or when it has written its answer), so on a loaded machine the
		// client sees less than the timeout; never far more.
		if got < want/2 || got > want+time.Second {
			t.Errorf("the server hung up after %s, want about %s", got, want)
		}
	}
	for _, l := range []struct{ name, addr, get, post string }{
		{"collector", coll, "/healthz", "/demo/event/slow/"},
		{"dashboard", dash, "/livez", "/login"},
		{"metrics", metrics, "/livez", ""},
	} {
		t.Run(l.name+"/slow headers", func(t *testing.T) {
			d, err := faults.SlowHeaders(ctx, l.addr, l.get, 20*time.Millisecond)
			about(t, d, header, err)
		})
		if l.post != "" {
			t.Run(l.name+"/slow body", func(t *testing.T) {
				d, err := faults.SlowBody(ctx, l.addr, l.post, []byte("pad="+strings.Repeat("p", 4000)), 20*time.Millisecond)
				about(t, d, read, err)
			})
		}
		t.Run(l.name+"/idle", func(t *testing.T) {
			d, err := faults.Idle(ctx, l.addr, l.get)
			about(t, d, idle, err)
		})
	}
}
