package pebble

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"tapline"
)

// TestConversionCacheFollowsWrites: ConversionByInstall answers from its
// cache only what the database holds: after a conversion is created, moved
// to another installation and erased, each answer is the stored one.
func TestConversionCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := mustOpenRawStore(t, t.TempDir())
	linkOf := func(installID string) int64 {
		t.Helper()
		c, err := s.ConversionByInstall(ctx, 1, installID)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return 0
		} else if err != nil {
			t.Fatalf("ConversionByInstall(%s): %v", installID, err)
		}
		return c.LinkID
	}
	for range 2 { // the second answer comes from the cache
		if got := linkOf("i1"); got != 0 {
			t.Fatalf("before any conversion: link %d", got)
		}
	}
	c := &tapline.Conversion{ID: "cv-e1", AppID: 1, EventID: "e1", InstallID: "i1", Fingerprint: "203.0.113.7|ios",
		Attribution: tapline.Attribution{HitID: "h1", LinkID: 7, Method: tapline.MethodFingerprint},
		History:     []tapline.AttributionChange{{By: "events/0/1"}}}
	if err := s.PutConversion(ctx, c); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := linkOf("i1"); got != 7 {
			t.Fatalf("after the put: link %d, want 7", got)
		}
	}
	// The same conversion, now of installation i2 (a later change).
	moved := *c
	moved.InstallID, moved.LinkID = "i2", 8
	moved.History = append(append([]tapline.AttributionChange(nil), c.History...), tapline.AttributionChange{By: "hits/0/2"})
	if err := s.PutConversion(ctx, &moved); err != nil {
		t.Fatal(err)
	}
	if got1, got2 := linkOf("i1"), linkOf("i2"); got1 != 0 || got2 != 8 {
		t.Fatalf("after the move: links %d, %d; want none, 8", got1, got2)
	}
	if _, erased, err := s.eraseConversion(1, "cv-e1"); err != nil || !erased {
		t.Fatalf("eraseConversion: %v, %v", erased, err)
	}
	got, err := s.ConversionByInstall(ctx, 1, "i2")
	if err != nil || got.Fingerprint != "" {
		t.Fatalf("after erasure: %+v, %v; want no personal fields", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConversionByInstall(ctx, 1, "i2"); tapline.ErrorCode(err) != tapline.EUNAVAILABLE {
		t.Errorf("a closed store answered %v, want %s whatever it remembers", err, tapline.EUNAVAILABLE)
	}
}

// TestConversionCacheRace: readers asking for installations while their
// conversions are rewritten never leave an answer in the cache older than
// the database's.
func TestConversionCacheRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := mustOpenRawStore(t, t.TempDir())
	const installs, writes = 16, 40
	var done atomic.Bool
	var readers, writers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for i := r; !done.Load(); i++ {
				_, err := s.ConversionByInstall(ctx, 1, fmt.Sprint("i", i%installs))
				if err != nil && tapline.ErrorCode(err) != tapline.ENOTFOUND {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range installs {
		writers.Go(func() {
			c := &tapline.Conversion{ID: fmt.Sprint("cv-", i), AppID: 1, InstallID: fmt.Sprint("i", i)}
			for k := range writes {
				c.LinkID = int64(k + 1)
				c.History = append(c.History, tapline.AttributionChange{By: fmt.Sprint("events/0/", k)})
				if k == 0 {
					c.History = c.History[:1]
				}
				if err := s.PutConversion(ctx, c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Wait()
	done.Store(true)
	readers.Wait()
	for i := range installs {
		id := fmt.Sprint("i", i)
		c, err := s.ConversionByInstall(ctx, 1, id)
		if err != nil {
			t.Fatalf("ConversionByInstall(%s): %v", id, err)
		}
		stored, err := s.conversionsBy(ctx, convInstallPrefix(1, id))
		if err != nil || len(stored) != 1 {
			t.Fatalf("stored conversions of %s: %v, %v", id, stored, err)
		}
		if c.LinkID != stored[0].LinkID || c.LinkID != writes {
			t.Errorf("%s: answered link %d, stored %d, written last %d", id, c.LinkID, stored[0].LinkID, writes)
		}
	}
}
