package rawstoretest

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"tapline"
)

// The device an erasure test erases, and another device that must stay.
const (
	erasedAdID  = "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"
	erasedIP    = "203.0.113.77"
	erasedFP    = erasedIP + "|android"
	erasedInst  = "inst-erased"
	keptAdID    = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	keptFP      = "198.51.100.9|android"
	keptInst    = "inst-kept"
	maskedNet   = "203.0.113.0/24"
	erasedModel = "Pixel 7"
)

// eraseFixture is a device with hits, an installation and its conversion,
// next to another device.
type eraseFixture struct {
	app                       int64
	adHit, fpHit, keptHit     *tapline.Hit
	install, open, buy, other *tapline.Event
	conv, keptConv            *tapline.Conversion
}

func putEraseFixture(t *testing.T, s tapline.RawStore) eraseFixture {
	t.Helper()
	app, now := appID(), base()
	f := eraseFixture{app: app}

	f.adHit = newHit(app, "h-ad", erasedFP, now.Add(-3*time.Hour))
	f.adHit.IP, f.adHit.AdID = erasedIP, erasedAdID
	f.adHit.Params = map[string]string{"utm_source": "ads", "gaid": erasedAdID}
	// A tap without the advertising id that the conversion credits by
	// fingerprint, in another week.
	f.fpHit = newHit(app, "h-fp", erasedFP, now.Add(-8*24*time.Hour))
	f.fpHit.IP = erasedIP
	f.fpHit.ClientHints = map[string]string{"sec-ch-ua-model": erasedModel}
	f.keptHit = newHit(app, "h-kept", keptFP, now.Add(-2*time.Hour))
	f.keptHit.IP, f.keptHit.AdID = "198.51.100.9", keptAdID
	for _, h := range []*tapline.Hit{f.adHit, f.fpHit, f.keptHit} {
		mustPutHit(t, s, h)
	}

	ev := func(id string, kind tapline.EventKind, install, fp string, at time.Time) *tapline.Event {
		e := newEvent(app, id, kind, fp, at)
		e.InstallID, e.IP = install, strings.Split(fp, "|")[0]
		return e
	}
	f.install = ev("e-install", tapline.KindInstall, erasedInst, erasedFP, now.Add(-time.Hour))
	f.install.Device.GAID = erasedAdID
	f.install.Referrer = "utm_source=ads&" + tapline.ReferrerHitParam + "=h-ad"
	f.open = ev("e-open", tapline.KindOpen, erasedInst, erasedFP, now.Add(-50*time.Minute))
	f.buy = ev("e-buy", tapline.KindPurchase, erasedInst, erasedFP, now.Add(-40*time.Minute))
	f.buy.Revenue = &tapline.Revenue{Micros: 990000, Currency: "EUR"}
	f.other = ev("e-other", tapline.KindInstall, keptInst, keptFP, now.Add(-time.Hour))
	f.other.Device.GAID = keptAdID
	for _, e := range []*tapline.Event{f.install, f.open, f.buy, f.other} {
		mustPutEvent(t, s, e)
	}

	f.conv = newConversion(app, f.install.ID, f.fpHit.ID, f.install.Time)
	f.conv.InstallID, f.conv.Fingerprint = erasedInst, maskedNet+"|android"
	f.conv.HitTime = f.fpHit.Time
	f.conv.HitParams = map[string]string{"utm_source": "ads", "idfa": erasedAdID}
	f.conv.History[0].To = f.conv.Attribution
	f.conv.Decision = &tapline.Decision{Rule: tapline.RuleFingerprint, Reason: "fits", Signals: []tapline.Signal{
		{Name: "network", Install: maskedNet, Hit: maskedNet, Verdict: tapline.VerdictAgree},
		{Name: "model", Install: erasedModel, Verdict: tapline.VerdictUnknown},
		{Name: "install_referrer", Install: "h-ad", Hit: "h-ad", Verdict: tapline.VerdictAgree},
	}}
	mustPutConversion(t, s, f.conv)
	f.keptConv = newConversion(app, f.other.ID, f.keptHit.ID, f.other.Time)
	f.keptConv.InstallID, f.keptConv.Fingerprint = keptInst, "198.51.100.0/24|android"
	mustPutConversion(t, s, f.keptConv)
	return f
}

func testEraseByAdID(t *testing.T, s tapline.RawStore) {
	f := putEraseFixture(t, s)
	e := &tapline.Erasure{AppID: f.app, AdIDs: []string{erasedAdID}}
	got, err := s.EraseDevice(t.Context(), e)
	if err != nil {
		t.Fatalf("EraseDevice: %v", err)
	}
	if w := (tapline.ErasureCounts{Hits: 1, Events: 3, Conversions: 1, HitsStripped: 1}); got != w {
		t.Errorf("EraseDevice counts = %+v, want %+v", got, w)
	}
	if len(e.FoundConversions) != 1 || e.FoundConversions[0] != f.conv.ID {
		t.Errorf("FoundConversions = %q, want [%s]", e.FoundConversions, f.conv.ID)
	}
	checkErased(t, s, f)
	again, err := s.EraseDevice(t.Context(), &tapline.Erasure{AppID: f.app, AdIDs: []string{erasedAdID}})
	if err != nil {
		t.Fatalf("EraseDevice again: %v", err)
	}
	if again != (tapline.ErasureCounts{}) {
		t.Errorf("EraseDevice again counts = %+v, want none", again)
	}
	checkErased(t, s, f)
}

func testEraseByInstallID(t *testing.T, s tapline.RawStore) {
	f := putEraseFixture(t, s)
	// The install id finds the installation's events, and through them
	// the advertising id and its hits.
	got, err := s.EraseDevice(t.Context(), &tapline.Erasure{AppID: f.app, InstallIDs: []string{erasedInst}})
	if err != nil {
		t.Fatalf("EraseDevice: %v", err)
	}
	if w := (tapline.ErasureCounts{Hits: 1, Events: 3, Conversions: 1, HitsStripped: 1}); got != w {
		t.Errorf("EraseDevice counts = %+v, want %+v", got, w)
	}
	checkErased(t, s, f)
}

func testEraseConversionIDs(t *testing.T, s tapline.RawStore) {
	f := putEraseFixture(t, s)
	// The raw rows are gone (past their retention); the conversion is
	// named by id, as the conversions table finds it.
	if err := s.DeleteBefore(t.Context(), f.app, base().Add(time.Hour)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	got, err := s.EraseDevice(t.Context(), &tapline.Erasure{AppID: f.app, AdIDs: []string{erasedAdID}, ConversionIDs: []string{f.conv.ID}})
	if err != nil {
		t.Fatalf("EraseDevice: %v", err)
	}
	if got.Conversions != 1 {
		t.Errorf("EraseDevice counts = %+v, want 1 conversion", got)
	}
	checkErasedConversion(t, s, f)
}

// checkErased reads every lookup that could answer with the erased
// device's rows and checks none does, and that the other device's rows
// are as stored.
func checkErased(t *testing.T, s tapline.RawStore, f eraseFixture) {
	t.Helper()
	ctx := t.Context()
	from, to := base().Add(-30*24*time.Hour), base().Add(24*time.Hour)
	if _, err := s.Hit(ctx, f.app, f.adHit.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("Hit(%s) after erasure: err %v, want ENOTFOUND", f.adHit.ID, err)
	}
	for _, e := range []*tapline.Event{f.install, f.open, f.buy} {
		if _, err := s.Event(ctx, f.app, e.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
			t.Errorf("Event(%s) after erasure: err %v, want ENOTFOUND", e.ID, err)
		}
	}
	hs, err := s.HitsByAdID(ctx, f.app, erasedAdID, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "HitsByAdID(erased)", hitIDs(hs), nil)
	hs, err = s.HitsByFingerprint(ctx, f.app, erasedFP, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "HitsByFingerprint(erased)", hitIDs(hs), nil)
	es, err := s.InstallsByAdID(ctx, f.app, erasedAdID, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "InstallsByAdID(erased)", eventIDs(es), nil)
	es, err = s.InstallsByFingerprint(ctx, f.app, erasedFP, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "InstallsByFingerprint(erased)", eventIDs(es), nil)
	es, err = s.InstallsByReferrerHit(ctx, f.app, f.adHit.ID)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "InstallsByReferrerHit(h-ad)", eventIDs(es), nil)
	es, err = s.EventsByInstall(ctx, f.app, erasedInst)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "EventsByInstall(erased)", eventIDs(es), nil)

	// The credited hit stays, stripped, and no index finds it by the
	// device's values.
	fp, err := s.Hit(ctx, f.app, f.fpHit.ID)
	if err != nil {
		t.Fatalf("Hit(%s) after erasure: %v", f.fpHit.ID, err)
	}
	noDeviceValue(t, "the credited hit", fp)
	if fp.LinkID != f.fpHit.LinkID || !fp.Time.Equal(f.fpHit.Time) || fp.Platform != f.fpHit.Platform {
		t.Errorf("credited hit after erasure = %+v, want its link, time and platform kept", fp)
	}

	seen := map[string]bool{}
	err = s.ScanInstallations(ctx, f.app, tapline.ScanRange{Start: math.MinInt64, End: math.MaxInt64}, func(_ int64, inst *tapline.Installation) error {
		seen[inst.ID] = true
		for _, e := range inst.Events {
			noDeviceValue(t, "scanned event "+e.ID, e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanInstallations: %v", err)
	}
	if seen[erasedInst] || !seen[keptInst] {
		t.Errorf("ScanInstallations saw %v, want %s and not %s", seen, keptInst, erasedInst)
	}
	checkErasedConversion(t, s, f)

	// The other device is untouched.
	if h, err := s.Hit(ctx, f.app, f.keptHit.ID); err != nil || !reflect.DeepEqual(h, f.keptHit) {
		t.Errorf("Hit(%s) of the other device = %+v, %v; want it as stored", f.keptHit.ID, h, err)
	}
	if e, err := s.Event(ctx, f.app, f.other.ID); err != nil || !reflect.DeepEqual(e, f.other) {
		t.Errorf("Event(%s) of the other device = %+v, %v; want it as stored", f.other.ID, e, err)
	}
	if c, err := s.Conversion(ctx, f.app, f.keptConv.ID); err != nil || !reflect.DeepEqual(c, f.keptConv) {
		t.Errorf("Conversion(%s) of the other device = %+v, %v; want it as stored", f.keptConv.ID, c, err)
	}
	hs, err = s.HitsByAdID(ctx, f.app, keptAdID, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "HitsByAdID(kept)", hitIDs(hs), []string{f.keptHit.ID})
}

// checkErasedConversion checks the erased device's conversion, by id, by
// installation and by hit: its attribution and history kept, no device
// value left.
func checkErasedConversion(t *testing.T, s tapline.RawStore, f eraseFixture) {
	t.Helper()
	ctx := t.Context()
	c, err := s.Conversion(ctx, f.app, f.conv.ID)
	if err != nil {
		t.Fatalf("Conversion(%s) after erasure: %v", f.conv.ID, err)
	}
	noDeviceValue(t, "the conversion", c)
	if c.HitID != f.conv.HitID || c.Method != f.conv.Method || len(c.History) != len(f.conv.History) || c.InstallID != erasedInst {
		t.Errorf("conversion after erasure = %+v, want its attribution and history kept", c)
	}
	if c.Decision == nil || len(c.Decision.Signals) != 3 || c.Decision.Signals[0].Verdict != tapline.VerdictAgree ||
		c.Decision.Signals[2].Install != "h-ad" {
		t.Errorf("decision after erasure = %+v, want the signals' names, verdicts and hit ids kept", c.Decision)
	}
	if c.HitParams["utm_source"] != "ads" {
		t.Errorf("hit params after erasure = %v, want utm_source kept", c.HitParams)
	}
	byInst, err := s.ConversionByInstall(ctx, f.app, erasedInst)
	if err != nil {
		t.Fatalf("ConversionByInstall after erasure: %v", err)
	}
	noDeviceValue(t, "the conversion by install", byInst)
	byHit, err := s.ConversionsByHit(ctx, f.app, f.fpHit.ID)
	if err != nil || len(byHit) != 1 {
		t.Fatalf("ConversionsByHit(%s) after erasure = %d, %v; want 1", f.fpHit.ID, len(byHit), err)
	}
	noDeviceValue(t, "the conversion by hit", byHit[0])
}

// noDeviceValue fails when v, as JSON, holds the erased device's
// advertising id, address, network or model.
func noDeviceValue(t *testing.T, what string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{erasedAdID, erasedIP, maskedNet, erasedModel} {
		if strings.Contains(string(b), s) {
			t.Errorf("%s still holds %q: %s", what, s, b)
		}
	}
}

// testEraseReengagement erases an installation whose open was credited to
// a re-engagement tap: the re-engagement goes with the open, and its
// claim on the tap too.
func testEraseReengagement(t *testing.T, s tapline.RawStore) {
	const app = 77
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	device := tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7"}
	for _, e := range []*tapline.Event{
		{ID: "re-install", AppID: app, Kind: tapline.KindInstall, Name: "install", Time: at, ReceivedAt: at, InstallID: "inst-re", Device: device},
		{ID: "re-open", AppID: app, Kind: tapline.KindOpen, Name: "open", Time: at.Add(time.Minute), ReceivedAt: at.Add(time.Minute), InstallID: "inst-re", Device: device},
	} {
		if _, err := s.PutEvent(t.Context(), e); err != nil {
			t.Fatalf("PutEvent: %v", err)
		}
	}
	r := &tapline.Reengagement{ID: tapline.ReengagementID("re-open"), AppID: app, EventID: "re-open", InstallID: "inst-re", OpenTime: at.Add(time.Minute),
		Attribution: tapline.Attribution{HitID: "re-hit", Method: tapline.MethodFingerprint, HitTime: at}, By: "events/0/1"}
	if _, err := s.PutReengagement(t.Context(), r); err != nil {
		t.Fatalf("PutReengagement: %v", err)
	}
	n, err := s.EraseDevice(t.Context(), &tapline.Erasure{AppID: app, InstallIDs: []string{"inst-re"}})
	if err != nil {
		t.Fatalf("EraseDevice: %v", err)
	}
	if n.Reengagements != 1 || n.Events != 2 {
		t.Errorf("EraseDevice counts = %+v, want 2 events and 1 re-engagement", n)
	}
	if got, err := s.Reengagement(t.Context(), app, r.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("Reengagement after the erasure = %+v, %v; want ENOTFOUND", got, err)
	}
	other := &tapline.Reengagement{ID: tapline.ReengagementID("re-other"), AppID: app, EventID: "re-other", OpenTime: at,
		Attribution: tapline.Attribution{HitID: "re-hit", Method: tapline.MethodFingerprint, HitTime: at}, By: "events/0/2"}
	if st, err := s.PutReengagement(t.Context(), other); err != nil || st.ID != other.ID {
		t.Errorf("after the erasure the tap still credits %+v (%v), want it free", st, err)
	}
}
