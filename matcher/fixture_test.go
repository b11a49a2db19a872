package matcher

import (
	"context"
	"testing"
	"time"

	"tapline"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// fixture is what the pipeline tests share: a private database with one
// account and app, the fact store and reports over it, and an embedded raw
// store.
type fixture struct {
	db       *postgres.DB
	accounts *postgres.AccountService
	app      *tapline.App
	store    *postgres.FactStore
	reports  *postgres.Reports
	raw      *pebble.RawStore
}

func newFixture(t testing.TB, account string) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: pgtest.Open(t)}
	f.accounts = postgres.NewAccountService(f.db)
	acct := &tapline.Account{Name: account}
	if err := f.accounts.CreateAccount(ctx, acct, &tapline.User{Email: account + "@example.com"}, "password-123456"); err != nil {
		t.Fatal(err)
	}
	f.app = &tapline.App{AccountID: acct.ID, Name: "App of " + account, WebURL: "https://example.com/"}
	if err := f.accounts.CreateApp(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	f.store = postgres.NewFactStore(f.db)
	f.reports = postgres.NewReports(f.db)
	f.raw = pebble.NewRawStore(t.TempDir())
	if err := f.raw.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.raw.Close() })
	return f
}

// pebbleBus opens an embedded bus with the given partition count.
func (f *fixture) pebbleBus(t testing.TB, partitions int) *pebble.Bus {
	t.Helper()
	bus := pebble.NewBus(t.TempDir())
	bus.NumPartitions = partitions
	if err := bus.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

// totals sums the app's facts over a window around now.
func (f *fixture) totals(t testing.TB) truth {
	t.Helper()
	now := time.Now().UTC()
	days, err := f.reports.DailyStats(context.Background(), tapline.StatsFilter{AppID: f.app.ID,
		From: now.Add(-72 * time.Hour).Truncate(24 * time.Hour), To: now.Add(48 * time.Hour).Truncate(24 * time.Hour), Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	var got truth
	for _, d := range days {
		got.hits += d.Hits
		got.installs += d.Installs
		got.conversions += d.Conversions
		got.events += d.Events
	}
	return got
}

// same reports whether two truths agree on every total.
func same(a, b truth) bool {
	return a.hits == b.hits && a.installs == b.installs && a.conversions == b.conversions && a.events == b.events
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// checkTotals fails the test unless the facts equal want.
func (f *fixture) checkTotals(t testing.TB, want truth) {
	t.Helper()
	if got := f.totals(t); !same(got, want) {
		t.Fatalf("facts: hits %d installs %d conversions %d events %d; want hits %d installs %d conversions %d events %d",
			got.hits, got.installs, got.conversions, got.events, want.hits, want.installs, want.conversions, want.events)
	}
}
