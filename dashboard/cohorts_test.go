package dashboard_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// seedCohorts stores two cohorts of app: 2 March 2026 on link spring (10
// installs, 4 active on day 1, 2 on day 7, 5 EUR of revenue on day 0 and
// 5 EUR on day 3) and 9 March on link other (5 installs, all active on day
// 1).
func seedCohorts(t *testing.T, e *env, app *tapline.App, spring, other int64) {
	t.Helper()
	key := func(day int, link int64, n int) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactCohortActivity, Hour: tapline.HourOf(time.Date(2026, 3, day, 9, 0, 0, 0, time.UTC)),
			AppID: app.ID, LinkID: link, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint, DayN: n, Source: "facebook"}
	}
	revenue := func(n int) tapline.FactKey {
		k := key(2, spring, n)
		k.Table, k.Currency = tapline.FactCohortRevenue, "EUR"
		return k
	}
	deltas := map[tapline.FactKey]tapline.FactValue{
		key(2, spring, 0): {Count: 10}, key(2, spring, 1): {Count: 4}, key(2, spring, 7): {Count: 2},
		revenue(0): {Count: 1, Sum: 5_000_000}, revenue(3): {Count: 2, Sum: 5_000_000},
		key(9, other, 0): {Count: 5}, key(9, other, 1): {Count: 5},
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
}

func TestCohortsPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Store(time.Date(2026, 3, 12, 12, 0, 0, 0, time.UTC).UnixNano())
	app := e.app(e.account("acme"), "Acme")
	spring, other := e.link(app, "spring", "Spring"), e.link(app, "other", "Other")
	seedCohorts(t, e, app, spring.ID, other.ID)
	c := e.loggedIn("acme")
	page := "/apps/" + strconv.FormatInt(app.ID, 10) + "/cohorts"
	rng := "from=2026-03-01&to=2026-03-10"

	res := e.get(c, page+"?"+rng)
	if res.Status != http.StatusOK {
		t.Fatalf("cohorts: %d %.300s", res.Status, res.Body)
	}
	// 2 March: day 1 40%, day 3 over with nobody active, day 7 20%, day 14
	// not over; 5 EUR over 10 installs on day 0, 10 EUR by day 7. 9 March:
	// day 1 just over.
	for _, want := range []string{"2026-03-02", "40.0%", "0.0%", "20.0%", "0.50 EUR", "1.00 EUR", "2026-03-09", "100.0%", "not over yet", "Revenue per install (EUR)"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("cohorts page lacks %q", want)
		}
	}
	if i, j := strings.Index(res.Body, "2026-03-09"), strings.Index(res.Body, "2026-03-02<"); i < 0 || j < 0 || i > j {
		t.Errorf("cohorts are not newest first")
	}
	res = e.get(c, page+"?"+rng+"&link="+strconv.FormatInt(other.ID, 10))
	if !strings.Contains(res.Body, "2026-03-09") || strings.Contains(res.Body, "2026-03-02<") || !strings.Contains(res.Body, `id="filters"`) {
		t.Errorf("filtered by link other: the page shows the wrong cohorts")
	}
	res = e.get(c, page+"?"+rng+"&by=week")
	if !strings.Contains(res.Body, "Cohorts by week") || !strings.Contains(res.Body, "2026-03-02") || !strings.Contains(res.Body, "2026-03-09") {
		t.Errorf("by week: %.200s", res.Body)
	}
	for _, q := range []string{"?by=month", "?event=open", "?from=yesterday"} {
		res := e.get(c, page+q)
		if res.Status != http.StatusBadRequest || !strings.Contains(res.Body, `id="query-error"`) || !strings.Contains(res.Body, "Cohorts by day") {
			t.Errorf("%s: %d, want 400 with the error shown on the page", q, res.Status)
		}
	}

	api := "/api/v1" + page
	var rep dashboard.CohortReport
	res = e.get(c, api+"?"+rng)
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil || len(rep.Cohorts) != 2 {
		t.Fatalf("api: %d %v %.200s", res.Status, err, res.Body)
	}
	if c := rep.Cohorts[0]; c.Cohort != "2026-03-02" || c.Installs != 10 || c.Active[1] != 4 || c.Active[7] != 2 || c.Revenue["EUR"][3] != 5_000_000 || c.Purchases[3] != 2 {
		t.Errorf("api cohort %+v", c)
	}
	res = e.get(c, api+".csv?"+rng)
	records, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil || len(records) != 3 {
		t.Fatalf("csv: %v, %d records", err, len(records))
	}
	col := map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	first := records[1]
	// Newest first, as on the page.
	if first[col["cohort"]] != "2026-03-09" || first[col["installs"]] != "5" || first[col["retention_day_1"]] != "1.0000" ||
		first[col["mature_day_7"]] != "0" || first[col["retention_day_7"]] != "" {
		t.Errorf("csv row %v (columns %v)", first, records[0])
	}
	second := records[2]
	if second[col["cohort"]] != "2026-03-02" || second[col["installs"]] != "10" || second[col["retention_day_1"]] != "0.4000" ||
		second[col["active_day_7"]] != "2" || second[col["retention_day_14"]] != "" || second[col["ltv_day_7_EUR"]] != "1" {
		t.Errorf("csv row %v (columns %v)", second, records[0])
	}

	// Split by link: a row per link, named; by source: one row whose days
	// count only the installs old enough.
	res = e.get(c, page+"?"+rng+"&split=link")
	if !strings.Contains(res.Body, "Cohorts by day of install, by link") || !strings.Contains(res.Body, ">Spring<") || !strings.Contains(res.Body, ">Other<") {
		t.Errorf("split by link: the page lacks the links' rows")
	}
	res = e.get(c, api+".csv?"+rng+"&split=source")
	records, err = csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil || len(records) != 2 {
		t.Fatalf("csv split by source: %v, %d records", err, len(records))
	}
	col = map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	if r := records[1]; r[col["source"]] != "facebook" || r[col["installs"]] != "15" || r[col["mature_day_1"]] != "15" ||
		r[col["retention_day_1"]] != "0.6000" || r[col["mature_day_7"]] != "10" || r[col["retention_day_7"]] != "0.2000" {
		t.Errorf("csv split by source: %v (columns %v)", r, records[0])
	}
	if res := e.get(c, page+"?split=event"); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, `id="query-error"`) {
		t.Errorf("split by event: %d, want 400 with the error shown", res.Status)
	}
	for _, q := range []string{"?by=month", "?event=open", "?source=x&source=y"} {
		if res := e.get(c, api+q); res.Status != http.StatusBadRequest {
			t.Errorf("api %s: %d, want 400", q, res.Status)
		}
	}
}
