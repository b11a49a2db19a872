package rawstoretest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"tapline"
)

func newReengagement(app int64, eventID, hitID string, at time.Time) *tapline.Reengagement {
	return &tapline.Reengagement{
		ID: tapline.ReengagementID(eventID), AppID: app, EventID: eventID, InstallID: "i-" + eventID,
		OpenTime: at, Platform: tapline.PlatformAndroid,
		Attribution: tapline.Attribution{HitID: hitID, LinkID: 7, Method: tapline.MethodAdID, HitTime: at.Add(-time.Hour),
			HitParams: map[string]string{"utm_source": "push"}},
		By: "events/0/" + eventID, At: at,
		Decision: &tapline.Decision{Rule: tapline.RuleReengagement, Reason: "test", Window: 7 * 24 * time.Hour, Considered: 1},
	}
}

// testReengagement checks that a re-engagement is stored once by its id,
// found again, and that a tap is credited with one re-engagement: a second
// open claiming the same tap gets the first one back, and a replay of the
// first open gets its own.
func testReengagement(t *testing.T, s tapline.RawStore) {
	ctx := context.Background()
	app := appID()
	at := base()
	if _, err := s.Reengagement(ctx, app, tapline.ReengagementID("o1")); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Fatalf("Reengagement before any: %v, want ENOTFOUND", err)
	}
	r1 := newReengagement(app, "o1", "h1", at)
	got, err := s.PutReengagement(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r1) {
		t.Fatalf("PutReengagement = %+v, want %+v", got, r1)
	}
	stored, err := s.Reengagement(ctx, app, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.OpenTime.Equal(r1.OpenTime) || !stored.HitTime.Equal(r1.HitTime) {
		t.Fatalf("times changed: %v %v, want %v %v", stored.OpenTime, stored.HitTime, r1.OpenTime, r1.HitTime)
	}
	stored.OpenTime, stored.HitTime, stored.At = r1.OpenTime, r1.HitTime, r1.At
	if !reflect.DeepEqual(stored, r1) {
		t.Fatalf("Reengagement = %+v, want %+v", stored, r1)
	}

	// Another open claiming the tap: the first stands.
	r2 := newReengagement(app, "o2", "h1", at.Add(time.Minute))
	got, err = s.PutReengagement(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r1.ID {
		t.Fatalf("second open on tap h1 got %s, want the first, %s", got.ID, r1.ID)
	}
	if _, err := s.Reengagement(ctx, app, r2.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Fatalf("the refused re-engagement is stored: %v", err)
	}

	// A replay of the first open, deciding on another tap: its stored
	// re-engagement stands, and the other tap stays free.
	again := newReengagement(app, "o1", "h2", at)
	got, err = s.PutReengagement(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r1.ID || got.HitID != "h1" {
		t.Fatalf("replay got %s on %s, want %s on h1", got.ID, got.HitID, r1.ID)
	}
	r3 := newReengagement(app, "o3", "h2", at)
	if got, err = s.PutReengagement(ctx, r3); err != nil || got.ID != r3.ID {
		t.Fatalf("tap h2 after the replay: %v, %v; want %s", got, err, r3.ID)
	}

	// Other apps do not meet, and an invalid one is refused.
	other := newReengagement(app+1, "o2", "h1", at)
	if got, err = s.PutReengagement(ctx, other); err != nil || got.ID != other.ID || got.AppID != app+1 {
		t.Fatalf("another app's claim on h1: %v, %v", got, err)
	}
	if _, err := s.PutReengagement(ctx, &tapline.Reengagement{ID: "re-x", AppID: app}); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Fatalf("re-engagement without a hit: %v, want EINVALID", err)
	}
	// Expiry of the raw rows leaves re-engagements.
	if err := s.DeleteBefore(ctx, app, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reengagement(ctx, app, r1.ID); err != nil {
		t.Fatalf("re-engagement after DeleteBefore: %v", err)
	}
}

// testConcurrentReengagement has many opens claim one tap at once: one
// wins, and every put returns it.
func testConcurrentReengagement(t *testing.T, s tapline.RawStore) {
	ctx := context.Background()
	app := appID()
	at := base()
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := s.PutReengagement(ctx, newReengagement(app, fmt.Sprintf("o%d", i), "h1", at))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = got.ID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent claims on one tap got %v, want one winner", ids)
		}
	}
	stored := 0
	for i := range n {
		if _, err := s.Reengagement(ctx, app, tapline.ReengagementID(fmt.Sprintf("o%d", i))); err == nil {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d re-engagements stored for one tap, want 1", stored)
	}
}

// testReinstallConversion checks that a conversion's Reinstall survives
// the store, by id and through the index by installation.
func testReinstallConversion(t *testing.T, s tapline.RawStore) {
	ctx := context.Background()
	app := appID()
	at := base()
	c := newConversion(app, "e2", "", at)
	c.Reinstall = &tapline.Reinstall{Of: "cv-e1", By: tapline.ReinstallByVendorID, Reattributed: true}
	mustPutConversion(t, s, c)
	got, err := s.Conversion(ctx, app, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Reinstall, c.Reinstall) {
		t.Fatalf("Reinstall = %+v, want %+v", got.Reinstall, c.Reinstall)
	}
	got, err = s.ConversionByInstall(ctx, app, c.InstallID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Reinstall, c.Reinstall) || got.KeepsAttribution() {
		t.Fatalf("by installation: Reinstall = %+v, want %+v", got.Reinstall, c.Reinstall)
	}
}

// testVendorID checks the index of installs by vendor id (IDFV): installs
// only, within the range, newest first, expiring with the raw rows.
func testVendorID(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	for i, ago := range []time.Duration{48 * time.Hour, 2 * time.Hour, time.Hour} {
		e := newEvent(app, fmt.Sprintf("i%d", i), tapline.KindInstall, "fp", now.Add(-ago))
		e.Device = tapline.Device{Platform: tapline.PlatformIOS, IDFV: "vendor-1", IDFA: "idfa-1"}
		mustPutEvent(t, s, e)
	}
	open := newEvent(app, "open", tapline.KindOpen, "fp", now)
	open.Device = tapline.Device{Platform: tapline.PlatformIOS, IDFV: "vendor-1"}
	mustPutEvent(t, s, open)
	other := newEvent(app, "other", tapline.KindInstall, "fp", now)
	other.Device = tapline.Device{Platform: tapline.PlatformIOS, IDFV: "vendor-2"}
	mustPutEvent(t, s, other)

	for _, tt := range []struct {
		name, idfv string
		from       time.Time
		want       []string
	}{
		{"in range, newest first", "vendor-1", now.Add(-3 * time.Hour), []string{"i2", "i1"}},
		{"all", "vendor-1", now.Add(-72 * time.Hour), []string{"i2", "i1", "i0"}},
		{"another vendor id", "vendor-2", now.Add(-time.Hour), []string{"other"}},
		{"an advertising id is no vendor id", "idfa-1", now.Add(-72 * time.Hour), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			es, err := s.InstallsByVendorID(ctx, app, tt.idfv, tt.from, now)
			if err != nil {
				t.Fatalf("InstallsByVendorID: %v", err)
			}
			want(t, "InstallsByVendorID("+tt.idfv+")", eventIDs(es), tt.want)
		})
	}
	if es, err := s.InstallsByVendorID(ctx, app+1, "vendor-1", now.Add(-72*time.Hour), now); err != nil || len(es) != 0 {
		t.Fatalf("another app's installs by vendor id: %v, %v", eventIDs(es), err)
	}
	if err := s.DeleteBefore(ctx, app, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	es, err := s.InstallsByVendorID(ctx, app, "vendor-1", now.Add(-72*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "InstallsByVendorID after DeleteBefore", eventIDs(es), []string{"i2", "i1"})
}
