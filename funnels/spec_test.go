package funnels

import (
	"reflect"
	"strings"
	"testing"

	"tapline"
)

func filter(param string, op tapline.FilterOp, value string) tapline.FunnelFilter {
	return tapline.FunnelFilter{Param: param, Op: op, Value: value}
}

func TestParseStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		flag string
		spec string
		want tapline.FunnelExclusion
	}{
		{name: "any tap", flag: "step", spec: "tap", want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepTap}}},
		{name: "tap on links with a filter", flag: "step", spec: "tap:links=3,4:utm_campaign=spring",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepTap, Links: []int64{3, 4},
				Filters: []tapline.FunnelFilter{filter("utm_campaign", tapline.OpEq, "spring")}}}},
		{name: "install", flag: "step", spec: "install", want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepInstall}}},
		{name: "kind in capitals", flag: "step", spec: "Install", want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepInstall}}},
		{name: "event with revenue", flag: "step", spec: "event:purchase:revenue>0",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "purchase",
				Filters: []tapline.FunnelFilter{filter("revenue", tapline.OpGt, "0")}}}},
		{name: "dash in a param", flag: "step", spec: "event:level:custom-level>=5",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "level",
				Filters: []tapline.FunnelFilter{filter("custom-level", tapline.OpGte, "5")}}}},
		{name: "every operator", flag: "step", spec: "event:e:a=1:b!=2:c>3:d>=4:e<5:f<=6",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
				Filters: []tapline.FunnelFilter{filter("a", tapline.OpEq, "1"), filter("b", tapline.OpNe, "2"), filter("c", tapline.OpGt, "3"),
					filter("d", tapline.OpGte, "4"), filter("e", tapline.OpLt, "5"), filter("f", tapline.OpLte, "6")}}}},
		{name: "in", flag: "step", spec: "install:country in DE|FR",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepInstall,
				Filters: []tapline.FunnelFilter{{Param: "country", Op: tapline.OpIn, Values: []string{"DE", "FR"}}}}}},
		{name: "spaces around operators", flag: "step", spec: "event:level: custom-level >= 5 : country in DE | FR",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "level",
				Filters: []tapline.FunnelFilter{filter("custom-level", tapline.OpGte, "5"), {Param: "country", Op: tapline.OpIn, Values: []string{"DE", "FR"}}}}}},
		{name: "value with = and in", flag: "step", spec: "event:e:title=made in DE=yes",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
				Filters: []tapline.FunnelFilter{filter("title", tapline.OpEq, "made in DE=yes")}}}},
		{name: "empty value", flag: "step", spec: "event:e:ref=",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
				Filters: []tapline.FunnelFilter{filter("ref", tapline.OpEq, "")}}}},
		{name: "escapes", flag: "step", spec: `event:a\:b:utm_content=x\:y:k in p\|q|r`,
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "a:b",
				Filters: []tapline.FunnelFilter{filter("utm_content", tapline.OpEq, "x:y"), {Param: "k", Op: tapline.OpIn, Values: []string{"p|q", "r"}}}}}},
		{name: "links is a filter on an event", flag: "step", spec: "event:share:links=2",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "share",
				Filters: []tapline.FunnelFilter{filter("links", tapline.OpEq, "2")}}}},
		{name: "escaped links is a filter on a tap", flag: "step", spec: `tap:\links=2`,
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepTap,
				Filters: []tapline.FunnelFilter{filter("links", tapline.OpEq, "2")}}}},
		{name: "after is a filter in a step", flag: "step", spec: "event:e:after=2",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
				Filters: []tapline.FunnelFilter{filter("after", tapline.OpEq, "2")}}}},
		{name: "exclusion", flag: "exclude", spec: "event:uninstall:after=2:before=3",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "uninstall"}, After: 2, Before: 3}},
		{name: "exclusion without span", flag: "exclude", spec: "event:uninstall:reason=crash",
			want: tapline.FunnelExclusion{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "uninstall",
				Filters: []tapline.FunnelFilter{filter("reason", tapline.OpEq, "crash")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStep(tt.flag, 1, tt.spec)
			if err != nil {
				t.Fatalf("ParseStep(%q): %v", tt.spec, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseStep(%q) =\n%+v\nwant\n%+v", tt.spec, got, tt.want)
			}
			// What FormatStep writes reads back the same.
			var x *tapline.FunnelExclusion
			if tt.flag == "exclude" {
				x = &got
			}
			again, err := ParseStep(tt.flag, 1, FormatStep(&got.FunnelStep, x))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("FormatStep wrote %q, which reads back as %+v, %v", FormatStep(&got.FunnelStep, x), again, err)
			}
		})
	}
}

func TestParseStepErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		flag string
		spec string
		want string
	}{
		{"empty", "step", "", `-step 2 "": empty`},
		{"unknown kind", "step", "click:x=1", `-step 2 "click:x=1": "click" is not a step kind`},
		{"event without name", "step", "event", `-step 2 "event": an event step needs a name`},
		{"event with empty name", "step", "event::x=1", `an event step needs a name`},
		{"filter as event name", "step", "event:revenue>0", `"revenue>0" is a filter, not an event name: write event:NAME:revenue>0`},
		{"bad link id", "step", "tap:links=3,x", `-step 2 "tap:links=3,x": links: "x" is not a link id`},
		{"empty links", "step", "tap:links=", `links: "" is not a link id`},
		{"no operator", "step", "install:country", `"country" is not a filter`},
		{"lone bang", "step", "install:country!DE", `"!" must be "!="`},
		{"no param", "step", "install:=DE", `needs a parameter name before "="`},
		{"no param before in", "step", "install: in DE", `" in DE" is not a filter`},
		{"empty in value", "step", "install:country in DE||FR", `an empty value in the list of in`},
		{"double colon", "step", "event:a::x=1", `an empty part`},
		{"trailing colon", "step", "install:", `an empty part`},
		{"bad after", "exclude", "event:u:after=x", `-exclude 2 "event:u:after=x": after: "x" is not a step number`},
		{"zero before", "exclude", "event:u:before=0", `before: "0" is not a step number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseStep(tt.flag, 2, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseStep(%q) error = %v, want one containing %q", tt.spec, err, tt.want)
			}
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("ParseStep(%q) error code = %s, want %s", tt.spec, tapline.ErrorCode(err), tapline.EINVALID)
			}
		})
	}
}

func TestParseStepsNamesTheFlag(t *testing.T) {
	t.Parallel()
	_, err := ParseSteps([]string{"tap", "install", "event:buy:x~1"})
	if err == nil || !strings.Contains(err.Error(), `-step 3 "event:buy:x~1"`) {
		t.Fatalf("error = %v, want one naming -step 3", err)
	}
	_, err = ParseExclusions([]string{"event:a", "event:b:after=one"})
	if err == nil || !strings.Contains(err.Error(), `-exclude 2 "event:b:after=one"`) {
		t.Fatalf("error = %v, want one naming -exclude 2", err)
	}
	if xs, err := ParseExclusions([]string{"none"}); err != nil || xs != nil {
		t.Fatalf("ParseExclusions(none) = %v, %v; want none", xs, err)
	}
}

func TestFillExclusions(t *testing.T) {
	t.Parallel()
	d := tapline.FunnelDefinition{Steps: make([]tapline.FunnelStep, 4), Exclusions: []tapline.FunnelExclusion{{}, {After: 2}, {Before: 3}, {After: 2, Before: 3}}}
	FillExclusions(&d)
	want := [][2]int{{1, 4}, {2, 4}, {1, 3}, {2, 3}}
	for i, x := range d.Exclusions {
		if [2]int{x.After, x.Before} != want[i] {
			t.Errorf("exclusion %d: after %d before %d, want %v", i+1, x.After, x.Before, want[i])
		}
	}
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"14d", 14 * 86400, false},
		{"36h", 36 * 3600, false},
		{"1d12h", 36 * 3600, false},
		{"90m", 5400, false},
		{" 7d ", 7 * 86400, false},
		{"", 0, true},
		{"0", 0, true},
		{"0d", 0, true},
		{"-1h", 0, true},
		{"1.5s", 0, true},
		{"2w", 0, true},
		{"xd", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseWindow(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseWindow(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, err := ParseWindow(FormatWindow(got)); err != nil || back != got {
				t.Errorf("FormatWindow(%d) = %q reads back as %d, %v", got, FormatWindow(got), back, err)
			}
		}
	}
}

func TestParseBreakdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want tapline.FunnelBreakdown
	}{
		{"link", tapline.FunnelBreakdown{Kind: tapline.BreakdownLink}},
		{"platform", tapline.FunnelBreakdown{Kind: tapline.BreakdownPlatform}},
		{"method", tapline.FunnelBreakdown{Kind: tapline.BreakdownMethod}},
		{"link_param:utm_source", tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam, Param: "utm_source"}},
		{"entry_param:level", tapline.FunnelBreakdown{Kind: tapline.BreakdownEntryParam, Param: "level"}},
		{"none", tapline.FunnelBreakdown{}},
		{"", tapline.FunnelBreakdown{}},
	}
	for _, tt := range tests {
		if got := ParseBreakdown(tt.in); got != tt.want {
			t.Errorf("ParseBreakdown(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if tt.in != "" {
			if got := FormatBreakdown(tt.want); got != tt.in {
				t.Errorf("FormatBreakdown(%+v) = %q, want %q", tt.want, got, tt.in)
			}
		}
	}
}

// FuzzParseStep checks that the parser never panics and that whatever it
// accepts, FormatStep writes in a form it reads back the same.
func FuzzParseStep(f *testing.F) {
	for _, s := range []string{"tap", "tap:links=3,4:utm_campaign=spring", "install", "event:purchase:revenue>0",
		"event:level:custom-level>=5", "install:country in DE|FR", `event:a\:b:x=y\|z`, "event:u:after=2:before=3",
		"event:e:title=made in DE", `tap:\links=2`, "event:x\\"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, spec string, exclude bool) {
		flag := "step"
		if exclude {
			flag = "exclude"
		}
		x, err := ParseStep(flag, 1, spec)
		if err != nil {
			return
		}
		var px *tapline.FunnelExclusion
		if exclude {
			px = &x
		}
		out := FormatStep(&x.FunnelStep, px)
		again, err := ParseStep(flag, 1, out)
		if err != nil {
			t.Fatalf("ParseStep(%q) = %+v; FormatStep wrote %q, which fails: %v", spec, x, out, err)
		}
		if !reflect.DeepEqual(again, x) {
			t.Fatalf("ParseStep(%q) = %+v; FormatStep wrote %q, which reads back as %+v", spec, x, out, again)
		}
	})
}
