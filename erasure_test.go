package tapline

import (
	"reflect"
	"testing"
)

func TestNormalizeAdID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"6D9C5B8E-1F2A-4C3B-9D8E-7F6A5B4C3D2E", "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"},
		{" 6d9c5b8e1f2a4c3b9d8e7f6a5b4c3d2e\n", "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"},
		{"00000000-0000-0000-0000-000000000000", ""},
		{"{6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e}", ""},
		{"6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2g", ""},
		{"6d9c5b8e_1f2a-4c3b-9d8e-7f6a5b4c3d2e", ""},
		{"%%IDFA%%", ""},
		{"", ""},
	} {
		if got := NormalizeAdID(tc.in); got != tc.want {
			t.Errorf("NormalizeAdID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConversionErase(t *testing.T) {
	a := Attribution{HitID: "h1", Method: MethodAdID, HitParams: map[string]string{"utm_source": "ads", "GAID": "x"}}
	c := &Conversion{
		Fingerprint: "203.0.113.0/24|android", AdID: "x", Attribution: a,
		History: []AttributionChange{{By: "e/0/1", To: a}, {By: "h/0/2", From: &a, To: a}},
		Decision: &Decision{Rule: RuleAdID, Signals: []Signal{
			{Name: "network", Install: "203.0.113.0/24", Hit: "203.0.113.0/24", Verdict: VerdictAgree},
			{Name: "install_referrer", Install: "h1", Hit: "h1", Verdict: VerdictAgree},
		}},
	}
	if !c.Erase() {
		t.Fatal("Erase reports no change")
	}
	kept := Attribution{HitID: "h1", Method: MethodAdID, HitParams: map[string]string{"utm_source": "ads"}}
	want := &Conversion{
		Attribution: kept,
		History:     []AttributionChange{{By: "e/0/1", To: kept}, {By: "h/0/2", From: &kept, To: kept}},
		Decision: &Decision{Rule: RuleAdID, Signals: []Signal{
			{Name: "network", Verdict: VerdictAgree},
			{Name: "install_referrer", Install: "h1", Hit: "h1", Verdict: VerdictAgree},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("erased =\n%+v\nwant\n%+v", c, want)
	}
	if c.Erase() {
		t.Error("a second Erase reports a change")
	}
	if got := c.CreditedHits(); !reflect.DeepEqual(got, []string{"h1"}) {
		t.Errorf("CreditedHits = %q, want [h1]", got)
	}

	h := &Hit{ID: "h1", IP: "203.0.113.7", Fingerprint: "203.0.113.7|android", AdID: "x", UserAgent: "ua",
		ClientHints: map[string]string{"sec-ch-ua-model": "Pixel 7"}, Params: map[string]string{"idfa": "x", "utm_source": "ads"}}
	if !EraseHit(h) || EraseHit(h) {
		t.Error("EraseHit: want a change once, then none")
	}
	if wantHit := (&Hit{ID: "h1", UserAgent: "ua", Params: map[string]string{"utm_source": "ads"}}); !reflect.DeepEqual(h, wantHit) {
		t.Errorf("erased hit = %+v, want %+v", h, wantHit)
	}
}
