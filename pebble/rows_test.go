package pebble

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

// A store written by an earlier version, with JSON values and the
// conversion index by install id, opens with its index moved and reads as
// before.
func TestOpenReadsTheFirstLayout(t *testing.T) {
	t.Parallel()
	ctx, dir := t.Context(), t.TempDir()
	now := time.Now().UTC().Truncate(time.Millisecond)
	h := &tapline.Hit{ID: "h1", AppID: 7, Time: now.Add(-time.Hour), Fingerprint: "fp", Params: map[string]string{"utm_source": "ads"}}
	e := &tapline.Event{ID: "e1", AppID: 7, Kind: tapline.KindInstall, Name: "install", Time: now, InstallID: "i1", Fingerprint: "fp"}
	c := &tapline.Conversion{ID: "cv-e1", AppID: 7, EventID: "e1", InstallID: "i1", InstallTime: now,
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodFingerprint, HitTime: h.Time},
		History:     []tapline.AttributionChange{{By: "events/0/1", To: tapline.Attribution{HitID: "h1", Method: tapline.MethodFingerprint, HitTime: h.Time}, At: now}}}
	other := *c // another app's conversion of an installation with the same id
	other.AppID, other.ID = 8, "cv-e9"

	db, err := pdb.Open(dir, &pdb.Options{FormatMajorVersion: pdb.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t0, t1 := tapline.UnixNanos(h.Time), tapline.UnixNanos(e.Time)
	b := db.NewBatch()
	_ = b.Set(appendString(bucketKey(7, t0, tableHit), "h1"), js(h), nil)
	_ = b.Set(indexKey(7, tableHitByFP, "fp", t0, "h1"), js(h), nil)
	_ = b.Set(appendString(bucketKey(7, t1, tableEvent), "e1"), js(e), nil)
	_ = b.Set(installIndexKey(7, t1, installKey("i1"), "i1", "e1"), js(e), nil)
	for _, c := range []*tapline.Conversion{c, &other} {
		_ = b.Set(appendString(appKey(spaceConversion, c.AppID), c.ID), js(c), nil)
		_ = b.Set(convIndexKey(spaceConvByHit, c.AppID, c.HitID, c.ID), js(c), nil)
		_ = b.Set(convIndexKey(spaceConvByInstalOld, c.AppID, c.InstallID, c.ID), js(c), nil)
	}
	if err := b.Commit(pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := NewRawStore(dir)
	s.Logger = slog.New(slog.DiscardHandler)
	if err := s.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if got, err := s.ConversionByInstall(ctx, 7, "i1"); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("ConversionByInstall = %+v, %v; want %+v", got, err, c)
	}
	if got, err := s.ConversionByInstall(ctx, 8, "i1"); err != nil || !reflect.DeepEqual(got, &other) {
		t.Errorf("ConversionByInstall of app 8 = %+v, %v; want %+v", got, err, &other)
	}
	if got, err := s.HitAt(ctx, 7, "h1", c.HitTime); err != nil || !reflect.DeepEqual(got, h) {
		t.Errorf("HitAt = %+v, %v; want %+v", got, err, h)
	}
	if hs, err := s.HitsByFingerprint(ctx, 7, "fp", now.Add(-2*time.Hour), now); err != nil || len(hs) != 1 || !reflect.DeepEqual(hs[0], h) {
		t.Errorf("HitsByFingerprint = %+v, %v; want %+v", hs, err, h)
	}
	var scanned []*tapline.Installation
	if err := s.ScanInstallations(ctx, 7, tapline.SplitRing(1)[0], func(_ int64, inst *tapline.Installation) error {
		cp := *inst // the scan reuses it
		cp.Events = nil
		for _, e := range inst.Events {
			e := *e
			cp.Events = append(cp.Events, &e)
		}
		scanned = append(scanned, &cp)
		return nil
	}); err != nil {
		t.Fatalf("ScanInstallations: %v", err)
	}
	want := []*tapline.Installation{{AppID: 7, ID: "i1", Events: []*tapline.Event{e}, Conversion: c}}
	if !reflect.DeepEqual(scanned, want) {
		t.Errorf("ScanInstallations passed %+v, want %+v", scanned, want)
	}
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: []byte{spaceConvByInstalOld}, UpperBound: []byte{spaceConvByInstalOld + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.First() {
		t.Errorf("key %x of the first index layout left after Open", it.Key())
	}
}
