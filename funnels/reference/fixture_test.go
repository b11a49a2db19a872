package reference

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"tapline"
)

// app is the app of every fixture; other is another app whose rows must be
// ignored.
const (
	app   = 42
	other = 43
)

// base is the start of a UTC hour; hour(i) is the key of the hour i hours
// later. Fixtures put installations in hours of their own so that each one's
// outcome has keys of its own.
var base = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func hour(i int) int64 { return base.Unix() + int64(i)*3600 }

// at is a time i hours and d after base.
func at(i int, d time.Duration) time.Time { return base.Add(time.Duration(i)*time.Hour + d) }

// fixture builds the Data of one test.
type fixture struct {
	Data
	n int
}

func newFixture() *fixture { return &fixture{Data: Data{AppID: app}} }

// kv turns "k", "v", ... into parameters.
func kv(s []string) map[string]string {
	if len(s) == 0 {
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(s); i += 2 {
		m[s[i]] = s[i+1]
	}
	return m
}

// ev adds an event of installation inst with a fresh id (ids grow with each
// call) and parameters kv.
func (f *fixture) ev(inst, name string, t time.Time, params ...string) *tapline.Event {
	f.n++
	return f.evID(fmt.Sprintf("e%04d", f.n), inst, name, t, params...)
}

// evID adds an event with id id.
func (f *fixture) evID(id, inst, name string, t time.Time, params ...string) *tapline.Event {
	e := &tapline.Event{
		ID: id, AppID: app, Name: name, Kind: tapline.KindCustom, Time: t, InstallID: inst,
		Device: tapline.Device{Platform: tapline.PlatformIOS}, Params: kv(params),
	}
	if name == "install" {
		e.Kind = tapline.KindInstall
	}
	f.Events = append(f.Events, e)
	return e
}

// hit adds a hit on link at t with query parameters kv.
func (f *fixture) hit(id string, link int64, t time.Time, params ...string) *tapline.Hit {
	h := &tapline.Hit{ID: id, AppID: app, LinkID: link, Time: t, Params: kv(params), Platform: tapline.PlatformIOS}
	f.Hits = append(f.Hits, h)
	return h
}

// change is a history change made by the record at pos: attributed to h
// by method m (h nil: organic).
func change(pos string, h *tapline.Hit, m tapline.MatchMethod) tapline.AttributionChange {
	a := tapline.Attribution{Method: m}
	if h != nil {
		a.HitID, a.LinkID, a.HitTime = h.ID, h.LinkID, h.Time
	}
	return tapline.AttributionChange{By: pos, To: a}
}

// convert adds the conversion of install event e with history changes; its
// current attribution is the last change.
func (f *fixture) convert(e *tapline.Event, platform tapline.Platform, changes ...tapline.AttributionChange) *tapline.Conversion {
	c := &tapline.Conversion{
		ID: tapline.ConversionID(e.ID), AppID: e.AppID, EventID: e.ID, InstallID: e.InstallID,
		InstallTime: e.Time, Platform: platform, History: changes,
	}
	if len(changes) > 0 {
		c.Attribution = changes[len(changes)-1].To
	}
	for i := 1; i < len(changes); i++ {
		c.History[i].From = &c.History[i-1].To
	}
	f.Conversions = append(f.Conversions, c)
	return c
}

// Definitions.

func funnel(order tapline.FunnelOrder, steps ...tapline.FunnelStep) *tapline.FunnelDefinition {
	return &tapline.FunnelDefinition{Name: "test", Order: order, Steps: steps}
}

func event(name string, fs ...tapline.FunnelFilter) tapline.FunnelStep {
	return tapline.FunnelStep{Kind: tapline.StepEvent, Event: name, Filters: fs}
}

func install(fs ...tapline.FunnelFilter) tapline.FunnelStep {
	return tapline.FunnelStep{Kind: tapline.StepInstall, Filters: fs}
}

func tap(links []int64, fs ...tapline.FunnelFilter) tapline.FunnelStep {
	return tapline.FunnelStep{Kind: tapline.StepTap, Links: links, Filters: fs}
}

func filter(param string, op tapline.FilterOp, value string) tapline.FunnelFilter {
	return tapline.FunnelFilter{Param: param, Op: op, Value: value}
}

func in(param string, values ...string) tapline.FunnelFilter {
	return tapline.FunnelFilter{Param: param, Op: tapline.OpIn, Values: values}
}

func exclude(s tapline.FunnelStep, after, before int) tapline.FunnelExclusion {
	return tapline.FunnelExclusion{FunnelStep: s, After: after, Before: before}
}

// Results.

// row is one expected result: hour index, breakdown, step, bucket, count
// and sum.
type row struct {
	h          int
	bd         string
	step, buck int
	count, sum int64
}

func rows(rs ...row) map[Key]Value {
	out := map[Key]Value{}
	for _, r := range rs {
		k := Key{Hour: hour(r.h), Breakdown: r.bd, Step: r.step, Bucket: r.buck}
		if _, dup := out[k]; dup {
			panic(fmt.Sprintf("expected row %v twice", k))
		}
		out[k] = Value{Count: r.count, Sum: r.sum}
	}
	return out
}

// reached is the rows of one installation in hour h that reached a level
// for each of secs (the seconds of levels 1, 2, ...; the first is 0).
func reached(h int, bd string, secs ...int64) []row {
	var out []row
	for i, s := range secs {
		out = append(out, row{h, bd, i + 1, bucketOf(s), 1, s})
	}
	return out
}

// bucketOf is the bucket of secs, written out from docs/funnels.md's bounds
// for the tests' own use.
func bucketOf(s int64) int {
	switch {
	case s < 10:
		return 0
	case s < 30:
		return 1
	case s < 60:
		return 2
	case s < 120:
		return 3
	case s < 300:
		return 4
	case s < 600:
		return 5
	}
	panic(fmt.Sprintf("bucketOf(%d): write the bucket out in the test", s))
}

func concat(rs ...[]row) map[Key]Value { return rows(slices.Concat(rs...)...) }

// mustOpen opens a DuckDB of the test's own.
func mustOpen(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := Open()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// expect runs def over d as of h and compares the result with want.
func expect(tb testing.TB, d *Data, def *tapline.FunnelDefinition, h Handoff, want map[Key]Value) {
	tb.Helper()
	got, err := Run(context.Background(), mustOpen(tb), d, def, h)
	if err != nil {
		tb.Fatal(err)
	}
	if !maps.Equal(got, want) {
		tb.Errorf("results differ\n got: %s\nwant: %s", format(got), format(want))
	}
}

func format(m map[Key]Value) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b Key) int {
		switch {
		case a.Hour != b.Hour:
			return int(a.Hour - b.Hour)
		case a.Breakdown != b.Breakdown:
			if a.Breakdown < b.Breakdown {
				return -1
			}
			return 1
		case a.Step != b.Step:
			return a.Step - b.Step
		}
		return a.Bucket - b.Bucket
	})
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("\n\thour+%d %q step %d bucket %d: %d/%d", (k.Hour-base.Unix())/3600, k.Breakdown, k.Step, k.Bucket, m[k].Count, m[k].Sum)
	}
	return s
}
