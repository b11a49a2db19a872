package funnels_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/fingerprint"
	"tapline/funnels"
	"tapline/funnels/reference"
	"tapline/loadgen"
	"tapline/matcher"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// env is a pipeline on one database: an embedded bus and raw store, the
// matcher with live funnels, and the funnel backfills.
type env struct {
	t        testing.TB
	db       *postgres.DB
	accounts *postgres.AccountService
	store    *postgres.FunnelStore
	facts    *postgres.FactStore
	app      *tapline.App
	links    []*tapline.Link
	bus      tapline.Bus // the embedded bus, unless useBus replaced it
	raw      *pebble.RawStore

	m         *matcher.Matcher
	facade    *switchFacts
	published int64
}

func newEnv(t testing.TB, name string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, db: pgtest.Open(t)}
	e.accounts = postgres.NewAccountService(e.db)
	e.store = postgres.NewFunnelStore(e.db)
	e.facts = postgres.NewFactStore(e.db)
	acct := &tapline.Account{Name: name}
	if err := e.accounts.CreateAccount(ctx, acct, &tapline.User{Email: name + "@example.com"}, "password-123456"); err != nil {
		t.Fatal(err)
	}
	e.app = &tapline.App{AccountID: acct.ID, Name: "App of " + name, WebURL: "https://example.com/"}
	if err := e.accounts.CreateApp(ctx, e.app); err != nil {
		t.Fatal(err)
	}
	e.app.SetDefaults()
	for _, slug := range []string{"spring", "summer", "autumn"} {
		l := &tapline.Link{AppID: e.app.ID, Slug: name + "-" + slug, Name: slug}
		if err := e.accounts.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
		e.links = append(e.links, l)
	}
	bus := pebble.NewBus(t.TempDir())
	bus.NumPartitions = 4
	if err := bus.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	e.bus = bus
	e.raw = pebble.NewRawStore(t.TempDir())
	if err := e.raw.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.raw.Close() })
	return e
}

// switchFacts is the fact store with a kill switch: once killed, every
// flush is refused as fenced, so the matcher drops what it did not flush,
// as a crash would.
type switchFacts struct {
	tapline.FactStore
	mu     sync.Mutex
	killed bool
}

func (f *switchFacts) ApplyFacts(ctx context.Context, consumer string, d map[tapline.FactKey]tapline.FactValue, o []tapline.Offset, rows tapline.FlushRows) error {
	f.mu.Lock()
	killed := f.killed
	f.mu.Unlock()
	if killed {
		return tapline.Errorf(tapline.ECONFLICT, "killed")
	}
	return f.FactStore.ApplyFacts(ctx, consumer, d, o, rows)
}

func (e *env) startMatcher() {
	e.t.Helper()
	e.m, e.facade = e.newMatcher(nil)
}

// newMatcherAt opens a matcher whose clock reads now.
func (e *env) newMatcherAt(now time.Time) *matcher.Matcher {
	e.t.Helper()
	m, _ := e.newMatcherWith(nil, func() time.Time { return now })
	return m
}

// newMatcher opens a matcher with live funnels and its own kill switch, in
// group g when it is not nil.
func (e *env) newMatcher(g tapline.Group) (*matcher.Matcher, *switchFacts) {
	e.t.Helper()
	return e.newMatcherWith(g, nil)
}

func (e *env) newMatcherWith(g tapline.Group, now func() time.Time) (*matcher.Matcher, *switchFacts) {
	e.t.Helper()
	cfg := matcher.NewConfig()
	cfg.FlushInterval = 100 * time.Millisecond
	cfg.FunnelPoll = 100 * time.Millisecond
	facade := &switchFacts{FactStore: e.facts}
	m := matcher.New(cfg, e.bus, e.raw, facade, e.accounts)
	m.Funnels = e.store
	m.Group = g
	if now != nil {
		m.Now = now
	}
	m.Logger = slog.New(slog.DiscardHandler)
	if err := m.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return m, facade
}

func (e *env) stopMatcher() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
}

// crashMatcher stops the matcher without flushing what it consumed since
// its last flush; its raw rows and funnel states stay.
func (e *env) crashMatcher() {
	e.facade.mu.Lock()
	e.facade.killed = true
	e.facade.mu.Unlock()
	_ = e.m.Close()
}

func (e *env) publish(msgs []tapline.Message) {
	e.t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), 200)
		if err := e.bus.Publish(context.Background(), msgs[:n]...); err != nil {
			e.t.Fatal(err)
		}
		e.published += int64(n)
		msgs = msgs[n:]
	}
}

// drain waits until the matcher stored offsets past every published
// message.
func (e *env) drain() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		offs, err := e.facts.Offsets(context.Background(), matcher.NewConfig().Consumer)
		if err != nil {
			e.t.Fatal(err)
		}
		var sum int64
		for _, o := range offs {
			sum += o.Offset
		}
		if sum >= e.published {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("matcher stored offsets up to %d of %d messages", sum, e.published)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backfill runs the backfills of every version waiting for one.
func (e *env) backfill(versions ...int64) {
	e.t.Helper()
	for _, v := range versions {
		b := funnels.Backfill{Raw: e.raw, Store: e.store, Workers: 3, Ranges: 8, CommitSize: 50, Logger: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := b.Run(ctx, v)
		cancel()
		if err != nil {
			e.t.Fatalf("backfill %d: %v", v, err)
		}
	}
}

// waitStatus waits until version v has status s.
func (e *env) waitStatus(v int64, s tapline.FunnelStatus) *tapline.Funnel {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := e.store.FunnelVersion(context.Background(), v)
		if err != nil {
			e.t.Fatal(err)
		}
		if f.Status == s {
			return f
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("version %d is %s, want %s", v, f.Status, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// results returns the fact rows of version v.
func (e *env) results(v int64) map[reference.Key]reference.Value {
	e.t.Helper()
	pool, err := pgxpool.New(context.Background(), e.db.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), reference.FactQuery, v)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out, err := reference.ReadResults(rows)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// export reads the app's raw data back for the reference.
func (e *env) export() *reference.Data {
	e.t.Helper()
	ctx := context.Background()
	d := &reference.Data{AppID: e.app.ID}
	hits := map[string]bool{}
	err := e.raw.ScanInstallations(ctx, e.app.ID, tapline.ScanRange{Start: -1 << 63, End: 1<<63 - 1}, func(_ int64, inst *tapline.Installation) error {
		for _, ev := range inst.Events { // the scan reuses them
			ev := *ev
			d.Events = append(d.Events, &ev)
		}
		c, err := e.raw.ConversionByInstall(ctx, e.app.ID, inst.ID)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		d.Conversions = append(d.Conversions, c)
		for _, ch := range c.History {
			if id := ch.To.HitID; id != "" && !hits[id] {
				hits[id] = true
				h, err := e.raw.Hit(ctx, e.app.ID, id)
				if err != nil {
					return err
				}
				d.Hits = append(d.Hits, h)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// population turns a seeded loadgen population into the bus messages the
// collector would publish, with simulated times: taps with link query
// parameters, installs (some reporting the Play referrer), opens,
// purchases with revenue and level events with a numeric parameter. Some
// hits are published after their install (late hits that re-attribute),
// and some events are resent.
func (e *env) population(seed uint64, devices int) []tapline.Message {
	e.t.Helper()
	cfg := loadgen.NewConfig(seed, devices)
	cfg.Period = 4 * 24 * time.Hour
	cfg.Tail = 3 * 24 * time.Hour
	cfg.Links = []string{e.links[0].Slug, e.links[1].Slug, e.links[2].Slug}
	cfg.BuyerShare = 0.5
	w, err := loadgen.Generate(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	linkID := map[string]int64{}
	for _, l := range e.links {
		linkID[l.Slug] = l.ID
	}
	r := rand.New(rand.NewPCG(seed, 99))
	fp := fingerprint.New()
	base := time.Now().UTC().Add(-w.Span() - time.Hour).Truncate(time.Second)
	msg := func(topic string, key []byte, at time.Time, v any) tapline.Message {
		b, err := json.Marshal(v)
		if err != nil {
			e.t.Fatal(err)
		}
		return tapline.Message{Topic: topic, Key: key, Value: b, Time: at}
	}
	device := func(d *loadgen.Device) tapline.Device {
		dev := tapline.Device{Platform: d.Platform, OSVersion: d.OSVersion, Model: d.Model, Vendor: d.Vendor}
		if d.Platform == tapline.PlatformIOS {
			dev.IDFA = d.AdID
		} else {
			dev.GAID = d.AdID
		}
		dev.LimitAdTracking = d.AdID == ""
		return dev
	}
	sources := []string{"fb", "google", "tiktok"}
	lastTap := map[int]string{}
	var out []tapline.Message
	var held []tapline.Message // late hits, published after the next install
	levels := 0
	for _, a := range w.Timeline {
		d := w.Devices[a.Dev]
		switch a.Kind {
		case loadgen.ActTap:
			tap := &w.Taps[a.Index]
			at := base.Add(tap.At)
			h := &tapline.Hit{ID: fmt.Sprintf("tap-%d", tap.N), Time: at, AppID: e.app.ID, LinkID: linkID[tap.Link],
				IP: tap.IP, UserAgent: tap.UserAgent, AdID: tap.AdID,
				Params: map[string]string{"utm_source": sources[r.IntN(len(sources))], "utm_campaign": tap.Link}}
			fp.Hit(h)
			lastTap[d.ID] = h.ID
			m := msg(tapline.TopicHits, fingerprint.BusKey(e.app.ID, h.Fingerprint), at, h)
			if r.IntN(12) == 0 {
				held = append(held, m)
			} else {
				out = append(out, m)
			}
		case loadgen.ActInstall:
			in := &w.Installs[a.Index]
			at := base.Add(in.At)
			ev := &tapline.Event{ID: fmt.Sprintf("in-%d", in.N), AppID: e.app.ID, Name: "install", Kind: tapline.KindInstall,
				Time: at, ReceivedAt: at, InstallID: d.InstallID, IP: in.IP, Device: device(d), Protocol: "v1"}
			if in.Referrer && lastTap[d.ID] != "" && d.Platform == tapline.PlatformAndroid {
				ev.Referrer = "utm_source=x&" + tapline.ReferrerHitParam + "=" + lastTap[d.ID]
			}
			if r.IntN(3) == 0 {
				ev.Params = map[string]string{"store": []string{"play", "appstore", "web"}[r.IntN(3)]}
			}
			fp.Event(ev)
			out = append(out, msg(tapline.TopicEvents, fingerprint.BusKey(e.app.ID, ev.Fingerprint), at, ev))
			out = append(out, held...)
			held = nil
		case loadgen.ActEvent:
			le := &w.Events[a.Index]
			at := base.Add(le.At)
			ev := &tapline.Event{ID: fmt.Sprintf("ev-%d", le.N), AppID: e.app.ID, Name: string(le.Kind), Kind: le.Kind,
				Time: at, ReceivedAt: at, InstallID: d.InstallID, IP: le.IP, Device: device(d), Protocol: "v1"}
			if le.Kind == tapline.KindPurchase {
				ev.Revenue = &tapline.Revenue{Micros: le.PriceCents * 10_000, Currency: le.Currency}
				ev.Params = map[string]string{"sku": le.Product}
			}
			fp.Event(ev)
			m := msg(tapline.TopicEvents, fingerprint.BusKey(e.app.ID, ev.Fingerprint), at, ev)
			out = append(out, m)
			if r.IntN(10) == 0 {
				out = append(out, m) // resent
			}
			if r.IntN(2) == 0 { // a level reached soon after
				levels++
				lat := at.Add(time.Duration(r.IntN(7200)) * time.Second)
				lv := &tapline.Event{ID: fmt.Sprintf("lv-%d", levels), AppID: e.app.ID, Name: "level", Kind: tapline.KindCustom,
					Time: lat, ReceivedAt: lat, InstallID: d.InstallID, IP: le.IP, Device: device(d), Protocol: "v1",
					Params: map[string]string{"n": strconv.Itoa(1 + r.IntN(10))}}
				if r.IntN(8) == 0 {
					lv.Params["n"] = "max"
				}
				fp.Event(lv)
				out = append(out, msg(tapline.TopicEvents, fingerprint.BusKey(e.app.ID, lv.Fingerprint), lat, lv))
			}
		}
	}
	return append(out, held...)
}

// randomFunnel draws a funnel over the population's vocabulary.
func (e *env) randomFunnel(r *rand.Rand, name string) tapline.FunnelDefinition {
	events := []string{"open", "purchase", "level"}
	step := func(first bool) tapline.FunnelStep {
		switch k := r.IntN(6); {
		case k == 0 && first:
			s := tapline.FunnelStep{Kind: tapline.StepTap}
			if r.IntN(2) == 0 {
				s.Links = []int64{e.links[r.IntN(3)].ID}
				if r.IntN(2) == 0 {
					s.Links = append(s.Links, e.links[r.IntN(3)].ID)
				}
			}
			if r.IntN(3) == 0 {
				s.Filters = []tapline.FunnelFilter{{Param: "utm_source", Op: tapline.OpIn, Values: []string{"fb", "tiktok"}}}
			}
			return s
		case k <= 1:
			s := tapline.FunnelStep{Kind: tapline.StepInstall}
			if r.IntN(4) == 0 {
				s.Filters = []tapline.FunnelFilter{{Param: "store", Op: tapline.OpNe, Value: "web"}}
			}
			return s
		default:
			s := tapline.FunnelStep{Kind: tapline.StepEvent, Event: events[r.IntN(len(events))]}
			switch {
			case s.Event == "purchase" && r.IntN(2) == 0:
				s.Filters = []tapline.FunnelFilter{{Param: "revenue", Op: []tapline.FilterOp{tapline.OpGt, tapline.OpLte}[r.IntN(2)], Value: []string{"0", "4.99", "19.99"}[r.IntN(3)]}}
			case s.Event == "level" && r.IntN(2) == 0:
				s.Filters = []tapline.FunnelFilter{{Param: "n", Op: []tapline.FilterOp{tapline.OpGte, tapline.OpLt, tapline.OpEq}[r.IntN(3)], Value: strconv.Itoa(1 + r.IntN(10))}}
			}
			return s
		}
	}
	def := tapline.FunnelDefinition{Name: name}
	n := 2 + r.IntN(4)
	for i := range n {
		def.Steps = append(def.Steps, step(i == 0))
	}
	def.Order = []tapline.FunnelOrder{tapline.OrderOrdered, tapline.OrderOrdered, tapline.OrderStrict, tapline.OrderAny}[r.IntN(4)]
	def.WindowSeconds = []int64{60, 3600, 6 * 3600, 86400, 3 * 86400, 14 * 86400}[r.IntN(6)]
	if r.IntN(3) == 0 {
		a := 1 + r.IntN(n-1)
		def.Exclusions = []tapline.FunnelExclusion{{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: events[r.IntN(len(events))]},
			After: a, Before: a + 1 + r.IntN(n-a)}}
	}
	def.Breakdown = []tapline.FunnelBreakdown{{}, {Kind: tapline.BreakdownLink}, {Kind: tapline.BreakdownPlatform},
		{Kind: tapline.BreakdownMethod}, {Kind: tapline.BreakdownLinkParam, Param: "utm_source"},
		{Kind: tapline.BreakdownEntryParam, Param: "n"}}[r.IntN(6)]
	return def
}

func (e *env) create(def tapline.FunnelDefinition) *tapline.Funnel {
	e.t.Helper()
	f, err := e.store.CreateFunnel(context.Background(), e.app.ID, def)
	if err != nil {
		e.t.Fatalf("create %+v: %v", def, err)
	}
	return f
}

func openReference(t testing.TB) *sql.DB {
	t.Helper()
	db, err := reference.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// same fails the test when got differs from want, listing the differences.
func same(t testing.TB, what string, got, want map[reference.Key]reference.Value) bool {
	t.Helper()
	if d := reference.Diff(got, want); d != "" {
		t.Errorf("%s: differs from the reference: %s", what, d)
		return false
	}
	return true
}

func totalOf(m map[reference.Key]reference.Value, step int) int64 {
	var n int64
	for k, v := range m {
		if k.Step == step {
			n += v.Count
		}
	}
	return n
}

// batchKeys converts a backfill's deltas into reference rows.
func batchKeys(b map[tapline.FactKey]tapline.FactValue) map[reference.Key]reference.Value {
	out := map[reference.Key]reference.Value{}
	for k, v := range b {
		if v == (tapline.FactValue{}) {
			continue
		}
		rk := reference.Key{Hour: k.Hour, Breakdown: k.Breakdown, Step: k.Step, Bucket: k.Bucket}
		cur := out[rk]
		cur.Count += v.Count
		cur.Sum += v.Sum
		out[rk] = cur
	}
	return out
}

// TestFunnelsMatchReference is the property test: random funnels over a
// seeded loadgen population run through the matcher; funnels created
// before the data count live only, funnels created half way hand off from
// backfill to live in the middle, funnels created after it are backfilled
// only, and a dry-run count covers many more definitions. Every one equals
// the reference implementation exactly.
func TestFunnelsMatchReference(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	e := newEnv(t, "funnelprop")
	ctx := context.Background()
	msgs := e.population(7, 160)
	r := rand.New(rand.NewPCG(7, 1))

	var live, middle, after []*tapline.Funnel
	for i := range 4 {
		live = append(live, e.create(e.randomFunnel(r, fmt.Sprintf("live %d", i))))
	}
	e.startMatcher()
	for _, f := range live {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	e.backfill(versionIDs(live)...) // nothing stored yet: empty backfills, then live

	half := len(msgs) / 2
	e.publish(msgs[:half])
	e.drain()
	for i := range 4 {
		middle = append(middle, e.create(e.randomFunnel(r, fmt.Sprintf("middle %d", i))))
	}
	for _, f := range middle {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	e.publish(msgs[half:])
	e.backfill(versionIDs(middle)...) // while the second half flows
	e.drain()
	for i := range 3 {
		after = append(after, e.create(e.randomFunnel(r, fmt.Sprintf("after %d", i))))
	}
	for _, f := range after {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	e.backfill(versionIDs(after)...)
	e.stopMatcher()

	data := e.export()
	if len(data.Conversions) < 50 {
		t.Fatalf("the population made only %d conversions", len(data.Conversions))
	}
	rdb := openReference(t)
	nonEmpty := 0
	for _, f := range slices.Concat(live, middle, after) {
		e.waitStatus(f.VersionID, tapline.FunnelLive)
		want, err := reference.Run(ctx, rdb, data, &f.FunnelDefinition, nil)
		if err != nil {
			t.Fatal(err)
		}
		if same(t, fmt.Sprintf("%s %+v", f.Name, f.FunnelDefinition), e.results(f.VersionID), want) && totalOf(want, 1) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 5 {
		t.Errorf("only %d funnels counted anyone: the property test proves little", nonEmpty)
	}

	// The backfills' share of the funnels that handed off half way: what
	// the dry run counts as of the handoff equals the reference as of it.
	for _, f := range middle {
		fv, err := e.store.FunnelVersion(ctx, f.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		rh := reference.Handoff{}
		for p, off := range fv.Handoff {
			rh[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = off
		}
		got, _, err := (&funnels.Backfill{Raw: e.raw, Workers: 2, Ranges: 4}).Count(ctx, fv, funnels.Handoff(fv.Handoff))
		if err != nil {
			t.Fatal(err)
		}
		want, err := reference.Run(ctx, rdb, data, &fv.FunnelDefinition, rh)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "as of the handoff: "+f.Name, batchKeys(got), want)
		if totalOf(want, 1) == 0 || totalOf(want, 1) == totalOf(e.results(f.VersionID), 1) {
			t.Logf("%s: %d entered before the handoff, %d in all", f.Name, totalOf(want, 1), totalOf(e.results(f.VersionID), 1))
		}
	}

	// Many more definitions, counted by a dry run over the final data.
	b := funnels.Backfill{Raw: e.raw, Workers: 2, Ranges: 4}
	for i := range 40 {
		def := e.randomFunnel(r, fmt.Sprintf("dry %d", i))
		def.SetDefaults()
		f := &tapline.Funnel{VersionID: 1000 + int64(i), AppID: e.app.ID, FunnelDefinition: def}
		got, _, err := b.Count(ctx, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := reference.Run(ctx, rdb, data, &def, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, fmt.Sprintf("dry run %+v", def), batchKeys(got), want)
	}
}

func versionIDs(fs []*tapline.Funnel) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.VersionID
	}
	return out
}
