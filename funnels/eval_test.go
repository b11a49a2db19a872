package funnels

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"tapline"
)

var t0 = time.Date(2026, 11, 3, 10, 20, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ev(id, name string, d time.Duration, params ...string) *tapline.Event {
	e := &tapline.Event{ID: id, AppID: 1, Name: name, Kind: tapline.KindCustom, Time: at(d), InstallID: "i1",
		Device: tapline.Device{Platform: tapline.PlatformIOS}}
	if name == "install" {
		e.Kind = tapline.KindInstall
	}
	if len(params) > 0 {
		e.Params = map[string]string{}
		for i := 0; i+1 < len(params); i += 2 {
			e.Params[params[i]] = params[i+1]
		}
	}
	return e
}

func conv(installEvent string, hitAt time.Duration, link int64) *tapline.Conversion {
	a := tapline.Attribution{Method: tapline.MethodOrganic}
	if link != 0 {
		a = tapline.Attribution{HitID: "h1", LinkID: link, Method: tapline.MethodFingerprint, HitTime: at(hitAt)}
	}
	return &tapline.Conversion{ID: "cv-" + installEvent, AppID: 1, EventID: installEvent, InstallID: "i1",
		Platform: tapline.PlatformIOS, Attribution: a,
		History: []tapline.AttributionChange{{By: "events/0/5", To: a}}}
}

func funnel(order tapline.FunnelOrder, steps ...tapline.FunnelStep) *tapline.Funnel {
	f := &tapline.Funnel{VersionID: 7, FunnelDefinition: tapline.FunnelDefinition{Name: "f", Steps: steps, Order: order}}
	f.SetDefaults()
	return f
}

func tap(links ...int64) tapline.FunnelStep {
	return tapline.FunnelStep{Kind: tapline.StepTap, Links: links}
}
func install() tapline.FunnelStep { return tapline.FunnelStep{Kind: tapline.StepInstall} }
func event(name string, fs ...tapline.FunnelFilter) tapline.FunnelStep {
	return tapline.FunnelStep{Kind: tapline.StepEvent, Event: name, Filters: fs}
}

func eval(f *tapline.Funnel, p Path) tapline.FunnelOutcome {
	var e Evaluator
	return e.Evaluate(Compile(f), &p)
}

func TestEvaluate(t *testing.T) {
	hour := t0.Truncate(time.Hour).Unix()
	events := []*tapline.Event{
		ev("e1", "install", 0),
		ev("e2", "open", 5*time.Second),
		ev("e3", "level", 70*time.Second, "n", "3"),
		ev("e4", "open", 2*time.Hour),
		ev("e5", "purchase", 3*time.Hour),
	}
	events[4].Revenue = &tapline.Revenue{Micros: 1_990_000, Currency: "USD"}
	withTap := NewPath(events, conv("e1", -30*time.Second, 9), nil)
	organic := NewPath(events, conv("e1", 0, 0), nil)

	tests := []struct {
		name  string
		f     *tapline.Funnel
		p     Path
		steps []int64
	}{
		{"tap install open purchase", funnel("", tap(9), install(), event("open"), event("purchase")), withTap, []int64{0, 30, 5, 3*3600 - 5}},
		{"tap on another link", funnel("", tap(8), install()), withTap, nil},
		{"organic has no tap", funnel("", tap(), install()), organic, nil},
		{"install first", funnel("", install(), event("purchase")), organic, []int64{0, 3 * 3600}},
		{"ordered skips between", funnel("", event("open"), event("purchase")), organic, []int64{0, 3*3600 - 5}},
		{"strict breaks", funnel(tapline.OrderStrict, install(), event("open"), event("open")), organic, []int64{0, 5}},
		{"strict holds", funnel(tapline.OrderStrict, install(), event("open"), event("level")), organic, []int64{0, 5, 65}},
		{"any order", funnel(tapline.OrderAny, event("purchase"), event("level"), install()), organic, []int64{0, 70, 3*3600 - 70}},
		{"numeric filter", funnel("", install(), event("level", tapline.FunnelFilter{Param: "n", Op: tapline.OpGte, Value: "3"})), organic, []int64{0, 70}},
		{"numeric filter fails", funnel("", install(), event("level", tapline.FunnelFilter{Param: "n", Op: tapline.OpGt, Value: "3"})), organic, []int64{0}},
		{"revenue", funnel("", install(), event("purchase", tapline.FunnelFilter{Param: "revenue", Op: tapline.OpGt, Value: "1.99"})), organic, []int64{0}},
		{"revenue gte", funnel("", install(), event("purchase", tapline.FunnelFilter{Param: "revenue", Op: tapline.OpGte, Value: "1.99"})), organic, []int64{0, 3 * 3600}},
		{"ne absent", funnel("", install(), event("open", tapline.FunnelFilter{Param: "x", Op: tapline.OpNe, Value: "1"})), organic, []int64{0, 5}},
		{"not entered", funnel("", event("nothing"), install()), organic, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eval(tt.f, tt.p)
			if !slices.Equal(got.Steps, tt.steps) {
				t.Fatalf("steps = %v, want %v", got.Steps, tt.steps)
			}
			if len(tt.steps) > 0 && got.Hour != hour && got.Hour != hour-3600 {
				t.Errorf("hour = %d, want about %d", got.Hour, hour)
			}
		})
	}
}

func TestWindowAndExclusions(t *testing.T) {
	events := []*tapline.Event{
		ev("e1", "install", 0),
		ev("e2", "cancel", time.Minute),
		ev("e3", "open", 2*time.Minute),
		ev("e4", "purchase", time.Hour),
	}
	p := NewPath(events, conv("e1", 0, 0), nil)

	f := funnel("", install(), event("open"), event("purchase"))
	f.WindowSeconds = 3600
	if got := eval(f, p); len(got.Steps) != 3 {
		t.Errorf("window edge inclusive: steps %v", got.Steps)
	}
	f.WindowSeconds = 3599
	if got := eval(f, p); len(got.Steps) != 2 {
		t.Errorf("past the window: steps %v", got.Steps)
	}

	f = funnel("", install(), event("open"), event("purchase"))
	f.Exclusions = []tapline.FunnelExclusion{{FunnelStep: event("cancel"), After: 1, Before: 2}}
	if got := eval(f, p); len(got.Steps) != 1 {
		t.Errorf("excluded between 1 and 2: steps %v", got.Steps)
	}
	f.Exclusions[0].After, f.Exclusions[0].Before = 2, 3
	if got := eval(f, p); len(got.Steps) != 3 {
		t.Errorf("exclusion outside its steps: steps %v", got.Steps)
	}
	// A record matching both the exclusion and the next step: the exclusion wins.
	f = funnel("", install(), event("open"))
	f.Exclusions = []tapline.FunnelExclusion{{FunnelStep: event("open"), After: 1, Before: 2}}
	if got := eval(f, p); len(got.Steps) != 1 {
		t.Errorf("exclusion and step on one record: steps %v", got.Steps)
	}
}

func TestBreakdownAndHandoff(t *testing.T) {
	events := []*tapline.Event{ev("e1", "install", 0), ev("e2", "open", time.Minute, "level", "4")}
	events[0].Source = "events/0/5"
	events[1].Source = "events/1/9"
	c := conv("e1", -time.Minute, 9)
	p := NewPath(events, c, nil)
	p.HitParams = map[string]string{"utm_source": "fb"}

	for _, tt := range []struct {
		b    tapline.FunnelBreakdown
		f    *tapline.Funnel
		want string
	}{
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownLink}, nil, "9"},
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownPlatform}, nil, "ios"},
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownMethod}, nil, "fingerprint"},
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam, Param: "utm_source"}, nil, "fb"},
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: "level"}, funnel("", event("open"), install()), "4"},
		{tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: "utm_source"}, nil, "fb"},
	} {
		f := tt.f
		if f == nil {
			f = funnel("", tap(), install())
		}
		f.Breakdown = tt.b
		if got := eval(f, p); got.Breakdown != tt.want || len(got.Steps) == 0 {
			t.Errorf("%v: breakdown %q (steps %v), want %q", tt.b, got.Breakdown, got.Steps, tt.want)
		}
	}

	// As of a handoff at events/1/9 the open is not there yet; as of
	// events/0/5 neither is the install or its conversion.
	f := funnel("", install(), event("open"))
	if got := eval(f, NewPath(events, c, Handoff{{Topic: "events", Partition: 1}: 9})); len(got.Steps) != 1 {
		t.Errorf("as of events/1/9: steps %v, want 1", got.Steps)
	}
	if got := eval(f, NewPath(events, c, Handoff{{Topic: "events", Partition: 0}: 5})); len(got.Steps) != 0 {
		t.Errorf("as of events/0/5: steps %v, want none", got.Steps)
	}
	if got := eval(f, NewPath(events, c, Handoff{{Topic: "events", Partition: 0}: 6, {Topic: "events", Partition: 1}: 10})); len(got.Steps) != 2 {
		t.Errorf("after both: steps %v, want 2", got.Steps)
	}
}

func TestAttributionAsOf(t *testing.T) {
	a1 := tapline.Attribution{Method: tapline.MethodOrganic}
	a2 := tapline.Attribution{HitID: "h", LinkID: 3, Method: tapline.MethodFingerprint}
	c := &tapline.Conversion{Attribution: a2, History: []tapline.AttributionChange{
		{By: "events/0/4", To: a1}, {By: "hits/2/10", From: &a1, To: a2},
	}}
	for _, tt := range []struct {
		h    Handoff
		want tapline.Attribution
		ok   bool
	}{
		{nil, a2, true},
		{Handoff{{Topic: "hits", Partition: 2}: 10}, a1, true},
		{Handoff{{Topic: "hits", Partition: 2}: 11}, a2, true},
		{Handoff{{Topic: "events", Partition: 0}: 4, {Topic: "hits", Partition: 2}: 0}, tapline.Attribution{}, false},
	} {
		got, ok := AttributionAsOf(c, tt.h)
		if !reflect.DeepEqual(got, tt.want) || ok != tt.ok {
			t.Errorf("as of %v: %v %v, want %v %v", tt.h, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBucket(t *testing.T) {
	for secs, want := range map[int64]int{0: 0, 9: 0, 10: 1, 29: 1, 30: 2, 86399: 12, 86400: 13, 60 * 86400: 21, 1e9: 21} {
		if got := tapline.FunnelBucket(secs); got != want {
			t.Errorf("bucket(%d) = %d, want %d", secs, got, want)
		}
	}
}

// hitSource serves one hit and counts the reads.
type hitSource struct {
	hit   *tapline.Hit
	reads int
}

func (s *hitSource) ScanInstallations(context.Context, int64, tapline.ScanRange, func(int64, *tapline.Installation) error) error {
	return nil
}

func (s *hitSource) HitAt(_ context.Context, _ int64, id string, at time.Time) (*tapline.Hit, error) {
	s.reads++
	if id != s.hit.ID || !at.Equal(s.hit.Time) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "no hit %s at %v", id, at)
	}
	return s.hit, nil
}

// A tap step's parameter filter reads the parameters the conversion
// carries; a conversion stored before they were copied reads the hit.
func TestEvaluateInstallationHitParams(t *testing.T) {
	f := funnel("", tapline.FunnelStep{Kind: tapline.StepTap, Filters: []tapline.FunnelFilter{{Param: "utm_source", Op: tapline.OpEq, Value: "fb"}}}, install())
	c := Compile(f)
	events := []*tapline.Event{ev("e1", "install", 0)}
	for _, tt := range []struct {
		name          string
		carried, read map[string]string
		steps, reads  int
	}{
		{"carried", map[string]string{"utm_source": "fb"}, map[string]string{"utm_source": "google"}, 2, 0},
		{"carried, no match", map[string]string{"utm_source": "google"}, map[string]string{"utm_source": "fb"}, 0, 0},
		{"read from the hit", nil, map[string]string{"utm_source": "fb"}, 2, 1},
		{"hit without parameters", nil, nil, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cv := conv("e1", -time.Minute, 9)
			cv.HitParams = tt.carried
			cv.History[0].To.HitParams = tt.carried
			src := &hitSource{hit: &tapline.Hit{ID: "h1", Time: at(-time.Minute), Params: tt.read}}
			var e Evaluator
			o, err := EvaluateInstallation(t.Context(), src, &e, c, nil, &tapline.Installation{AppID: 1, ID: "i1", Events: events, Conversion: cv})
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Steps) != tt.steps || src.reads != tt.reads {
				t.Errorf("steps %v after %d hit reads, want %d steps after %d", o.Steps, src.reads, tt.steps, tt.reads)
			}
		})
	}
}
