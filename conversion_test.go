package tapline_test

import (
	"testing"

	"tapline"
)

func TestConversionFollows(t *testing.T) {
	change := func(by string) tapline.AttributionChange { return tapline.AttributionChange{By: by} }
	conv := func(bys ...string) *tapline.Conversion {
		c := &tapline.Conversion{}
		for _, b := range bys {
			c.History = append(c.History, change(b))
		}
		return c
	}
	tests := []struct {
		name   string
		c      *tapline.Conversion
		stored *tapline.Conversion
		want   bool
	}{
		{"new", conv("e/0/1"), nil, true},
		{"new with a re-attribution already", conv("e/0/1", "h/0/2"), nil, false},
		{"one change on top", conv("e/0/1", "h/0/2"), conv("e/0/1"), true},
		{"same history again", conv("e/0/1", "h/0/2"), conv("e/0/1", "h/0/2"), true},
		{"another writer's change meanwhile", conv("e/0/1", "h/0/2"), conv("e/0/1", "h/1/7"), false},
		{"stale: two changes behind", conv("e/0/1", "h/0/2"), conv("e/0/1", "h/1/7", "h/1/8"), false},
		{"created twice by different records", conv("e/0/1"), conv("e/0/9"), false},
	}
	for _, tt := range tests {
		if got := tt.c.Follows(tt.stored); got != tt.want {
			t.Errorf("%s: Follows = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDecisionScored(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    *tapline.Decision
		want bool
	}{
		{"none", nil, false},
		{"referrer", &tapline.Decision{Rule: tapline.RuleReferrer}, false},
		{"fingerprint", &tapline.Decision{Rule: tapline.RuleFingerprint, Score: 3.1, MinScore: tapline.DefaultFingerprintMinScore}, true},
		{"below the minimum, scoring 0", &tapline.Decision{Rule: tapline.RuleBelowMinScore, MinScore: 1}, true},
		{"lenient app", &tapline.Decision{Rule: tapline.RuleFingerprint, Score: -0.5, MinScore: -1}, true},
		{"stored before scores", &tapline.Decision{Rule: tapline.RuleFingerprint}, false},
	} {
		if got := tt.d.Scored(); got != tt.want {
			t.Errorf("%s: Scored() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
