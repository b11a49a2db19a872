package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/postgres/pgtest"
)

func TestAdminCommands(t *testing.T) {
	db := pgtest.URL(t)
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut}
		err := m.Run(context.Background(), append(args, "-database-url", db))
		return out.String(), err
	}
	if _, err := run("migrate"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	out, err := run("create-account", "-name", "acme", "-email", "ops@acme.example", "-password", "a-long-password")
	if err != nil {
		t.Fatalf("create-account: %v", err)
	}
	var acct tapline.Account
	if err := json.Unmarshal([]byte(out), &acct); err != nil || acct.ID == 0 || acct.Name != "acme" {
		t.Fatalf("create-account printed %q (%v), want the account as JSON", out, err)
	}
	out, err = run("create-app", "-account", "acme", "-name", "Shop", "-ios-url", "https://apps.apple.com/app/id42", "-click-window", "48h")
	if err != nil {
		t.Fatalf("create-app: %v", err)
	}
	// The app as the admin API shows it: windows as durations, not
	// nanoseconds.
	var app dashboard.AppView
	if err := json.Unmarshal([]byte(out), &app); err != nil || app.SDKSecret == "" || app.SDKKey == "" ||
		app.ClickWindow != "48h0m0s" || app.FingerprintWindow != tapline.DefaultFingerprintWindow.String() {
		t.Fatalf("create-app printed %q (%v), want the app with credentials and a 48h click window", out, err)
	}
	out, err = run("create-link", "-account", "acme", "-app-name", "Shop", "-slug", "spring", "-name", "Spring",
		"-public-url", "https://go.acme.example/")
	if err != nil {
		t.Fatalf("create-link: %v", err)
	}
	var link dashboard.LinkView
	if err := json.Unmarshal([]byte(out), &link); err != nil || link.Link == nil || link.AppID != app.ID || link.Slug != "spring" ||
		link.TrackingURL != "https://go.acme.example/l/spring" {
		t.Fatalf("create-link printed %q (%v), want a link of app %d with its tracking URL", out, err, app.ID)
	}
	out, err = run("create-link", "-app", fmt.Sprint(app.ID), "-slug", "summer", "-collector-addr", "127.0.0.1:9999",
		"-param", "utm_source=facebook", "-param", "utm_campaign=summer", "-deep-link", "shop://summer", "-click-window", "720h")
	if err != nil || !strings.Contains(out, `"tracking_url": "http://127.0.0.1:9999/l/summer"`) {
		t.Fatalf("create-link without -public-url printed %q (%v), want the tracking URL on the collector address", out, err)
	}
	if err := json.Unmarshal([]byte(out), &link); err != nil || link.Params["utm_campaign"] != "summer" || link.Params["utm_source"] != "facebook" || link.DeepLink != "shop://summer" ||
		link.ClickWindow != "720h0m0s" || link.FingerprintWindow != "" {
		t.Fatalf("create-link with -param printed %q (%v)", out, err)
	}
	if _, err := run("create-link", "-app", fmt.Sprint(app.ID), "-slug", "x", "-param", "utm_source"); err == nil || !strings.Contains(err.Error(), "want name=value") {
		t.Errorf("a -param without a value: %v", err)
	}

	errs := []struct {
		name string
		args []string
		want string
	}{
		{"taken name", []string{"create-account", "-name", "acme", "-email", "x@acme.example", "-password", "a-long-password"}, tapline.ECONFLICT},
		{"bad name", []string{"create-account", "-name", "Not Valid", "-email", "y@acme.example", "-password", "a-long-password"}, tapline.EINVALID},
		{"unknown account", []string{"create-app", "-account", "nobody", "-name", "X"}, tapline.ENOTFOUND},
		{"unknown app name", []string{"create-link", "-account", "acme", "-app-name", "Nope", "-slug", "x"}, tapline.ENOTFOUND},
		{"taken slug", []string{"create-link", "-app", fmt.Sprint(app.ID), "-slug", "spring"}, tapline.ECONFLICT},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestHelp checks that every way of asking for help lists the commands
// and the flags, and exits 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut}
		if err := m.Run(context.Background(), []string{arg}); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
		for _, want := range []string{"Commands:", "create-link", "funnels", "explain", "Flags of run", "-database-url", "-raw-cache-mb"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: the help lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
}

// TestMain lets TestSIGTERM run this test binary as the tapline command.
func TestMain(m *testing.M) {
	if os.Getenv("TAPLINE_TEST_AS_MAIN") == "1" {
		os.Args = append([]string{"tapline"}, strings.Fields(os.Getenv("TAPLINE_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSIGTERM runs the real main in a child process and checks that
// SIGTERM shuts it down cleanly with exit status 0.
func TestSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPLINE_TEST_AS_MAIN=1", "TAPLINE_TEST_ARGS="+strings.Join([]string{"run",
		"-database-url", pgtest.URL(t), "-data-dir", t.TempDir(),
		"-collector-addr", "127.0.0.1:0", "-dashboard-addr", "127.0.0.1:0", "-demo"}, " "))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "tapline is running") {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("tapline exited before it was ready:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tapline not ready after 30 s:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tapline still running 20 s after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no shutdown message in the log:\n%s", stderr.String())
	}
}
