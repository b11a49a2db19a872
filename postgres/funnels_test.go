package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

type funnelFixture struct {
	db    *postgres.DB
	store *postgres.FunnelStore
	facts *postgres.FactStore
	app   *tapline.App
	links []*tapline.Link
}

func newFunnelFixture(t *testing.T, name string) *funnelFixture {
	t.Helper()
	s, db := newService(t)
	acct := newAccount(t, s, name)
	f := &funnelFixture{db: db, store: postgres.NewFunnelStore(db), facts: postgres.NewFactStore(db), app: newApp(t, s, acct.ID, "app")}
	for _, slug := range []string{name + "-a", name + "-b"} {
		l := &tapline.Link{AppID: f.app.ID, Slug: slug, Name: slug}
		if err := s.CreateLink(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		f.links = append(f.links, l)
	}
	return f
}

func validDefinition(name string) tapline.FunnelDefinition {
	return tapline.FunnelDefinition{Name: name, Steps: []tapline.FunnelStep{
		{Kind: tapline.StepTap}, {Kind: tapline.StepInstall}, {Kind: tapline.StepEvent, Event: "purchase",
			Filters: []tapline.FunnelFilter{{Param: "revenue", Op: tapline.OpGt, Value: "0"}}},
	}}
}

// complete stores a handoff for every one of n partitions of version v.
func (f *funnelFixture) complete(t *testing.T, v int64, n int) {
	t.Helper()
	var hs []tapline.FunnelHandoff
	for i := range n {
		hs = append(hs, tapline.FunnelHandoff{VersionID: v, Partition: tapline.Partition{Topic: "events", Partition: i}, Offset: int64(10 * i), Of: n})
	}
	if err := f.facts.ApplyFacts(context.Background(), "matcher", nil, nil, tapline.FlushRows{Handoffs: hs}); err != nil {
		t.Fatal(err)
	}
}

func (f *funnelFixture) status(t *testing.T, v int64) tapline.FunnelStatus {
	t.Helper()
	fv, err := f.store.FunnelVersion(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	return fv.Status
}

func TestFunnelDefinitionsInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelbad")
	long := strings.Repeat("x", 101)
	step := func(s tapline.FunnelStep) []tapline.FunnelStep {
		return []tapline.FunnelStep{{Kind: tapline.StepInstall}, s}
	}
	cases := []struct {
		name string
		def  tapline.FunnelDefinition
		want string // in the message
	}{
		{"no name", tapline.FunnelDefinition{Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall})}, "name"},
		{"long name", tapline.FunnelDefinition{Name: long, Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall})}, "name"},
		{"one step", tapline.FunnelDefinition{Name: "x", Steps: []tapline.FunnelStep{{Kind: tapline.StepInstall}}}, "steps"},
		{"21 steps", tapline.FunnelDefinition{Name: "x", Steps: make([]tapline.FunnelStep, 21)}, "steps"},
		{"no kind", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{})}, "step 2: kind"},
		{"bad kind", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: "click"})}, "step 2: kind"},
		{"event without name", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepEvent})}, "step 2"},
		{"foreign link", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepTap, Links: []int64{999999}})}, "step 2: link 999999"},
		{"bad op", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
			Filters: []tapline.FunnelFilter{{Param: "p", Op: "like", Value: "1"}}})}, "step 2: filter 1: op"},
		{"not a number", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
			Filters: []tapline.FunnelFilter{{Param: "p", Op: tapline.OpGt, Value: "ten"}}})}, "step 2: filter 1"},
		{"revenue as a string", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
			Filters: []tapline.FunnelFilter{{Param: "revenue", Op: tapline.OpEq, Value: "1"}}})}, "revenue"},
		{"empty in", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e",
			Filters: []tapline.FunnelFilter{{Param: "p", Op: tapline.OpIn}}})}, "step 2: filter 1"},
		{"short window", tapline.FunnelDefinition{Name: "x", WindowSeconds: 30, Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall})}, "window_seconds"},
		{"window past retention", tapline.FunnelDefinition{Name: "x", WindowSeconds: 61 * 86400, Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall})}, "retention"},
		{"bad order", tapline.FunnelDefinition{Name: "x", Order: "random", Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall})}, "order"},
		{"exclusion out of range", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall}),
			Exclusions: []tapline.FunnelExclusion{{FunnelStep: tapline.FunnelStep{Kind: tapline.StepEvent, Event: "e"}, After: 2, Before: 3}}}, "exclusion 1"},
		{"tap exclusion", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall}),
			Exclusions: []tapline.FunnelExclusion{{FunnelStep: tapline.FunnelStep{Kind: tapline.StepTap}, After: 1, Before: 2}}}, "exclusion 1"},
		{"breakdown without param", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall}),
			Breakdown: tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam}}, "breakdown"},
		{"bad breakdown", tapline.FunnelDefinition{Name: "x", Steps: step(tapline.FunnelStep{Kind: tapline.StepInstall}),
			Breakdown: tapline.FunnelBreakdown{Kind: "country"}}, "breakdown"},
	}
	for _, c := range cases {
		_, err := f.store.CreateFunnel(ctx, f.app.ID, c.def)
		if tapline.ErrorCode(err) != tapline.EINVALID || !strings.Contains(tapline.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want EINVALID naming %q", c.name, err, c.want)
		}
	}
	if fs, err := f.store.FunnelsByApp(ctx, f.app.ID); err != nil || len(fs) != 0 {
		t.Errorf("after the invalid definitions: %d funnels (%v), want none", len(fs), err)
	}
	if _, err := f.store.CreateFunnel(ctx, 999999, validDefinition("x")); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("unknown app: %v, want ENOTFOUND", err)
	}
}

func TestFunnelVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelvers")
	v1, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("Spring"))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.Status != tapline.FunnelPending || v1.Order != tapline.OrderOrdered || v1.WindowSeconds != 14*86400 {
		t.Fatalf("created %+v", v1)
	}
	if _, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition(" spring ")); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("a second funnel named spring: %v, want ECONFLICT", err)
	}

	// The handoff completes only with every partition.
	first := tapline.FunnelHandoff{VersionID: v1.VersionID, Partition: tapline.Partition{Topic: "events", Partition: 0}, Offset: 7, Of: 4}
	if err := f.facts.ApplyFacts(ctx, "matcher", nil, nil, tapline.FlushRows{Handoffs: []tapline.FunnelHandoff{first}}); err != nil {
		t.Fatal(err)
	}
	if s := f.status(t, v1.VersionID); s != tapline.FunnelPending {
		t.Fatalf("with 1 of 4 handoff rows: %s", s)
	}
	var hs []tapline.FunnelHandoff
	for i := range 3 {
		hs = append(hs, tapline.FunnelHandoff{VersionID: v1.VersionID, Partition: tapline.Partition{Topic: "hits", Partition: i}, Offset: 5, Of: 4})
	}
	if err := f.facts.ApplyFacts(ctx, "matcher", nil, nil, tapline.FlushRows{Handoffs: hs}); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.FunnelVersion(ctx, v1.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tapline.FunnelBackfilling || len(got.Handoff) != 4 || got.Handoff[tapline.Partition{Topic: "hits", Partition: 2}] != 5 {
		t.Fatalf("after 4 of 4 handoff rows: %s %v", got.Status, got.Handoff)
	}

	// Backfill it to live.
	finish(t, f, v1.VersionID)
	if s := f.status(t, v1.VersionID); s != tapline.FunnelLive {
		t.Fatalf("after its ranges: %s", s)
	}

	// An edit is a new version; the live one stays live until it is.
	def := validDefinition("Spring sale")
	def.Order = tapline.OrderAny
	v2, err := f.store.EditFunnel(ctx, v1.ID, def)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.ID != v1.ID || v2.Status != tapline.FunnelPending || f.status(t, v1.VersionID) != tapline.FunnelLive {
		t.Fatalf("edit: %+v, v1 %s", v2, f.status(t, v1.VersionID))
	}
	// Edited again before it is live: version 2 is cancelled.
	v3, err := f.store.EditFunnel(ctx, v1.ID, def)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.status(t, v2.VersionID); s != tapline.FunnelCancelled {
		t.Errorf("version 2 after a second edit: %s", s)
	}
	active, err := f.store.ActiveFunnels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, a := range active {
		ids = append(ids, a.VersionID)
	}
	if len(ids) != 2 || ids[0] != v1.VersionID || ids[1] != v3.VersionID {
		t.Errorf("active versions %v, want %d and %d", ids, v1.VersionID, v3.VersionID)
	}
	f.complete(t, v3.VersionID, 2)
	finish(t, f, v3.VersionID)
	if s := f.status(t, v1.VersionID); s != tapline.FunnelSuperseded {
		t.Errorf("version 1 once version 3 is live: %s", s)
	}
	vs, err := f.store.FunnelVersions(ctx, v1.ID)
	if err != nil || len(vs) != 3 || vs[0].Version != 3 || vs[0].Name != "Spring sale" {
		t.Fatalf("versions: %v %v", vs, err)
	}
	list, err := f.store.FunnelsByApp(ctx, f.app.ID)
	if err != nil || len(list) != 1 || list[0].VersionID != v3.VersionID || list[0].Progress != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}

	// Cancel and restart.
	v4, err := f.store.EditFunnel(ctx, v1.ID, validDefinition("Spring sale"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CancelFunnel(ctx, v1.ID); err != nil {
		t.Fatal(err)
	}
	if s := f.status(t, v4.VersionID); s != tapline.FunnelCancelled || f.status(t, v3.VersionID) != tapline.FunnelLive {
		t.Errorf("after cancel: v4 %s, v3 %s", s, f.status(t, v3.VersionID))
	}
	if _, err := f.store.CancelFunnel(ctx, v1.ID); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("cancelling a cancelled version: %v, want ECONFLICT", err)
	}
	v5, err := f.store.RestartFunnel(ctx, v1.ID)
	if err != nil || v5.Version != 5 || v5.Status != tapline.FunnelPending {
		t.Fatalf("restart: %+v %v", v5, err)
	}

	// Delete: gone, results dropped.
	key := tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: tapline.HourOf(time.Now()), AppID: f.app.ID, Funnel: v3.VersionID, Step: 1}
	if err := f.facts.ApplyFacts(ctx, "x", map[tapline.FactKey]tapline.FactValue{key: {Count: 3}}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteFunnel(ctx, v1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Funnel(ctx, v1.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("deleted funnel: %v, want ENOTFOUND", err)
	}
	if err := f.store.DeleteFunnel(ctx, v1.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("deleting twice: %v, want ENOTFOUND", err)
	}
	if active, _ := f.store.ActiveFunnels(ctx); len(active) != 0 {
		t.Errorf("%d active versions after the delete", len(active))
	}
	rows, err := postgres.NewReports(f.db).FunnelRows(ctx, tapline.ResultsFilter{AppID: f.app.ID, VersionID: v3.VersionID,
		From: time.Now().Add(-48 * time.Hour), To: time.Now().Add(48 * time.Hour)})
	if err != nil || len(rows) != 0 {
		t.Errorf("results of a deleted funnel: %v %v", rows, err)
	}
	// Its name is free again.
	if _, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("spring sale")); err != nil {
		t.Errorf("reusing a deleted funnel's name: %v", err)
	}
}

// finish claims and commits every range of a backfilling version.
func finish(t *testing.T, f *funnelFixture, v int64) {
	t.Helper()
	ctx := context.Background()
	if err := f.store.CreateRanges(ctx, v, 4); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := f.store.ClaimRange(ctx, v, "w", time.Minute)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return
		} else if err != nil {
			t.Fatal(err)
		}
		if err := f.store.CommitBackfill(ctx, &tapline.BackfillCommit{VersionID: v, Owner: "w",
			Steps: []tapline.BackfillStep{{Range: r.Range, From: r.Cursor, To: r.End, Done: true}}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackfillRanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelranges")
	v, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateRanges(ctx, v.VersionID, 4); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("ranges before the handoff: %v, want ECONFLICT", err)
	}
	f.complete(t, v.VersionID, 2)
	for range 2 { // idempotent
		if err := f.store.CreateRanges(ctx, v.VersionID, 4); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := f.store.Ranges(ctx, v.VersionID)
	if err != nil || len(rs) != 4 || rs[0].Start != -1<<63 || rs[3].End != 1<<63-1 || rs[1].Start != rs[0].End {
		t.Fatalf("ranges %v %v", rs, err)
	}

	// Concurrent claimers get distinct ranges. Their leases are long enough
	// that none runs out while the others claim on a loaded machine (one
	// that ran out could be taken over, rightly), short enough to wait out
	// below.
	const lease = 2 * time.Second
	var mu sync.Mutex
	claimed := map[int]string{}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			owner := string(rune('a' + i))
			r, err := f.store.ClaimRange(ctx, v.VersionID, owner, lease)
			if tapline.ErrorCode(err) == tapline.ENOTFOUND {
				return
			} else if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := claimed[r.Range]; ok {
				t.Errorf("range %d claimed by %s and %s", r.Range, prev, owner)
			}
			claimed[r.Range] = owner
		})
	}
	wg.Wait()
	if len(claimed) != 4 {
		t.Fatalf("claimed %v, want 4 ranges", claimed)
	}

	// A commit moves the cursor with its deltas; a stale or foreign one is
	// refused and applies nothing.
	owner := claimed[0]
	key := tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: tapline.HourOf(time.Now()), AppID: f.app.ID, Funnel: v.VersionID, Breakdown: "x", Step: 1}
	commit := func(who string, from, to int64, n int64) error {
		return f.store.CommitBackfill(ctx, &tapline.BackfillCommit{VersionID: v.VersionID, Owner: who,
			Steps:  []tapline.BackfillStep{{Range: 0, From: from, To: to, Rows: 10, Installations: n}},
			Deltas: map[tapline.FactKey]tapline.FactValue{key: {Count: n}}}, time.Minute)
	}
	if err := commit(owner, rs[0].Start, -100, 2); err != nil {
		t.Fatal(err)
	}
	if err := commit(owner, rs[0].Start, -50, 5); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("a commit from a stale cursor: %v, want ECONFLICT", err)
	}
	if err := commit("intruder", -100, -50, 7); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("a commit by another owner: %v, want ECONFLICT", err)
	}
	// A lease that runs out lets another worker take the range over.
	time.Sleep(lease + 100*time.Millisecond)
	r, err := f.store.ClaimRange(ctx, v.VersionID, "heir", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cursor == r.Start && r.Range == 0 {
		t.Errorf("range 0 taken over from its start, not its cursor")
	}
	if r.Range == 0 {
		if err := commit(owner, -100, -50, 9); tapline.ErrorCode(err) != tapline.ECONFLICT {
			t.Errorf("the old owner after the takeover: %v, want ECONFLICT", err)
		}
	}
	rows, err := postgres.NewReports(f.db).FunnelRows(ctx, tapline.ResultsFilter{AppID: f.app.ID, VersionID: v.VersionID,
		From: time.Now().Add(-48 * time.Hour), To: time.Now().Add(48 * time.Hour)})
	if err != nil || len(rows) != 1 || rows[0].Count != 2 || rows[0].Breakdown != "x" {
		t.Errorf("results %+v %v, want the one committed count of 2", rows, err)
	}
	got, err := f.store.FunnelVersion(ctx, v.VersionID)
	if err != nil || got.RowsScanned != 10 || got.Progress <= 0 || got.Progress >= 1 || got.RowsEstimated < 10 {
		t.Errorf("progress %+v %v", got, err)
	}

	// A cancelled version takes no more commits.
	if _, err := f.store.CancelFunnel(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ClaimRange(ctx, v.VersionID, "late", time.Minute); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("claim on a cancelled version: %v, want ENOTFOUND", err)
	}
}

// A claim takes one range, also among many versions' ranges, where a join
// with the picking subquery could be planned to re-run it per row.
func TestClaimRangeTakesOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelclaim")
	var last int64
	for i := range 4 {
		v, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("claim "+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		f.complete(t, v.VersionID, 2)
		if err := f.store.CreateRanges(ctx, v.VersionID, 64); err != nil {
			t.Fatal(err)
		}
		last = v.VersionID
	}
	for i := range 3 {
		if _, err := f.store.ClaimRange(ctx, last, "w", time.Minute); err != nil {
			t.Fatal(err)
		}
		rs, err := f.store.Ranges(ctx, last)
		if err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, r := range rs {
			if r.Owner != "" {
				held++
			}
		}
		if held != i+1 {
			t.Fatalf("after %d claims %d ranges are held", i+1, held)
		}
	}
}

// Two matchers storing their halves of a handoff at the same moment: the
// version completes (each transaction alone sees only its own half).
func TestConcurrentHandoffsComplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelhalves")
	for round := range 10 {
		v, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("halves "+string(rune('a'+round))))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for half := range 2 {
			wg.Go(func() {
				var hs []tapline.FunnelHandoff
				for p := range 4 {
					hs = append(hs, tapline.FunnelHandoff{VersionID: v.VersionID, Partition: tapline.Partition{Topic: "events", Partition: half*4 + p}, Offset: 1, Of: 8})
				}
				if err := f.facts.ApplyFacts(ctx, "matcher-"+string(rune('a'+half)), nil, nil, tapline.FlushRows{Handoffs: hs}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if s := f.status(t, v.VersionID); s != tapline.FunnelBackfilling {
			t.Fatalf("round %d: %s after both halves of the handoff", round, s)
		}
	}
}

// One commit moves several ranges of its owner together, or none of them.
func TestCommitBackfillSeveralRanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFunnelFixture(t, "funnelmulti")
	v, err := f.store.CreateFunnel(ctx, f.app.ID, validDefinition("multi"))
	if err != nil {
		t.Fatal(err)
	}
	f.complete(t, v.VersionID, 2)
	if err := f.store.CreateRanges(ctx, v.VersionID, 3); err != nil {
		t.Fatal(err)
	}
	var held []*tapline.BackfillRange
	for range 2 {
		r, err := f.store.ClaimRange(ctx, v.VersionID, "w", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	key := tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: tapline.HourOf(time.Now()), AppID: f.app.ID, Funnel: v.VersionID, Breakdown: "x", Step: 1}
	deltas := map[tapline.FactKey]tapline.FactValue{key: {Count: 3}}
	mid := func(r *tapline.BackfillRange) int64 { return r.Start/2 + r.End/2 }
	steps := []tapline.BackfillStep{
		{Range: held[0].Range, From: held[0].Cursor, To: held[0].End, Done: true, Rows: 4, Installations: 1},
		{Range: held[1].Range, From: held[1].Cursor, To: mid(held[1]), Rows: 6, Installations: 2},
	}
	for _, tt := range []struct {
		name  string
		steps []tapline.BackfillStep
		code  string
	}{
		{"none", nil, tapline.EINVALID},
		{"a range twice", []tapline.BackfillStep{steps[0], steps[0]}, tapline.EINVALID},
		{"one stale", []tapline.BackfillStep{steps[0], {Range: held[1].Range, From: held[1].Cursor + 1, To: mid(held[1])}}, tapline.ECONFLICT},
		{"one not claimed", []tapline.BackfillStep{steps[0], {Range: 2, From: -1, To: 0}}, tapline.ECONFLICT},
	} {
		err := f.store.CommitBackfill(ctx, &tapline.BackfillCommit{VersionID: v.VersionID, Owner: "w", Steps: tt.steps, Deltas: deltas}, time.Minute)
		if tapline.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	results := func() int64 {
		rows, err := postgres.NewReports(f.db).FunnelRows(ctx, tapline.ResultsFilter{AppID: f.app.ID, VersionID: v.VersionID,
			From: time.Now().Add(-48 * time.Hour), To: time.Now().Add(48 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Count
		}
		return n
	}
	if n := results(); n != 0 {
		t.Errorf("refused commits applied %d counts", n)
	}
	if err := f.store.CommitBackfill(ctx, &tapline.BackfillCommit{VersionID: v.VersionID, Owner: "w", Steps: steps, Deltas: deltas}, time.Minute); err != nil {
		t.Fatal(err)
	}
	rs, err := f.store.Ranges(ctx, v.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	byNo := map[int]*tapline.BackfillRange{}
	for _, r := range rs {
		byNo[r.Range] = r
	}
	if r := byNo[held[0].Range]; !r.Done || r.Cursor != held[0].End || r.Rows != 4 || r.Installations != 1 {
		t.Errorf("first range after the commit: %+v", r)
	}
	if r := byNo[held[1].Range]; r.Done || r.Cursor != mid(held[1]) || r.Rows != 6 || r.Installations != 2 {
		t.Errorf("second range after the commit: %+v", r)
	}
	if n := results(); n != 3 {
		t.Errorf("results count %d after the commit, want 3", n)
	}
}
