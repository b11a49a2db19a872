package matcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"tapline"
	"tapline/fingerprint"
	"tapline/postbacks"
	"tapline/postgres"
)

// truth is what the fact tables must say once every record is consumed.
type truth struct {
	hits, installs, conversions, events int64
	conversionsByLink                   map[int64]int64
}

// workload builds a deterministic mix of taps, installs (some organic, some
// reached by a hit that is published after them, some matched through the
// Play referrer) and later opens, plus resent copies of some events, and
// returns the bus messages in publication order with the ground truth.
func workload(t testing.TB, appID int64, devices int) ([][]tapline.Message, truth) {
	t.Helper()
	fp := fingerprint.New()
	want := truth{conversionsByLink: map[int64]int64{}}
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	var early, late []tapline.Message // late: published in the second phase
	msg := func(topic string, key []byte, v any) tapline.Message {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return tapline.Message{Topic: topic, Key: key, Value: b}
	}
	for i := range devices {
		ip := fmt.Sprintf("192.0.2.%d", i%250+1)
		if i >= 250 {
			ip = fmt.Sprintf("2001:db8:%x::1", i)
		}
		ios := i%2 == 0
		ua, dev := chromeAndUA, tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "14", Model: "Pixel 7"}
		if ios {
			ua, dev = safariUA, tapline.Device{Platform: tapline.PlatformIOS, OSVersion: "17.4.1", Model: "iPhone15,2"}
		}
		tapAt := base.Add(time.Duration(i) * time.Second)
		installAt := tapAt.Add(10 * time.Minute)
		tapped := i%10 < 7
		link := int64(1 + i%3)

		var hitMsg tapline.Message
		hitID := fmt.Sprintf("hit-%d", i)
		if tapped {
			h := &tapline.Hit{ID: hitID, Time: tapAt, AppID: appID, LinkID: link, IP: ip, UserAgent: ua}
			fp.Hit(h)
			hitMsg = msg(tapline.TopicHits, fingerprint.BusKey(appID, h.Fingerprint), h)
			want.hits++
			want.conversions++
			want.conversionsByLink[link]++
		}
		in := &tapline.Event{ID: fmt.Sprintf("install-%d", i), AppID: appID, Name: "install", Kind: tapline.KindInstall,
			Time: installAt, ReceivedAt: installAt, InstallID: fmt.Sprintf("device-%d", i), IP: ip, Device: dev}
		if tapped && !ios && i%4 == 1 {
			in.Referrer = "utm_source=test&" + tapline.ReferrerHitParam + "=" + hitID
			in.IP = "198.51.100.200" // another network: only the referrer can match
		}
		fp.Event(in)
		inMsg := msg(tapline.TopicEvents, fingerprint.BusKey(appID, in.Fingerprint), in)
		open := &tapline.Event{ID: fmt.Sprintf("open-%d", i), AppID: appID, Name: "open", Kind: tapline.KindOpen,
			Time: installAt.Add(time.Hour), ReceivedAt: installAt.Add(time.Hour), InstallID: in.InstallID, IP: ip, Device: dev}
		fp.Event(open)
		openMsg := msg(tapline.TopicEvents, fingerprint.BusKey(appID, open.Fingerprint), open)
		want.installs++
		want.events += 2

		phase := &early
		if i%2 == 1 {
			phase = &late
		}
		switch {
		case tapped && i%10 == 3: // the hit reaches the bus after its install
			*phase = append(*phase, inMsg, hitMsg)
		case tapped:
			*phase = append(*phase, hitMsg, inMsg)
		default:
			*phase = append(*phase, inMsg)
		}
		// Opens go in the late phase, after their install; every fifth is resent.
		late = append(late, openMsg)
		if i%5 == 0 {
			late = append(late, openMsg, inMsg)
		}
	}
	return [][]tapline.Message{early, late}, want
}

// flakyFacts is the real fact store with one injected failure: the n-th
// ApplyFacts commits and then reports an error, as when the connection
// drops after COMMIT.
type flakyFacts struct {
	tapline.FactStore
	failOn int64
	calls  atomic.Int64
	failed chan struct{}
}

func (f *flakyFacts) ApplyFacts(ctx context.Context, consumer string, d map[tapline.FactKey]tapline.FactValue, o []tapline.Offset, rows tapline.FlushRows) error {
	err := f.FactStore.ApplyFacts(ctx, consumer, d, o, rows)
	if f.calls.Add(1) == f.failOn && err == nil {
		close(f.failed)
		return errors.New("injected: connection lost after commit")
	}
	return err
}

func TestExactlyOnceAcrossCrashes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "eo")
	phases, want := workload(t, f.app.ID, 400)
	bus := f.pebbleBus(t, 4)
	cfg := NewConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	// A postback on installs and opens: its outbox must end with one
	// delivery for each attributed install and each of their opens.
	pbs := postgres.NewPostbackService(f.db)
	if err := pbs.CreatePostback(ctx, &tapline.Postback{AppID: f.app.ID, Network: "nw", Events: []string{"install", "open"},
		URL: "https://nw.example/pb?c={click_id}&e={event_id}"}); err != nil {
		t.Fatal(err)
	}
	newMatcher := func(facts tapline.FactStore) *Matcher {
		m := New(cfg, bus, f.raw, facts, f.accounts)
		m.Postbacks = pbs
		return m
	}

	// Phase 1: the first matcher's second flush commits but reports an
	// error; then the matcher dies without a final flush.
	if err := bus.Publish(ctx, phases[0]...); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyFacts{FactStore: f.store, failOn: 2, failed: make(chan struct{})}
	m1 := newMatcher(flaky)
	if err := m1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-flaky.failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the injected failure never happened")
	}
	time.Sleep(20 * cfg.FlushInterval) // let later flushes run: none may re-apply the committed batch
	m1.abort()

	// Phase 2: more records, a second matcher killed mid-stream (its raw
	// rows are ahead of its facts), and a third that finishes.
	if err := bus.Publish(ctx, phases[1]...); err != nil {
		t.Fatal(err)
	}
	m2 := newMatcher(f.store)
	if err := m2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	m2.abort()
	m3 := newMatcher(f.store)
	if err := m3.Open(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the facts to reach the ground truth", 30*time.Second, func() bool { return same(f.totals(t), want) })
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	f.checkTotals(t, want)
	links, err := f.reports.LinkStats(ctx, tapline.StatsFilter{AppID: f.app.ID, From: time.Now().UTC().Add(-72 * time.Hour).Truncate(24 * time.Hour),
		To: time.Now().UTC().Add(48 * time.Hour).Truncate(24 * time.Hour), Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Conversions != want.conversionsByLink[l.LinkID] {
			t.Errorf("link %d: %d conversions, want %d", l.LinkID, l.Conversions, want.conversionsByLink[l.LinkID])
		}
	}
	checkStoredConversions(t, f, want)

	checkInstallDeliveries(t, f, pbs)
}

// checkInstallDeliveries checks the outbox holds, of every conversion in
// the raw store, one install delivery for each change that announced an
// install (an attribution to a tap not taken from another tap), and no
// other, and at most one delivery of any other event.
func checkInstallDeliveries(t *testing.T, f *fixture, pbs *postgres.PostbackService) {
	t.Helper()
	ctx := context.Background()
	ps, err := pbs.Postbacks(ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := pbs.Deliveries(ctx, tapline.DeliveryQuery{AppID: f.app.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tapline.Delivery{}
	events := map[string]bool{}
	for _, d := range ds {
		if d.Trigger == "install" {
			got[d.Key] = d
			continue
		}
		if events[d.EventID] {
			t.Errorf("two deliveries of %s %s", d.Trigger, d.EventID)
		}
		events[d.EventID] = true
	}
	want := 0
	seen := map[string]bool{}
	for k := range got {
		seen[k] = true
	}
	for i := 0; ; i++ {
		c, err := f.raw.Conversion(ctx, f.app.ID, tapline.ConversionID(fmt.Sprintf("install-%d", i)))
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.History {
			if ch.To.HitID == "" || reattributes(ch.From) {
				continue
			}
			want++
			tr := &postbacks.Trigger{Event: &tapline.Event{ID: c.EventID}, Conversion: c, Attribution: ch.To, Change: ch.By}
			if _, ok := got[postbacks.Key(ps[0], tr)]; ok {
				delete(seen, postbacks.Key(ps[0], tr))
			} else {
				t.Errorf("conversion %s: no install delivery for its change by %s (history %+v)", c.ID, ch.By, c.History)
			}
		}
	}
	if len(got) != want {
		t.Errorf("%d install deliveries, want %d", len(got), want)
	}
	for k := range seen {
		d := got[k]
		c, _ := f.raw.Conversion(ctx, f.app.ID, d.ConversionID)
		t.Logf("extra delivery %s: %s; conversion history %+v", d.ConversionID, d.URL, c.History)
	}
}

// checkStoredConversions checks that the fact store holds every install's
// conversion once, in the state the raw store has: crashes and replays
// neither lose one nor leave one behind its latest change.
func checkStoredConversions(t *testing.T, f *fixture, want truth) {
	t.Helper()
	ctx := context.Background()
	var n int64
	q := tapline.ConversionQuery{AppID: f.app.ID, Limit: tapline.MaxConversionPage}
	for {
		page, err := f.reports.Conversions(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Conversions {
			n++
			raw, err := f.raw.Conversion(ctx, f.app.ID, c.ID)
			if err != nil {
				t.Fatalf("raw conversion %s: %v", c.ID, err)
			}
			if c.Method != raw.Method || c.HitID != raw.HitID || len(c.History) != len(raw.History) || c.Decision == nil ||
				c.Decision.Rule != raw.Decision.Rule {
				t.Errorf("stored conversion %s: %s hit %q, %d changes, decision %+v; raw store: %s hit %q, %d changes, decision %+v",
					c.ID, c.Method, c.HitID, len(c.History), c.Decision, raw.Method, raw.HitID, len(raw.History), raw.Decision)
			}
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if n != want.installs {
		t.Errorf("the fact store holds %d conversions, want one per install: %d", n, want.installs)
	}
}

// TestZombieFlushIsFenced has a matcher that lost its partitions (here: a
// second matcher took them over and stored offsets) flush late: the flush
// must fail with ECONFLICT and apply nothing.
func TestZombieFlushIsFenced(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "zombie")
	phases, want := workload(t, f.app.ID, 100)
	bus := f.pebbleBus(t, 4)
	all := append(phases[0], phases[1]...)
	if err := bus.Publish(ctx, all...); err != nil {
		t.Fatal(err)
	}
	consumed := func(offs []tapline.Offset) (n int64) {
		for _, o := range offs {
			n += o.Offset
		}
		return n
	}

	slow := NewConfig()
	slow.FlushInterval = time.Hour // it consumes everything but never flushes by itself
	zombie := New(slow, bus, f.raw, f.store, f.accounts)
	if err := zombie.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer zombie.abort()
	waitFor(t, "the first matcher to consume everything", 30*time.Second, func() bool { return consumed(zombie.agg.Offsets()) == int64(len(all)) })

	fast := NewConfig()
	fast.FlushInterval = 20 * time.Millisecond
	owner := New(fast, bus, f.raw, f.store, f.accounts)
	if err := owner.Open(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second matcher to store its offsets", 30*time.Second, func() bool {
		offs, err := f.store.Offsets(ctx, fast.Consumer)
		return err == nil && consumed(offs) == int64(len(all))
	})
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}

	if err := zombie.Flush(ctx); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Fatalf("late flush of the first matcher: %v, want a conflict", err)
	}
	f.checkTotals(t, want) // the fenced flush applied nothing
}

// TestExpiresIdleApps checks that raw rows past their app's retention are
// dropped for every app, also one no record has named since the matcher
// started (after a restart, an idle app's rows would otherwise stay).
func TestExpiresIdleApps(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "expire")
	idle := &tapline.App{AccountID: f.app.AccountID, Name: "Idle", WebURL: "https://example.com/", Retention: 48 * time.Hour}
	if err := f.accounts.CreateApp(ctx, idle); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for id, at := range map[string]time.Time{"old": now.Add(-72 * time.Hour), "recent": now.Add(-time.Hour)} {
		if _, err := f.raw.PutHit(ctx, &tapline.Hit{ID: id, AppID: idle.ID, Time: at, Fingerprint: "203.0.113.7|ios", Source: "hits/0/1"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := NewConfig()
	cfg.ExpireEvery = 20 * time.Millisecond
	m := New(cfg, f.pebbleBus(t, 1), f.raw, f.store, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, "the idle app's old hit to expire", 10*time.Second, func() bool {
		_, err := f.raw.Hit(ctx, idle.ID, "old")
		return tapline.ErrorCode(err) == tapline.ENOTFOUND
	})
	if _, err := f.raw.Hit(ctx, idle.ID, "recent"); err != nil {
		t.Errorf("the idle app's recent hit: %v, want it kept", err)
	}
}

// TestExpiresDeliveries: a matcher with postbacks deletes, every
// ExpireEvery, the delivered and dead deliveries made before its
// DeliveryRetention, in batches, and keeps the pending ones however old
// and the younger ones.
func TestExpiresDeliveries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "expiredeliveries")
	pbs := postgres.NewPostbackService(f.db)
	pb := &tapline.Postback{AppID: f.app.ID, Network: "nw", Events: []string{"install"}, URL: "https://nw.example/pb"}
	if err := pbs.CreatePostback(ctx, pb); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var ds []*tapline.Delivery
	outcome := map[string]tapline.DeliveryStatus{}
	add := func(key string, age time.Duration, status tapline.DeliveryStatus) {
		ds = append(ds, &tapline.Delivery{Key: key, AppID: f.app.ID, PostbackID: pb.ID, Network: "nw", Trigger: "install", Method: "GET",
			URL: "https://nw.example/pb?k=" + key, Status: tapline.DeliveryPending, NextAttempt: now.Add(-age), CreatedAt: now.Add(-age)})
		if status != tapline.DeliveryPending {
			outcome[key] = status
		}
	}
	for i := range 7 { // more than two batches
		add(fmt.Sprintf("old-delivered-%d", i), 72*time.Hour, tapline.DeliveryDelivered)
	}
	add("old-dead", 50*time.Hour, tapline.DeliveryDead)
	add("old-pending", 96*time.Hour, tapline.DeliveryPending)
	add("young-delivered", 47*time.Hour, tapline.DeliveryDelivered)
	add("young-dead", time.Hour, tapline.DeliveryDead)
	if err := f.store.ApplyFacts(ctx, "seed", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	due, err := pbs.ClaimDeliveries(ctx, 100, time.Hour)
	if err != nil || len(due) != len(ds) {
		t.Fatalf("claimed %d of %d deliveries: %v", len(due), len(ds), err)
	}
	for _, d := range due {
		if st, ok := outcome[d.Key]; ok {
			if err := pbs.RecordAttempt(ctx, d.ID, d.Claim, st, now, tapline.DeliveryResult{Code: 200}); err != nil {
				t.Fatal(err)
			}
		}
	}

	cfg := NewConfig()
	cfg.ExpireEvery = 20 * time.Millisecond
	cfg.DeliveryRetention = 48 * time.Hour
	cfg.DeliveryExpireBatch = 3
	m := New(cfg, f.pebbleBus(t, 1), f.raw, f.store, f.accounts)
	m.Postbacks = pbs
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kept := func() []string {
		ds, err := pbs.Deliveries(ctx, tapline.DeliveryQuery{AppID: f.app.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.Key)
		}
		slices.Sort(out)
		return out
	}
	expired := func() float64 {
		var metric dto.Metric
		if err := m.metrics.deliveriesExpired.Write(&metric); err != nil {
			t.Fatal(err)
		}
		return metric.GetCounter().GetValue()
	}
	want := []string{"old-pending", "young-dead", "young-delivered"}
	waitFor(t, "the old finished deliveries to expire, counted in tapline_matcher_postback_deliveries_expired_total", 10*time.Second,
		func() bool { return slices.Equal(kept(), want) && expired() == 8 })
	// Later expiries find nothing more to delete.
	time.Sleep(100 * time.Millisecond)
	if got := kept(); !slices.Equal(got, want) || expired() != 8 {
		t.Errorf("kept %v, %v expired; want %v, 8", got, expired(), want)
	}
}

// TestQuietFlush: when the input pauses, the facts are flushed at once,
// not at the next FlushInterval tick; a second burst is flushed after its
// own pause.
func TestQuietFlush(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "quiet")
	phases, want := workload(t, f.app.ID, 60)
	bus := f.pebbleBus(t, 2)
	cfg := NewConfig()
	cfg.FlushInterval = time.Hour // no tick during the test
	cfg.QuietFlush = 20 * time.Millisecond
	m := New(cfg, bus, f.raw, f.store, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := bus.Publish(ctx, phases[0]...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first burst's facts", 20*time.Second, func() bool { return f.totals(t).hits > 0 })
	if err := bus.Publish(ctx, phases[1]...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all the facts", 20*time.Second, func() bool { return same(f.totals(t), want) })
}

// countingFacts counts the flushes reaching the fact store.
type countingFacts struct {
	tapline.FactStore
	flushes atomic.Int64
}

func (f *countingFacts) ApplyFacts(ctx context.Context, consumer string, d map[tapline.FactKey]tapline.FactValue, o []tapline.Offset, rows tapline.FlushRows) error {
	f.flushes.Add(1)
	return f.FactStore.ApplyFacts(ctx, consumer, d, o, rows)
}

// TestQuietFlushSpacing: input slower than QuietFlush, one message at a
// time, flushes at most once every four QuietFlush, not once a message.
func TestQuietFlushSpacing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "quietgap")
	phases, want := workload(t, f.app.ID, 20)
	msgs := append(phases[0], phases[1]...)
	bus := f.pebbleBus(t, 2)
	cfg := NewConfig()
	cfg.FlushInterval = time.Hour
	cfg.QuietFlush = 5 * time.Millisecond
	counting := &countingFacts{FactStore: f.store}
	m := New(cfg, bus, f.raw, counting, f.accounts)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	for _, msg := range msgs {
		if err := bus.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * cfg.QuietFlush) // a pause after every message
	}
	elapsed := time.Since(start)
	waitFor(t, "all the facts", 20*time.Second, func() bool { return same(f.totals(t), want) })
	// On a loaded machine the pauses grow past four QuietFlush and every
	// message may rightly get its own flush: the bound follows the time.
	limit := int64(elapsed/(4*cfg.QuietFlush)) + 2
	if got := counting.flushes.Load(); got > limit {
		t.Errorf("%d flushes for %d messages in %s, want at most %d", got, len(msgs), elapsed.Round(time.Millisecond), limit)
	}
}
