package facts

import (
	"sync"
	"time"

	"tapline"
)

// Batch is a set of fact deltas keyed by fact row.
type Batch map[tapline.FactKey]tapline.FactValue

// Add adds v to the row k, normalised to the dimensions its table keeps
// (tapline.FactKey.Normalise). A row that sums to zero is dropped.
func (b Batch) Add(k tapline.FactKey, v tapline.FactValue) {
	k = k.Normalise()
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

// Hit adds the deltas of one new hit, under the campaign its query
// parameters name.
func (b Batch) Hit(h *tapline.Hit) {
	k := tapline.FactKey{
		Hour:     tapline.HourOf(h.Time),
		AppID:    h.AppID,
		LinkID:   h.LinkID,
		Platform: h.Platform,
	}.WithCampaign(h.Params)
	b.Add(k.For(tapline.FactHits), tapline.FactValue{Count: 1})
}

// BotHit adds the delta of one request for a link that is no tap (h.Bot
// set): counted apart from the hits.
func (b Batch) BotHit(h *tapline.Hit) {
	k := tapline.FactKey{
		Table:    tapline.FactBotHits,
		Hour:     tapline.HourOf(h.Time),
		AppID:    h.AppID,
		LinkID:   h.LinkID,
		Platform: h.Platform,
		Agent:    h.Bot,
	}
	b.Add(k, tapline.FactValue{Count: 1})
}

// Event adds the deltas of one new event attributed as a (the install's
// attribution the event inherits; organic when it has none): one event and,
// when it carries revenue, one purchase with its amount.
func (b Batch) Event(e *tapline.Event, a tapline.Attribution) {
	b.event(e, a, 1)
}

// event adds sign times the deltas of event e attributed as a.
func (b Batch) event(e *tapline.Event, a tapline.Attribution, sign int64) {
	method := a.Method
	if method == "" {
		method = tapline.MethodOrganic
	}
	k := tapline.FactKey{
		Hour:      tapline.HourOf(e.Time),
		AppID:     e.AppID,
		LinkID:    a.LinkID,
		Platform:  e.Device.Platform,
		EventName: e.Name,
		Method:    method,
	}.WithCampaign(a.HitParams)
	b.Add(k.For(tapline.FactEvents), tapline.FactValue{Count: sign})
	if e.Revenue != nil && e.Revenue.Currency != "" {
		k.Currency = e.Revenue.Currency
		b.Add(k.For(tapline.FactRevenue), tapline.FactValue{Count: sign, Sum: sign * e.Revenue.Micros})
	}
}

// Attribution adds sign times the deltas of install c attributed as a: one
// install and, for a matched install, one conversion with its
// click-to-install milliseconds; for a reinstall (c.Reinstall), one
// reinstall and nothing else. Sign is +1 for a new attribution and -1 to take
// back a replaced one.
func (b Batch) Attribution(c *tapline.Conversion, a tapline.Attribution, sign int64) {
	k := tapline.FactKey{
		Hour:     tapline.HourOf(c.InstallTime),
		AppID:    c.AppID,
		LinkID:   a.LinkID,
		Platform: c.Platform,
		Method:   a.Method,
	}.WithCampaign(a.HitParams)
	if c.Reinstall != nil {
		// A reinstall is no install, no conversion and starts no cohort:
		// it counts apart, under the attribution it has.
		b.Add(k.For(tapline.FactReinstalls), tapline.FactValue{Count: sign})
		return
	}
	b.Add(k.For(tapline.FactInstalls), tapline.FactValue{Count: sign})
	b.Add(k.For(tapline.FactCohortActivity), tapline.FactValue{Count: sign}) // day 0: the cohort's size
	if a.Method == tapline.MethodOrganic || a.Method == "" {
		return
	}
	ms := ClickToInstallMillis(c.InstallTime, a.HitTime)
	b.Add(k.For(tapline.FactConversions), tapline.FactValue{Count: sign, Sum: sign * ms})
}

// Reengagement adds the delta of re-engagement r: one re-engagement in
// the hour of the open, under the tap's link, campaign and match method.
func (b Batch) Reengagement(r *tapline.Reengagement) {
	k := tapline.FactKey{
		Hour:     tapline.HourOf(r.OpenTime),
		AppID:    r.AppID,
		LinkID:   r.LinkID,
		Platform: r.Platform,
		Method:   r.Method,
	}.WithCampaign(r.HitParams)
	b.Add(k.For(tapline.FactReengagements), tapline.FactValue{Count: 1})
}

// CohortKey returns the FactCohortActivity row of install c on day n
// after it, under the install's attribution a.
func CohortKey(c *tapline.Conversion, a tapline.Attribution, n int) tapline.FactKey {
	return tapline.FactKey{
		Table:    tapline.FactCohortActivity,
		Hour:     tapline.HourOf(c.InstallTime),
		AppID:    c.AppID,
		LinkID:   a.LinkID,
		Platform: c.Platform,
		Method:   a.Method,
		DayN:     n,
	}.WithCampaign(a.HitParams).Normalise()
}

// CohortRevenue adds the cohort delta of purchase e by install c, under
// the attribution a the event is counted under: one purchase and its
// amount on e's day after the install. Events past MaxCohortDay and
// events without revenue add nothing.
func (b Batch) CohortRevenue(e *tapline.Event, c *tapline.Conversion, a tapline.Attribution) {
	b.cohortRevenue(e, c, a, 1)
}

func (b Batch) cohortRevenue(e *tapline.Event, c *tapline.Conversion, a tapline.Attribution, sign int64) {
	n, ok := tapline.CohortDay(c.InstallTime, e.Time)
	if !ok || e.Revenue == nil || e.Revenue.Currency == "" {
		return
	}
	k := CohortKey(c, a, n)
	k.Currency = e.Revenue.Currency
	b.Add(k.For(tapline.FactCohortRevenue), tapline.FactValue{Count: sign, Sum: sign * e.Revenue.Micros})
}

// Change adds the deltas of one attribution change: minus From (when the
// change replaced an attribution), plus To, the events it moved from From
// to To (their events, revenue and cohort revenue), and the fraud signals
// found on the way (Fraud).
func (b Batch) Change(c *tapline.Conversion, ch *tapline.AttributionChange) {
	if ch.From != nil {
		b.Attribution(c, *ch.From, -1)
		for _, mv := range ch.Moved {
			// The event as its deltas were keyed: in the install's app
			// and platform.
			e := &tapline.Event{AppID: c.AppID, Name: mv.Name, Time: mv.Time, Device: tapline.Device{Platform: c.Platform}, Revenue: mv.Revenue}
			b.event(e, *ch.From, -1)
			b.event(e, ch.To, +1)
			if c.Reinstall == nil { // a reinstall has no cohort
				b.cohortRevenue(e, c, *ch.From, -1)
				b.cohortRevenue(e, c, ch.To, +1)
			}
		}
	}
	b.Attribution(c, ch.To, +1)
	b.Fraud(c, ch.Fraud)
}

// Fraud adds the deltas of the fraud signals fs found on a tap install c
// was credited to or refused: one per signal, in the install's hour under
// the tap's link and the action taken.
func (b Batch) Fraud(c *tapline.Conversion, fs []tapline.FraudFinding) {
	for _, f := range fs {
		k := tapline.FactKey{
			Table:    tapline.FactFraud,
			Hour:     tapline.HourOf(c.InstallTime),
			AppID:    c.AppID,
			LinkID:   f.LinkID,
			Platform: c.Platform,
			Signal:   f.Signal,
			Action:   f.Action,
		}
		b.Add(k, tapline.FactValue{Count: 1})
	}
}

// FunnelOutcome adds sign times the deltas of one installation's outcome o
// (nil: none) in funnel version version of app appID, in its entry hour:
// for each step k it reached, one installation in the row of step k and the
// bucket of its seconds from the previous step, with those seconds as sum
// (see docs/funnels.md). Sign is +1 for a new outcome and -1 to take back a
// replaced one.
func (b Batch) FunnelOutcome(appID, version int64, o *tapline.FunnelOutcome, sign int64) {
	if o == nil {
		return
	}
	k := tapline.FactKey{Hour: o.Hour, AppID: appID, Funnel: version, Breakdown: o.Breakdown}
	for i, secs := range o.Steps {
		k.Step, k.Bucket = i+1, tapline.FunnelBucket(secs)
		b.Add(k.For(tapline.FactFunnelSteps), tapline.FactValue{Count: sign, Sum: sign * secs})
	}
}

// FunnelChange adds the deltas of one installation's outcome in a funnel
// version changing from from to to (either nil: none): minus from, plus to.
// Equal outcomes add nothing.
func (b Batch) FunnelChange(appID, version int64, from, to *tapline.FunnelOutcome) {
	b.FunnelOutcome(appID, version, from, -1)
	b.FunnelOutcome(appID, version, to, +1)
}

// ClickToInstallMillis returns whole milliseconds from hit to install,
// never negative (a device clock slightly behind the server's is not a
// negative delay).
func ClickToInstallMillis(install, hit time.Time) int64 {
	d := install.Sub(hit)
	if d < 0 {
		return 0
	}
	return d.Milliseconds()
}

// Aggregator collects deltas and consumer offsets from concurrent partition
// workers and hands them out as consistent snapshots: every delta in a
// snapshot belongs to a record below the snapshot's offsets, and every
// record below them has its deltas in this or an earlier snapshot.
type Aggregator struct {
	mu          sync.Mutex
	pending     Batch
	conversions map[string]*tapline.Conversion
	activity    map[activityKey]tapline.CohortActivity
	deliveries  map[string]*tapline.Delivery
	offsets     map[offsetKey]int64
	// convBytes and delivBytes are the estimated heap of the pending
	// conversions and deliveries (size.go).
	convBytes, delivBytes int64
}

// activityKey names an installation's day in the cohorts.
type activityKey struct {
	appID     int64
	installID string
	day       int
}

type offsetKey struct {
	topic     string
	partition int
}

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{pending: Batch{}, conversions: map[string]*tapline.Conversion{},
		activity: map[activityKey]tapline.CohortActivity{}, deliveries: map[string]*tapline.Delivery{}, offsets: map[offsetKey]int64{}}
}

// Commit records the deltas of the record at (topic, partition, offset)
// and the conversions and cohort activity it wrote, and advances that
// partition's next offset past it, atomically with respect to Take.
func (a *Aggregator) Commit(topic string, partition int, offset int64, b Batch, rows tapline.FlushRows) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending.Merge(b)
	a.putConversions(rows.Conversions)
	a.putActivity(rows.Activity)
	a.putDeliveries(rows.Deliveries)
	a.offsets[offsetKey{topic, partition}] = offset + 1
}

// putDeliveries keeps one delivery per key: the first.
func (a *Aggregator) putDeliveries(ds []*tapline.Delivery) {
	for _, d := range ds {
		if _, ok := a.deliveries[d.Key]; !ok {
			a.deliveries[d.Key] = d
			a.delivBytes += deliveryBytes(d)
		}
	}
}

// putActivity keeps one activity per installation and day: the first.
func (a *Aggregator) putActivity(acts []tapline.CohortActivity) {
	for _, act := range acts {
		k := activityKey{act.Key.AppID, act.InstallID, act.Key.DayN}
		if _, ok := a.activity[k]; !ok {
			a.activity[k] = act
		}
	}
}

// putConversions keeps, of each conversion, the state with the longest
// history: the latest.
func (a *Aggregator) putConversions(convs []*tapline.Conversion) {
	for _, c := range convs {
		cur, ok := a.conversions[c.ID]
		if ok && len(c.History) < len(cur.History) {
			continue
		}
		if ok {
			a.convBytes -= conversionBytes(cur)
		}
		a.conversions[c.ID] = c
		a.convBytes += conversionBytes(c)
	}
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
	a.conversions = map[string]*tapline.Conversion{}
	a.activity = map[activityKey]tapline.CohortActivity{}
	a.deliveries = map[string]*tapline.Delivery{}
	a.offsets = map[offsetKey]int64{}
	a.convBytes, a.delivBytes = 0, 0
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

// Size returns the number of rows waiting to be flushed (fact rows,
// conversions, cohort activity and deliveries) and an estimate of the heap
// they hold, conversions with their histories and decisions included.
func (a *Aggregator) Size() (rows int, bytes int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rows = len(a.pending) + len(a.conversions) + len(a.activity) + len(a.deliveries)
	bytes = int64(len(a.pending))*factRowBytes + a.convBytes + int64(len(a.activity))*activityBytes + a.delivBytes
	return rows, bytes
}

// Take returns the pending deltas, conversions and activity and the
// current offsets and starts a new batch. A caller whose flush fails must
// Restore the deltas and rows.
func (a *Aggregator) Take() (Batch, tapline.FlushRows, []tapline.Offset) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.pending
	a.pending = Batch{}
	var rows tapline.FlushRows
	for _, c := range a.conversions {
		rows.Conversions = append(rows.Conversions, c)
	}
	clear(a.conversions)
	for _, act := range a.activity {
		rows.Activity = append(rows.Activity, act)
	}
	clear(a.activity)
	for _, d := range a.deliveries {
		rows.Deliveries = append(rows.Deliveries, d)
	}
	clear(a.deliveries)
	a.convBytes, a.delivBytes = 0, 0
	offs := make([]tapline.Offset, 0, len(a.offsets))
	for k, v := range a.offsets {
		offs = append(offs, tapline.Offset{Topic: k.topic, Partition: k.partition, Offset: v})
	}
	return b, rows, offs
}

// Restore puts back deltas and rows whose flush failed; the next Take
// returns them with everything added since, each conversion in the state
// with the longest history of the two (workers commit a conversion's
// states in no fixed order), under offsets at least as far along.
func (a *Aggregator) Restore(b Batch, rows tapline.FlushRows) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending.Merge(b)
	a.putConversions(rows.Conversions)
	a.putActivity(rows.Activity)
	a.putDeliveries(rows.Deliveries)
}
