package facts

import (
	"sync"
	"time"

	"tapline"
)

// Batch is a set of fact deltas keyed by fact row.
type Batch map[tapline.FactKey]tapline.FactValue

// Add adds v to the row k.
func (b Batch) Add(k tapline.FactKey, v tapline.FactValue) {
	cur := b[k]
	cur.Count += v.Count
	cur.Sum += v.Sum
	if cur == (tapline.FactValue{}) {
		delete(b, k)
		return
	}
	b[k] = cur
}

// Merge adds every delta of o to b.
func (b Batch) Merge(o Batch) {
	for k, v := range o {
		b.Add(k, v)
	}
}

// Hit adds the deltas of one new hit.
func (b Batch) Hit(h *tapline.Hit) {
	b.Add(tapline.FactKey{
		Table:    tapline.FactHits,
		Hour:     tapline.HourOf(h.Time),
		AppID:    h.AppID,
		LinkID:   h.LinkID,
		Platform: h.Platform,
	}, tapline.FactValue{Count: 1})
}

// Event adds the deltas of one new event attributed as a (the install's
// attribution the event inherits; organic when it has none): one event and,
// when it carries revenue, one purchase with its amount.
func (b Batch) Event(e *tapline.Event, a tapline.Attribution) {
	hour := tapline.HourOf(e.Time)
	method := a.Method
	if method == "" {
		method = tapline.MethodOrganic
	}
	b.Add(tapline.FactKey{
		Table:     tapline.FactEvents,
		Hour:      hour,
		AppID:     e.AppID,
		LinkID:    a.LinkID,
		Platform:  e.Device.Platform,
		EventName: e.Name,
		Method:    method,
	}, tapline.FactValue{Count: 1})
	if e.Revenue != nil && e.Revenue.Currency != "" {
		b.Add(tapline.FactKey{
			Table:    tapline.FactRevenue,
			Hour:     hour,
			AppID:    e.AppID,
			LinkID:   a.LinkID,
			Platform: e.Device.Platform,
			Currency: e.Revenue.Currency,
		}, tapline.FactValue{Count: 1, Sum: e.Revenue.Micros})
	}
}

// Attribution adds sign times the deltas of install c attributed as a: one
// install and, for a matched install, one conversion with its
// click-to-install seconds. Sign is +1 for a new attribution and -1 to take
// back a replaced one.
func (b Batch) Attribution(c *tapline.Conversion, a tapline.Attribution, sign int64) {
	hour := tapline.HourOf(c.InstallTime)
	b.Add(tapline.FactKey{
		Table:    tapline.FactInstalls,
		Hour:     hour,
		AppID:    c.AppID,
		LinkID:   a.LinkID,
		Platform: c.Platform,
		Method:   a.Method,
	}, tapline.FactValue{Count: sign})
	if a.Method == tapline.MethodOrganic || a.Method == "" {
		return
	}
	b.Add(tapline.FactKey{
		Table:    tapline.FactConversions,
		Hour:     hour,
		AppID:    c.AppID,
		LinkID:   a.LinkID,
		Platform: c.Platform,
		Method:   a.Method,
	}, tapline.FactValue{Count: sign, Sum: sign * ClickToInstallSeconds(c.InstallTime, a.HitTime)})
}

// Change adds the deltas of one attribution change: minus From (when the
// change replaced an attribution), plus To.
func (b Batch) Change(c *tapline.Conversion, ch *tapline.AttributionChange) {
	if ch.From != nil {
		b.Attribution(c, *ch.From, -1)
	}
	b.Attribution(c, ch.To, +1)
}

// ClickToInstallSeconds returns whole seconds from hit to install, never
// negative (a device clock slightly behind the server's is not a negative
// delay).
func ClickToInstallSeconds(install, hit time.Time) int64 {
	d := install.Sub(hit)
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// Aggregator collects deltas and consumer offsets from concurrent partition
// workers and hands them out as consistent snapshots: every delta in a
// snapshot belongs to a record below the snapshot's offsets, and every
// record below them has its deltas in this or an earlier snapshot.
type Aggregator struct {
	mu      sync.Mutex
	pending Batch
	offsets map[offsetKey]int64
}

type offsetKey struct {
	topic     string
	partition int
}

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{pending: Batch{}, offsets: map[offsetKey]int64{}}
}

// Commit records the deltas of the record at (topic, partition, offset)
// and advances that partition's next offset past it, atomically with
// respect to Take.
func (a *Aggregator) Commit(topic string, partition int, offset int64, b Batch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending.Merge(b)
	a.offsets[offsetKey{topic, partition}] = offset + 1
}

// Seed sets a partition's next offset without deltas, as loaded from the
// fact store on start.
func (a *Aggregator) Seed(o tapline.Offset) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.offsets[offsetKey{o.Topic, o.Partition}] = o.Offset
}

// Reset drops every pending delta and offset, as when a matcher hands its
// partitions to another member of its group.
func (a *Aggregator) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = Batch{}
	a.offsets = map[offsetKey]int64{}
}

// Offsets returns the next offset of every partition seen so far.
func (a *Aggregator) Offsets() []tapline.Offset {
	a.mu.Lock()
	defer a.mu.Unlock()
	offs := make([]tapline.Offset, 0, len(a.offsets))
	for k, v := range a.offsets {
		offs = append(offs, tapline.Offset{Topic: k.topic, Partition: k.partition, Offset: v})
	}
	return offs
}

// Pending returns the number of fact rows waiting to be flushed.
func (a *Aggregator) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// Take returns the pending deltas and the current offsets and starts a new
// batch. A caller whose flush fails must Restore the deltas.
func (a *Aggregator) Take() (Batch, []tapline.Offset) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.pending
	a.pending = Batch{}
	offs := make([]tapline.Offset, 0, len(a.offsets))
	for k, v := range a.offsets {
		offs = append(offs, tapline.Offset{Topic: k.topic, Partition: k.partition, Offset: v})
	}
	return b, offs
}

// Restore puts back deltas whose flush failed; the next Take returns them
// with everything added since, under offsets at least as far along.
func (a *Aggregator) Restore(b Batch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending.Merge(b)
}
