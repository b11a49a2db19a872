package rawstoretest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"tapline"
)

// errStopScan ends a row scan early in these tests.
var errStopScan = errors.New("stop the scan")

// scanHits returns the hits ScanHitRows delivers, stopping after limit
// (0: all) of them.
func scanHits(t *testing.T, s tapline.RawStore, app int64, from, to time.Time, after tapline.RowPos, limit int) []*tapline.Hit {
	t.Helper()
	var out []*tapline.Hit
	err := s.ScanHitRows(t.Context(), app, from, to, after, func(h *tapline.Hit) error {
		c := *h // fn must not keep h
		out = append(out, &c)
		if limit > 0 && len(out) == limit {
			return errStopScan
		}
		return nil
	})
	if err != nil && (!errors.Is(err, errStopScan) || limit == 0) {
		t.Fatalf("ScanHitRows(after %+v): %v", after, err)
	}
	return out
}

func scanEvents(t *testing.T, s tapline.RawStore, app int64, from, to time.Time, after tapline.RowPos, limit int) []*tapline.Event {
	t.Helper()
	var out []*tapline.Event
	err := s.ScanEventRows(t.Context(), app, from, to, after, func(e *tapline.Event) error {
		c := *e
		out = append(out, &c)
		if limit > 0 && len(out) == limit {
			return errStopScan
		}
		return nil
	})
	if err != nil && (!errors.Is(err, errStopScan) || limit == 0) {
		t.Fatalf("ScanEventRows(after %+v): %v", after, err)
	}
	return out
}

func hitPos(h *tapline.Hit) tapline.RowPos     { return tapline.RowPos{Time: h.Time, ID: h.ID} }
func eventPos(e *tapline.Event) tapline.RowPos { return tapline.RowPos{Time: e.Time, ID: e.ID} }

// scanRowsFixture puts n hits and n events of an app spread over the 20
// days before now (several week buckets, and more rows than a batch of
// either store), rows of the app just outside [from, to), and another
// app's rows inside it. It returns the app, the range and the ids of the
// rows inside it, sorted.
func scanRowsFixture(t *testing.T, s tapline.RawStore, n int) (app int64, from, to time.Time, hits, events []string) {
	t.Helper()
	now := base()
	app, other := appID(), appID()
	from, to = now.Add(-20*24*time.Hour), now
	step := to.Sub(from) / time.Duration(n)
	for i := range n {
		at := from.Add(time.Duration(i) * step) // from itself is in
		h := newHit(app, fmt.Sprintf("h-%05d-%x", i, (i*7919)%1000), "fp", at)
		mustPutHit(t, s, h)
		hits = append(hits, h.ID)
		e := newEvent(app, fmt.Sprintf("e-%05d-%x", i, (i*104729)%1000), tapline.KindOpen, "fp", at)
		mustPutEvent(t, s, e)
		events = append(events, e.ID)
	}
	for _, at := range []time.Time{from.Add(-time.Millisecond), to} { // just outside [from, to)
		mustPutHit(t, s, newHit(app, "h-out-"+at.Format(time.RFC3339Nano), "fp", at))
		mustPutEvent(t, s, newEvent(app, "e-out-"+at.Format(time.RFC3339Nano), tapline.KindOpen, "fp", at))
	}
	mustPutHit(t, s, newHit(other, "h-other", "fp", now.Add(-time.Hour)))
	mustPutEvent(t, s, newEvent(other, "e-other", tapline.KindOpen, "fp", now.Add(-time.Hour)))
	slices.Sort(hits)
	slices.Sort(events)
	return app, from, to, hits, events
}

// testScanRows checks that a row scan delivers exactly the app's rows of
// the range, each once, and that one resumed after any row it delivered
// goes on exactly as the whole scan did.
func testScanRows(t *testing.T, s tapline.RawStore) {
	const n = 1300
	app, from, to, wantHits, wantEvents := scanRowsFixture(t, s, n)

	all := scanHits(t, s, app, from, to, tapline.RowPos{}, 0)
	got := hitIDs(all)
	sorted := slices.Sorted(slices.Values(got))
	want(t, "hit ids scanned (sorted)", sorted, wantHits)
	if len(slices.Compact(sorted)) != len(got) {
		t.Errorf("the scan delivered a hit twice")
	}
	allEvents := scanEvents(t, s, app, from, to, tapline.RowPos{}, 0)
	gotEvents := eventIDs(allEvents)
	want(t, "event ids scanned (sorted)", slices.Sorted(slices.Values(gotEvents)), wantEvents)
	if !slices.Equal(eventIDs(scanEvents(t, s, app, from, to, tapline.RowPos{}, 0)), gotEvents) {
		t.Errorf("two scans of the same events came in different orders")
	}

	for _, k := range []int{1, 2, 511, 512, 513, 1000, n - 1, n} {
		t.Run(fmt.Sprintf("resume after %d", k), func(t *testing.T) {
			first := scanHits(t, s, app, from, to, tapline.RowPos{}, k)
			if len(first) != k {
				t.Fatalf("stopped after %d hits, want %d", len(first), k)
			}
			rest := scanHits(t, s, app, from, to, hitPos(first[k-1]), 0)
			want(t, "hits of the two scans", append(hitIDs(first), hitIDs(rest)...), got)
			firstE := scanEvents(t, s, app, from, to, tapline.RowPos{}, k)
			restE := scanEvents(t, s, app, from, to, eventPos(firstE[k-1]), 0)
			want(t, "events of the two scans", append(eventIDs(firstE), eventIDs(restE)...), gotEvents)
		})
	}

	t.Run("narrower range", func(t *testing.T) {
		lo, hi := from.Add(3*24*time.Hour), from.Add(10*24*time.Hour)
		var inRange []string
		for _, h := range all {
			if !h.Time.Before(lo) && h.Time.Before(hi) {
				inRange = append(inRange, h.ID)
			}
		}
		want(t, "hits of [from+3d, from+10d)", hitIDs(scanHits(t, s, app, lo, hi, tapline.RowPos{}, 0)), inRange)
		// A position outside the range: before it starts the range over,
		// after it ends it.
		want(t, "hits after a position before the range", hitIDs(scanHits(t, s, app, lo, hi, hitPos(all[0]), 0)), slices.DeleteFunc(slices.Clone(inRange), func(id string) bool { return id == all[0].ID }))
		if got := scanHits(t, s, app, lo, hi, tapline.RowPos{Time: hi.Add(30 * 24 * time.Hour), ID: "zzz"}, 0); len(got) != 0 {
			t.Errorf("a scan resumed past the range delivered %d hits", len(got))
		}
	})

	t.Run("empty range", func(t *testing.T) {
		if got := scanHits(t, s, app, to, from, tapline.RowPos{}, 0); len(got) != 0 {
			t.Errorf("[to, from) delivered %d hits", len(got))
		}
		if got := scanEvents(t, s, app, from, from, tapline.RowPos{}, 0); len(got) != 0 {
			t.Errorf("[from, from) delivered %d events", len(got))
		}
	})

	t.Run("fn uses the store", func(t *testing.T) {
		seen := 0
		err := s.ScanHitRows(t.Context(), app, from, to, tapline.RowPos{}, func(h *tapline.Hit) error {
			if seen++; seen%100 == 0 {
				if _, err := s.Hit(t.Context(), app, h.ID); err != nil {
					return err
				}
				mustPutHit(t, s, newHit(app, fmt.Sprintf("h-during-%d", seen), "fp", to.Add(time.Hour)))
			}
			return nil
		})
		if err != nil || seen != n {
			t.Errorf("scan with reads and writes in fn: %d hits, %v; want %d", seen, err, n)
		}
	})

	t.Run("fn's error", func(t *testing.T) {
		boom := errors.New("boom")
		err := s.ScanEventRows(t.Context(), app, from, to, tapline.RowPos{}, func(*tapline.Event) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("ScanEventRows returned %v, want fn's error", err)
		}
	})
}

// testScanRowsResumeAfterErased resumes a scan after a row that was
// erased meanwhile, and after DeleteBefore hid the rows before it.
func testScanRowsResumeAfterErased(t *testing.T, s tapline.RawStore) {
	ctx, now := t.Context(), base()
	app := appID()
	from, to := now.Add(-10*24*time.Hour), now
	for i := range 40 {
		h := newHit(app, fmt.Sprintf("h-%02d", i), "fp", from.Add(time.Duration(i)*6*time.Hour))
		if i == 17 {
			h.AdID = erasedAdID
		}
		mustPutHit(t, s, h)
	}
	all := scanHits(t, s, app, from, to, tapline.RowPos{}, 0)
	at := slices.IndexFunc(all, func(h *tapline.Hit) bool { return h.AdID == erasedAdID })
	if len(all) != 40 || at < 0 {
		t.Fatalf("scanned %d hits (erased one at %d), want 40", len(all), at)
	}
	if _, err := s.EraseDevice(ctx, &tapline.Erasure{AppID: app, AdIDs: []string{erasedAdID}}); err != nil {
		t.Fatalf("EraseDevice: %v", err)
	}
	want(t, "hits after the erased one", hitIDs(scanHits(t, s, app, from, to, hitPos(all[at]), 0)), hitIDs(all[at+1:]))

	cut := from.Add(5 * 24 * time.Hour)
	if err := s.DeleteBefore(ctx, app, cut); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	var kept []string
	for _, h := range all[at+1:] {
		if !h.Time.Before(cut) {
			kept = append(kept, h.ID)
		}
	}
	want(t, "hits after the erased one, past the cut-off", hitIDs(scanHits(t, s, app, from, to, hitPos(all[at]), 0)), kept)
}
