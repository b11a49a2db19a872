package facts_test

import (
	"maps"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

// TestBatchReinstall checks that a reinstall counts one reinstall under
// its attribution and no install, conversion or cohort, and that a
// re-attribution moves it.
func TestBatchReinstall(t *testing.T) {
	c := &tapline.Conversion{AppID: 7, InstallTime: t0, Platform: tapline.PlatformAndroid, Reinstall: &tapline.Reinstall{Of: "cv-e1", By: tapline.ReinstallByAdID, Reattributed: true}}
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	matched := tapline.Attribution{HitID: "h1", LinkID: 3, Method: tapline.MethodAdID, HitTime: t0.Add(-time.Minute), HitParams: map[string]string{"utm_source": "mail"}}
	b := facts.Batch{}
	b.Change(c, &tapline.AttributionChange{To: organic})
	b.Change(c, &tapline.AttributionChange{From: &organic, To: matched})
	want := facts.Batch{
		{Table: tapline.FactReinstalls, Hour: tapline.HourOf(t0), AppID: 7, LinkID: 3, Platform: tapline.PlatformAndroid, Method: tapline.MethodAdID, Source: "mail"}: {Count: 1},
	}
	if !maps.Equal(b, want) {
		t.Fatalf("got %v, want %v", b, want)
	}
}

// TestBatchReengagement checks the row of a re-engagement: the hour of the
// open, the tap's link, campaign and method.
func TestBatchReengagement(t *testing.T) {
	open := t0.Add(3 * time.Hour)
	b := facts.Batch{}
	b.Reengagement(&tapline.Reengagement{AppID: 7, OpenTime: open, Platform: tapline.PlatformIOS,
		Attribution: tapline.Attribution{HitID: "h1", LinkID: 3, Method: tapline.MethodFingerprint, HitTime: t0, HitParams: map[string]string{"utm_campaign": "winback"}}})
	want := facts.Batch{
		{Table: tapline.FactReengagements, Hour: tapline.HourOf(open), AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint, Campaign: "winback"}: {Count: 1},
	}
	if !maps.Equal(b, want) {
		t.Fatalf("got %v, want %v", b, want)
	}
}
