package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// TestReturningExactlyOnce runs re-engagements and reinstalls through the
// whole pipeline (embedded bus, pebble, PostgreSQL, the link settings read
// from the account service) across a flush that commits but reports an
// error, a matcher killed mid-stream and a third that finishes: every
// re-engagement and reinstall is counted once, and none as an install.
func TestReturningExactlyOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "returning")
	win := &tapline.Link{AppID: f.app.ID, Slug: "winback", Reengagement: true}
	plain := &tapline.Link{AppID: f.app.ID, Slug: "plain"}
	for _, l := range []*tapline.Link{win, plain} {
		if err := f.accounts.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	fp := fingerprint.New()
	base := time.Now().UTC().Add(-10 * time.Hour).Truncate(time.Minute)
	var msgs []tapline.Message
	add := func(topic string, key []byte, v any) tapline.Message {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		m := tapline.Message{Topic: topic, Key: key, Value: b}
		msgs = append(msgs, m)
		return m
	}
	want := truth{conversionsByLink: map[int64]int64{}}
	var wantReeng, wantReinstalls int64
	dev := tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "14", Model: "Pixel 7"}
	for i := range 120 {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		d := dev
		d.GAID = fmt.Sprintf("38400000-8cf0-11bd-b23e-%012d", i+1)
		at := base.Add(time.Duration(i) * time.Second)
		event := func(id, installID string, kind tapline.EventKind, t time.Time) *tapline.Event {
			e := &tapline.Event{ID: id, AppID: f.app.ID, Name: string(kind), Kind: kind, Time: t, ReceivedAt: t, InstallID: installID, IP: ip, Device: d}
			fp.Event(e)
			return e
		}
		in := event(fmt.Sprintf("install-%d", i), fmt.Sprintf("dev-%d", i), tapline.KindInstall, at)
		add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, in.Fingerprint), in)
		want.installs++
		want.events++
		if i%2 == 0 {
			link := win.ID
			if i%4 == 2 {
				link = plain.ID // a tap on an ordinary link re-engages nothing
			} else {
				wantReeng++
			}
			h := &tapline.Hit{ID: fmt.Sprintf("tap-%d", i), Time: at.Add(time.Hour), AppID: f.app.ID, LinkID: link, IP: ip, UserAgent: chromeAndUA, AdID: d.GAID}
			fp.Hit(h)
			add(tapline.TopicHits, fingerprint.BusKey(f.app.ID, h.Fingerprint), h)
			want.hits++
		}
		for n := range 2 { // the first open after the tap re-engages, the second does not
			o := event(fmt.Sprintf("open-%d-%d", i, n), in.InstallID, tapline.KindOpen, at.Add(time.Duration(2+n)*time.Hour))
			m := add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, o.Fingerprint), o)
			if i%5 == 0 {
				msgs = append(msgs, m) // resent
			}
			want.events++
		}
		if i%3 == 0 {
			re := event(fmt.Sprintf("reinstall-%d", i), fmt.Sprintf("dev-%d-again", i), tapline.KindInstall, at.Add(4*time.Hour))
			add(tapline.TopicEvents, fingerprint.BusKey(f.app.ID, re.Fingerprint), re)
			want.events++
			wantReinstalls++
		}
	}

	bus := f.pebbleBus(t, 4)
	if err := bus.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.FetchMax = 20
	flaky := &flakyFacts{FactStore: f.store, failOn: 2, failed: make(chan struct{})}
	m1 := New(cfg, bus, f.raw, flaky, f.accounts)
	if err := m1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-flaky.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the injected failure never happened")
	}
	m1.abort()
	m2 := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	m2.abort()
	m3 := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m3.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !same(f.totals(t), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			got := f.totals(t)
			t.Fatalf("timed out: facts hits %d installs %d conversions %d events %d; want %d %d %d %d",
				got.hits, got.installs, got.conversions, got.events, want.hits, want.installs, want.conversions, want.events)
		}
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	f.checkTotals(t, want)
	now := time.Now().UTC()
	filter := tapline.StatsFilter{AppID: f.app.ID, From: now.Add(-72 * time.Hour).Truncate(24 * time.Hour), To: now.Add(48 * time.Hour).Truncate(24 * time.Hour), Location: time.UTC}
	got, err := f.reports.Returning(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reengagements != wantReeng || got.Reinstalls != wantReinstalls {
		t.Fatalf("returning %+v, want %d re-engagements and %d reinstalls", got, wantReeng, wantReinstalls)
	}
	filter.LinkID = win.ID
	if got, err = f.reports.Returning(ctx, filter); err != nil || got.Reengagements != wantReeng || got.Reinstalls != 0 {
		t.Fatalf("returning of the winback link %+v, %v; want %d re-engagements, no reinstalls", got, err, wantReeng)
	}
}
