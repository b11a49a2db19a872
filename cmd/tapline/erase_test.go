package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// TestEraseCommand records erasure requests with "tapline erase", reads
// their status, waits for one the matcher's part completes, and refuses
// bad input.
func TestEraseCommand(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut}
		err := m.Run(ctx, append(args, "-database-url", dbURL))
		return out.String(), err
	}
	if _, err := run("create-account", "-name", "acme", "-email", "ops@acme.example", "-password", "a-long-password"); err != nil {
		t.Fatal(err)
	}
	out, err := run("create-app", "-account", "acme", "-name", "Shop", "-ios-url", "https://apps.apple.com/app/id42")
	if err != nil {
		t.Fatal(err)
	}
	var app dashboard.AppView
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}
	const ad = "6D9C5B8E-1F2A-4C3B-9D8E-7F6A5B4C3D2E"

	out, err = run("erase", "-account", "acme", "-app-name", "Shop", "-ad-id", ad, "-requested-by", "dpo@acme.example")
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	var v dashboard.ErasureView
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID == 0 || v.AppID != app.ID || v.Kind != tapline.ErasureAdID ||
		v.Status != "pending" || v.RequestedBy != "dpo@acme.example" {
		t.Fatalf("erase printed %q (%v), want a pending ad_id request of app %d", out, err, app.ID)
	}
	if strings.Contains(strings.ToLower(out), strings.ToLower(ad)) {
		t.Errorf("erase printed the advertising id: %s", out)
	}
	out, err = run("erase", "-app", fmt.Sprint(app.ID), "-status", fmt.Sprint(v.ID))
	if err != nil || !strings.Contains(out, `"status": "pending"`) {
		t.Fatalf("erase -status printed %q (%v), want the pending request", out, err)
	}

	// The matcher's part, meanwhile: perform every pending request.
	db := postgres.NewDB(dbURL)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es := postgres.NewErasureStore(db)
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		finished := 0
		for finished < 2 && time.Now().Before(deadline) {
			r, err := es.ClaimErasure(ctx, time.Minute)
			if err != nil {
				done <- err
				return
			}
			if r == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err := es.FinishErasure(ctx, r, nil, tapline.ErasureCounts{Events: 4}); err != nil {
				done <- err
				return
			}
			finished++
		}
		done <- nil
	}()
	out, err = run("erase", "-app", fmt.Sprint(app.ID), "-install-id", "inst-7", "-wait", "10s")
	if err != nil {
		t.Fatalf("erase -wait: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Status != "done" || v.Kind != tapline.ErasureInstallID || v.Counts.Events != 4 || v.RequestedBy != "cli" {
		t.Fatalf("erase -wait printed %q (%v), want the done install_id request", out, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no id", []string{"erase", "-app", fmt.Sprint(app.ID)}, "-ad-id or -install-id"},
		{"both ids", []string{"erase", "-app", fmt.Sprint(app.ID), "-ad-id", ad, "-install-id", "x"}, "not both"},
		{"bad advertising id", []string{"erase", "-app", fmt.Sprint(app.ID), "-ad-id", "nope"}, tapline.EINVALID},
		{"no app", []string{"erase", "-ad-id", ad}, "-app"},
		{"unknown app", []string{"erase", "-app", "999999", "-ad-id", ad}, tapline.ENOTFOUND},
		{"unknown app name", []string{"erase", "-account", "acme", "-app-name", "Nope", "-ad-id", ad}, tapline.ENOTFOUND},
		{"unknown request", []string{"erase", "-app", fmt.Sprint(app.ID), "-status", "999999"}, tapline.ENOTFOUND},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
