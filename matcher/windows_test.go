package matcher

import (
	"context"
	"testing"
	"time"

	"tapline"
)

// TestAppCacheLinkWindows checks that the app cache loads an app with its
// links' own windows and its re-engagement links from PostgreSQL, keeps
// the widest windows per app, picks up a
// changed link once the TTL has passed (not before), and serves the stale
// windows when the database fails.
func TestAppCacheLinkWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "windows")
	const day = 24 * time.Hour
	slow := &tapline.Link{AppID: f.app.ID, Slug: "slow", ClickWindow: 30 * day}
	quick := &tapline.Link{AppID: f.app.ID, Slug: "quick", FingerprintWindow: 2 * day}
	plain := &tapline.Link{AppID: f.app.ID, Slug: "plain", Reengagement: true}
	for _, l := range []*tapline.Link{slow, quick, plain} {
		if err := f.accounts.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	now := t0
	c := appCache{ttl: time.Minute, accounts: f.accounts, now: func() time.Time { return now }, entries: map[int64]appEntry{}}
	app, err := c.get(ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := c.windows(ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		link          int64
		click, finger time.Duration
	}{
		{"own click window", slow.ID, 30 * day, tapline.DefaultFingerprintWindow},
		{"own fingerprint window", quick.ID, tapline.DefaultClickWindow, 2 * day},
		{"none of its own", plain.ID, tapline.DefaultClickWindow, tapline.DefaultFingerprintWindow},
		{"unknown link", 999999, tapline.DefaultClickWindow, tapline.DefaultFingerprintWindow},
	} {
		if click, fp := lw.of(app, tc.link); click != tc.click || fp != tc.finger {
			t.Errorf("%s: windows %v and %v, want %v and %v", tc.name, click, fp, tc.click, tc.finger)
		}
	}
	if click, fp := lw.widest(app); click != 30*day || fp != 2*day {
		t.Errorf("widest windows %v and %v, want 720h and 48h", click, fp)
	}
	if re, err := c.reengagement(ctx, f.app.ID); err != nil || len(re) != 1 || !re[plain.ID] {
		t.Errorf("re-engagement links %v (%v), want link %d alone, loaded with the app", re, err, plain.ID)
	}

	slow.ClickWindow = 0
	if err := f.accounts.UpdateLink(ctx, slow); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute - time.Second)
	if lw, err = c.windows(ctx, f.app.ID); err != nil {
		t.Fatal(err)
	}
	if click, _ := lw.widest(app); click != 30*day {
		t.Errorf("within the TTL: widest click window %v, want the cached 720h", click)
	}
	now = now.Add(time.Second)
	lw, err = c.windows(ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if click, fp := lw.widest(app); click != tapline.DefaultClickWindow || fp != 2*day {
		t.Errorf("after the TTL: widest windows %v and %v, want the app's click window and 48h", click, fp)
	}

	f.db.Close()
	now = now.Add(time.Hour)
	stale, err := c.windows(ctx, f.app.ID)
	if err != nil {
		t.Fatalf("with the database down the cache failed (%v), want its stale windows", err)
	}
	if _, fp := stale.of(app, quick.ID); fp != 2*day {
		t.Errorf("stale windows of link quick: fingerprint %v, want 48h", fp)
	}
}

// TestLinkWindowsNone checks that an app none of whose links sets a window
// keeps no link windows, and that a nil *linkWindows answers the app's.
func TestLinkWindowsNone(t *testing.T) {
	t.Parallel()
	app := &tapline.App{ClickWindow: 2 * time.Hour, FingerprintWindow: time.Hour}
	lw := newLinkWindows([]*tapline.Link{{ID: 1}, {ID: 2, Name: "x"}})
	if lw != nil {
		t.Fatalf("links without windows kept %+v, want nil", lw)
	}
	if click, fp := lw.of(app, 1); click != 2*time.Hour || fp != time.Hour {
		t.Errorf("of = %v, %v, want the app's", click, fp)
	}
	if click, fp := lw.widest(app); click != 2*time.Hour || fp != time.Hour {
		t.Errorf("widest = %v, %v, want the app's", click, fp)
	}
	if got := lw.window(app, 1, "click"); got != "the 2h click window" {
		t.Errorf("window = %q", got)
	}
}
