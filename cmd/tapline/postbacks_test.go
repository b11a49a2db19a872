package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tapline"
	"tapline/internal/node"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestPostbacksSurviveKill9 runs tapline as a child process with a postback
// to an ad network on loopback that fails each key's first call (503, 500,
// or no answer in time), taps and installs through it, kills it with SIGKILL while
// deliveries are under way, starts it again on the same data and sends
// more: the network must end up with one postback per acknowledged
// install, under one key each, however many calls that took. (Every tap
// comes from loopback: some installs are first credited by fingerprint to
// another device's tap and corrected by their own late tap, which with
// on_reattribution "none" sends nothing more.)
func TestPostbacksSurviveKill9(t *testing.T) {
	ctx := context.Background()
	dbURL, dataDir := pgtest.URL(t), t.TempDir()
	collectorAddr, dashboardAddr := freeAddr(t), freeAddr(t)

	var mu sync.Mutex
	processed := map[string]string{} // key -> install id
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		calls[key]++
		call := calls[key]
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		// Each key's first call fails: 503, or 500, or no answer within
		// the postback's timeout (the network handles it all the same).
		switch {
		case call == 1 && key[0] < '6':
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		case call == 1 && key[0] < 'b':
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		case call == 1:
			time.Sleep(600 * time.Millisecond)
		}
		mu.Lock()
		if _, ok := processed[key]; !ok {
			processed[key] = r.URL.Query().Get("install")
		}
		mu.Unlock()
	}))
	defer srv.Close()

	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TAPLINE_TEST_AS_MAIN=1", "TAPLINE_TEST_ARGS="+strings.Join([]string{"run",
			"-database-url", dbURL, "-data-dir", dataDir, "-collector-addr", collectorAddr, "-dashboard-addr", dashboardAddr, "-demo",
			"-postbacks-allow-private", "-postback-lease", "2s", "-postback-retry-min", "100ms"}, " "))
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		started := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				logs.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "tapline started") {
					started <- true
				}
			}
			close(started)
		}()
		select {
		case ok := <-started:
			if !ok {
				t.Fatalf("tapline exited before it started")
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("tapline not started after 60 s")
		}
		return cmd
	}
	cmd := start()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	db := postgres.NewDB(dbURL)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	demo, err := node.SeedDemo(ctx, postgres.NewAccountService(db))
	if err != nil {
		t.Fatal(err)
	}
	pbs := postgres.NewPostbackService(db)
	if err := pbs.CreatePostback(ctx, &tapline.Postback{AppID: demo.App.ID, Network: "loopback", Events: []string{"install"},
		URL: srv.URL + "/pb?click={click_id}&install={install_id}", Timeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The matcher caches app settings for a minute: it learns the
	// postback on the restart below, or on first use of the app.

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + collectorAddr
	device := func(i int) {
		t.Helper()
		idfa := fmt.Sprintf("1E2D3C4B-5A69-4788-9766-%012d", i)
		req, _ := http.NewRequest(http.MethodGet, base+"/l/"+node.DemoLinkSlug+"?idfa="+idfa, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		form := url.Values{"secret": {node.DemoSDKSecret}, "uuid": {fmt.Sprintf("device-%d", i)}, "platform": {"iOS"},
			"hardware-ios-idfa": {idfa}, "created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
		resp, err = client.PostForm(base+"/"+node.DemoAccount+"/event/ios-demo-install/", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("install %d: %d", i, resp.StatusCode)
		}
	}
	const before, after = 20, 20
	for i := range before {
		device(i)
	}
	// Kill it once some postbacks are through, while others are under
	// way or waiting for their retry.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(processed)
		mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no postback calls after 60 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	mu.Lock()
	atKill := len(processed)
	mu.Unlock()

	cmd = start()
	for i := before; i < before+after; i++ {
		device(i)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		n := len(processed)
		mu.Unlock()
		if n >= before+after {
			break
		}
		if time.Now().After(deadline) {
			ds, _ := pbs.Deliveries(ctx, tapline.DeliveryQuery{AppID: demo.App.ID, Limit: 100})
			t.Fatalf("the network processed %d postbacks after 90 s, want %d; the outbox holds %d", n, before+after, len(ds))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // time for a wrong extra one
	mu.Lock()
	defer mu.Unlock()
	installs := map[string]bool{}
	total := 0
	for key, inst := range processed {
		if inst == "" || installs[inst] {
			t.Errorf("key %s: install %q, announced under another key too", key, inst)
		}
		installs[inst] = true
	}
	for _, n := range calls {
		total += n
	}
	if len(processed) != before+after {
		t.Errorf("the network processed %d keys, want %d: one per acknowledged install", len(processed), before+after)
	}
	if total < 2*(before+after) {
		t.Errorf("%d calls for %d keys: every key's failed first call should have been retried", total, before+after)
	}
	t.Logf("%d postbacks processed (%d before the kill), %d calls", len(processed), atKill, total)
}
