package pebble

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tapline"
)

// Two re-engagements of one open (the open's own, by an older tap, and a
// late tap's, by a newer one) stored at once: exactly one may stand and be
// returned to both writers.
// TestPutReengagementSameOpenRace puts two re-engagements of one open
// crediting two taps at once: one stands, for both callers.
func TestPutReengagementSameOpenRace(t *testing.T) {
	s := NewRawStore(t.TempDir())
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	both := 0
	for i := range 2000 {
		id := fmt.Sprintf("r-%d", i)
		var wg sync.WaitGroup
		var got [2]*tapline.Reengagement
		for j := range 2 {
			wg.Go(func() {
				r := &tapline.Reengagement{ID: id, AppID: 1, EventID: id, OpenTime: at,
					Attribution: tapline.Attribution{HitID: fmt.Sprintf("h-%d-%d", i, j), Method: tapline.MethodAdID, HitTime: at},
					By:          fmt.Sprintf("pos-%d", j)}
				st, err := s.PutReengagement(t.Context(), r)
				if err != nil {
					t.Error(err)
					return
				}
				got[j] = st
			})
		}
		wg.Wait()
		if got[0] != nil && got[1] != nil && got[0].By != got[1].By {
			both++
		}
	}
	if both > 0 {
		t.Errorf("%d of 2000 opens: both writers were told their re-engagement stands (both count it)", both)
	}
}

// An erasure of an installation leaves its re-engagements, with the
// install id and the device's values in their decision's signals.
// TestEraseDeletesReengagement erases an installation whose open was
// re-engaged: the re-engagement and its claim on the tap go with the open.
func TestEraseDeletesReengagement(t *testing.T) {
	s := NewRawStore(t.TempDir())
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Now().UTC().Add(-time.Hour)
	inst := &tapline.Event{ID: "e-install", AppID: 1, Kind: tapline.KindInstall, Name: "install", Time: at, ReceivedAt: at,
		InstallID: "inst-erased", Fingerprint: "203.0.113.77|android", Device: tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7"}}
	if _, err := s.PutEvent(t.Context(), inst); err != nil {
		t.Fatal(err)
	}
	open := &tapline.Event{ID: "e-open", AppID: 1, Kind: tapline.KindOpen, Name: "open", Time: at.Add(time.Minute), ReceivedAt: at.Add(time.Minute),
		InstallID: "inst-erased", Fingerprint: "203.0.113.77|android", Device: inst.Device}
	if _, err := s.PutEvent(t.Context(), open); err != nil {
		t.Fatal(err)
	}
	r := &tapline.Reengagement{ID: tapline.ReengagementID("e-open"), AppID: 1, EventID: "e-open", InstallID: "inst-erased", OpenTime: at,
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodFingerprint, HitTime: at},
		By:          "p", Decision: &tapline.Decision{Signals: []tapline.Signal{{Name: "model", Install: "Pixel 7", Hit: "Pixel 7", Verdict: tapline.VerdictAgree}}}}
	if _, err := s.PutReengagement(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	n, err := s.EraseDevice(t.Context(), &tapline.Erasure{AppID: 1, InstallIDs: []string{"inst-erased"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Reengagement(t.Context(), 1, r.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("after erasing the installation its re-engagement is still there: %+v (%v)", got, err)
	}
	if n.Reengagements != 1 || n.Events != 2 {
		t.Errorf("erasure counts %+v, want 2 events and 1 re-engagement", n)
	}
	// Its claim on the tap went with it: another open may take the tap.
	other := &tapline.Reengagement{ID: tapline.ReengagementID("e-other"), AppID: 1, EventID: "e-other", OpenTime: at,
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodFingerprint, HitTime: at}, By: "q"}
	if st, err := s.PutReengagement(t.Context(), other); err != nil || st.ID != other.ID {
		t.Errorf("after the erasure tap h1 still credits %+v (%v)", st, err)
	}
}
