package pebble

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"tapline"
	"tapline/internal/wire"
)

// TestPrivateConversionsAtOpen stores conversions as tapline did before
// they were kept private (the address whole, the advertising id in field 8
// and in the hit parameters) and checks that Open rewrites them, their
// index entries included, once.
func TestPrivateConversionsAtOpen(t *testing.T) {
	t.Parallel()
	const ad = "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"
	dir := t.TempDir()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &tapline.Conversion{
		ID: "cv-e1", AppID: 7, EventID: "e1", InstallID: "inst-1", InstallTime: at, Platform: tapline.PlatformIOS,
		Fingerprint: "203.0.113.7|ios",
		Attribution: tapline.Attribution{HitID: "h1", LinkID: 3, Method: tapline.MethodAdID, HitTime: at.Add(-time.Minute),
			HitParams: map[string]string{"utm_source": "ads", "idfa": ad}},
		Decision: &tapline.Decision{Rule: tapline.RuleAdID, Signals: []tapline.Signal{
			{Name: "network", Install: "203.0.113.7", Hit: "203.0.113.7", Verdict: tapline.VerdictAgree},
			{Name: "advertising_id", Install: ad, Hit: ad, Verdict: tapline.VerdictAgree}}},
		UpdatedAt: at,
	}
	c.History = []tapline.AttributionChange{{By: "events/0/1", To: c.Attribution, At: at}}
	db, err := openDB(dir, 1<<20, 0, slog.New(slog.DiscardHandler), rawTables)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	setConversion(b, c)
	legacy := protowire.AppendString(protowire.AppendTag(wire.AppendConversion(nil, c), 8, protowire.BytesType), ad)
	_ = b.Set(appendString(appKey(spaceConversion, c.AppID), c.ID), legacy, nil)
	if err := b.Commit(pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := mustOpenRawStore(t, dir)
	ctx := context.Background()
	got, err := s.Conversion(ctx, c.AppID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != "203.0.113.0/24|ios" || got.HitParams["idfa"] != "" || got.HitParams["utm_source"] != "ads" ||
		got.Decision.Signals[0].Install != "203.0.113.0/24" || got.Decision.Signals[1].Install != "…3d2e" || got.HitID != "h1" {
		t.Errorf("conversion after Open = %+v, want it private with its attribution", got)
	}
	byHit, err := s.ConversionsByHit(ctx, c.AppID, "h1")
	if err != nil || len(byHit) != 1 || byHit[0].Fingerprint != "203.0.113.0/24|ios" {
		t.Errorf("ConversionsByHit after Open = %+v, %v; want the private conversion", byHit, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = openDB(dir, 1<<20, 0, slog.New(slog.DiscardHandler), rawTables)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	marker := false
	for it.First(); it.Valid(); it.Next() {
		marker = marker || bytes.Equal(it.Key(), privateMarker)
		for _, s := range []string{ad, "203.0.113.7"} {
			if bytes.Contains(it.Value(), []byte(s)) {
				t.Errorf("key %q still holds %q", it.Key(), s)
			}
		}
	}
	if !marker {
		t.Error("Open set no marker: it would go over the conversions again")
	}
}
