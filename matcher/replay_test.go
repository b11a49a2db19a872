package matcher

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"tapline"
	"tapline/fingerprint"
	"tapline/internal/wire"
	"tapline/pebble"
	"tapline/whatif"
)

// scratch gives what-if replays pebble stores in temporary directories.
func scratch(t *testing.T) whatif.Scratch {
	return func(context.Context) (tapline.Bus, tapline.RawStore, func(), error) {
		dir, err := os.MkdirTemp(t.TempDir(), "whatif-")
		if err != nil {
			return nil, nil, nil, err
		}
		bus := pebble.NewBus(dir + "/bus")
		raw := pebble.NewRawStore(dir + "/raw")
		if err := bus.Open(); err != nil {
			return nil, nil, nil, err
		}
		if err := raw.Open(); err != nil {
			bus.Close()
			return nil, nil, nil, err
		}
		return bus, raw, func() { raw.Close(); bus.Close(); os.RemoveAll(dir) }, nil
	}
}

func replayFunc(ctx context.Context, bus tapline.Bus, raw tapline.RawStore, app *tapline.App, links []*tapline.Link, hits []*tapline.Hit, installs []*tapline.Event) (map[string]*tapline.Conversion, error) {
	return Replay(ctx, NewConfig(), bus, raw, app, links, hits, installs, nil)
}

// record is a hit or an install of a what-if population.
type record struct {
	hit *tapline.Hit
	ev  *tapline.Event
}

func (r record) at() time.Time {
	if r.hit != nil {
		return r.hit.Time
	}
	return r.ev.ReceivedAt
}

// produce publishes recs, in time order with their times as the bus's, and
// runs a production matcher over them in receive order until every record
// is flushed.
func produce(t *testing.T, f *fixture, recs []record) {
	t.Helper()
	ctx := context.Background()
	bus := f.pebbleBus(t, 4)
	fp := fingerprint.New()
	var msgs []tapline.Message
	slices.SortStableFunc(recs, func(a, b record) int { return a.at().Compare(b.at()) })
	for _, r := range recs {
		if r.hit != nil {
			fp.Hit(r.hit)
			msgs = append(msgs, tapline.Message{Topic: tapline.TopicHits, Key: fingerprint.BusKey(f.app.ID, r.hit.Fingerprint), Value: wire.AppendHit(nil, r.hit), Time: r.hit.Time})
		} else {
			fp.Event(r.ev)
			msgs = append(msgs, tapline.Message{Topic: tapline.TopicEvents, Key: fingerprint.BusKey(f.app.ID, r.ev.Fingerprint), Value: wire.AppendEvent(nil, r.ev), Time: r.ev.ReceivedAt})
		}
	}
	if err := bus.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.Ordered = true
	cfg.FlushInterval = 20 * time.Millisecond
	m := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, "the production matcher to flush every record", 60*time.Second, func() bool {
		offs, err := f.store.Offsets(ctx, cfg.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, o := range offs {
			n += o.Offset
		}
		return n == int64(len(msgs))
	})
}

// TestWhatIfReproducesStored: a what-if with only a rule that changes
// nothing replays the app's taps and installs and finds every stored
// conversion's attribution again, on a population where fingerprints,
// advertising ids, referrers and organic installs mix on shared networks.
func TestWhatIfReproducesStored(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "whatif")
	base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Minute)
	var recs []record
	for i := range 240 {
		ip := fmt.Sprintf("192.0.2.%d", i%40+1) // six devices a network
		ua, dev := chromeAndUA, tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "14", Model: "Pixel 7"}
		if i%2 == 0 {
			ua, dev = safariUA, tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2"}
		}
		tapAt := base.Add(time.Duration(i) * 7 * time.Minute)
		installAt := tapAt.Add(time.Duration(5+i%50) * time.Minute)
		hitID := fmt.Sprintf("h%d", i)
		if i%5 != 4 { // a fifth never tap: organic, or another's tap
			h := &tapline.Hit{ID: hitID, Time: tapAt, AppID: f.app.ID, LinkID: int64(1 + i%3), IP: ip, UserAgent: ua}
			if i%7 == 0 {
				h.AdID = fmt.Sprintf("38400000-8cf0-11bd-b23e-%012d", i)
			}
			recs = append(recs, record{hit: h})
		}
		e := &tapline.Event{ID: fmt.Sprintf("in%d", i), AppID: f.app.ID, Name: "install", Kind: tapline.KindInstall, Time: installAt,
			ReceivedAt: installAt, InstallID: fmt.Sprintf("dev%d", i), IP: ip, Device: dev}
		if i%7 == 0 {
			e.Device.GAID = fmt.Sprintf("38400000-8cf0-11bd-b23e-%012d", i)
		}
		if i%11 == 1 && i%5 != 4 && i%2 == 1 {
			e.Referrer = tapline.ReferrerHitParam + "=" + hitID
		}
		recs = append(recs, record{ev: e})
	}
	produce(t, f, recs)

	score := 2.5 // the default, named: a what-if must change a rule
	res, err := whatif.Run(ctx, f.raw, f.app, nil, whatif.Request{AppID: f.app.ID, From: base.Add(-time.Hour), To: base.Add(48 * time.Hour),
		Rules: whatif.Rules{FingerprintMinScore: &score}}, scratch(t), replayFunc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Installs != 240 || res.StoredCompared != 240 || res.StoredSame != 240 || res.Moved != 0 {
		t.Errorf("installs %d, stored %d of which %d the same, moved %d; want 240, 240, 240, 0", res.Installs, res.StoredCompared, res.StoredSame, res.Moved)
	}
	methods := map[string]int{}
	for _, c := range res.Counts {
		methods[c.Method] += c.Today
	}
	if methods["fingerprint"] == 0 || methods["referrer"] == 0 || methods["advertising_id"] == 0 || methods["organic"] == 0 {
		t.Errorf("methods %v: the population should exercise every rule", methods)
	}
	t.Logf("%+v, counts %+v", methods, res.Counts)
}

// TestWhatIfWindows: on a population that only advertising ids can match
// (each device taps from a network of its own, and installs on another), a shorter click
// window moves exactly the installs a brute-force last-click reference
// says it does, and the counts follow.
func TestWhatIfWindows(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "whatifwin")
	base := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Minute)
	delays := []time.Duration{time.Hour, 2 * 24 * time.Hour, 4 * 24 * time.Hour, 6 * 24 * time.Hour, 8 * 24 * time.Hour}
	type device struct {
		install time.Time
		taps    []time.Time // by advertising id
	}
	var recs []record
	devices := map[string]device{}
	for i := range 60 {
		ad := fmt.Sprintf("38400000-8cf0-11bd-b23e-%012d", i)
		installAt := base.Add(10*24*time.Hour + time.Duration(i)*time.Minute)
		d := device{install: installAt}
		for k := range 1 + i%2 { // some devices tapped twice
			tapAt := installAt.Add(-delays[(i+3*k)%len(delays)])
			d.taps = append(d.taps, tapAt)
			recs = append(recs, record{hit: &tapline.Hit{ID: fmt.Sprintf("h%d-%d", i, k), Time: tapAt, AppID: f.app.ID, LinkID: int64(1 + k),
				IP: fmt.Sprintf("198.51.100.%d", i+1), UserAgent: safariUA, AdID: ad}})
		}
		id := fmt.Sprintf("in%d", i)
		devices[id] = d
		recs = append(recs, record{ev: &tapline.Event{ID: id, AppID: f.app.ID, Name: "install", Kind: tapline.KindInstall, Time: installAt,
			ReceivedAt: installAt, InstallID: fmt.Sprintf("dev%d", i), IP: fmt.Sprintf("203.0.113.%d", i+1),
			Device: tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2", IDFA: ad}}})
	}
	produce(t, f, recs)
	// reference: the newest tap within the window, by link.
	reference := func(id string, window time.Duration) whatif.Answer {
		d := devices[id]
		best := -1
		for k, at := range d.taps {
			if d.install.Sub(at) <= window && (best < 0 || at.After(d.taps[best])) {
				best = k
			}
		}
		if best < 0 {
			return whatif.Answer{Method: "organic"}
		}
		n := id[2:]
		return whatif.Answer{LinkID: int64(1 + best), Method: "advertising_id", HitID: "h" + n + "-" + fmt.Sprint(best)}
	}
	res, err := whatif.Run(ctx, f.raw, f.app, nil, whatif.Request{AppID: f.app.ID, From: base, To: base.Add(20 * 24 * time.Hour),
		Rules: whatif.Rules{ClickWindow: 3 * 24 * time.Hour}}, scratch(t), replayFunc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Installs != 60 || res.StoredSame != 60 {
		t.Fatalf("installs %d, %d as stored; want 60 and 60", res.Installs, res.StoredSame)
	}
	moved := map[string]whatif.Move{}
	for _, m := range res.Moves {
		moved[m.EventID] = m
	}
	wantMoved := 0
	counts := map[whatif.Answer]int{}
	for id := range devices {
		today, then := reference(id, tapline.DefaultClickWindow), reference(id, 3*24*time.Hour)
		counts[whatif.Answer{LinkID: then.LinkID, Method: then.Method}]++
		if today == then {
			if _, ok := moved[id]; ok {
				t.Errorf("%s moved to %+v; the reference keeps it at %+v", id, moved[id].Hyp, today)
			}
			continue
		}
		wantMoved++
		if m, ok := moved[id]; !ok || m.Today != today || m.Hyp != then {
			t.Errorf("%s: moved %+v (%v); the reference moves it from %+v to %+v", id, m, ok, today, then)
		}
	}
	if res.Moved != wantMoved || wantMoved == 0 {
		t.Errorf("moved %d, the reference %d", res.Moved, wantMoved)
	}
	for _, c := range res.Counts {
		if c.Hypothetical != counts[whatif.Answer{LinkID: c.LinkID, Method: c.Method}] {
			t.Errorf("link %d %s: %d under the hypothetical rules, the reference %d", c.LinkID, c.Method, c.Hypothetical, counts[whatif.Answer{LinkID: c.LinkID, Method: c.Method}])
		}
	}
}
