package pebble

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

const day = 24 * time.Hour

// mustOpenClockedStore opens a raw store whose funnel state writes read
// the returned clock, which starts at now.
func mustOpenClockedStore(tb testing.TB, now time.Time) (*RawStore, *atomic.Int64) {
	tb.Helper()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	s := NewRawStore(tb.TempDir())
	s.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	if err := s.Open(); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, &clock
}

// funnelState returns the state of an installation after the changes made
// by the records at positions bys, one step further with each.
func funnelState(app int64, install string, at time.Time, bys ...string) *tapline.FunnelState {
	fs := &tapline.FunnelState{AppID: app, InstallID: install, Outcomes: map[int64]tapline.FunnelOutcome{}, UpdatedAt: at}
	for i, by := range bys {
		to := tapline.FunnelOutcome{Breakdown: "ios", Steps: make([]int64, i+1)}
		fs.History = append(fs.History, tapline.FunnelChange{By: by, Changes: []tapline.FunnelVersionChange{{Version: 1, From: fs.Outcomes[1], To: to}}})
		fs.Outcomes[1] = to
	}
	return fs
}

// putAt stores fs with the store's clock at at.
func putAt(tb testing.TB, s *RawStore, clock *atomic.Int64, at time.Time, fs *tapline.FunnelState) {
	tb.Helper()
	clock.Store(at.UnixNano())
	if err := s.PutFunnelState(tb.Context(), fs); err != nil {
		tb.Fatalf("PutFunnelState(%s) at %v: %v", fs.InstallID, at, err)
	}
}

// storedStates returns the install ids of the app's stored funnel states,
// hidden or not, and the week index: install id → week of its entry. An
// install with two entries fails the test.
func storedStates(tb testing.TB, s *RawStore, appID int64) ([]string, map[string]int64) {
	tb.Helper()
	var ids []string
	index := map[string]int64{}
	for _, space := range []byte{spaceFunnelState, spaceFunnelWeek} {
		lo := appKey(space, appID)
		it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			tb.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			rest := it.Key()[len(lo):]
			if space == spaceFunnelState {
				id, _, err := readString(rest)
				if err != nil {
					tb.Fatal(err)
				}
				ids = append(ids, id)
				continue
			}
			id, _, err := readString(rest[8:])
			if err != nil {
				tb.Fatal(err)
			}
			if w, ok := index[id]; ok {
				tb.Errorf("install %s has index entries in weeks %d and %d", id, w, readInt64(rest))
			}
			index[id] = readInt64(rest)
		}
		if err := it.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return ids, index
}

func week(t time.Time) int64 { return floorDiv(t.UnixNano(), int64(BucketWidth)) }

// TestFunnelStateExpiry writes states at several times and checks that
// DeleteBefore drops exactly those last written before its cut-off in weeks
// wholly before it, hides those of the cut-off's week, keeps the rest, and
// moves no index entry of a state it keeps.
func TestFunnelStateExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, clock := mustOpenClockedStore(t, now)
	const app, other = 3, 4
	// The cut-off lies 3 days into its week, so the week holds states on
	// both sides of it.
	cut := time.Unix(0, week(now.Add(-60*day))*int64(BucketWidth)).UTC().Add(3 * day)

	at := map[string]time.Time{
		"old1":      now.Add(-90 * day),
		"old2":      now.Add(-80 * day),
		"rewritten": now.Add(-90 * day),
		"hidden":    cut.Add(-time.Hour), // the cut-off's week, before it
		"after":     cut.Add(time.Hour),  // the cut-off's week, after it
		"young":     now.Add(-10 * day),
	}
	want := map[string]*tapline.FunnelState{}
	for id, when := range at {
		want[id] = funnelState(app, id, when, "events/0/1")
		putAt(t, s, clock, when, want[id])
	}
	otherOld := funnelState(other, "old1", at["old1"], "events/0/1")
	putAt(t, s, clock, at["old1"], otherOld)
	// Written again yesterday: its expiry counts from then.
	want["rewritten"] = funnelState(app, "rewritten", now.Add(-day), "events/0/1", "events/0/2")
	putAt(t, s, clock, now.Add(-day), want["rewritten"])
	at["rewritten"] = now.Add(-day)
	// As a DeleteBefore that walked the index before the rewrite sees it:
	// its entry still in the old week. The state stays, the entry goes.
	if err := s.db.Set(funnelWeekKey(app, now.Add(-90*day).UnixNano(), "rewritten"), nil, pdb.Sync); err != nil {
		t.Fatal(err)
	}

	clock.Store(now.UnixNano())
	if err := s.DeleteBefore(ctx, app, cut); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	for id, w := range want {
		got, err := s.FunnelState(ctx, app, id)
		switch id {
		case "old1", "old2", "hidden":
			if tapline.ErrorCode(err) != tapline.ENOTFOUND {
				t.Errorf("FunnelState(%s) written %v, cut-off %v: %+v, %v; want %s", id, at[id], cut, got, err, tapline.ENOTFOUND)
			}
		default:
			if err != nil || !reflect.DeepEqual(got, w) {
				t.Errorf("FunnelState(%s) = %+v, %v; want %+v", id, got, err, w)
			}
		}
	}
	if got, err := s.FunnelState(ctx, other, "old1"); err != nil || !reflect.DeepEqual(got, otherOld) {
		t.Errorf("FunnelState of another app = %+v, %v; want it kept", got, err)
	}

	// The dropped states and their index entries are gone; "hidden" waits
	// for a later DeleteBefore. The index holds each stored state once,
	// in the week of its last write.
	ids, index := storedStates(t, s, app)
	if want := []string{"after", "hidden", "rewritten", "young"}; !slices.Equal(ids, want) {
		t.Errorf("stored states after DeleteBefore = %v, want %v", ids, want)
	}
	wantIndex := map[string]int64{}
	for _, id := range ids {
		wantIndex[id] = week(at[id])
	}
	if !maps.Equal(index, wantIndex) {
		t.Errorf("week index after DeleteBefore = %v, want %v", index, wantIndex)
	}
	if ids, index := storedStates(t, s, other); len(ids) != 1 || len(index) != 1 {
		t.Errorf("another app's states %v, index %v; want one of each", ids, index)
	}

	// A hidden state is absent for a conditional write: following it
	// conflicts, a first change creates the state afresh and moves its
	// index entry to this week.
	if err := s.PutFunnelState(ctx, funnelState(app, "hidden", now, "events/0/1", "events/0/2")); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("following a hidden state: %v, want %s", err, tapline.ECONFLICT)
	}
	fresh := funnelState(app, "hidden", now, "events/0/9")
	putAt(t, s, clock, now, fresh)
	if got, err := s.FunnelState(ctx, app, "hidden"); err != nil || !reflect.DeepEqual(got, fresh) {
		t.Errorf("FunnelState of a state created afresh = %+v, %v; want %+v", got, err, fresh)
	}
	if _, index := storedStates(t, s, app); index["hidden"] != week(now) {
		t.Errorf("week of the fresh state's index entry = %d, want %d", index["hidden"], week(now))
	}

	// The next week's DeleteBefore drops the cut-off week's hidden states,
	// and again only those.
	putAt(t, s, clock, cut.Add(-2*time.Hour), funnelState(app, "hidden2", cut.Add(-2*time.Hour), "events/0/1"))
	clock.Store(now.UnixNano())
	if err := s.DeleteBefore(ctx, app, cut); err != nil { // no later cut-off: hides, drops nothing more
		t.Fatalf("DeleteBefore again: %v", err)
	}
	if ids, _ := storedStates(t, s, app); !slices.Contains(ids, "hidden2") {
		t.Errorf("a state of the cut-off's week was dropped by a repeated DeleteBefore: %v", ids)
	}
	if err := s.DeleteBefore(ctx, app, cut.Add(7*day)); err != nil {
		t.Fatalf("DeleteBefore a week later: %v", err)
	}
	ids, index = storedStates(t, s, app)
	if want := []string{"hidden", "rewritten", "young"}; !slices.Equal(ids, want) {
		t.Errorf("stored states a week later = %v, want %v", ids, want)
	}
	if len(index) != 3 || index["hidden"] != week(now) || index["rewritten"] != week(at["rewritten"]) || index["young"] != week(at["young"]) {
		t.Errorf("week index a week later = %v", index)
	}
}

// TestFunnelStateDropAfterInterruption: states hidden by a watermark whose
// drop did not happen (a crash after the watermark's batch) are dropped by
// the next DeleteBefore, even one with an older cut-off.
func TestFunnelStateDropAfterInterruption(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, clock := mustOpenClockedStore(t, now)
	const app = 5
	putAt(t, s, clock, now.Add(-90*day), funnelState(app, "old", now.Add(-90*day), "events/0/1"))
	putAt(t, s, clock, now.Add(-day), funnelState(app, "young", now.Add(-day), "events/0/1"))
	clock.Store(now.UnixNano())

	// The watermark alone, as DeleteBefore's first batch leaves it.
	cut := now.Add(-60 * day)
	if err := s.db.Set(appKey(spaceWatermark, app), appendInt64(nil, cut.UnixNano()), pdb.Sync); err != nil {
		t.Fatal(err)
	}
	s.wmMu.Lock()
	s.wm[app] = cut.UnixNano()
	s.wmMu.Unlock()
	if _, err := s.FunnelState(ctx, app, "old"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("FunnelState behind the watermark: %v, want %s", err, tapline.ENOTFOUND)
	}
	if ids, _ := storedStates(t, s, app); len(ids) != 2 {
		t.Fatalf("stored states before the drop = %v, want both", ids)
	}

	if err := s.DeleteBefore(ctx, app, cut.Add(-30*day)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	ids, index := storedStates(t, s, app)
	if !slices.Equal(ids, []string{"young"}) || !maps.Equal(index, map[string]int64{"young": week(now.Add(-day))}) {
		t.Errorf("after DeleteBefore with an older cut-off: states %v, index %v; want young alone", ids, index)
	}
}

// TestFunnelStateFutureCutoff: a cut-off past the clock hides every state
// written before it, but the walk stops before the clock's week, whose
// index entries a concurrent write could be adding to.
func TestFunnelStateFutureCutoff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, clock := mustOpenClockedStore(t, now)
	const app = 6
	putAt(t, s, clock, now, funnelState(app, "i", now, "events/0/1"))
	if err := s.DeleteBefore(ctx, app, now.Add(30*day)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	if _, err := s.FunnelState(ctx, app, "i"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("FunnelState before a future cut-off: %v, want %s", err, tapline.ENOTFOUND)
	}
	if ids, index := storedStates(t, s, app); len(ids) != 1 || len(index) != 1 {
		t.Errorf("states %v, index %v; want the state kept until the clock's week has passed", ids, index)
	}
	clock.Store(now.Add(40 * day).UnixNano())
	if err := s.DeleteBefore(ctx, app, now); err != nil {
		t.Fatalf("DeleteBefore later: %v", err)
	}
	if ids, index := storedStates(t, s, app); len(ids) != 0 || len(index) != 0 {
		t.Errorf("states %v, index %v; want none", ids, index)
	}
}

// TestFunnelStateLegacyValue: a state stored as JSON alone, before states
// had a write time, counts as written at its UpdatedAt.
func TestFunnelStateLegacyValue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, clock := mustOpenClockedStore(t, now)
	const app = 7
	for _, fs := range []*tapline.FunnelState{
		funnelState(app, "old", now.Add(-90*day), "events/0/1"),
		funnelState(app, "young", now.Add(-day), "events/0/1"),
	} {
		v, err := json.Marshal(fs)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.Set(funnelStateKey(app, fs.InstallID), v, pdb.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteBefore(ctx, app, now.Add(-60*day)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	if _, err := s.FunnelState(ctx, app, "old"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("old legacy state: %v, want %s", err, tapline.ENOTFOUND)
	}
	next := funnelState(app, "young", now, "events/0/1", "events/0/2")
	putAt(t, s, clock, now, next)
	if got, err := s.FunnelState(ctx, app, "young"); err != nil || !reflect.DeepEqual(got, next) {
		t.Errorf("legacy state followed = %+v, %v; want %+v", got, err, next)
	}
	if _, index := storedStates(t, s, app); !maps.Equal(index, map[string]int64{"young": week(now)}) {
		t.Errorf("week index = %v, want young in this week", index)
	}
}

// TestFunnelStateDropConcurrentWrites drops more old states than one chunk
// while writers move half of them on: following the stored state, or, once
// it is hidden (ECONFLICT), creating it afresh. Every state a writer wrote
// stays with what it wrote, every other is dropped, and the index holds
// each stored state once, in the week of its write.
func TestFunnelStateDropConcurrentWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, clock := mustOpenClockedStore(t, now.Add(-90*day))
	const app, n = 8, 3 * dropChunk
	for i := range n {
		if err := s.PutFunnelState(ctx, funnelState(app, fmt.Sprint("i", i), now.Add(-90*day), "events/0/1")); err != nil {
			t.Fatalf("PutFunnelState: %v", err)
		}
	}
	clock.Store(now.UnixNano())

	wrote := make([]*tapline.FunnelState, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 8 { // half the states
				id := fmt.Sprint("i", i)
				wrote[i] = funnelState(app, id, now, "events/0/1", "events/0/2")
				err := s.PutFunnelState(ctx, wrote[i])
				if tapline.ErrorCode(err) == tapline.ECONFLICT {
					wrote[i] = funnelState(app, id, now, "events/0/9")
					err = s.PutFunnelState(ctx, wrote[i])
				}
				errs[i] = err
			}
		})
	}
	if err := s.DeleteBefore(ctx, app, now.Add(-60*day)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	wg.Wait()

	ids, index := storedStates(t, s, app)
	stored := map[string]bool{}
	for _, id := range ids {
		stored[id] = true
	}
	for i := range n {
		id := fmt.Sprint("i", i)
		if wrote[i] == nil {
			if stored[id] {
				t.Errorf("%s still stored, want it dropped", id)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("writing %s: %v", id, errs[i])
			continue
		}
		if got, err := s.FunnelState(ctx, app, id); err != nil || !reflect.DeepEqual(got, wrote[i]) {
			t.Errorf("FunnelState(%s) = %+v, %v; want what was written, %+v", id, got, err, wrote[i])
		}
		if index[id] != week(now) {
			t.Errorf("index entry of %s in week %d, want %d", id, index[id], week(now))
		}
	}
	if len(index) != len(ids) {
		t.Errorf("%d index entries for %d states", len(index), len(ids))
	}
}
