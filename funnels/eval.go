package funnels

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"tapline"
)

// Handoff is where the live matcher starts counting a funnel version: for
// each partition of the hits and events topics, the first offset it counts
// live. Records below it are the backfill's.
type Handoff map[tapline.Partition]int64

// Before reports whether the record first consumed at bus position pos
// ("topic/partition/offset") comes before h. A record without a position,
// or on a partition h does not name, is before; every record is before a
// nil handoff.
func (h Handoff) Before(pos string) bool {
	if h == nil || pos == "" {
		return true
	}
	p, off, ok := ParsePosition(pos)
	if !ok {
		return true
	}
	start, ok := h[p]
	return !ok || off < start
}

// ParsePosition splits a bus position "topic/partition/offset".
func ParsePosition(pos string) (tapline.Partition, int64, bool) {
	i := strings.LastIndexByte(pos, '/')
	if i < 0 {
		return tapline.Partition{}, 0, false
	}
	j := strings.LastIndexByte(pos[:i], '/')
	if j < 0 {
		return tapline.Partition{}, 0, false
	}
	part, err1 := strconv.Atoi(pos[j+1 : i])
	off, err2 := strconv.ParseInt(pos[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return tapline.Partition{}, 0, false
	}
	return tapline.Partition{Topic: pos[:j], Partition: part}, off, true
}

// AttributionAsOf returns the attribution of conversion c as of handoff h:
// the last change made by a record before h. ok is false when c is nil or
// no change came before h (the install itself came after, or the
// conversion has no history: no conversion then). With a nil h it is c's
// current attribution.
func AttributionAsOf(c *tapline.Conversion, h Handoff) (a tapline.Attribution, ok bool) {
	if c == nil {
		return tapline.Attribution{}, false
	}
	if h == nil {
		return c.Attribution, true
	}
	for i := len(c.History) - 1; i >= 0; i-- {
		if h.Before(c.History[i].By) {
			return c.History[i].To, true
		}
	}
	return tapline.Attribution{}, false
}

// Path is what a funnel sees of one installation: its events and, when it
// has a conversion, the install event, the attribution and the attributed
// hit's link parameters. docs/funnels.md defines it.
type Path struct {
	Events []*tapline.Event

	Converted   bool   // the installation has a conversion
	InstallID   string // id of the event that made the conversion
	Attribution tapline.Attribution
	Platform    tapline.Platform  // the conversion's platform
	HitParams   map[string]string // link query parameters of the attributed hit
}

// NewPath returns the path of an installation as of h (nil: as now): the
// events before h and the attribution as of h, with the hit parameters it
// carries. When those are nil and a funnel needs them (see
// Compiled.NeedsHitParams), the caller reads them from the hit
// Attribution.HitID names: a conversion stored before tapline copied them.
func NewPath(events []*tapline.Event, c *tapline.Conversion, h Handoff) Path {
	p := Path{Events: events}
	if h != nil {
		p.Events = make([]*tapline.Event, 0, len(events))
		for _, e := range events {
			if h.Before(e.Source) {
				p.Events = append(p.Events, e)
			}
		}
	}
	if a, ok := AttributionAsOf(c, h); ok {
		p.Converted, p.InstallID, p.Attribution, p.Platform = true, c.EventID, a, c.Platform
		p.HitParams = a.HitParams
	}
	return p
}

// Tapped reports whether the path has a tap record.
func (p *Path) Tapped() bool {
	return p.Converted && p.Attribution.HitID != "" &&
		p.Attribution.Method != tapline.MethodOrganic && p.Attribution.Method != ""
}

// record is one entry of a path in path order.
type record struct {
	ns      int64
	tap     bool
	install bool
	id      string
	ev      *tapline.Event // nil for the tap
}

// records returns p's records in path order, reusing buf.
func (p *Path) records(buf []record) []record {
	rs := buf[:0]
	if p.Tapped() {
		rs = append(rs, record{ns: tapline.UnixNanos(p.Attribution.HitTime), tap: true, id: p.Attribution.HitID})
	}
	for _, e := range p.Events {
		rs = append(rs, record{ns: tapline.UnixNanos(e.Time), install: p.Converted && e.ID == p.InstallID, id: e.ID, ev: e})
	}
	slices.SortFunc(rs, func(a, b record) int {
		if c := cmp.Compare(a.ns, b.ns); c != 0 {
			return c
		}
		if a.tap != b.tap {
			if a.tap {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	return rs
}

// param returns a record's string parameter as filters read it; revenue
// and currency of an event come from its revenue, never from its
// parameters.
func (p *Path) param(r *record, name string) (string, bool) {
	if r.tap {
		v, ok := p.HitParams[name]
		return v, ok
	}
	switch name {
	case tapline.ParamRevenue:
		return "", false // a number only; see number
	case tapline.ParamCurrency:
		if r.ev.Revenue == nil {
			return "", false
		}
		return r.ev.Revenue.Currency, true
	}
	v, ok := r.ev.Params[name]
	return v, ok
}

// number returns a record's parameter as numeric filters read it.
func (p *Path) number(r *record, name string) (float64, bool) {
	if !r.tap && name == tapline.ParamRevenue {
		if r.ev.Revenue == nil {
			return 0, false
		}
		return float64(r.ev.Revenue.Micros) / 1e6, true
	}
	v, ok := p.param(r, name)
	if !ok {
		return 0, false
	}
	return tapline.ParseFunnelNumber(v)
}
