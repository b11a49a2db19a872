package matcher

import (
	"context"
	"sync"
	"time"

	"tapline"
)

// hitClock keeps the consumption of events behind the consumption of hits
// in time. The two topics are consumed by separate workers; when both have
// a backlog (a matcher catching up after downtime, or a bench draining a
// full bus) the events, cheaper to process, would run ahead and meet
// installs before the taps that caused them. Each would then be recorded
// organic and re-attributed by the late tap: the right answer in the end,
// but with a re-attribution in its history and the dearer late path run
// for every tap. With the clock, an event received at T waits until every
// hits partition this matcher consumes has processed its hits received
// up to T, or has nothing more to give; so a backlog is matched as it was
// received, the way it would have been live.
//
// The clock only delays; it never reorders a partition, so it changes
// nothing the exactly-once flush relies on. A hits worker holds events back
// for as long as it works through older hits, however slowly: a backlog of
// dear hits must not let the events overtake it. One that fails (a fetch
// or a hit it keeps retrying) stops holding them back after stall; a
// partition owned by nobody here is not tracked at all.
type hitClock struct {
	stall time.Duration
	now   func() time.Time

	mu    sync.Mutex
	parts map[int]*hitPart // by partition of the hits topic
	wake  broadcast
}

// hitPart is how far one hits partition's worker has come.
type hitPart struct {
	at   time.Time // the latest receive time of a hit it processed
	idle bool      // its last fetch returned less than a full batch: at the bus's end
	// failing is when its worker began to fail (fetching, checking its
	// position or processing a hit) without progress since; zero while it
	// works.
	failing time.Time
}

// newHitClock returns a clock whose partitions stop holding events back
// after failing for stall.
func newHitClock(stall time.Duration) *hitClock {
	return &hitClock{stall: stall, now: time.Now, parts: map[int]*hitPart{}}
}

// own starts tracking hits partition p. Until its worker's first fetch
// it is taken to be behind: a matcher starting on a backlog must not meet
// its first installs before their taps. A worker whose fetch finds
// nothing says so within Matcher.fetch's endProbe.
func (c *hitClock) own(p int) {
	c.mu.Lock()
	c.parts[p] = &hitPart{}
	c.mu.Unlock()
}

// reset forgets every partition (the end of a generation).
func (c *hitClock) reset() {
	c.mu.Lock()
	clear(c.parts)
	c.wake.signal()
	c.mu.Unlock()
}

// fetched records that hits partition p's worker got a batch and starts
// processing it.
func (c *hitClock) fetched(p int) {
	c.update(p, func(h *hitPart) { h.idle = false })
}

// batchDone records that p's worker processed its batch of n messages,
// of at most max: a short batch means it reached the end of the bus.
func (c *hitClock) batchDone(p, n, max int) {
	if n < max {
		c.update(p, func(h *hitPart) { h.idle = true })
	}
}

// processed records that p's worker processed a hit received at t.
func (c *hitClock) processed(p int, t time.Time) {
	c.update(p, func(h *hitPart) {
		if t.After(h.at) {
			h.at = t
		}
	})
}

// failed records that p's worker failed to fetch, to check its position or
// to process a hit, and will try again. Failing since stall ago without
// progress, it stops holding events back.
func (c *hitClock) failed(p int) {
	c.mu.Lock()
	if h := c.parts[p]; h != nil && h.failing.IsZero() {
		h.failing = c.now()
		c.wake.signal()
	}
	c.mu.Unlock()
}

// update applies fn, progress, to p's state: p works again.
func (c *hitClock) update(p int, fn func(*hitPart)) {
	c.mu.Lock()
	if h := c.parts[p]; h != nil {
		fn(h)
		h.failing = time.Time{}
		c.wake.signal()
	}
	c.mu.Unlock()
}

// wait blocks until no tracked hits partition is still working through
// hits received before t, or ctx is done; it reports how long it waited.
func (c *hitClock) wait(ctx context.Context, t time.Time) (time.Duration, error) {
	var start time.Time
	for {
		c.mu.Lock()
		now := c.now()
		var until time.Time // when the first failing partition stops counting; zero: none fails
		behind := false
		for _, h := range c.parts {
			if h.idle || !h.at.Before(t) {
				continue
			}
			if h.failing.IsZero() {
				behind = true
				continue
			}
			if stallEnd := h.failing.Add(c.stall); now.Before(stallEnd) {
				behind = true
				if until.IsZero() || stallEnd.Before(until) {
					until = stallEnd
				}
			}
		}
		if !behind {
			c.mu.Unlock()
			if start.IsZero() {
				return 0, nil
			}
			return c.now().Sub(start), nil
		}
		if start.IsZero() {
			start = now
		}
		wake := c.wake.next()
		c.mu.Unlock()
		var d time.Duration // no timeout: only a signal can change the answer
		if !until.IsZero() {
			d = until.Sub(now)
		}
		if err := await(ctx, wake, d); err != nil {
			return 0, err
		}
	}
}

// broadcast wakes every waiter of a condition guarded by a mutex, which
// is held for both methods.
type broadcast struct{ ch chan struct{} }

// next returns a channel closed on the next signal.
func (b *broadcast) next() <-chan struct{} {
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) signal() {
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// await blocks until wake is closed, d has passed (d > 0) or ctx is done.
func await(ctx context.Context, wake <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-wake:
	case <-timeout:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// alignStall is how long a failing hits worker holds events back.
const alignStall = 2 * time.Second

// orderGate is the consumption order of a matcher in Ordered mode: every
// worker, of either topic, processes its next message only when it comes
// first, by receive time, then hits before events, then partition, among
// the next messages of all the workers; so the matcher processes a
// pre-filled bus as one stream in receive-time order and decides the same
// way on every run. It serves replays that must be deterministic (the
// accuracy check of make bench, tests), not production: the workers take
// turns, a worker at the end of its partition (Matcher.fetch) does not
// count, and one busy with a message (not waiting for its turn) for longer
// than stall stops counting: a safety net, which Ordered mode sets at a
// minute, as one message never takes that long.
type orderGate struct {
	hits  string // the hits topic, ranked before the events
	stall time.Duration
	now   func() time.Time

	mu      sync.Mutex
	workers map[tapline.Partition]*orderPos
	wake    broadcast
}

// orderPos is a lower bound of a worker's next message.
type orderPos struct {
	at      time.Time
	rank    int // 0 hits, 1 events
	part    int
	idle    bool // its last fetch returned less than a full batch
	waiting bool // blocked in wait: its turn comes, it never counts as stalled
	changed time.Time
}

func (a *orderPos) before(b *orderPos) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.part < b.part
}

func newOrderGate(hits string, stall time.Duration) *orderGate {
	return &orderGate{hits: hits, stall: stall, now: time.Now, workers: map[tapline.Partition]*orderPos{}}
}

func (g *orderGate) rank(topic string) int {
	if topic == g.hits {
		return 0
	}
	return 1
}

// own starts tracking a worker: before its first message it may have the
// earliest of all.
func (g *orderGate) own(p tapline.Partition) {
	g.mu.Lock()
	g.workers[p] = &orderPos{rank: g.rank(p.Topic), part: p.Partition, changed: g.now()}
	g.mu.Unlock()
}

func (g *orderGate) reset() {
	g.mu.Lock()
	clear(g.workers)
	g.wake.signal()
	g.mu.Unlock()
}

func (g *orderGate) update(p tapline.Partition, fn func(*orderPos)) {
	g.mu.Lock()
	if w := g.workers[p]; w != nil {
		fn(w)
		w.changed = g.now()
		g.wake.signal()
	}
	g.mu.Unlock()
}

// batchDone records that p's worker processed a batch of n messages of at
// most max: a short one means it reached the end of the bus.
func (g *orderGate) batchDone(p tapline.Partition, n, max int) {
	if n < max {
		g.update(p, func(w *orderPos) { w.idle = true })
	}
}

// wait announces that p's worker's next message was received at t and
// blocks until it comes first, or ctx is done.
func (g *orderGate) wait(ctx context.Context, p tapline.Partition, t time.Time) error {
	g.update(p, func(w *orderPos) { w.at, w.idle = t, false })
	for {
		g.mu.Lock()
		self := g.workers[p]
		now := g.now()
		blocked := false
		until := now.Add(g.stall) // when to look again without a signal
		if self != nil {
			for q, w := range g.workers {
				if q == p || w.idle || !w.before(self) {
					continue
				}
				if w.waiting {
					blocked = true // it goes first, then announces its next
					continue
				}
				if stallEnd := w.changed.Add(g.stall); now.Before(stallEnd) {
					blocked = true
					if stallEnd.Before(until) {
						until = stallEnd
					}
				}
			}
		}
		if !blocked {
			if self != nil {
				self.waiting = false
			}
			g.mu.Unlock()
			return nil
		}
		self.waiting = true
		wake := g.wake.next()
		g.mu.Unlock()
		if err := await(ctx, wake, until.Sub(now)); err != nil {
			g.mu.Lock()
			self.waiting = false
			g.mu.Unlock()
			return err
		}
	}
}

// orderStall is how long a worker of Ordered mode busy with one message
// holds the others back: only a safety net.
const orderStall = time.Minute
