package pebble

import (
	"reflect"
	"testing"
	"time"

	"tapline"
)

// TestRowByIDAfterReopen checks the point reads by id against buckets the
// store learns from the database (not from its own puts): rows of older
// weeks are found after a reopen, a resent row of another week is refused,
// and buckets past the watermark are not read.
func TestRowByIDAfterReopen(t *testing.T) {
	t.Parallel()
	ctx, dir := t.Context(), t.TempDir()
	now := time.Now().UTC().Truncate(time.Millisecond)
	week := 7 * 24 * time.Hour
	s := mustOpenRawStore(t, dir)
	var hits []*tapline.Hit
	for i, at := range []time.Time{now.Add(-3 * week), now.Add(-week), now} {
		h := &tapline.Hit{ID: string(rune('a' + i)), AppID: 7, Time: at, Fingerprint: "fp"}
		if _, err := s.PutHit(ctx, h); err != nil {
			t.Fatal(err)
		}
		e := &tapline.Event{ID: h.ID, AppID: 7, Kind: tapline.KindOpen, Time: at, InstallID: "i"}
		if _, err := s.PutEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		hits = append(hits, h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenRawStore(t, dir)
	for _, h := range hits {
		got, err := s.Hit(ctx, 7, h.ID)
		if err != nil || !reflect.DeepEqual(got, h) {
			t.Fatalf("Hit(%s) after reopen = %+v, %v; want %+v", h.ID, got, err, h)
		}
		if _, err := s.Event(ctx, 7, h.ID); err != nil {
			t.Fatalf("Event(%s) after reopen: %v", h.ID, err)
		}
	}
	// The oldest hit sent again stamped now: the stored one wins.
	resent := &tapline.Hit{ID: "a", AppID: 7, Time: now, Fingerprint: "other"}
	got, err := s.PutHit(ctx, resent)
	if err != nil || !reflect.DeepEqual(got, hits[0]) {
		t.Fatalf("PutHit of a resent hit = %+v, %v; want the stored %+v", got, err, hits[0])
	}
	// A new row in a week the store had not seen is found by its id.
	future := &tapline.Event{ID: "f", AppID: 7, Kind: tapline.KindOpen, Time: now.Add(2 * week), InstallID: "i"}
	if _, err := s.PutEvent(ctx, future); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Event(ctx, 7, "f"); err != nil {
		t.Fatalf("Event(f) in a new week: %v", err)
	}
	if err := s.DeleteBefore(ctx, 7, now.Add(-2*week)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hit(ctx, 7, "a"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Fatalf("Hit(a) after DeleteBefore: %v, want not found", err)
	}
	if _, err := s.Hit(ctx, 7, "b"); err != nil {
		t.Fatalf("Hit(b) after DeleteBefore: %v", err)
	}
}
