package funnels_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
	"tapline/funnels"
	"tapline/funnels/reference"
)

// compare checks every version's results against the reference over the
// raw data as it is now.
func (e *env) compare(fs ...*tapline.Funnel) {
	e.t.Helper()
	data := e.export()
	rdb := openReference(e.t)
	for _, f := range fs {
		want, err := reference.Run(context.Background(), rdb, data, &f.FunnelDefinition, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		if totalOf(want, 1) == 0 {
			e.t.Errorf("%s counts nobody: the test proves little", f.Name)
		}
		same(e.t, f.Name, e.results(f.VersionID), want)
	}
}

// wideFunnels are funnels most installations enter, so a crash test counts
// many rows: one per order mode, with an exclusion and breakdowns.
func (e *env) wideFunnels(prefix string) []*tapline.Funnel {
	e.t.Helper()
	defs := []tapline.FunnelDefinition{
		{Name: prefix + " ordered", Steps: []tapline.FunnelStep{{Kind: tapline.StepInstall}, {Kind: tapline.StepEvent, Event: "open"},
			{Kind: tapline.StepEvent, Event: "level", Filters: []tapline.FunnelFilter{{Param: "n", Op: tapline.OpGte, Value: "3"}}},
			{Kind: tapline.StepEvent, Event: "purchase"}},
			Exclusions: []tapline.FunnelExclusion{{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "level",
				Filters: []tapline.FunnelFilter{{Param: "n", Op: tapline.OpEq, Value: "max"}}}, After: 2, Before: 3}},
			Breakdown: tapline.FunnelBreakdown{Kind: tapline.BreakdownLink}},
		{Name: prefix + " strict", Order: tapline.OrderStrict, WindowSeconds: 86400,
			Steps:     []tapline.FunnelStep{{Kind: tapline.StepInstall}, {Kind: tapline.StepEvent, Event: "open"}, {Kind: tapline.StepEvent, Event: "level"}},
			Breakdown: tapline.FunnelBreakdown{Kind: tapline.BreakdownPlatform}},
		{Name: prefix + " any", Order: tapline.OrderAny, WindowSeconds: 3 * 86400,
			Steps:     []tapline.FunnelStep{{Kind: tapline.StepTap}, {Kind: tapline.StepEvent, Event: "purchase"}, {Kind: tapline.StepEvent, Event: "open"}},
			Breakdown: tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam, Param: "utm_source"}},
	}
	var out []*tapline.Funnel
	for _, d := range defs {
		out = append(out, e.create(d))
	}
	return out
}

// backfillingWide runs the pipeline over a population (seed, devices),
// creates the wide funnels and waits until they are backfilling.
func backfillingWide(t *testing.T, name string, seed uint64, devices int) (*env, []*tapline.Funnel) {
	t.Helper()
	e := newEnv(t, "funnel"+name)
	e.startMatcher()
	e.publish(e.population(seed, devices))
	e.drain()
	fs := e.wideFunnels(name)
	for _, f := range fs {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	return e, fs
}

// TestBackfillKilledAndShared kills backfills mid-scan (their uncommitted
// work is lost, as with kill -9), resumes them, and runs two processes on
// one backfill at once: the totals equal the reference.
func TestBackfillKilledAndShared(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	e, fs := backfillingWide(t, "kill", 11, 120)

	// Kill each backfill after its first commit, three times, then let one
	// finish. A killed run's other worker may finish a range in the moment
	// before the kill reaches it: with 32 ranges three runs cannot finish
	// them all.
	for _, f := range fs[:2] {
		for round := range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			var commits atomic.Int64
			b := funnels.Backfill{Raw: e.raw, Store: e.store, Workers: 2, Ranges: 32, CommitSize: 7, CommitEvery: 100 * time.Millisecond,
				Owner: fmt.Sprintf("killed-%d", round), Lease: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
				Progress: func(funnels.Stats) {
					if commits.Add(1) == 1 {
						cancel()
					}
				}}
			_, err := b.Run(ctx, f.VersionID)
			cancel()
			if err == nil {
				t.Fatalf("round %d: the backfill finished before it was killed", round)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if got := e.waitStatus(f.VersionID, tapline.FunnelBackfilling); got.RowsScanned == 0 {
			t.Errorf("%s: nothing committed before the kills", f.Name)
		}
		time.Sleep(250 * time.Millisecond) // the killed claims' leases run out
		e.backfill(f.VersionID)
	}

	// Two processes share the third backfill, one with commits of at
	// most 20 fact rows (its workers wait while a commit is written).
	var wg sync.WaitGroup
	stats := make([]funnels.Stats, 2)
	for i := range 2 {
		wg.Go(func() {
			b := funnels.Backfill{Raw: e.raw, Store: e.store, Workers: 2, Ranges: 16, CommitSize: 5,
				Owner: fmt.Sprintf("process-%d", i), Logger: slog.New(slog.DiscardHandler)}
			if i == 1 {
				b.CommitSize, b.CommitRows = 1000, 20
			}
			st, err := b.Run(context.Background(), fs[2].VersionID)
			if err != nil {
				t.Error(err)
			}
			stats[i] = st
		})
	}
	wg.Wait()
	if stats[0].Ranges == 0 || stats[1].Ranges == 0 {
		t.Logf("one process did all the work: %+v", stats)
	}
	if stats[0].Ranges+stats[1].Ranges != 16 {
		t.Errorf("the processes finished %d and %d ranges, want 16 together", stats[0].Ranges, stats[1].Ranges)
	}
	for _, f := range fs {
		e.waitStatus(f.VersionID, tapline.FunnelLive)
	}
	e.stopMatcher()
	e.compare(fs...)
}

// TestMatcherKilledDuringHandoff kills the matcher around a handoff and in
// the middle of live counting, several times, while data flows and the
// backfills run; the totals equal the reference.
func TestMatcherKilledDuringHandoff(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	e := newEnv(t, "funnelcrash")
	msgs := e.population(13, 140)
	quarter := len(msgs) / 4
	e.startMatcher()
	e.publish(msgs[:quarter])
	e.drain()

	// A funnel created and the matcher killed at once: its handoff may or
	// may not have been stored.
	first := e.wideFunnels("crash a")
	time.Sleep(20 * time.Millisecond)
	e.crashMatcher()
	e.startMatcher()
	e.publish(msgs[quarter : 2*quarter])
	for _, f := range first {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}

	// Killed in the middle of live counting: funnel states written, their
	// deltas not flushed; the restarted matcher replays them.
	e.publish(msgs[2*quarter : 3*quarter])
	time.Sleep(30 * time.Millisecond)
	e.crashMatcher()
	e.startMatcher()
	e.backfill(versionIDs(first)...)

	second := e.wideFunnels("crash b")
	e.publish(msgs[3*quarter:])
	time.Sleep(50 * time.Millisecond)
	e.crashMatcher()
	e.startMatcher()
	for _, f := range second {
		e.waitStatus(f.VersionID, tapline.FunnelBackfilling)
	}
	e.backfill(versionIDs(second)...)
	e.drain()
	e.stopMatcher()
	for _, f := range append(first, second...) {
		e.waitStatus(f.VersionID, tapline.FunnelLive)
	}
	e.compare(append(first, second...)...)
}

// TestEditDuringBackfill edits a funnel while its backfill runs: the old
// version is cancelled and its results dropped, the new one backfills and
// goes live equal to the reference; an edit of a live funnel keeps the
// old version live until the new one is.
func TestEditDuringBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	ctx := context.Background()
	e := newEnv(t, "funneledit")
	e.startMatcher()
	e.publish(e.population(17, 100))
	e.drain()
	f := e.wideFunnels("edit")[0]
	e.waitStatus(f.VersionID, tapline.FunnelBackfilling)

	// A slow backfill of version 1, edited half way.
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var once sync.Once
	edited := make(chan *tapline.Funnel, 1)
	b := funnels.Backfill{Raw: e.raw, Store: e.store, Workers: 1, Ranges: 8, CommitSize: 3, Rate: 400,
		Logger: slog.New(slog.DiscardHandler),
		Progress: func(funnels.Stats) {
			once.Do(func() {
				def := f.FunnelDefinition
				def.Order = tapline.OrderAny
				def.Exclusions = nil
				g, err := e.store.EditFunnel(ctx, f.ID, def)
				if err != nil {
					t.Error(err)
				}
				edited <- g
			})
		}}
	go func() { _, err := b.Run(bctx, f.VersionID); done <- err }()
	g := <-edited
	if err := <-done; tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Fatalf("the backfill of the edited version ended with %v, want ECONFLICT", err)
	}
	if old := e.waitStatus(f.VersionID, tapline.FunnelCancelled); old.Status != tapline.FunnelCancelled {
		t.Fatal(old.Status)
	}
	if rows := e.results(f.VersionID); len(rows) != 0 {
		t.Errorf("the cancelled version kept %d result rows", len(rows))
	}
	e.waitStatus(g.VersionID, tapline.FunnelBackfilling)
	e.backfill(g.VersionID)
	e.waitStatus(g.VersionID, tapline.FunnelLive)

	// Editing the live version: it stays live until the new one is.
	def := g.FunnelDefinition
	def.WindowSeconds = 3600
	h, err := e.store.EditFunnel(ctx, g.ID, def)
	if err != nil {
		t.Fatal(err)
	}
	if cur := e.waitStatus(g.VersionID, tapline.FunnelLive); cur.Status != tapline.FunnelLive {
		t.Fatal(cur.Status)
	}
	e.waitStatus(h.VersionID, tapline.FunnelBackfilling)
	e.backfill(h.VersionID)
	e.waitStatus(h.VersionID, tapline.FunnelLive)
	e.waitStatus(g.VersionID, tapline.FunnelSuperseded)
	e.stopMatcher()
	g.Name, h.Name = "edit v2", "edit v3"
	e.compare(g, h)
}

// A process commits the ranges it scanned between two commits together:
// with room for every installation, one worker backfills 16 ranges in at
// most two commits (it asks for one when it claims the last range, which
// may be done before the committer gets to it); the totals equal the
// reference.
func TestBackfillCommitsAcrossRanges(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	e, fs := backfillingWide(t, "across", 5, 60)
	for _, f := range fs {
		b := funnels.Backfill{Raw: e.raw, Store: e.store, Workers: 1, Ranges: 16, CommitSize: 1 << 30, CommitEvery: 20 * time.Second,
			Logger: slog.New(slog.DiscardHandler)}
		st, err := b.Run(t.Context(), f.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Commits < 1 || st.Commits > 2 || st.Ranges != 16 || st.Installations == 0 {
			t.Errorf("%s: %+v, want 16 ranges in 1 or 2 commits", f.Name, st)
		}
		e.waitStatus(f.VersionID, tapline.FunnelLive)
	}
	e.stopMatcher()
	e.compare(fs...)
}
