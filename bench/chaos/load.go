package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tapline"
	"tapline/loadgen"
)

// series counts what happened in each second of the campaign, for the
// fault table's "during" figures.
type series struct {
	start time.Time
	mu    sync.Mutex
	secs  []second
}

type second struct {
	eventAcks, event503, eventErrs int     // SDK requests: 2xx, 503, other failures
	event503RetryAfter             int     // the 503s that carried Retry-After
	redirects, tapErrs             int     // taps: 302, anything else
	tapLat                         []int32 // redirect latencies in microseconds
}

func (s *series) at(t time.Time) *second {
	i := max(int(t.Sub(s.start)/time.Second), 0)
	for len(s.secs) <= i {
		s.secs = append(s.secs, second{})
	}
	return &s.secs[i]
}

// event records an SDK request's answer (status 0: none); retryAfter
// tells whether it carried a Retry-After header.
func (s *series) event(status int, retryAfter bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.at(time.Now())
	switch {
	case status >= 200 && status < 300:
		sec.eventAcks++
	case status == http.StatusServiceUnavailable:
		sec.event503++
		if retryAfter {
			sec.event503RetryAfter++
		}
	default:
		sec.eventErrs++
	}
}

func (s *series) tap(ok bool, lat time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.at(time.Now())
	if ok {
		sec.redirects++
		sec.tapLat = append(sec.tapLat, int32(min(lat.Microseconds(), 1<<31-1)))
	} else {
		sec.tapErrs++
	}
}

// window sums the seconds from a to b.
type window struct {
	EventAcks, Event503, EventErrs int
	Event503RetryAfter             int
	Redirects, TapErrs             int
	RedirectP99                    time.Duration
}

func (s *series) window(a, b time.Time) window {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w window
	var lat []int32
	i0 := max(int(a.Sub(s.start)/time.Second), 0)
	i1 := int(b.Sub(s.start) / time.Second)
	for i := i0; i <= i1 && i < len(s.secs); i++ {
		sec := &s.secs[i]
		w.EventAcks += sec.eventAcks
		w.Event503 += sec.event503
		w.Event503RetryAfter += sec.event503RetryAfter
		w.EventErrs += sec.eventErrs
		w.Redirects += sec.redirects
		w.TapErrs += sec.tapErrs
		lat = append(lat, sec.tapLat...)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		w.RedirectP99 = time.Duration(lat[min(len(lat)-1, len(lat)*99/100)]) * time.Microsecond
	}
	return w
}

// firstAckAfter returns when events were acknowledged again after t (the
// second), or zero.
func (s *series) firstAckAfter(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := max(int(t.Sub(s.start)/time.Second), 0); i < len(s.secs); i++ {
		if s.secs[i].eventAcks > 0 {
			return s.start.Add(time.Duration(i) * time.Second)
		}
	}
	return time.Time{}
}

// truth is what the fact tables must hold, built from the acknowledged
// events only.
type truth struct {
	Events    map[string]int64 `json:"events"`   // "<UTC day> <event name>" -> count
	Installs  map[string]int64 `json:"installs"` // UTC day -> installs
	Purchases map[string]int64 `json:"purchases"`
	Revenue   map[string]int64 `json:"revenue_micros"` // currency -> micros
}

func newTruth() *truth {
	return &truth{Events: map[string]int64{}, Installs: map[string]int64{}, Purchases: map[string]int64{}, Revenue: map[string]int64{}}
}

// sdkEvent is one event the harness offers, with what the facts must count
// for it once acknowledged.
type sdkEvent struct {
	ev   loadgen.SDKEvent
	name string // the event name the facts key it by
}

// unit is one installation's events: its install first, then opens and
// maybe a purchase, sent as one JSON batch or as Tapstream form posts.
type unit struct {
	n      int64
	dev    loadgen.Device
	form   bool
	events []sdkEvent
	acked  []bool
}

// eventDriver offers SDK events to a topology's collectors until it has
// offered Limit events or its context ends, re-sending every event not
// acknowledged (same id, same time) until it is, as an SDK does.
type eventDriver struct {
	topo    *topology
	seed    uint64
	devices []*loadgen.Device
	ips     []string // the address each device installs from
	client  *http.Client
	series  *series
	// Limit bounds the events offered, at Rate a second; Workers send
	// concurrently.
	Limit   int64
	Rate    float64
	Workers int
	// FormShare is the share of installations whose SDK posts the
	// Tapstream form (one request per event) instead of JSON batches.
	FormShare float64

	// faulting keeps the driver offering past Limit while faults are
	// still being injected.
	faulting atomic.Bool
	next     atomic.Int64
	skew     atomic.Int64 // device clock offset of new units, ns
	offered  atomic.Int64
	acked    atomic.Int64
	rejected atomic.Int64
	resends  atomic.Int64
	skewed   atomic.Int64 // events sent with a skewed device clock
	mu       sync.Mutex
	want     *truth
	rejects  []string
	perHost  map[string]int64 // events acknowledged per collector host:port
}

// run sends until stop is closed (no new units) and every unit begun is
// acknowledged, or ctx ends (the hard deadline: unacknowledged events are
// then reported as such).
func (d *eventDriver) run(ctx context.Context, stop <-chan struct{}) {
	var wg sync.WaitGroup
	start := time.Now()
	for w := range d.Workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if d.offered.Load() >= d.Limit && !d.faulting.Load() {
					return
				}
				if float64(d.offered.Load()) > d.Rate*time.Since(start).Seconds() {
					sleep(ctx, 5*time.Millisecond)
					continue
				}
				u := d.newUnit(d.next.Add(1) - 1)
				d.offered.Add(int64(len(u.events)))
				d.deliver(ctx, w, u)
			}
		})
	}
	wg.Wait()
}

func (d *eventDriver) newUnit(n int64) *unit {
	r := rand.New(rand.NewPCG(d.seed, uint64(n)))
	u := &unit{n: n, dev: *d.devices[int(n)%len(d.devices)]}
	ip := d.ips[int(n)%len(d.ips)]
	u.dev.InstallID = fmt.Sprintf("chaos-%s-%d-%d", d.topo.name, d.seed, n)
	if u.dev.AdID != "" {
		// Every installation is a device of its own: the pool's device
		// lends its model and address, not its advertising id, which
		// would make later installations reinstalls of the first.
		u.dev.AdID = fmt.Sprintf("%08x-c4a0-4000-8000-%012x", uint32(d.seed), uint64(n)<<4|uint64(len(d.topo.name)))
	}
	u.form = r.Float64() < d.FormShare
	skew := time.Duration(d.skew.Load())
	at := time.Now().Add(skew)
	add := func(kind tapline.EventKind, suffix string, e loadgen.SDKEvent) {
		e.ID = u.dev.InstallID + "-" + suffix
		e.Kind = kind
		e.Time = at
		e.IP = ip
		name := string(kind)
		if u.form {
			name = formName(u.dev.Platform, kind, e.Product)
		}
		u.events = append(u.events, sdkEvent{ev: e, name: name})
		at = at.Add(time.Millisecond)
	}
	add(tapline.KindInstall, "i", loadgen.SDKEvent{})
	for k := range 1 + r.IntN(5) {
		add(tapline.KindOpen, fmt.Sprintf("o%d", k), loadgen.SDKEvent{})
	}
	if r.Float64() < 0.3 {
		cur := []string{"USD", "EUR", "GBP"}[r.IntN(3)]
		add(tapline.KindPurchase, "p", loadgen.SDKEvent{PriceCents: 99 + r.Int64N(9900), Currency: cur,
			Product: "gems", Transaction: u.dev.InstallID + "-t"})
	}
	if skew != 0 {
		d.skewed.Add(int64(len(u.events)))
	}
	u.acked = make([]bool, len(u.events))
	return u
}

// formName is the event name of a Tapstream form post, as the SDK names it
// and the facts keep it.
func formName(p tapline.Platform, kind tapline.EventKind, product string) string {
	n := string(p) + "-" + appName + "-" + string(kind)
	if kind == tapline.KindPurchase {
		n += "-" + product
	}
	return n
}

// deliver sends u until every event of it is acknowledged or ctx ends.
func (d *eventDriver) deliver(ctx context.Context, worker int, u *unit) {
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d.resends.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		urls := d.topo.collectorURLs()
		t := d.topo.target(urls[(worker+attempt)%len(urls)])
		done := true
		if u.form {
			for i := range u.events {
				if u.acked[i] {
					continue
				}
				if d.send(ctx, t.TapstreamRequest(&u.dev, &u.events[i].ev), u, []int{i}) {
					continue
				}
				done = false
				break
			}
		} else {
			var idx []int
			var evs []*loadgen.SDKEvent
			for i := range u.events {
				if !u.acked[i] {
					idx = append(idx, i)
					evs = append(evs, &u.events[i].ev)
				}
			}
			done = d.send(ctx, t.JSONRequest(&u.dev, evs...), u, idx)
		}
		if done {
			return
		}
	}
}

// send posts one request carrying the events idx of u and records which
// were acknowledged. It reports whether all were, or whether the rest were
// rejected (a 4xx: resending cannot help).
func (d *eventDriver) send(ctx context.Context, req *http.Request, u *unit, idx []int) bool {
	resp, err := d.client.Do(req.WithContext(ctx))
	if err != nil {
		d.series.event(0, false)
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d.series.event(resp.StatusCode, resp.Header.Get("Retry-After") != "")
	switch {
	case resp.StatusCode >= 500:
		return false
	case resp.StatusCode >= 300:
		d.reject(u, idx, fmt.Sprintf("status %d: %.200s", resp.StatusCode, body))
		return true
	}
	if u.form {
		d.ack(req.URL.Host, u, idx)
		return true
	}
	var br struct {
		Results []struct {
			Index  int             `json:"index"`
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &br); err != nil || len(br.Results) != len(idx) {
		d.reject(u, idx, fmt.Sprintf("unreadable batch answer: %.200s", body))
		return true
	}
	var ok []int
	for _, r := range br.Results {
		if r.Index < 0 || r.Index >= len(idx) {
			continue
		}
		if r.Status == "accepted" {
			ok = append(ok, idx[r.Index])
		} else {
			d.reject(u, []int{idx[r.Index]}, string(r.Error))
		}
	}
	d.ack(req.URL.Host, u, ok)
	return true
}

func (d *eventDriver) reject(u *unit, idx []int, why string) {
	d.rejected.Add(int64(len(idx)))
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range idx {
		u.acked[i] = true // given up: counted as rejected, not acknowledged
	}
	if len(d.rejects) < 10 {
		d.rejects = append(d.rejects, u.events[idx[0]].ev.ID+": "+why)
	}
}

// ack records events idx of u as acknowledged by the collector at host
// and adds them to the truth.
func (d *eventDriver) ack(host string, u *unit, idx []int) {
	d.acked.Add(int64(len(idx)))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.perHost == nil {
		d.perHost = map[string]int64{}
	}
	d.perHost[host] += int64(len(idx))
	for _, i := range idx {
		u.acked[i] = true
		e := &u.events[i]
		day := e.ev.Time.UTC().Format(time.DateOnly)
		d.want.Events[day+" "+e.name]++
		switch e.ev.Kind {
		case tapline.KindInstall:
			d.want.Installs[day]++
		case tapline.KindPurchase:
			d.want.Purchases[e.ev.Currency]++
			d.want.Revenue[e.ev.Currency] += e.ev.PriceCents * 10_000
		}
	}
}

// ackedAt returns how many events the collector at host acknowledged.
func (d *eventDriver) ackedAt(host string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.perHost[host]
}

// tapDriver taps a topology's links at a steady rate, each tap with a
// number of its own (lg_tap), and counts the redirects per collector.
type tapDriver struct {
	topo   *topology
	w      *loadgen.Workload
	client *http.Client
	series *series
	Rate   float64 // taps per second

	next       atomic.Int64
	offered    atomic.Int64
	redirected atomic.Int64
	failed     atomic.Int64
	mu         sync.Mutex
	perURL     map[string]int64 // redirects per collector base URL
}

func (d *tapDriver) run(ctx context.Context, stop <-chan struct{}) {
	const workers = 8
	tick := time.Duration(float64(time.Second) / d.Rate * workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			t := time.NewTicker(tick)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
				}
				d.tap(ctx, w)
			}
		})
	}
	wg.Wait()
}

// request builds the next tap, numbered, on one of the topology's links.
func (d *tapDriver) request(base string) *http.Request {
	n := d.next.Add(1) - 1
	tap := d.w.Taps[int(n)%len(d.w.Taps)]
	tap.N = int(n)
	tap.Link = d.topo.links[int(n)%len(d.topo.links)]
	t := loadgen.Target{BaseURL: base}
	return t.TapRequest(&tap, d.w.Devices[tap.Device], true)
}

// tap sends one tap to one of the collectors, round robin.
func (d *tapDriver) tap(ctx context.Context, worker int) {
	urls := d.topo.collectorURLs()
	_, _ = d.tapAt(ctx, d.client, urls[(worker+int(d.next.Load()))%len(urls)])
}

// tapAt sends one tap to base and reports whether it was answered at all
// and whether it was redirected; the redirect counts for that collector.
func (d *tapDriver) tapAt(ctx context.Context, client *http.Client, base string) (answered, redirected bool) {
	req := d.request(base)
	d.offered.Add(1)
	t0 := time.Now()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		d.failed.Add(1)
		d.series.tap(false, 0)
		return false, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lat := time.Since(t0)
	ok := resp.StatusCode == http.StatusFound
	d.series.tap(ok, lat)
	d.count(base, ok)
	return true, ok
}

// count records a tap's outcome at collector base: a redirect counts for
// it, anything else as a failure.
func (d *tapDriver) count(base string, redirected bool) {
	if !redirected {
		d.failed.Add(1)
		return
	}
	d.redirected.Add(1)
	d.mu.Lock()
	d.perURL[base]++
	d.mu.Unlock()
}
