package reference

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
)

// Every expectation below is worked out by hand from docs/funnels.md; the
// comments give the reasoning. s is one second.
const s = time.Second

// Entry: the first record that matches step 1; the hour is the entry's.
func TestEntryIsFirstStepOneRecord(t *testing.T) {
	t.Parallel()
	f := newFixture()
	// A: the first open enters; buy is 150 s after it (not 50 s after
	// the second open).
	f.ev("A", "open", at(0, 0))
	f.ev("A", "open", at(0, 100*s))
	f.ev("A", "buy", at(0, 150*s))
	// An event of another app in A's installation does not enter.
	o := f.ev("A", "open", at(0, -5*s))
	o.AppID = other
	// B: never opens: not in the funnel.
	f.ev("B", "buy", at(1, 0))
	// C: buy before the open does not count; the open enters.
	f.ev("C", "buy", at(2, 0))
	f.ev("C", "open", at(2, 10*s))
	// D: enters at 3h59m59s, buys 11 s later in the next hour: the hour
	// is the entry's.
	f.ev("D", "open", at(3, 59*time.Minute+59*s))
	f.ev("D", "buy", at(4, 10*s))
	// Events without an installation never enter.
	f.ev("", "open", at(5, 0))
	f.ev("", "buy", at(5, s))

	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), event("buy")), nil, concat(
		reached(0, "", 0, 150),
		reached(2, "", 0),
		reached(3, "", 0, 11),
	))
}

// Ordered: other records may come between steps; a step before its turn
// does not count.
func TestOrderedWithEventsBetween(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "other", at(0, 5*s))
	f.ev("A", "buy", at(0, 7*s)) // level 1: buy is not step 2
	f.ev("A", "view", at(0, 20*s))
	f.ev("A", "other", at(0, 30*s))
	f.ev("A", "buy", at(0, 65*s))
	// B: the view before the entry does not count.
	f.ev("B", "view", at(1, 0))
	f.ev("B", "open", at(1, 10*s))
	f.ev("B", "buy", at(1, 20*s))

	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), event("view"), event("buy")), nil, concat(
		reached(0, "", 0, 20, 45),
		reached(1, "", 0),
	))
}

// Strict: each step is the very next record; anything else stops the path.
func TestStrictBrokenByInterveningEvent(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "view", at(0, 10*s))
	f.ev("A", "other", at(0, 20*s)) // stops at level 2
	f.ev("A", "buy", at(0, 30*s))
	f.ev("B", "open", at(1, 0))
	f.ev("B", "view", at(1, 5*s))
	f.ev("B", "buy", at(1, 8*s))
	f.ev("C", "open", at(2, 0))
	f.ev("C", "other", at(2, s)) // stops at level 1
	f.ev("C", "view", at(2, 2*s))
	f.ev("D", "other", at(3, 0)) // before the entry: no matter
	f.ev("D", "other", at(3, s/2))
	f.ev("D", "open", at(3, s))
	f.ev("D", "view", at(3, 2*s))
	f.ev("E", "open", at(4, 0))
	f.ev("E", "open", at(4, s)) // not step 2: stops at level 1
	f.ev("E", "view", at(4, 2*s))

	def := funnel(tapline.OrderStrict, event("open"), event("view"), event("buy"))
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 10),
		reached(1, "", 0, 5, 3),
		reached(2, "", 0),
		reached(3, "", 0, 1),
		reached(4, "", 0),
	))
	// The same data ordered: C, D and E go on.
	def.Order = tapline.OrderOrdered
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 10, 20),
		reached(1, "", 0, 5, 3),
		reached(2, "", 0, 2),
		reached(3, "", 0, 1),
		reached(4, "", 0, 2),
	))
}

// Any: the first record matching any step enters; each later record
// satisfies the lowest numbered step it matches that is not satisfied yet.
func TestAnyOrder(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "buy", at(0, 0)) // step 3
	f.ev("A", "open", at(0, 10*s))
	f.ev("A", "buy", at(0, 20*s)) // satisfied already
	f.ev("A", "view", at(0, 40*s))
	f.ev("B", "view", at(1, 0))
	f.ev("C", "other", at(2, 0))
	f.ev("D", "open", at(3, 0))
	f.ev("D", "open", at(3, 5*s))
	f.ev("D", "view", at(3, 7*s))
	expect(t, &f.Data, funnel(tapline.OrderAny, event("open"), event("view"), event("buy")), nil, concat(
		reached(0, "", 0, 10, 30),
		reached(1, "", 0),
		reached(3, "", 0, 7),
	))

	// Records matching several steps.
	g := newFixture()
	g.ev("E", "x", at(0, 0))              // step 2 only
	g.ev("E", "x", at(0, 10*s), "p", "1") // steps 1 and 2: 1 is left
	g.ev("F", "x", at(1, 0), "p", "1")    // steps 1 and 2: the lowest, 1
	g.ev("F", "x", at(1, 3*s), "p", "1")  // 2 is left
	g.ev("G", "x", at(2, 0), "p", "1")    // one record satisfies one step
	expect(t, &g.Data, funnel(tapline.OrderAny, event("x", filter("p", tapline.OpEq, "1")), event("x")), nil, concat(
		reached(0, "", 0, 10),
		reached(1, "", 0, 3),
		reached(2, "", 0),
	))

	// A record matching two steps not yet satisfied satisfies the lower
	// one only: the next such record satisfies the other.
	k := newFixture()
	k.ev("H", "a", at(0, 0))
	k.ev("H", "x", at(0, 5*s), "p", "1") // steps 2 and 3: 2
	k.ev("H", "x", at(0, 9*s), "p", "1") // 3
	expect(t, &k.Data, funnel(tapline.OrderAny, event("a"), event("x"), event("x", filter("p", tapline.OpEq, "1"))), nil,
		concat(reached(0, "", 0, 5, 4)))
}

// Records of one time are ordered by event id (bytes), a tap first.
func TestSameTimeOrderedByEventID(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.evID("b-open", "A", "open", at(0, 0))
	f.evID("a-view", "A", "view", at(0, 0)) // before the open
	f.evID("B2", "B", "open", at(1, 0))
	f.evID("B3", "B", "view", at(1, 0))
	f.evID("B10", "B", "other", at(1, 0)) // "B10" < "B2": before the open
	f.evID("C-\u00e9", "C", "view", at(2, 0))
	f.evID("C-z", "C", "open", at(2, 0)) // "z" < "\u00e9" as bytes
	expect(t, &f.Data, funnel(tapline.OrderStrict, event("open"), event("view")), nil, concat(
		reached(0, "", 0),
		reached(1, "", 0, 0),
		reached(2, "", 0, 0),
	))
}

// Window: t0 + window counts, one nanosecond later does not.
func TestWindowEdgeInclusive(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "buy", at(0, 60*s))
	f.ev("B", "open", at(1, 0))
	f.ev("B", "buy", at(1, 60*s+1))
	f.ev("E", "open", at(10, 0))
	f.ev("E", "buy", at(10, 14*24*time.Hour))
	f.ev("F", "open", at(11, 0))
	f.ev("F", "buy", at(11, 14*24*time.Hour+1))

	def := funnel(tapline.OrderOrdered, event("open"), event("buy"))
	def.WindowSeconds = 60
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 60),
		reached(1, "", 0),
		reached(10, "", 0),
		reached(11, "", 0),
	))
	// The default window is 14 days: 1,209,600 s, bucket 18.
	def.WindowSeconds = 0
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 60),
		reached(1, "", 0, 60),
		reached(10, "", 0),
		[]row{{10, "", 2, 18, 1, 1209600}},
		reached(11, "", 0),
	))
}

// An exclusion between its steps stops the path at the level it has.
func TestExclusionBetweenStepsCutsLevel(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "cancel", at(0, 5*s)) // level 1: stops
	f.ev("A", "view", at(0, 10*s))
	f.ev("A", "buy", at(0, 20*s))
	f.ev("B", "open", at(1, 0))
	f.ev("B", "view", at(1, 10*s))
	f.ev("B", "cancel", at(1, 15*s)) // level 2: stops
	f.ev("B", "buy", at(1, 20*s))
	f.ev("C", "open", at(2, 0))
	f.ev("C", "view", at(2, 10*s))
	f.ev("C", "buy", at(2, 20*s))
	f.ev("C", "cancel", at(2, 30*s)) // after the last step: no matter
	f.ev("D", "cancel", at(3, 0))    // before the entry: no matter
	f.ev("D", "open", at(3, s))
	f.ev("D", "view", at(3, 2*s))
	f.ev("D", "buy", at(3, 3*s))

	def := funnel(tapline.OrderOrdered, event("open"), event("view"), event("buy"))
	def.Exclusions = []tapline.FunnelExclusion{exclude(event("cancel"), 1, 3)}
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0),
		reached(1, "", 0, 10),
		reached(2, "", 0, 10, 10),
		reached(3, "", 0, 1, 1),
	))

	// In any order the exclusion's range is in levels: G's cancel comes at
	// level 2, outside [1, 2).
	g := newFixture()
	g.ev("F", "buy", at(0, 0))
	g.ev("F", "cancel", at(0, 5*s))
	g.ev("F", "open", at(0, 7*s))
	g.ev("G", "buy", at(1, 0))
	g.ev("G", "view", at(1, 5*s))
	g.ev("G", "cancel", at(1, 6*s))
	g.ev("G", "open", at(1, 7*s))
	def = funnel(tapline.OrderAny, event("open"), event("view"), event("buy"))
	def.Exclusions = []tapline.FunnelExclusion{exclude(event("cancel"), 1, 2)}
	expect(t, &g.Data, def, nil, concat(
		reached(0, "", 0),
		reached(1, "", 0, 5, 2),
	))
}

// An exclusion outside its after..before range is no matter.
func TestExclusionOutsideItsStepsIgnored(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "cancel", at(0, 5*s)) // level 1, not in [2, 3)
	f.ev("A", "view", at(0, 10*s))
	f.ev("A", "buy", at(0, 20*s))
	f.ev("B", "open", at(1, 0))
	f.ev("B", "view", at(1, 10*s))
	f.ev("B", "cancel", at(1, 15*s)) // level 2: stops
	f.ev("B", "buy", at(1, 20*s))

	def := funnel(tapline.OrderOrdered, event("open"), event("view"), event("buy"))
	def.Exclusions = []tapline.FunnelExclusion{exclude(event("cancel"), 2, 3)}
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 10, 10),
		reached(1, "", 0, 10),
	))
}

// A record matching both an exclusion and the next step disqualifies.
func TestExclusionWinsOverNextStep(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.ev("A", "open", at(0, 0))
	f.ev("A", "buy", at(0, 10*s), "refund", "1")
	f.ev("A", "buy", at(0, 20*s))
	f.ev("B", "open", at(1, 0))
	f.ev("B", "buy", at(1, 10*s))
	for _, order := range []tapline.FunnelOrder{tapline.OrderOrdered, tapline.OrderStrict, tapline.OrderAny} {
		def := funnel(order, event("open"), event("buy"))
		def.Exclusions = []tapline.FunnelExclusion{exclude(event("buy", filter("refund", tapline.OpEq, "1")), 1, 2)}
		expect(t, &f.Data, def, nil, concat(
			reached(0, "", 0),
			reached(1, "", 0, 10),
		))
	}
}

// A tap step matches the attributed hit when its link is listed and its
// filters hold on the hit's link query parameters.
func TestTapStepLinksAndFilter(t *testing.T) {
	t.Parallel()
	f := newFixture()
	convertVia := func(inst string, h *tapline.Hit, m tapline.MatchMethod, installAt time.Time) {
		e := f.ev(inst, "install", installAt)
		f.convert(e, tapline.PlatformIOS, change("events/0/1", h, m))
	}
	convertVia("A", f.hit("hA", 7, at(0, 0), "utm_campaign", "spring"), tapline.MethodFingerprint, at(0, 30*s))
	convertVia("B", f.hit("hB", 9, at(1, 0), "utm_campaign", "spring"), tapline.MethodFingerprint, at(1, 30*s))
	convertVia("C", f.hit("hC", 8, at(2, 0), "utm_campaign", "autumn"), tapline.MethodFingerprint, at(2, 30*s))
	convertVia("D", nil, tapline.MethodOrganic, at(3, 0))
	convertVia("E", f.hit("hE", 8, at(4, 0), "utm_campaign", "spring"), tapline.MethodReferrer, at(4, 300*s))

	def := funnel(tapline.OrderOrdered,
		tap([]int64{7, 8}, filter("utm_campaign", tapline.OpEq, "spring")),
		install())
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 30),
		reached(4, "", 0, 300),
	))
	// Any link, no filter: every tap.
	def = funnel(tapline.OrderOrdered, tap(nil), install())
	expect(t, &f.Data, def, nil, concat(
		reached(0, "", 0, 30),
		reached(1, "", 0, 30),
		reached(2, "", 0, 30),
		reached(4, "", 0, 300),
	))
}

// The install record is the conversion's event only.
func TestInstallStepIsConversionEvent(t *testing.T) {
	t.Parallel()
	f := newFixture()
	a := f.ev("A", "install", at(0, 0))
	f.convert(a, tapline.PlatformIOS, change("", nil, tapline.MethodOrganic))
	f.ev("A", "open", at(0, 10*s))
	f.ev("A", "install", at(0, 20*s)) // another install event: ordinary
	// B has no conversion: no install record.
	f.ev("B", "install", at(1, 0))
	f.ev("B", "open", at(1, 5*s))
	f.ev("B", "install", at(1, 10*s))
	f.ev("C", "open", at(2, 0))
	c := f.ev("C", "install", at(2, 10*s))
	f.convert(c, tapline.PlatformIOS, change("", nil, tapline.MethodOrganic))

	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), install()), nil, concat(
		reached(0, "", 0),
		reached(1, "", 0),
		reached(2, "", 0, 10),
	))
	expect(t, &f.Data, funnel(tapline.OrderOrdered, install(), event("open")), nil, concat(
		reached(0, "", 0, 10),
		reached(2, "", 0),
	))
	// An event step named like the install event matches every one of
	// them, the install record too.
	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), event("install")), nil, concat(
		reached(0, "", 0, 10),
		reached(1, "", 0, 5),
		reached(2, "", 0, 10),
	))
}

// An organic installation has no tap; the tap comes before events of the
// same time.
func TestOrganicHasNoTapAndTapFirst(t *testing.T) {
	t.Parallel()
	f := newFixture()
	// A: organic, although the attribution names a hit.
	h := f.hit("hA", 7, at(0, 0))
	a := f.ev("A", "install", at(0, 0))
	org := change("", h, tapline.MethodOrganic)
	f.convert(a, tapline.PlatformIOS, org)
	f.ev("A", "open", at(0, 10*s))
	b := f.ev("B", "install", at(1, 10*s))
	f.convert(b, tapline.PlatformIOS, change("", f.hit("hB", 7, at(1, 0)), tapline.MethodFingerprint))
	f.ev("B", "open", at(1, 70*s))
	c := f.ev("C", "install", at(2, 0))
	f.convert(c, tapline.PlatformIOS, change("", f.hit("hC", 7, at(2, 0)), tapline.MethodFingerprint))
	// D: the install before the tap (clock skew).
	d := f.ev("D", "install", at(3, 0))
	f.convert(d, tapline.PlatformIOS, change("", f.hit("hD", 7, at(3, 5*s)), tapline.MethodFingerprint))

	expect(t, &f.Data, funnel(tapline.OrderOrdered, tap(nil), event("open")), nil, concat(
		reached(1, "", 0, 70),
		reached(2, "", 0),
		reached(3, "", 0),
	))
	expect(t, &f.Data, funnel(tapline.OrderStrict, tap(nil), install()), nil, concat(
		reached(1, "", 0, 10),
		reached(2, "", 0, 0),
		reached(3, "", 0),
	))
}

// Of several conversions of one installation, the earliest install (then
// the lowest id) that exists as of the handoff is the installation's (this
// package's reading, as the raw stores' ConversionByInstall).
func TestSeveralConversions(t *testing.T) {
	t.Parallel()
	f := newFixture()
	h7 := f.hit("h7", 7, at(0, 0))
	h8 := f.hit("h8", 8, at(0, 0))
	late := f.ev("A", "install", at(0, 20*s))
	f.convert(late, tapline.PlatformIOS, change("events/0/1", h8, tapline.MethodFingerprint))
	early := f.ev("A", "install", at(0, 10*s))
	f.convert(early, tapline.PlatformIOS, change("events/0/5", h7, tapline.MethodFingerprint))
	def := funnel(tapline.OrderOrdered, tap(nil), install())
	def.Breakdown.Kind = tapline.BreakdownLink
	expect(t, &f.Data, def, nil, concat(reached(0, "7", 0, 10)))
	// As of offset 3 only the later install's conversion exists.
	expect(t, &f.Data, def, Handoff{"events/0": 3}, concat(reached(0, "8", 0, 20)))
}

// filterCase is one installation of a filter test: the parameters of its
// second event and whether it matches step 2.
type filterCase struct {
	params []string
	match  bool
}

// runFilterCases gives each case an installation in an hour of its own:
// "open" at 0, then an event named name 10 s later with the case's
// parameters; the funnel is open → name with filter fl.
func runFilterCases(t *testing.T, name string, fl tapline.FunnelFilter, cases []filterCase, revenue map[int]*tapline.Revenue) {
	t.Helper()
	f := newFixture()
	var want []row
	for i, c := range cases {
		inst := "i" + strconv.Itoa(i)
		f.ev(inst, "open", at(i, 0))
		e := f.ev(inst, name, at(i, 10*s), c.params...)
		e.Revenue = revenue[i]
		if c.match {
			want = append(want, reached(i, "", 0, 10)...)
		} else {
			want = append(want, reached(i, "", 0)...)
		}
	}
	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), event(name, fl)), nil, rows(want...))
}

// Numeric filters read both sides as decimal numbers, the way
// strconv.ParseFloat does (no trimming, finite only).
func TestNumericFilters(t *testing.T) {
	t.Parallel()
	runFilterCases(t, "level", filter("n", tapline.OpGt, "3"), []filterCase{
		{[]string{"n", "4"}, true},
		{[]string{"n", "3"}, false},
		{[]string{"n", "abc"}, false},
		{[]string{"n", " 5"}, false}, // ParseFloat does not trim
		{[]string{"n", "1e1"}, true},
		{nil, false},
		{[]string{"n", "4.5"}, true},
		{[]string{"n", "+4"}, true},
		{[]string{"n", ".5e1"}, true},
		{[]string{"n", "3.0000000000000001"}, false}, // parses to 3
		{[]string{"n", "Inf"}, false},
		{[]string{"n", "NaN"}, false},
		{[]string{"n", "1_000"}, true}, // ParseFloat takes Go's digit separators
		{[]string{"n", "1__000"}, false},
		{[]string{"n", "0x10"}, false},  // hexadecimal is not decimal
		{[]string{"n", "1e400"}, false}, // out of range
		{[]string{"n", ""}, false},
		{[]string{"other", "9"}, false},
	}, nil)
	runFilterCases(t, "level", filter("n", tapline.OpLte, "-1.5"), []filterCase{
		{[]string{"n", "-1.5"}, true},
		{[]string{"n", "-2"}, true},
		{[]string{"n", "-1"}, false},
		{[]string{"n", "-1.5x"}, false},
	}, nil)
	runFilterCases(t, "level", filter("n", tapline.OpGte, "10"), []filterCase{
		{[]string{"n", "10"}, true},
		{[]string{"n", "9.999"}, false},
		{[]string{"n", "1e2"}, true},
	}, nil)
	runFilterCases(t, "level", filter("n", tapline.OpLt, "0"), []filterCase{
		{[]string{"n", "-0.0001"}, true},
		{[]string{"n", "0"}, false},
		{[]string{"n", "-0"}, false},
	}, nil)
}

// revenue is the revenue in units, currency its currency; both absent
// without revenue, whatever the parameters say.
func TestRevenueAndCurrency(t *testing.T) {
	t.Parallel()
	rev := func(micros int64, cur string) *tapline.Revenue {
		return &tapline.Revenue{Micros: micros, Currency: cur}
	}
	revenue := map[int]*tapline.Revenue{0: rev(4_990_000, "EUR"), 1: rev(4_980_000, "EUR"), 3: rev(5_000_000, "USD")}
	cases := []filterCase{
		{nil, true},                        // 4.99 ≥ 4.99
		{nil, false},                       // 4.98
		{[]string{"revenue", "10"}, false}, // no revenue: absent
		{[]string{"revenue", "1"}, true},   // 5 from the revenue, not 1
	}
	runFilterCases(t, "purchase", filter("revenue", tapline.OpGte, "4.99"), cases, revenue)
	runFilterCases(t, "purchase", filter("currency", tapline.OpEq, "EUR"), []filterCase{
		{nil, true},
		{[]string{"currency", "USD"}, true}, // the revenue's currency
		{[]string{"currency", "EUR"}, false},
		{[]string{"currency", "EUR"}, false},
	}, revenue)
	runFilterCases(t, "purchase", filter("currency", tapline.OpNe, "EUR"), []filterCase{
		{nil, false},
		{nil, false},
		{[]string{"currency", "EUR"}, true}, // absent: ne holds
		{nil, true},
	}, revenue)
}

// eq and in need the parameter; ne holds when it is absent.
func TestStringFiltersWithAbsentParam(t *testing.T) {
	t.Parallel()
	runFilterCases(t, "x", in("c", "a", "b"), []filterCase{
		{[]string{"c", "a"}, true},
		{[]string{"c", "b"}, true},
		{[]string{"c", "z"}, false},
		{nil, false},
		{[]string{"d", "a"}, false},
	}, nil)
	runFilterCases(t, "x", filter("c", tapline.OpNe, "a"), []filterCase{
		{[]string{"c", "a"}, false},
		{[]string{"c", "b"}, true},
		{nil, true},
		{[]string{"c", ""}, true},
	}, nil)
	runFilterCases(t, "x", filter("c", tapline.OpEq, ""), []filterCase{
		{[]string{"c", ""}, true},
		{nil, false},
		{[]string{"c", "a"}, false},
	}, nil)
}

// Seconds are truncated; a time falls in the last bucket whose bound is
// not above it.
func TestSecondsAndBuckets(t *testing.T) {
	t.Parallel()
	f := newFixture()
	gaps := []time.Duration{
		9999 * time.Millisecond,        // 9 s: bucket 0
		10 * s,                         // bucket 1
		30*s - 1,                       // 29 s: bucket 1
		30 * s,                         // bucket 2
		5184000 * s,                    // 60 days: bucket 21
		5184000*s - 1,                  // 5,183,999 s: bucket 20
		86400*s - 500*time.Millisecond, // 86,399 s: bucket 12
		86400 * s,                      // bucket 13
		s - 1,                          // 0 s: bucket 0
	}
	for i, g := range gaps {
		inst := "i" + strconv.Itoa(i)
		f.ev(inst, "open", at(i, 0))
		f.ev(inst, "buy", at(i, g))
	}
	def := funnel(tapline.OrderOrdered, event("open"), event("buy"))
	def.WindowSeconds = 70 * 86400
	want := []row{
		{0, "", 2, 0, 1, 9},
		{1, "", 2, 1, 1, 10},
		{2, "", 2, 1, 1, 29},
		{3, "", 2, 2, 1, 30},
		{4, "", 2, 21, 1, 5184000},
		{5, "", 2, 20, 1, 5183999},
		{6, "", 2, 12, 1, 86399},
		{7, "", 2, 13, 1, 86400},
		{8, "", 2, 0, 1, 0},
	}
	for i := range gaps {
		want = append(want, row{i, "", 1, 0, 1, 0})
	}
	expect(t, &f.Data, def, nil, rows(want...))
}

// Counts and sums add up over installations in one key.
func TestRowsAddUp(t *testing.T) {
	t.Parallel()
	f := newFixture()
	for i, g := range []time.Duration{3 * s, 5 * s, 12 * s} {
		inst := "i" + strconv.Itoa(i)
		f.ev(inst, "open", at(0, time.Duration(i)*time.Minute))
		f.ev(inst, "buy", at(0, time.Duration(i)*time.Minute+g))
	}
	expect(t, &f.Data, funnel(tapline.OrderOrdered, event("open"), event("buy")), nil, rows(
		row{0, "", 1, 0, 3, 0},
		row{0, "", 2, 0, 2, 8},
		row{0, "", 2, 1, 1, 12},
	))
}

// breakdownFixture: four installations, each in an hour of its own, each
// entering with its "open".
//
//	A: tap on link 7 (utm_campaign=spring, src=ad), referrer, conversion
//	   platform android (its events say ios); open src=push
//	B: organic conversion, ios; open src=mail
//	C: no conversion; first event from the web, open from ios
//	D: tap on link 8 (no parameters), fingerprint, ios; open
func breakdownFixture() *fixture {
	f := newFixture()
	hA := f.hit("hA", 7, at(0, 0), "utm_campaign", "spring", "src", "ad")
	a := f.ev("A", "install", at(0, 10*s))
	f.convert(a, tapline.PlatformAndroid, change("", hA, tapline.MethodReferrer))
	f.ev("A", "open", at(0, 20*s), "src", "push")
	b := f.ev("B", "install", at(1, 0))
	f.convert(b, tapline.PlatformIOS, change("", nil, tapline.MethodOrganic))
	f.ev("B", "open", at(1, 5*s), "src", "mail")
	c := f.ev("C", "other", at(2, 0))
	c.Device.Platform = tapline.PlatformWeb
	f.ev("C", "open", at(2, s))
	hD := f.hit("hD", 8, at(3, 0))
	d := f.ev("D", "install", at(3, 0))
	f.convert(d, tapline.PlatformIOS, change("", hD, tapline.MethodFingerprint))
	f.ev("D", "open", at(3, 2*s))
	return f
}

func TestBreakdowns(t *testing.T) {
	t.Parallel()
	f := breakdownFixture()
	each := func(a, b, c, d string) map[Key]Value {
		return concat(reached(0, a, 0), reached(1, b, 0), reached(2, c, 0), reached(3, d, 0))
	}
	for _, tc := range []struct {
		name string
		bd   tapline.FunnelBreakdown
		want map[Key]Value
	}{
		{"none", tapline.FunnelBreakdown{}, each("", "", "", "")},
		{"link", tapline.FunnelBreakdown{Kind: tapline.BreakdownLink}, each("7", "0", "0", "8")},
		{"platform", tapline.FunnelBreakdown{Kind: tapline.BreakdownPlatform}, each("android", "ios", "web", "ios")},
		{"method", tapline.FunnelBreakdown{Kind: tapline.BreakdownMethod}, each("referrer", "organic", "organic", "fingerprint")},
		{"link_param", tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam, Param: "utm_campaign"}, each("spring", "", "", "")},
		{"entry_param", tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: "src"}, each("push", "mail", "", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			def := funnel(tapline.OrderOrdered, event("open"), event("buy"))
			def.Breakdown = tc.bd
			expect(t, &f.Data, def, nil, tc.want)
		})
	}
	// entry_param of a tap entry reads the hit's link parameters.
	t.Run("entry_param tap", func(t *testing.T) {
		t.Parallel()
		def := funnel(tapline.OrderOrdered, tap(nil), event("open"))
		def.Breakdown = tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: "src"}
		expect(t, &f.Data, def, nil, concat(reached(0, "ad", 0, 20), reached(3, "", 0, 2)))
	})
}

// entry_param reads an event's parameters as filters do: currency is the
// revenue's, revenue is never a string.
func TestEntryParamReservedNames(t *testing.T) {
	t.Parallel()
	f := newFixture()
	e := f.ev("E", "purchase", at(0, 0), "currency", "USD", "revenue", "9")
	e.Revenue = &tapline.Revenue{Micros: 1_000_000, Currency: "EUR"}
	f.ev("F", "purchase", at(1, 0), "currency", "USD", "revenue", "9")
	for _, tc := range []struct{ param, e, f string }{
		{"currency", "EUR", ""},
		{"revenue", "", ""},
	} {
		def := funnel(tapline.OrderOrdered, event("purchase"), event("x"))
		def.Breakdown = tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: tc.param}
		expect(t, &f.Data, def, nil, concat(reached(0, tc.e, 0), reached(1, tc.f, 0)))
	}
}

// As of a handoff: only events before it, the attribution of the last
// change made before it.
func TestHandoff(t *testing.T) {
	t.Parallel()
	f := newFixture()
	h1 := f.hit("h1", 7, at(0, 0))
	h1.Source = "hits/0/10"
	h2 := f.hit("h2", 8, at(0, 5*s))
	h2.Source = "hits/0/25"
	a := f.ev("A", "install", at(0, 20*s))
	a.Source = "events/0/5"
	f.ev("A", "open", at(0, 30*s)).Source = "events/0/9" // at the handoff: out
	f.ev("A", "buy", at(0, 40*s)).Source = "events/1/3"
	f.convert(a, tapline.PlatformIOS,
		change("events/0/5", h1, tapline.MethodFingerprint),
		change("hits/0/25", h2, tapline.MethodReferrer)) // after the handoff

	// B: its only change comes after the handoff: no conversion then.
	h3 := f.hit("h3", 9, at(1, 0))
	b := f.ev("B", "install", at(1, 5*s))
	b.Source = "events/0/12"
	f.convert(b, tapline.PlatformIOS, change("events/0/12", h3, tapline.MethodFingerprint))
	f.ev("B", "open", at(1, 10*s)) // no position: before every handoff

	// D: a change without a position counts as before.
	h4 := f.hit("h4", 11, at(3, 0))
	h5 := f.hit("h5", 12, at(3, 0))
	d := f.ev("D", "install", at(3, s))
	d.Source = "events/0/1"
	f.convert(d, tapline.PlatformIOS,
		change("", h4, tapline.MethodFingerprint),
		change("hits/0/30", h5, tapline.MethodReferrer))

	// E: a partition the handoff has no offset for: before it.
	f.ev("E", "open", at(4, 0)).Source = "events/7/0"

	h := Handoff{"events/0": 9, "events/1": 10, "hits/0": 20}

	tapInstallBuy := funnel(tapline.OrderOrdered, tap(nil), install(), event("buy"))
	tapInstallBuy.Breakdown.Kind = tapline.BreakdownLink
	expect(t, &f.Data, tapInstallBuy, h, concat(
		reached(0, "7", 0, 20, 20), // tap h1 at 0
		reached(3, "11", 0, 1),
	))
	expect(t, &f.Data, tapInstallBuy, nil, concat(
		reached(0, "8", 0, 15, 20), // tap h2 at 5 s
		reached(1, "9", 0, 5),
		reached(3, "12", 0, 1),
	))

	tapInstallOpen := funnel(tapline.OrderOrdered, tap(nil), install(), event("open"))
	tapInstallOpen.Breakdown.Kind = tapline.BreakdownLink
	expect(t, &f.Data, tapInstallOpen, h, concat(
		reached(0, "7", 0, 20),
		reached(3, "11", 0, 1),
	))
	expect(t, &f.Data, tapInstallOpen, nil, concat(
		reached(0, "8", 0, 15, 10),
		reached(1, "9", 0, 5, 5),
		reached(3, "12", 0, 1),
	))

	openBuy := funnel(tapline.OrderOrdered, event("open"), event("buy"))
	openBuy.Breakdown.Kind = tapline.BreakdownMethod
	expect(t, &f.Data, openBuy, h, concat(
		reached(1, "organic", 0),
		reached(4, "organic", 0), // E, on a partition the handoff does not name
	))
	expect(t, &f.Data, openBuy, nil, concat(
		reached(0, "referrer", 0, 10),
		reached(1, "fingerprint", 0),
		reached(4, "organic", 0),
	))

	// An empty handoff names no partition: everything is before it.
	expect(t, &f.Data, openBuy, Handoff{}, concat(
		reached(0, "referrer", 0, 10),
		reached(1, "fingerprint", 0),
		reached(4, "organic", 0),
	))
}

// The bucket bounds written here from docs/funnels.md are the root's.
func TestBucketBoundsMatchRoot(t *testing.T) {
	if !slices.Equal(bucketBounds, tapline.FunnelBuckets) {
		t.Errorf("bounds %v, tapline.FunnelBuckets %v", bucketBounds, tapline.FunnelBuckets)
	}
}

// The SQL reading of numbers agrees with strconv.ParseFloat on decimal
// numbers, finite only.
func TestNumberAgreesWithParseFloat(t *testing.T) {
	t.Parallel()
	db := mustOpen(t)
	inputs := []string{
		"0", "1", "-1", "+1", "1.", ".5", "-.5", "+.5e-3", "1e5", "1E+5", "1e-5", "007", "1.25e2",
		"0.1", "0.30000000000000004", "123456789012345678901234567890", "1e308", "1e309", "-1e309",
		"4.9e-324", "1e-400", "Inf", "-Inf", "+inf", "infinity", "NaN", "nan", "", " ", " 1", "1 ",
		"1,5", "1_000", "1_0.2_5e1_0", "1__0", "_1", "1_", "1_.5", "1._5", "1e_5", "+_1", "0x10", "0x1p4", "e5", "1e", "1e+", ".", "-", "+", "--1", "1..2", "1e5.5",
		"９", "1\n", "\t1",
	}
	for _, in := range inputs {
		want, err := strconv.ParseFloat(in, 64)
		ok := err == nil && !math.IsInf(want, 0) && !math.IsNaN(want) &&
			!strings.ContainsAny(in, "xX") // hexadecimal is not decimal
		var got *float64
		if err := db.QueryRow("SELECT "+number("$1::VARCHAR"), in).Scan(&got); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		switch {
		case !ok && got != nil:
			t.Errorf("%q: got %v, want not a number", in, *got)
		case ok && got == nil:
			t.Errorf("%q: got not a number, want %v", in, want)
		case ok && *got != want:
			t.Errorf("%q: got %v, want %v", in, *got, want)
		}
	}
}

// Data no raw store holds is refused.
func TestRunRefusesBadData(t *testing.T) {
	t.Parallel()
	db := mustOpen(t)
	def := funnel(tapline.OrderOrdered, event("open"), event("buy"))
	missing := newFixture()
	e := missing.ev("A", "install", at(0, 0))
	missing.convert(e, tapline.PlatformIOS, change("", &tapline.Hit{ID: "nowhere"}, tapline.MethodFingerprint))
	dup := newFixture()
	dup.evID("x", "A", "open", at(0, 0))
	dup.evID("x", "A", "buy", at(0, s))
	for name, d := range map[string]*Data{"missing hit": &missing.Data, "duplicate event": &dup.Data} {
		if _, err := Run(context.Background(), db, d, def, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	bad := funnel(tapline.OrderOrdered, event("open"))
	if _, err := Run(context.Background(), db, &newFixture().Data, bad, nil); err == nil {
		t.Error("one-step funnel: no error")
	}
}
