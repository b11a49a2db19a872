package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// seedCampaigns gives app facts on 2026-03-10 UTC under two sources and
// three campaigns, a purchase and organic installs.
func seedCampaigns(t *testing.T, e *env, app *tapline.App) *tapline.Link {
	t.Helper()
	spring := e.link(app, "spring-sale", "Spring sale")
	hour := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).Unix()
	k := func(table tapline.FactTable, link int64, method tapline.MatchMethod, source, campaign string) tapline.FactKey {
		return tapline.FactKey{Table: table, Hour: hour, AppID: app.ID, LinkID: link, Platform: tapline.PlatformIOS, Method: method,
			Source: source, Campaign: campaign}
	}
	fp := tapline.MethodFingerprint
	purchase := k(tapline.FactEvents, spring.ID, fp, "facebook", "spring")
	purchase.EventName = "purchase"
	usd := k(tapline.FactRevenue, spring.ID, fp, "facebook", "spring")
	usd.Currency = "USD"
	deltas := map[tapline.FactKey]tapline.FactValue{
		k(tapline.FactHits, spring.ID, "", "facebook", "spring"):        {Count: 100},
		k(tapline.FactHits, spring.ID, "", "facebook", "fall"):          {Count: 40},
		k(tapline.FactHits, spring.ID, "", "google", "spring"):          {Count: 60},
		k(tapline.FactInstalls, spring.ID, fp, "facebook", "spring"):    {Count: 10},
		k(tapline.FactConversions, spring.ID, fp, "facebook", "spring"): {Count: 10, Sum: 10 * 45_000},
		k(tapline.FactInstalls, spring.ID, fp, "google", "spring"):      {Count: 3},
		k(tapline.FactConversions, spring.ID, fp, "google", "spring"):   {Count: 3, Sum: 3 * 500},
		k(tapline.FactInstalls, 0, tapline.MethodOrganic, "", ""):       {Count: 5},
		purchase: {Count: 2},
		usd:      {Count: 2, Sum: 9_980_000},
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	return spring
}

// TestBreakdownAPI asks the JSON API for breakdowns by campaign
// dimensions, with filters, limits and sorts, and for what it refuses.
func TestBreakdownAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	seedCampaigns(t, e, app)
	c := e.loggedIn("acme")
	base := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/breakdown?from=2026-03-10&to=2026-03-10&"
	get := func(query string) dashboard.BreakdownReport {
		t.Helper()
		res := e.get(c, base+query)
		wantStatus(t, query, res, http.StatusOK)
		var rep dashboard.BreakdownReport
		if err := json.Unmarshal([]byte(res.Body), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rows := func(rep dashboard.BreakdownReport) string {
		var out []string
		for _, r := range rep.Rows {
			out = append(out, r.Label+":"+strconv.FormatInt(r.Hits, 10)+"/"+strconv.FormatInt(r.Installs, 10)+"/"+strconv.FormatInt(r.Events, 10))
		}
		if rep.Other != nil {
			out = append(out, rep.Other.Label+":"+strconv.FormatInt(rep.Other.Hits, 10)+"/"+strconv.FormatInt(rep.Other.Installs, 10))
		}
		return strings.Join(out, " ")
	}

	rep := get("by=source")
	if got := rows(rep); got != "facebook:140/10/2 google:60/3/0 (none):0/5/0" {
		t.Errorf("by source: %s", got)
	}
	if rep.Total.Hits != 200 || rep.Total.Installs != 18 || rep.Total.RevenueMicros["USD"] != 9_980_000 || len(rep.Missing) != 0 || rep.Sort != "hits" {
		t.Errorf("by source: total %+v, missing %v, sort %q", rep.Total, rep.Missing, rep.Sort)
	}
	if fb := rep.Rows[0]; fb.MeanClickToInstall != 45 || fb.ConversionRate != 10.0/140 {
		t.Errorf("facebook: mean click to install %v s, rate %v", fb.MeanClickToInstall, fb.ConversionRate)
	}
	rep = get("by=campaign&source=facebook")
	if got := rows(rep); got != "spring:100/10/2 fall:40/0/0" || len(rep.Filters) != 1 || rep.Filters[0] != (tapline.DimFilter{Dim: "source", Value: "facebook"}) {
		t.Errorf("facebook by campaign: %s, filters %v", got, rep.Filters)
	}
	// Organic: the empty source.
	if got := rows(get("by=method&source=")); got != "Organic:0/5/0" {
		t.Errorf("no source, by method: %s", got)
	}
	rep = get("by=method")
	if strings.Join(rep.Missing, ",") != "hits" || rows(rep) != "Fingerprint:0/13/2 Organic:0/5/0" {
		t.Errorf("by method: %s, missing %v (hits have no method)", rows(rep), rep.Missing)
	}
	rep = get("by=source&limit=1&sort=installs")
	if got := rows(rep); got != "facebook:140/10/2 2 other values:60/8" || rep.OtherValues != 2 {
		t.Errorf("top 1 by installs: %s", got)
	}
	rep = get("by=event")
	if strings.Join(rep.Missing, ",") != "hits,installs,conversions,revenue" || rows(rep) != "purchase:0/0/2" {
		t.Errorf("by event: %s, missing %v", rows(rep), rep.Missing)
	}
	if got := rows(get("by=day")); got != "2026-03-10:200/18/2" {
		t.Errorf("by day: %s", got)
	}
	// The daily API compares with the period before on request.
	res0 := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/daily?from=2026-03-10&to=2026-03-11&compare=previous")
	var cmpd dashboard.DailyReport
	if err := json.Unmarshal([]byte(res0.Body), &cmpd); err != nil || cmpd.Previous == nil || cmpd.Previous.From != "2026-03-08" || cmpd.Previous.To != "2026-03-09" {
		t.Errorf("daily with compare=previous: %+v (%v)", cmpd.Previous, err)
	}
	wantJSONError(t, "compare=last-year", e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/daily?compare=last-year"),
		http.StatusBadRequest, "invalid", `compare: "last-year"; want previous`)
	// The daily API takes the same filters.
	res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/daily?from=2026-03-10&to=2026-03-10&campaign=spring")
	var daily dashboard.DailyReport
	if err := json.Unmarshal([]byte(res.Body), &daily); err != nil || daily.Totals.Hits != 160 || daily.Totals.Installs != 13 {
		t.Errorf("daily of the spring campaign: %+v (%v)", daily.Totals, err)
	}

	for _, tc := range []struct{ query, msg string }{
		{"", "by: required"},
		{"by=colour", `by: "colour" is not a breakdown`},
		{"by=source&limit=0", "limit: a number from 1 to 500"},
		{"by=source&sort=price", `sort: "price"`},
		{"by=source&link=seven", `filter link: "seven" is not an id`},
		{"by=source&source=a&source=b", "source: give one value, not 2"},
		{"by=source&campaign=a%00b", "campaign: not valid text"},
		{"by=source&medium=%ff", "medium: not valid text"},
		{"by=source&campaign=" + url.QueryEscape(strings.Repeat("x", 200)), "campaign: at most 100 characters"},
	} {
		wantJSONError(t, tc.query, e.get(c, base+tc.query), http.StatusBadRequest, "invalid", tc.msg)
	}
}

// TestBreakdownPage checks the app page's breakdown: filter chips that
// remove themselves, tiles under the filters, values that drill down,
// measures a filter leaves out shown as such, and a bad breakdown shown
// on the page.
func TestBreakdownPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	// The day before: 160 hits from facebook, for the comparison.
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", map[tapline.FactKey]tapline.FactValue{
		{Table: tapline.FactHits, Hour: time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC).Unix(), AppID: app.ID, LinkID: spring.ID,
			Platform: tapline.PlatformIOS, Source: "facebook"}: {Count: 160},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	page := "/apps/" + strconv.FormatInt(app.ID, 10)

	res := e.get(c, page+"?from=2026-03-10&to=2026-03-10&by=campaign&source=facebook")
	wantStatus(t, "filtered page", res, http.StatusOK)
	body := withoutLabels(res.Body)
	for _, want := range []string{
		`<span class="chip">Source: facebook <a href="` + page + `?by=campaign&amp;from=2026-03-10&amp;to=2026-03-10"`,
		`id="total-hits">140<`, `id="total-installs">10<`, `id="total-events">2<`, `id="total-revenue">9.98 USD<`,
		// Against the day before, with the same filter: 140 hits after 160, installs from none.
		`id="total-hits">140</span><span class="change down" title="previous period: 160">−12.5%</span>`,
		`id="total-installs">10</span><span class="change up" title="previous period: 0">new</span>`,
		"Changes against 2026-03-09 to 2026-03-09, as many days right before.",
		// spring drills down to its ad groups, keeping the source filter.
		`<a href="` + page + `?by=adgroup&amp;campaign=spring&amp;from=2026-03-10&amp;source=facebook&amp;to=2026-03-10">spring</a>`,
		`<option value="campaign" selected>Campaign</option>`,
		`<input type="hidden" name="source" value="facebook">`,
		// Both tables download as CSV with the page's filters.
		`id="daily-csv" href="/api/v1` + page + `/breakdown.csv?by=day&amp;from=2026-03-10&amp;source=facebook&amp;to=2026-03-10"`,
		`id="breakdown-csv" href="/api/v1` + page + `/breakdown.csv?by=campaign&amp;from=2026-03-10&amp;source=facebook&amp;to=2026-03-10"`,
		// The range form keeps the filter and the breakdown.
		`<form method="get" class="range">
  <input type="hidden" name="by" value="campaign"><input type="hidden" name="source" value="facebook">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("filtered page lacks %q", want)
		}
	}
	// A filter on the event name: taps and installs have none.
	res = e.get(c, page+"?from=2026-03-10&to=2026-03-10&event=purchase")
	body = withoutLabels(res.Body)
	for _, want := range []string{`id="total-hits">–<`, `id="total-installs">–<`, `id="total-events">2<`, `id="breakdown-missing"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page filtered by event lacks %q", want)
		}
	}
	res = e.get(c, page+"?by=colour")
	wantStatus(t, "bad breakdown", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `id="range-error"`) || !strings.Contains(res.Body, "by: &#34;colour&#34; is not a breakdown") || !strings.Contains(res.Body, `id="breakdown"`) {
		t.Errorf("a bad breakdown is not shown on the page")
	}
}

// TestBreakdownCSV checks the CSV download against the JSON breakdown: the
// same rows, other and total, empty cells for what the breakdown cannot
// count, a column per currency, and text that spreadsheets would run as a
// formula defused.
func TestBreakdownCSV(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	hour := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC).Unix()
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", map[tapline.FactKey]tapline.FactValue{
		{Table: tapline.FactHits, Hour: hour, AppID: app.ID, LinkID: spring.ID, Platform: tapline.PlatformWeb, Source: "=HYPERLINK(\"x\")"}: {Count: 1},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/breakdown"
	q := "?from=2026-03-10&to=2026-03-10&by=source&limit=2"
	res := e.get(c, api+".csv"+q)
	wantStatus(t, "csv", res, http.StatusOK)
	if ct, cd := res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"); !strings.HasPrefix(ct, "text/csv") ||
		cd != `attachment; filename="app-`+strconv.FormatInt(app.ID, 10)+`-by-source-2026-03-10-2026-03-10.csv"` {
		t.Errorf("content type %q, disposition %q", ct, cd)
	}
	want := `row,source,label,hits,installs,organic_installs,conversions,conversion_rate,mean_click_to_install_seconds,events,revenue_USD
value,facebook,facebook,140,10,0,10,0.0714,45.000,2,9.98
value,google,google,60,3,0,3,0.0500,0.500,0,0
other,,2 other values,1,5,5,0,0.0000,,0,0
total,,Total,201,18,5,13,0.0647,34.731,2,9.98
`
	if res.Body != want {
		t.Errorf("csv:\n%s\nwant:\n%s", res.Body, want)
	}
	// The same numbers as the JSON.
	var rep dashboard.BreakdownReport
	if err := json.Unmarshal([]byte(e.get(c, api+q).Body), &rep); err != nil || rep.Total.Hits != 201 || rep.OtherValues != 2 {
		t.Errorf("json total %+v, %d other values (%v)", rep.Total, rep.OtherValues, err)
	}
	// Every value: the formula defused.
	res = e.get(c, api+".csv?from=2026-03-10&to=2026-03-10&by=source")
	if !strings.Contains(res.Body, "\nvalue,\"'=HYPERLINK(\"\"x\"\")\",\"'=HYPERLINK(\"\"x\"\")\",1,") {
		t.Errorf("a formula in a value is not defused:\n%s", res.Body)
	}
	// By event: the measures events do not have are empty cells.
	res = e.get(c, api+".csv?from=2026-03-10&to=2026-03-10&by=event")
	if !strings.Contains(res.Body, "\nvalue,purchase,purchase,,,,,,,2\n") {
		t.Errorf("by event:\n%s", res.Body)
	}
}

// TestLiveAPI checks the live JSON: 24 hours newest first in the zone,
// the last 60 minutes as the current hour and the one before.
func TestLiveAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	link := e.link(app, "live", "Live")
	now := e.d.Now().UTC()
	hits := map[tapline.FactKey]tapline.FactValue{}
	for back, n := range []int64{5, 7, 11} { // this hour, the one before, two before
		hits[tapline.FactKey{Table: tapline.FactHits, Hour: tapline.HourOf(now.Add(-time.Duration(back) * time.Hour)), AppID: app.ID,
			LinkID: link.ID, Platform: tapline.PlatformIOS}] = tapline.FactValue{Count: n}
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", hits, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/live?tz=Asia/Kolkata")
	wantStatus(t, "live", res, http.StatusOK)
	var rep dashboard.LiveReport
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil {
		t.Fatal(err)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	// Kolkata is 5:30 ahead: its hours start at :30 UTC, so the UTC hours
	// straddle two of its hours; the current one in the zone is first.
	if len(rep.Hours) != 24 || rep.Hours[0].Value != now.In(kolkata).Truncate(time.Hour).Format("2006-01-02 15:00") {
		t.Fatalf("hours %d, first %q", len(rep.Hours), rep.Hours[0].Value)
	}
	var total int64
	for _, h := range rep.Hours {
		total += h.Hits
	}
	if total != 23 || rep.Last60.Hits != rep.Hours[0].Hits+rep.Hours[1].Hits {
		t.Errorf("hits %d in 24 hours, last 60 minutes %d: want 23, and the first two hours' sum", total, rep.Last60.Hits)
	}
	wantJSONError(t, "bad tz", e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/live?tz=Mars/Base"), http.StatusBadRequest, "invalid", "unknown time zone")
}

// TestBotHitsShown checks that requests that were no taps show on the app
// page and in the daily report's totals, apart from the hits, and that a
// filter they cannot answer leaves them out.
func TestBotHitsShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	hour := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).Unix()
	bot := func(agent string) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactBotHits, Hour: hour, AppID: app.ID, LinkID: spring.ID, Platform: tapline.PlatformWeb, Agent: agent}
	}
	if err := e.facts.ApplyFacts(context.Background(), "t", map[tapline.FactKey]tapline.FactValue{
		bot("facebookexternalhit"): {Count: 7}, bot("head"): {Count: 2},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10)
	day := "from=2026-03-10&to=2026-03-10"
	if page := e.get(c, base+"?"+day); !strings.Contains(page.Body, "Not counted as taps: 9 requests") || !strings.Contains(page.Body, "facebookexternalhit 7") {
		t.Errorf("the app page does not show the requests that were no taps")
	}
	var rep dashboard.DailyReport
	if err := json.Unmarshal([]byte(e.get(c, "/api/v1"+base+"/daily?"+day+"&link="+strconv.FormatInt(spring.ID, 10)).Body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.BotHits["facebookexternalhit"] != 7 || rep.Totals.BotHits["head"] != 2 || rep.Totals.Hits != 200 {
		t.Errorf("daily totals %+v, want 200 hits and 9 requests that were no taps apart", rep.Totals)
	}
	rep = dashboard.DailyReport{}
	if err := json.Unmarshal([]byte(e.get(c, "/api/v1"+base+"/daily?"+day+"&source=facebook").Body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.BotHits != nil {
		t.Errorf("filtered by source, the totals still count requests that were no taps: %v", rep.Totals.BotHits)
	}
}
