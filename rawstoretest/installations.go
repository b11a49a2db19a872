package rawstoretest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"tapline"
)

// newInstallEvent returns an event of the installation install.
func newInstallEvent(app int64, install, id string, kind tapline.EventKind, at time.Time) *tapline.Event {
	e := newEvent(app, id, kind, "fp-"+install, at)
	e.InstallID = install
	e.Params = map[string]string{"n": id}
	e.Source = "events/1/" + id
	if kind == tapline.KindPurchase {
		e.Revenue = &tapline.Revenue{Micros: 990_000, Currency: "EUR"}
	}
	return e
}

// installed returns what the index of events by installation keeps of es.
func installed(es []*tapline.Event) []*tapline.Event {
	out := make([]*tapline.Event, len(es))
	for i, e := range es {
		out[i] = e.Installed()
	}
	return out
}

func mustEventsByInstall(t *testing.T, s tapline.RawStore, app int64, install string) []*tapline.Event {
	t.Helper()
	es, err := s.EventsByInstall(t.Context(), app, install)
	if err != nil {
		t.Fatalf("EventsByInstall(%d, %q): %v", app, install, err)
	}
	return es
}

func testEventsByInstall(t *testing.T, s tapline.RawStore) {
	ctx, app, other, now := t.Context(), appID(), appID(), base()
	day := 24 * time.Hour
	// One installation over three weeks; c and d share an instant.
	stored := map[string]*tapline.Event{}
	for _, e := range []*tapline.Event{
		newInstallEvent(app, "i1", "b", tapline.KindOpen, now.Add(-10*day)),
		newInstallEvent(app, "i1", "d", tapline.KindPurchase, now),
		newInstallEvent(app, "i1", "a", tapline.KindInstall, now.Add(-10*day-time.Hour)),
		newInstallEvent(app, "i1", "e", tapline.KindCustom, now.Add(-3*day)),
		newInstallEvent(app, "i1", "c", tapline.KindOpen, now),
		newInstallEvent(app, "i2", "f", tapline.KindInstall, now.Add(-time.Hour)),
		newInstallEvent(app, "i10", "g", tapline.KindInstall, now.Add(-time.Hour)),
		newInstallEvent(app, "", "none", tapline.KindOpen, now.Add(-time.Hour)),
		newInstallEvent(other, "i1", "x", tapline.KindInstall, now.Add(-20*day)),
	} {
		mustPutEvent(t, s, e)
		stored[fmt.Sprint(e.AppID, "/", e.ID)] = e
	}
	// A refused put (same id, another installation) indexes nothing.
	dup := newInstallEvent(app, "i3", "a", tapline.KindOpen, now)
	if got, err := s.PutEvent(ctx, dup); err != nil || got.InstallID != "i1" {
		t.Fatalf("PutEvent of a stored id = %+v, %v; want the stored event of i1", got, err)
	}

	tests := []struct {
		name    string
		app     int64
		install string
		want    []string
	}{
		{"OldestFirstAcrossWeeks", app, "i1", []string{"a", "b", "e", "c", "d"}},
		{"Other", app, "i2", []string{"f"}},
		{"NoPrefixMatch", app, "i", nil},
		{"Unknown", app, "nope", nil},
		{"EmptyInstallIDNotIndexed", app, "", nil},
		{"RefusedPutNotIndexed", app, "i3", nil},
		{"OtherApp", other, "i1", []string{"x"}},
		{"OtherAppOnly", other, "i2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := mustEventsByInstall(t, s, tt.app, tt.install)
			want(t, fmt.Sprintf("EventsByInstall(%q)", tt.install), eventIDs(es), tt.want)
			for _, e := range es {
				if w := stored[fmt.Sprint(tt.app, "/", e.ID)]; w == nil || !reflect.DeepEqual(e.Installed(), w.Installed()) {
					t.Errorf("EventsByInstall row %s = %+v, want the fields of Installed as stored in %+v", e.ID, e, w)
				}
			}
		})
	}

	if err := s.DeleteBefore(ctx, app, now.Add(-5*day)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	want(t, "EventsByInstall(i1) after DeleteBefore", eventIDs(mustEventsByInstall(t, s, app, "i1")), []string{"e", "c", "d"})
	want(t, "EventsByInstall of the other app after DeleteBefore", eventIDs(mustEventsByInstall(t, s, other, "i1")), []string{"x"})
}

// installFixture is an app's installations as stored, for scans.
type installFixture struct {
	app    int64
	events map[string][]*tapline.Event    // by install id, visible events oldest first
	convs  map[string]*tapline.Conversion // by install id, the one ConversionByInstall returns
}

// putInstallations stores 40 installations of a new app with events over
// five weeks, events of the same installations in another app, events
// without an installation, and then hides events before a cut-off: some
// installations lose some events, some all of theirs.
func putInstallations(t *testing.T, s tapline.RawStore) installFixture {
	t.Helper()
	now, day := base(), 24*time.Hour
	f := installFixture{app: appID(), events: map[string][]*tapline.Event{}, convs: map[string]*tapline.Conversion{}}
	other := appID()
	cut := now.Add(-30 * day)
	for i := range 40 {
		install := fmt.Sprintf("install-%02d", i)
		var es []*tapline.Event
		for j := range 1 + i%4 {
			// Spread over weeks, newest first, so each installation's
			// events come from several buckets in reverse order.
			at := now.Add(-time.Duration(j*9+i%3) * day)
			es = append(es, newInstallEvent(f.app, install, fmt.Sprintf("%s-e%d", install, j), tapline.KindOpen, at))
		}
		if i%4 == 1 { // two events at one instant: by id
			at := now.Add(-2 * time.Hour)
			es = append(es,
				newInstallEvent(f.app, install, install+"-z", tapline.KindCustom, at),
				newInstallEvent(f.app, install, install+"-y", tapline.KindCustom, at))
		}
		switch {
		case i%10 == 0: // every event behind the cut-off: the installation is gone
			for _, e := range es {
				e.Time = cut.Add(-time.Duration(1+len(e.ID)) * time.Hour)
			}
		case i%3 == 0: // one event behind it
			es = append(es, newInstallEvent(f.app, install, install+"-old", tapline.KindInstall, cut.Add(-time.Minute)))
		}
		for _, e := range es {
			mustPutEvent(t, s, e)
			if !e.Time.Before(cut) {
				f.events[install] = append(f.events[install], e)
			}
		}
		if i%5 == 0 {
			mustPutEvent(t, s, newInstallEvent(other, install, install+"-other", tapline.KindInstall, now))
		}
		mustPutEvent(t, s, newInstallEvent(f.app, "", fmt.Sprintf("no-install-%d", i), tapline.KindOpen, now))
		// Conversions: none for every third installation, two for every
		// seventh (the one with the earliest install time is its own),
		// one for the others, those whose events are all hidden included
		// (conversions stay), and one in the other app.
		if i%3 == 2 {
			continue
		}
		c := newConversion(f.app, install+"-c", "h-"+install, now.Add(-time.Duration(i)*time.Hour))
		c.InstallID = install
		mustPutConversion(t, s, c)
		f.convs[install] = c
		if i%7 == 0 {
			second := newConversion(f.app, install+"-b", "", c.InstallTime.Add(time.Second))
			second.InstallID = install
			mustPutConversion(t, s, second)
		}
		if i%5 == 0 {
			o := newConversion(other, install+"-o", "", now.Add(-time.Duration(100+i)*time.Hour))
			o.InstallID = install
			mustPutConversion(t, s, o)
		}
	}
	for _, es := range f.events {
		slices.SortFunc(es, func(a, b *tapline.Event) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return cmpStrings(a.ID, b.ID)
		})
	}
	if err := s.DeleteBefore(t.Context(), f.app, cut); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	return f
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanned is one installation as a scan passed it to fn.
type scanned struct {
	key int64
	id  string
}

// scanAll scans r and checks every installation against f: keys inside r
// and ascending, each installation once, its visible events oldest first
// and as stored. It returns what fn saw, in order.
func scanAll(t *testing.T, s tapline.RawStore, f installFixture, r tapline.ScanRange) []scanned {
	t.Helper()
	var got []scanned
	err := s.ScanInstallations(t.Context(), f.app, r, func(key int64, inst *tapline.Installation) error {
		if key <= r.Start || key > r.End {
			t.Errorf("range (%d, %d]: installation %q has key %d outside it", r.Start, r.End, inst.ID, key)
		}
		if n := len(got); n > 0 && key < got[n-1].key {
			t.Errorf("range (%d, %d]: key %d of %q after key %d of %q", r.Start, r.End, key, inst.ID, got[n-1].key, got[n-1].id)
		}
		if slices.ContainsFunc(got, func(g scanned) bool { return g.id == inst.ID }) {
			t.Errorf("range (%d, %d]: installation %q came twice", r.Start, r.End, inst.ID)
		}
		got = append(got, scanned{key, inst.ID})
		if inst.AppID != f.app {
			t.Errorf("installation %q has app %d, want %d", inst.ID, inst.AppID, f.app)
		}
		want(t, fmt.Sprintf("events of installation %q", inst.ID), eventIDs(inst.Events), eventIDs(f.events[inst.ID]))
		if w := f.convs[inst.ID]; !reflect.DeepEqual(inst.Conversion, w) {
			t.Errorf("conversion of installation %q = %+v, want %+v", inst.ID, inst.Conversion, w)
		}
		if w := f.events[inst.ID]; len(w) == len(inst.Events) && !reflect.DeepEqual(installed(inst.Events), installed(w)) {
			t.Errorf("events of installation %q differ from the stored ones:\n%+v\nwant\n%+v", inst.ID, inst.Events, w)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanInstallations(%d, %d]: %v", r.Start, r.End, err)
	}
	return got
}

func testScanInstallations(t *testing.T, s tapline.RawStore) {
	f := putInstallations(t, s)
	wantIDs := slices.Sorted(maps.Keys(f.events))
	var keys map[string]int64 // of the first split, to compare the others with
	for _, n := range []int{1, 3, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			seen := map[string]int64{}
			nonEmpty := 0
			for _, r := range tapline.SplitRing(n) {
				got := scanAll(t, s, f, r)
				for _, g := range got {
					if _, dup := seen[g.id]; dup {
						t.Errorf("installation %q came in two ranges", g.id)
					}
					seen[g.id] = g.key
				}
				if len(got) > 0 {
					nonEmpty++
				}
			}
			// Keys spread over the ring, or parallel ranges would not
			// share the work.
			if n > 1 && nonEmpty < 2 {
				t.Errorf("%d installations fell into %d of %d ranges: %v", len(seen), nonEmpty, n, seen)
			}
			if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, wantIDs) {
				t.Errorf("scanned installations %q, want %q", got, wantIDs)
			}
			if keys == nil {
				keys = seen
			} else if !maps.Equal(seen, keys) {
				t.Errorf("keys differ between splits: %v and %v", seen, keys)
			}
		})
	}
	if err := s.ScanInstallations(t.Context(), f.app, tapline.ScanRange{Start: 5, End: 5}, func(int64, *tapline.Installation) error {
		t.Error("fn called for an empty range")
		return nil
	}); err != nil {
		t.Errorf("ScanInstallations of an empty range: %v", err)
	}
	if err := s.ScanInstallations(t.Context(), appID(), tapline.SplitRing(1)[0], func(_ int64, inst *tapline.Installation) error {
		t.Errorf("fn called with %q for an app without events", inst.ID)
		return nil
	}); err != nil {
		t.Errorf("ScanInstallations of an app without events: %v", err)
	}
}

// testScanInstallationsResume stops a scan with fn's error, checkpoints as
// a caller would and resumes from there: together the two scans pass every
// installation once.
func testScanInstallationsResume(t *testing.T, s tapline.RawStore) {
	f := putInstallations(t, s)
	whole := tapline.SplitRing(1)[0]
	all := scanAll(t, s, f, whole)
	if len(all) < 10 {
		t.Fatalf("scanned %d installations, want at least 10", len(all))
	}
	for _, stopAt := range []int{1, 7, len(all)} {
		t.Run(fmt.Sprint(stopAt), func(t *testing.T) {
			stop := errors.New("stop")
			var got []scanned
			err := s.ScanInstallations(t.Context(), f.app, whole, func(key int64, inst *tapline.Installation) error {
				got = append(got, scanned{key, inst.ID})
				if len(got) == stopAt {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || len(got) != stopAt {
				t.Fatalf("ScanInstallations with fn failing at call %d = %v after %d calls, want the error after %d", stopAt, err, len(got), stopAt)
			}
			// Every installation with a key below the last one seen is
			// finished: checkpoint the greatest such key.
			checkpoint, done := whole.Start, 0
			for i, g := range got {
				if g.key < got[len(got)-1].key {
					checkpoint, done = g.key, i+1
				}
			}
			rest := scanAll(t, s, f, tapline.ScanRange{Start: checkpoint, End: whole.End})
			if len(rest) > 0 && rest[0].key <= checkpoint {
				t.Errorf("resumed from %d at key %d", checkpoint, rest[0].key)
			}
			if joined := append(slices.Clone(got[:done]), rest...); !slices.Equal(joined, all) {
				t.Errorf("finished part and resumed scan = %v, want every installation once: %v", joined, all)
			}
		})
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := s.ScanInstallations(ctx, f.app, whole, func(int64, *tapline.Installation) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Errorf("ScanInstallations cancelled in call 2 = %v after %d calls, want %v after 2", err, calls, context.Canceled)
	}
}

// newFunnelState returns the state of an installation after the changes
// made by the records at positions bys, one funnel version going one step
// further with each.
func newFunnelState(app int64, install string, at time.Time, bys ...string) *tapline.FunnelState {
	fs := &tapline.FunnelState{AppID: app, InstallID: install, Outcomes: map[int64]tapline.FunnelOutcome{}, UpdatedAt: at}
	for i, by := range bys {
		from := fs.Outcomes[7]
		to := tapline.FunnelOutcome{Hour: at.Truncate(time.Hour).Unix(), Breakdown: "ios", Steps: append(slices.Clone(from.Steps), int64(60*i))}
		fs.History = append(fs.History, tapline.FunnelChange{By: by, Changes: []tapline.FunnelVersionChange{{Version: 7, From: from, To: to}}})
		fs.Outcomes[7] = to
	}
	return fs
}

func testFunnelState(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	code := func(err error) string { return tapline.ErrorCode(err) }
	check := func(step string, w *tapline.FunnelState) {
		t.Helper()
		got, err := s.FunnelState(ctx, app, "i1")
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: FunnelState = %+v, %v; want %+v", step, got, err, w)
		}
	}
	if _, err := s.FunnelState(ctx, app, "i1"); code(err) != tapline.ENOTFOUND {
		t.Fatalf("FunnelState of nothing stored: %v, want %s", err, tapline.ENOTFOUND)
	}
	if err := s.PutFunnelState(ctx, newFunnelState(app, "i1", now, "events/0/1", "events/0/2")); code(err) != tapline.ECONFLICT {
		t.Fatalf("a second change with nothing stored: %v, want %s", err, tapline.ECONFLICT)
	}
	if _, err := s.FunnelState(ctx, app, "i1"); code(err) != tapline.ENOTFOUND {
		t.Fatalf("FunnelState after a refused put: %v, want %s", err, tapline.ENOTFOUND)
	}
	for _, bad := range []*tapline.FunnelState{nil, newFunnelState(app, "", now, "events/0/1")} {
		if err := s.PutFunnelState(ctx, bad); code(err) != tapline.EINVALID {
			t.Errorf("PutFunnelState(%+v): %v, want %s", bad, err, tapline.EINVALID)
		}
	}

	first := newFunnelState(app, "i1", now, "events/0/1")
	if err := s.PutFunnelState(ctx, first); err != nil {
		t.Fatalf("create: %v", err)
	}
	check("created", first)
	second := newFunnelState(app, "i1", now.Add(time.Minute), "events/0/1", "events/0/2")
	if err := s.PutFunnelState(ctx, second); err != nil {
		t.Fatalf("follow: %v", err)
	}
	check("followed", second)

	for _, tc := range []struct {
		name string
		fs   *tapline.FunnelState
	}{
		{"StaleWriter", newFunnelState(app, "i1", now, "events/0/1", "hits/1/5")},
		{"Behind", first},
		{"TwoAhead", newFunnelState(app, "i1", now, "events/0/1", "events/0/2", "events/0/3", "events/0/4")},
	} {
		if err := s.PutFunnelState(ctx, tc.fs); code(err) != tapline.ECONFLICT {
			t.Errorf("%s: %v, want %s", tc.name, err, tapline.ECONFLICT)
		}
	}
	check("after refused writes", second)

	// The stored history again is a retry.
	if err := s.PutFunnelState(ctx, second); err != nil {
		t.Fatalf("idempotent retry: %v", err)
	}
	retry := newFunnelState(app, "i1", now.Add(2*time.Minute), "events/0/1", "events/0/2")
	if err := s.PutFunnelState(ctx, retry); err != nil {
		t.Fatalf("retry of the same history at a later time: %v", err)
	}
	check("retried", retry)

	// Other apps and installations are apart.
	if _, err := s.FunnelState(ctx, app+1, "i1"); code(err) != tapline.ENOTFOUND {
		t.Errorf("FunnelState of another app: %v, want %s", err, tapline.ENOTFOUND)
	}
	if _, err := s.FunnelState(ctx, app, "i"); code(err) != tapline.ENOTFOUND {
		t.Errorf("FunnelState of a prefix: %v, want %s", err, tapline.ENOTFOUND)
	}
	otherInstall := newFunnelState(app, "i2", now, "events/0/9")
	if err := s.PutFunnelState(ctx, otherInstall); err != nil {
		t.Fatalf("create another installation's state: %v", err)
	}
	check("after another installation's write", retry)

	// Concurrent writers following the same stored state: one wins.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	next := func(i int) *tapline.FunnelState {
		return newFunnelState(app, "i1", now.Add(3*time.Minute), "events/0/1", "events/0/2", fmt.Sprintf("hits/%d/1", i))
	}
	for i := range errs {
		wg.Go(func() { errs[i] = s.PutFunnelState(ctx, next(i)) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch code(err) {
		case "":
			if won >= 0 {
				t.Fatalf("writers %d and %d both followed the same stored state", won, i)
			}
			won = i
		case tapline.ECONFLICT:
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer won")
	}
	check("after concurrent writers", next(won))
	if loser := (won + 1) % len(errs); code(s.PutFunnelState(ctx, next(loser))) != tapline.ECONFLICT {
		t.Errorf("a loser's write after the winner's: want %s", tapline.ECONFLICT)
	}
}
