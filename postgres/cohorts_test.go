package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// cohortKey is the cohort activity row of app 1's installs at hour on
// link, day n after them.
func cohortKey(hour time.Time, link int64, n int) tapline.FactKey {
	return tapline.FactKey{Table: tapline.FactCohortActivity, Hour: tapline.HourOf(hour), AppID: 1, LinkID: link,
		Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint, DayN: n}
}

// TestCohortActivityCountsOnce checks that an installation counts once a
// day: twice in one flush, again in a later flush, or in concurrent
// flushes from different matchers.
func TestCohortActivityCountsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	// Recent: cohort_seen forgets installs older than CohortSeenKept.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	act := func(install string, n int) tapline.CohortActivity {
		return tapline.CohortActivity{InstallID: install, Key: cohortKey(hour, 7, n)}
	}
	apply := func(acts ...tapline.CohortActivity) error {
		return fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Activity: acts})
	}
	if err := apply(act("i1", 1), act("i1", 1), act("i2", 1), act("i1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := apply(act("i1", 1), act("i2", 2)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := apply(act("i3", 1), act("i1", 3)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := map[string]bool{}
	for _, r := range factRows(t, db, "fact_cohort_activity") {
		got[r] = true
	}
	for n, want := range map[int]int64{1: 3, 2: 2, 3: 1} {
		row := fmt.Sprintf(`(1,"%s",7,ios,fingerprint,%d,%d,0)`, hour.Format("2006-01-02 15:04:05+00"), n, want)
		if !got[row] {
			t.Errorf("no row %s in %v", row, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("rows %v, want 3", got)
	}
	bad := tapline.CohortActivity{InstallID: "i1", Key: tapline.FactKey{Table: tapline.FactHits, Hour: tapline.HourOf(hour), AppID: 1}}
	if err := apply(bad); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("activity on a hits row: %v, want EINVALID", err)
	}
}

// TestCohorts checks the cohort report: installs by day of install in the
// viewer's zone or by week, activity and revenue by day after, filters.
func TestCohorts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs, reports := postgres.NewFactStore(db), postgres.NewReports(db)
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	rev := func(hour time.Time, link int64, n int, micros int64) (tapline.FactKey, tapline.FactValue) {
		k := cohortKey(hour, link, n)
		k.Table, k.Currency = tapline.FactCohortRevenue, "EUR"
		return k, tapline.FactValue{Count: 1, Sum: micros}
	}
	deltas := map[tapline.FactKey]tapline.FactValue{
		cohortKey(mon.Add(2*time.Hour), 7, 0):   {Count: 10}, // Monday 02:00 UTC: Sunday in New York
		cohortKey(mon.Add(2*time.Hour), 7, 1):   {Count: 4},
		cohortKey(mon.Add(2*time.Hour), 7, 7):   {Count: 2},
		cohortKey(mon.Add(10*time.Hour), 8, 0):  {Count: 5},
		cohortKey(mon.Add(10*time.Hour), 8, 1):  {Count: 5},
		cohortKey(mon.Add(26*time.Hour), 7, 0):  {Count: 3}, // Tuesday 02:00 UTC
		cohortKey(mon.Add(26*time.Hour), 7, 90): {Count: 1},
	}
	k, v := rev(mon.Add(2*time.Hour), 7, 0, 1_000_000)
	deltas[k] = v
	k, v = rev(mon.Add(26*time.Hour), 7, 3, 4_000_000)
	deltas[k] = v
	if err := fs.ApplyFacts(ctx, "", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	filter := tapline.StatsFilter{AppID: 1, From: mon.AddDate(0, 0, -1), To: mon.AddDate(0, 0, 6), Location: time.UTC}
	got, err := reports.Cohorts(ctx, filter, tapline.ByDay, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Cohort != "2026-03-02" || got[0].Installs != 15 || got[0].Active[1] != 9 || got[0].Active[7] != 2 ||
		got[0].Revenue["EUR"][0] != 1_000_000 || got[0].Purchases[0] != 1 ||
		got[1].Cohort != "2026-03-03" || got[1].Installs != 3 || got[1].Active[90] != 1 || got[1].Revenue["EUR"][3] != 4_000_000 {
		t.Errorf("UTC days: %+v", got)
	}
	ny, _ := time.LoadLocation("America/New_York")
	nyFilter := filter
	nyFilter.Location = ny
	got, err = reports.Cohorts(ctx, nyFilter, tapline.ByDay, "")
	if err != nil {
		t.Fatal(err)
	}
	// Tuesday 02:00 UTC is Monday evening in New York.
	if len(got) != 2 || got[0].Cohort != "2026-03-01" || got[0].Installs != 10 || got[1].Installs != 8 || got[1].Active[90] != 1 {
		t.Errorf("New York days: %+v", got)
	}
	got, err = reports.Cohorts(ctx, filter, tapline.ByWeek, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Cohort != "2026-03-02" || got[0].Installs != 18 || got[0].Active[1] != 9 {
		t.Errorf("weeks: %+v", got)
	}
	linked := filter
	linked.Where = []tapline.DimFilter{{Dim: "link", Value: "8"}}
	got, err = reports.Cohorts(ctx, linked, tapline.ByDay, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Installs != 5 || got[0].Active[1] != 5 {
		t.Errorf("link 8: %+v", got)
	}
	got, err = reports.Cohorts(ctx, filter, tapline.ByWeek, "link")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Value != "7" || got[0].Installs != 13 || got[0].Active[1] != 4 || got[0].Active[90] != 1 ||
		got[1].Value != "8" || got[1].Installs != 5 || got[1].Active[1] != 5 {
		t.Errorf("weeks split by link: %+v", got)
	}
	for _, tc := range []struct {
		name      string
		f         tapline.StatsFilter
		by, split string
	}{
		{"by month", filter, "month", ""},
		{"event filter", tapline.StatsFilter{AppID: 1, From: filter.From, To: filter.To, Where: []tapline.DimFilter{{Dim: "event", Value: "open"}}}, tapline.ByDay, ""},
		{"no app", tapline.StatsFilter{From: filter.From, To: filter.To}, tapline.ByDay, ""},
		{"split by event", filter, tapline.ByDay, "event"},
		{"split by colour", filter, tapline.ByDay, "colour"},
	} {
		if _, err := reports.Cohorts(ctx, tc.f, tc.by, tc.split); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tc.name, err)
		}
	}
}
