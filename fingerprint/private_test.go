package fingerprint

import (
	"reflect"
	"testing"

	"tapline"
)

func TestPrivateConversion(t *testing.T) {
	legacy := &tapline.Conversion{
		Fingerprint: "203.0.113.7|ios",
		AdID:        "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e",
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodAdID,
			HitParams: map[string]string{"utm_source": "ads", "IDFA": "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"}},
		History: []tapline.AttributionChange{{By: "e/0/1", To: tapline.Attribution{HitID: "h1",
			HitParams: map[string]string{"gaid": "x", "utm_source": "ads"}}}},
		Decision: &tapline.Decision{Signals: []tapline.Signal{
			{Name: "network", Install: "203.0.113.7", Hit: "2001:db8:1:2:3:4:5:6", Verdict: tapline.VerdictAgree},
			{Name: "advertising_id", Install: "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e", Hit: "…3d2e", Verdict: tapline.VerdictAgree},
			{Name: "model", Install: "iPhone15,2", Verdict: tapline.VerdictUnknown},
		}},
	}
	want := &tapline.Conversion{
		Fingerprint: "203.0.113.0/24|ios",
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodAdID, HitParams: map[string]string{"utm_source": "ads"}},
		History:     []tapline.AttributionChange{{By: "e/0/1", To: tapline.Attribution{HitID: "h1", HitParams: map[string]string{"utm_source": "ads"}}}},
		Decision: &tapline.Decision{Signals: []tapline.Signal{
			{Name: "network", Install: "203.0.113.0/24", Hit: "2001:db8:1:2::/64", Verdict: tapline.VerdictAgree},
			{Name: "advertising_id", Install: "…3d2e", Hit: "…3d2e", Verdict: tapline.VerdictAgree},
			{Name: "model", Install: "iPhone15,2", Verdict: tapline.VerdictUnknown},
		}},
	}
	if !PrivateConversion(legacy) {
		t.Fatal("PrivateConversion of a legacy conversion reports no change")
	}
	if !reflect.DeepEqual(legacy, want) {
		t.Fatalf("PrivateConversion =\n%+v\nwant\n%+v", legacy, want)
	}
	if PrivateConversion(legacy) {
		t.Error("PrivateConversion of a private conversion reports a change")
	}
	other := &tapline.Conversion{Fingerprint: "fp"}
	if PrivateConversion(other) || other.Fingerprint != "fp" {
		t.Errorf("PrivateConversion changed a fingerprint that is no address: %q", other.Fingerprint)
	}
}
