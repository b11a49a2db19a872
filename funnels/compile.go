package funnels

import (
	"slices"
	"strconv"

	"tapline"
)

// Compiled is a funnel version ready to evaluate paths; it is immutable and
// safe for concurrent use.
type Compiled struct {
	Funnel     *tapline.Funnel
	windowNs   int64
	steps      []step
	exclusions []exclusion
	names      map[string]bool // event names any step or exclusion matches
}

type step struct {
	kind    tapline.StepKind
	links   map[int64]bool // nil: any link
	event   string
	filters []tapline.FunnelFilter
}

type exclusion struct {
	step
	after, before int
}

// Compile prepares f for evaluation. f must be valid
// (tapline.FunnelDefinition.Validate).
func Compile(f *tapline.Funnel) *Compiled {
	c := &Compiled{Funnel: f, windowNs: int64(f.Window()), names: map[string]bool{}}
	mk := func(s *tapline.FunnelStep) step {
		st := step{kind: s.Kind, event: s.Event, filters: s.Filters}
		if len(s.Links) > 0 {
			st.links = map[int64]bool{}
			for _, id := range s.Links {
				st.links[id] = true
			}
		}
		if s.Kind == tapline.StepEvent {
			c.names[s.Event] = true
		}
		return st
	}
	for i := range f.Steps {
		c.steps = append(c.steps, mk(&f.Steps[i]))
	}
	for i := range f.Exclusions {
		x := &f.Exclusions[i]
		c.exclusions = append(c.exclusions, exclusion{step: mk(&x.FunnelStep), after: x.After, before: x.Before})
	}
	return c
}

// NeedsHitParams reports whether evaluating this funnel reads the
// attributed hit's link parameters.
func (c *Compiled) NeedsHitParams() bool {
	switch c.Funnel.Breakdown.Kind {
	case tapline.BreakdownLinkParam:
		return true
	case tapline.BreakdownEntryParam:
		if c.steps[0].kind == tapline.StepTap || c.Funnel.Order == tapline.OrderAny {
			return true
		}
	}
	for _, s := range c.steps {
		if s.kind == tapline.StepTap && len(s.filters) > 0 {
			return true
		}
	}
	return false
}

// Affects reports whether a new event e of an installation can change the
// installation's outcome, given that its conversion exists already or not.
// An event that matches no step and no exclusion moves no ordered or any
// walk; strict walks and the platform breakdown of an installation without
// conversion see every event, and installs make conversions.
func (c *Compiled) Affects(e *tapline.Event) bool {
	return e.Kind == tapline.KindInstall || c.names[e.Name] ||
		c.Funnel.Order == tapline.OrderStrict || c.Funnel.Breakdown.Kind == tapline.BreakdownPlatform
}

func (s *step) match(p *Path, r *record) bool {
	switch s.kind {
	case tapline.StepTap:
		if !r.tap || (s.links != nil && !s.links[p.Attribution.LinkID]) {
			return false
		}
	case tapline.StepInstall:
		if !r.install {
			return false
		}
	case tapline.StepEvent:
		if r.tap || r.ev.Name != s.event {
			return false
		}
	default:
		return false
	}
	for i := range s.filters {
		if !matchFilter(p, r, &s.filters[i]) {
			return false
		}
	}
	return true
}

func matchFilter(p *Path, r *record, f *tapline.FunnelFilter) bool {
	switch f.Op {
	case tapline.OpEq, tapline.OpNe, tapline.OpIn:
		v, ok := p.param(r, f.Param)
		switch f.Op {
		case tapline.OpEq:
			return ok && v == f.Value
		case tapline.OpNe:
			return !ok || v != f.Value
		default:
			return ok && slices.Contains(f.Values, v)
		}
	}
	x, ok := p.number(r, f.Param)
	if !ok {
		return false
	}
	y, _ := tapline.ParseFunnelNumber(f.Value)
	switch f.Op {
	case tapline.OpGt:
		return x > y
	case tapline.OpGte:
		return x >= y
	case tapline.OpLt:
		return x < y
	case tapline.OpLte:
		return x <= y
	}
	return false
}

// Evaluator evaluates paths, reusing its buffers; one per goroutine.
type Evaluator struct {
	buf []record
}

// Evaluate returns the outcome of path p in funnel c: see docs/funnels.md.
func (ev *Evaluator) Evaluate(c *Compiled, p *Path) tapline.FunnelOutcome {
	ev.buf = p.records(ev.buf)
	return c.evaluate(p, ev.buf)
}

func (c *Compiled) evaluate(p *Path, rs []record) tapline.FunnelOutcome {
	order := c.Funnel.Order
	n := len(c.steps)
	var satisfied uint32 // steps of an any walk, bit i for step i+1
	entry := -1
	for i := range rs {
		if order == tapline.OrderAny {
			if s := c.firstUnsatisfied(p, &rs[i], satisfied); s >= 0 {
				satisfied |= 1 << s
				entry = i
				break
			}
		} else if c.steps[0].match(p, &rs[i]) {
			entry = i
			break
		}
	}
	if entry < 0 {
		return tapline.FunnelOutcome{}
	}
	t0 := rs[entry].ns
	out := tapline.FunnelOutcome{
		Hour:      hourOf(t0),
		Breakdown: c.breakdown(p, rs, &rs[entry]),
		Steps:     make([]int64, 1, n),
	}
	level, last := 1, t0
walk:
	for i := entry + 1; i < len(rs) && level < n; i++ {
		r := &rs[i]
		if r.ns-t0 > c.windowNs {
			break
		}
		for j := range c.exclusions {
			x := &c.exclusions[j]
			if x.after <= level && level < x.before && x.match(p, r) {
				break walk
			}
		}
		switch order {
		case tapline.OrderAny:
			s := c.firstUnsatisfied(p, r, satisfied)
			if s < 0 {
				continue
			}
			satisfied |= 1 << s
		case tapline.OrderStrict:
			if !c.steps[level].match(p, r) {
				break walk
			}
		default:
			if !c.steps[level].match(p, r) {
				continue
			}
		}
		level++
		out.Steps = append(out.Steps, (r.ns-last)/1e9)
		last = r.ns
	}
	return out
}

// firstUnsatisfied returns the index of the lowest step r matches that is
// not in satisfied, or -1.
func (c *Compiled) firstUnsatisfied(p *Path, r *record, satisfied uint32) int {
	for s := range c.steps {
		if satisfied&(1<<s) == 0 && c.steps[s].match(p, r) {
			return s
		}
	}
	return -1
}

// hourOf returns the Unix seconds of the UTC hour of ns.
func hourOf(ns int64) int64 {
	secs := ns / 1e9
	if ns%1e9 < 0 {
		secs--
	}
	h := secs / 3600 * 3600
	if secs%3600 < 0 {
		h -= 3600
	}
	return h
}

// breakdown returns the path's breakdown value; entry is its entry record.
func (c *Compiled) breakdown(p *Path, rs []record, entry *record) string {
	b := c.Funnel.Breakdown
	switch b.Kind {
	case tapline.BreakdownLink:
		if !p.Tapped() {
			return "0"
		}
		return strconv.FormatInt(p.Attribution.LinkID, 10)
	case tapline.BreakdownPlatform:
		if p.Converted {
			return string(p.Platform)
		}
		for i := range rs {
			if !rs[i].tap {
				return string(rs[i].ev.Device.Platform)
			}
		}
		return ""
	case tapline.BreakdownMethod:
		if !p.Converted || p.Attribution.Method == "" {
			return string(tapline.MethodOrganic)
		}
		return string(p.Attribution.Method)
	case tapline.BreakdownLinkParam:
		if !p.Tapped() {
			return ""
		}
		return p.HitParams[b.Param]
	case tapline.BreakdownEntryParam:
		v, _ := p.param(entry, b.Param)
		return v
	}
	return ""
}
