package pebble

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"tapline"
	"tapline/rawstoretest"
)

// mustOpenRawStore opens a raw store in dir and closes it when the test ends.
func mustOpenRawStore(tb testing.TB, dir string) *RawStore {
	tb.Helper()
	s := NewRawStore(dir)
	if err := s.Open(); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestRawStore(t *testing.T) {
	t.Parallel()
	rawstoretest.Run(t, func(t *testing.T) tapline.RawStore { return mustOpenRawStore(t, t.TempDir()) })
}

func TestRawStoreReopen(t *testing.T) {
	t.Parallel()
	ctx, dir := t.Context(), t.TempDir()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s := mustOpenRawStore(t, dir)
	h := &tapline.Hit{ID: "h1", AppID: 1, Time: now, Fingerprint: "fp", Platform: tapline.PlatformIOS}
	old := &tapline.Hit{ID: "h0", AppID: 1, Time: now.Add(-time.Hour), Fingerprint: "fp"}
	e := &tapline.Event{ID: "e1", AppID: 1, Kind: tapline.KindInstall, Time: now, Fingerprint: "fp", Referrer: "tapline_hit=h1"}
	c := &tapline.Conversion{ID: "cv-e1", AppID: 1, EventID: "e1", InstallID: "i1", Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodReferrer}}
	for _, err := range []error{
		func() error { _, err := s.PutHit(ctx, h); return err }(),
		func() error { _, err := s.PutHit(ctx, old); return err }(),
		func() error { _, err := s.PutEvent(ctx, e); return err }(),
		s.PutConversion(ctx, c),
		s.DeleteBefore(ctx, 1, now.Add(-time.Minute)),
	} {
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Hit(ctx, 1, "h1"); tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("Hit on a closed store: %v, want %s", err, tapline.EUNAVAILABLE)
	}

	s = mustOpenRawStore(t, dir)
	if got, err := s.Hit(ctx, 1, "h1"); err != nil || got.Fingerprint != "fp" {
		t.Errorf("Hit after reopen = %+v, %v; want the stored hit", got, err)
	}
	if hs, err := s.HitsByFingerprint(ctx, 1, "fp", now.Add(-2*time.Hour), now); err != nil || len(hs) != 1 || hs[0].ID != "h1" {
		t.Errorf("HitsByFingerprint after reopen = %d rows, %v; want [h1] (h0 is behind the watermark)", len(hs), err)
	}
	if _, err := s.Hit(ctx, 1, "h0"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("Hit(h0) after reopen: %v, want %s", err, tapline.ENOTFOUND)
	}
	if es, err := s.InstallsByReferrerHit(ctx, 1, "h1"); err != nil || len(es) != 1 {
		t.Errorf("InstallsByReferrerHit after reopen = %d rows, %v; want 1", len(es), err)
	}
	if cs, err := s.ConversionsByHit(ctx, 1, "h1"); err != nil || len(cs) != 1 {
		t.Errorf("ConversionsByHit after reopen = %d rows, %v; want 1", len(cs), err)
	}
}

func TestRawStoreOpenErrors(t *testing.T) {
	t.Parallel()
	if err := NewRawStore("").Open(); err == nil {
		t.Error("Open with no Dir succeeded, want an error")
	}
	dir := t.TempDir()
	mustOpenRawStore(t, dir)
	if err := NewRawStore(dir).Open(); err == nil {
		t.Error("second Open of one directory succeeded, want a lock error")
	}
}

func TestRawStoreExtremeTimes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := mustOpenRawStore(t, t.TempDir())
	times := map[string]time.Time{
		"zero":  {},
		"1900":  time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		"epoch": time.Unix(0, 0).UTC(),
		"2099":  time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		"far":   time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for id, at := range times {
		if _, err := s.PutHit(ctx, &tapline.Hit{ID: id, AppID: 1, Time: at, Fingerprint: "fp"}); err != nil {
			t.Fatalf("PutHit(%s): %v", id, err)
		}
	}
	for id := range times {
		if _, err := s.Hit(ctx, 1, id); err != nil {
			t.Errorf("Hit(%s): %v", id, err)
		}
	}
	hs, err := s.HitsByFingerprint(ctx, 1, "fp", time.Time{}, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	var got []string
	for _, h := range hs {
		got = append(got, h.ID)
	}
	if want := "[far 2099 epoch 1900 zero]"; fmt.Sprint(got) != want {
		t.Errorf("HitsByFingerprint over all time = %v, want %s", got, want)
	}
}

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	strs := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\xff", "\xff\xff"}
	for i, a := range strs {
		enc := appendString(nil, a)
		got, rest, err := readString(append(enc, 'x'))
		if err != nil || got != a || string(rest) != "x" {
			t.Errorf("readString(appendString(%q)) = %q, %q, %v; want %q, \"x\", nil", a, got, rest, err, a)
		}
		for _, b := range strs[i+1:] {
			// Order is kept and an encoded string is never the prefix of another.
			ea, eb := appendString(nil, a), appendString(nil, b)
			if bytes.Compare(ea, eb) >= 0 || bytes.HasPrefix(eb, ea) {
				t.Errorf("encoding of %q (%x) not before and not a prefix of %q (%x)", a, ea, b, eb)
			}
		}
	}
	ints := []int64{math.MinInt64, -1 << 40, -1, 0, 1, 1 << 40, math.MaxInt64}
	for i := range ints[1:] {
		a, b := appendInt64(nil, ints[i]), appendInt64(nil, ints[i+1])
		if bytes.Compare(a, b) >= 0 || readInt64(b) != ints[i+1] {
			t.Errorf("appendInt64(%d) = %x not before appendInt64(%d) = %x or no round trip", ints[i], a, ints[i+1], b)
		}
	}
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"Simple", []byte("ab"), []byte("ac")},
		{"TrailingFF", []byte{'a', 0xff, 0xff}, []byte{'b'}},
		{"AllFF", []byte{0xff}, nil},
	}
	for _, tt := range tests {
		if got := prefixEnd(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: prefixEnd(%x) = %x, want %x", tt.name, tt.in, got, tt.want)
		}
	}
	if _, _, err := readString([]byte("abc")); err == nil {
		t.Error("readString of an unterminated string succeeded, want an error")
	}
}

// TestConversionDecisionOnlyByID checks that a conversion read by id has
// its decision, and that the indexes, read on every event, leave it out.
func TestConversionDecisionOnlyByID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := mustOpenRawStore(t, t.TempDir())
	c := &tapline.Conversion{ID: "cv-e1", AppID: 1, EventID: "e1", InstallID: "i1",
		Attribution: tapline.Attribution{HitID: "h1", Method: tapline.MethodFingerprint},
		History:     []tapline.AttributionChange{{By: "events/0/1"}},
		Decision:    &tapline.Decision{Rule: tapline.RuleFingerprint, Reason: "the newest compatible tap", Considered: 1}}
	if err := s.PutConversion(ctx, c); err != nil {
		t.Fatal(err)
	}
	byID, err := s.Conversion(ctx, 1, "cv-e1")
	if err != nil || byID.Decision == nil || byID.Decision.Reason != c.Decision.Reason {
		t.Fatalf("Conversion = %+v, %v; want it with its decision", byID, err)
	}
	byInstall, err := s.ConversionByInstall(ctx, 1, "i1")
	if err != nil || byInstall.Decision != nil || byInstall.HitID != "h1" {
		t.Errorf("ConversionByInstall = %+v, %v; want the conversion without its decision", byInstall, err)
	}
	byHit, err := s.ConversionsByHit(ctx, 1, "h1")
	if err != nil || len(byHit) != 1 || byHit[0].Decision != nil {
		t.Errorf("ConversionsByHit = %+v, %v; want one conversion without its decision", byHit, err)
	}
}
