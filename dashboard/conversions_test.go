package dashboard_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// testConversion returns a conversion of installID in app, credited by
// fingerprint to a tap on link (organic when link is 0), with the decision
// the matcher records.
func testConversion(appID int64, installID string, link int64) *tapline.Conversion {
	at := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	c := &tapline.Conversion{
		ID: tapline.ConversionID("e-" + installID), AppID: appID, EventID: "e-" + installID, InstallID: installID,
		InstallTime: at, Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.7|ios",
		Attribution: tapline.Attribution{Method: tapline.MethodOrganic},
		UpdatedAt:   at,
		Decision: &tapline.Decision{Rule: tapline.RuleOrganic, Considered: 1,
			Reason: "Organic: no install referrer names a hit; it has no advertising id; no tap from its network fits.",
			Candidates: []tapline.Candidate{{HitID: "h-lost", LinkID: link, HitTime: at.Add(-time.Hour), Method: tapline.MethodFingerprint,
				Reason: "Same network, but model iPhone15,2 (install) vs iPhone14,2 (tap)."}}},
	}
	if link != 0 {
		hitTime := at.Add(-90 * time.Second)
		c.Attribution = tapline.Attribution{HitID: "h-" + installID, LinkID: link, Method: tapline.MethodFingerprint, HitTime: hitTime,
			HitParams: map[string]string{"utm_source": "facebook", "utm_campaign": "spring"}}
		c.ClickToInstall = at.Sub(hitTime)
		reason := "The newest compatible tap not yet credited from the install's network, 1m30s before the install, within the 1d fingerprint window."
		c.Decision = &tapline.Decision{Rule: tapline.RuleFingerprint, Reason: reason, Window: 24 * time.Hour, Considered: 2,
			Score: 3.37, MinScore: 0.5,
			Signals: []tapline.Signal{
				{Name: "network", Install: "203.0.113.7", Hit: "203.0.113.7", Verdict: tapline.VerdictAgree},
				{Name: "model", Install: "iPhone15,2", Verdict: tapline.VerdictUnknown},
				{Name: "os_version", Install: "17.4.1", Hit: "17.4.1", Verdict: tapline.VerdictAgree, Weight: 2.2},
				{Name: "language", Install: "en_US", Hit: "fr-FR", Verdict: tapline.VerdictConflict, Weight: -2},
			},
			Candidates: []tapline.Candidate{
				{HitID: c.HitID, LinkID: link, HitTime: hitTime, Method: tapline.MethodFingerprint, Chosen: true, Score: 4.25, Reason: reason},
				{HitID: "h-older", LinkID: link, HitTime: hitTime.Add(-time.Hour), Method: tapline.MethodFingerprint, Score: 1.5,
					Reason: "An older tap on the same network: the newest compatible one wins."},
			}}
	}
	c.History = []tapline.AttributionChange{{By: "events/0/1", To: c.Attribution, At: at}}
	return c
}

// seedConversions stores n conversions of app, every third organic, the
// others on link, a minute apart, newest last; the first has an
// advertising id.
func seedConversions(t *testing.T, e *env, app *tapline.App, link int64, n int) []*tapline.Conversion {
	t.Helper()
	var convs []*tapline.Conversion
	for i := range n {
		l := link
		if i%3 == 2 {
			l = 0
		}
		c := testConversion(app.ID, "inst-"+strconv.Itoa(i), l)
		c.InstallTime = c.InstallTime.Add(time.Duration(i) * time.Minute)
		if i == 0 {
			c.AdID = "38400000-8cf0-11bd-b23e-10b96e40000d"
		}
		convs = append(convs, c)
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", nil, nil, tapline.FlushRows{Conversions: convs}); err != nil {
		t.Fatal(err)
	}
	return convs
}

func TestConversionsExplorer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := e.link(app, "spring-sale", "Spring sale")
	seedConversions(t, e, app, spring.ID, 60)
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10) + "/conversions"

	page := e.get(c, base)
	if page.Status != http.StatusOK {
		t.Fatalf("explorer: %d %.300s", page.Status, page.Body)
	}
	for _, want := range []string{"inst-59", "Spring sale", "facebook / spring", "1m 30s", "newest compatible tap", "organic", `id="older"`} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("explorer lacks %q", want)
		}
	}
	if strings.Contains(page.Body, "inst-9<") {
		t.Errorf("the first page shows an install past its 50 newest")
	}

	for _, tc := range []struct {
		name, query string
		want        []string
		not         []string
	}{
		{"install id", "?q=inst-4", []string{"inst-4<"}, []string{"inst-5<", "inst-40<"}},
		{"advertising id in capitals", "?q=38400000-8CF0-11BD-B23E-10B96E40000D", []string{"inst-0<"}, []string{"inst-1<"}},
		{"tap id", "?q=h-inst-7", []string{"inst-7<"}, []string{"inst-8<"}},
		{"organic", "?method=organic", []string{"inst-59<", "inst-2<"}, []string{"inst-58<"}},
		{"nothing", "?q=nobody", []string{`id="no-match"`}, []string{"inst-"}},
	} {
		res := e.get(c, base+tc.query)
		if res.Status != http.StatusOK {
			t.Errorf("%s: %d", tc.name, res.Status)
		}
		for _, w := range tc.want {
			if !strings.Contains(res.Body, w) {
				t.Errorf("%s: page lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(res.Body, w) {
				t.Errorf("%s: page shows %q", tc.name, w)
			}
		}
	}

	// Bad filters: the page says so, answers 400 and still lists.
	for _, q := range []string{"?method=psychic", "?link=abc", "?after=garbage", "?from=yesterday"} {
		res := e.get(c, base+q)
		if res.Status != http.StatusBadRequest || !strings.Contains(res.Body, `id="query-error"`) || !strings.Contains(res.Body, "inst-59") {
			t.Errorf("%s: %d, error shown %v, listing shown %v", q, res.Status, strings.Contains(res.Body, "query-error"), strings.Contains(res.Body, "inst-59"))
		}
	}

	// One conversion: the decision in full.
	detail := e.get(c, base+"/"+tapline.ConversionID("e-inst-4"))
	for _, want := range []string{"inst-4", "Why", "newest compatible tap", "Window in force: 1d", "network", "203.0.113.7", "not revealed",
		"h-older", "lost: An older tap", "chosen", "Spring sale"} {
		if !strings.Contains(detail.Body, want) {
			t.Errorf("conversion page lacks %q", want)
		}
	}
	if res := e.get(c, base+"/cv-nobody"); res.Status != http.StatusNotFound {
		t.Errorf("unknown conversion: %d, want 404", res.Status)
	}

	// The API pages through everything once; the CSV of the same filter
	// holds the same conversions.
	api := "/api/v1" + base
	var ids []string
	next := ""
	for range 10 {
		res := e.get(c, api+"?limit=25&after="+next)
		var p dashboard.ConversionsPage
		if err := json.Unmarshal([]byte(res.Body), &p); err != nil || res.Status != http.StatusOK {
			t.Fatalf("api: %d %v %.200s", res.Status, err, res.Body)
		}
		for _, v := range p.Conversions {
			ids = append(ids, v.InstallID)
		}
		if next = p.Next; next == "" {
			break
		}
	}
	if len(ids) != 60 || ids[0] != "inst-59" || ids[59] != "inst-0" || len(slices.Compact(slices.Clone(ids))) != 60 {
		t.Errorf("api pages listed %d installs, %v … %v", len(ids), ids[:min(3, len(ids))], ids[max(0, len(ids)-3):])
	}
	res := e.get(c, api+".csv?method=fingerprint")
	records, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("csv: %d %v", res.Status, err)
	}
	var js dashboard.ConversionsPage
	if err := json.Unmarshal([]byte(e.get(c, api+"?method=fingerprint&limit=500").Body), &js); err != nil {
		t.Fatal(err)
	}
	if len(records) != len(js.Conversions)+1 || len(js.Conversions) != 40 {
		t.Fatalf("csv has %d rows, json %d conversions, want 40 each", len(records)-1, len(js.Conversions))
	}
	col := map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	for i, v := range js.Conversions {
		row := records[i+1]
		if row[col["install_id"]] != v.InstallID || row[col["method"]] != "fingerprint" || row[col["link_name"]] != "Spring sale" ||
			row[col["click_to_install_ms"]] != "90000" || row[col["source"]] != "facebook" || row[col["rule"]] != tapline.RuleFingerprint {
			t.Errorf("csv row %d = %v, want install %s by fingerprint on Spring sale, 90000 ms, facebook", i, row, v.InstallID)
		}
	}
	for _, q := range []string{"?method=psychic", "?limit=0", "?to=2026-03-01&from=2026-03-02"} {
		if res := e.get(c, api+q); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "error") {
			t.Errorf("api %s: %d %.100s, want a 400 JSON error", q, res.Status, res.Body)
		}
	}
}

// tableCells returns the text of the cells of the table with id in page,
// a row per <tr>, the header first.
func tableCells(t *testing.T, page, id string) [][]string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<table[^>]* id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</table>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no table %q in the page", id)
	}
	cell := regexp.MustCompile(`(?s)<t[hd][^>]*>(.*?)</t[hd]>`)
	tag := regexp.MustCompile(`<[^>]*>`)
	var rows [][]string
	for _, tr := range strings.Split(m[1], "<tr")[1:] {
		var row []string
		for _, c := range cell.FindAllStringSubmatch(tr, -1) {
			row = append(row, strings.TrimSpace(html.UnescapeString(tag.ReplaceAllString(c[1], ""))))
		}
		rows = append(rows, row)
	}
	return rows
}

// TestConversionScore checks that a conversion's page shows the score of
// a fingerprint decision and the app's minimum score in force, each
// signal's weight and each candidate's score, and that the JSON API
// carries them; a decision by another rule shows no such columns.
func TestConversionScore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := e.link(app, "spring-sale", "Spring sale")
	scored := testConversion(app.ID, "scored", spring.ID)
	below := testConversion(app.ID, "below", 0)
	below.Decision.Rule, below.Decision.Score, below.Decision.MinScore = tapline.RuleBelowMinScore, 0.25, 1.5
	below.Decision.Candidates[0].Score = 0.25
	ref := testConversion(app.ID, "ref", spring.ID)
	ref.Method = tapline.MethodReferrer
	ref.Decision = &tapline.Decision{Rule: tapline.RuleReferrer, Reason: "The install referrer names the tap.", Considered: 1,
		Signals:    []tapline.Signal{{Name: "install_referrer", Install: ref.HitID, Hit: ref.HitID, Verdict: tapline.VerdictAgree}},
		Candidates: []tapline.Candidate{{HitID: ref.HitID, LinkID: spring.ID, HitTime: ref.HitTime, Method: tapline.MethodReferrer, Chosen: true, Reason: "named"}}}
	if err := e.facts.ApplyFacts(context.Background(), "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{scored, below, ref}}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	base := "/apps/" + strconv.FormatInt(app.ID, 10) + "/conversions/"

	page := e.get(c, base+scored.ID)
	if page.Status != http.StatusOK {
		t.Fatalf("conversion page: %d", page.Status)
	}
	if want := "Score 3.37; the app's minimum score in force was 0.50."; !strings.Contains(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page.Body, ""), want) {
		t.Errorf("the page lacks %q", want)
	}
	wantSignals := [][]string{
		{"Signal", "Install", "Tap", "Verdict", "Weight"},
		{"network", "203.0.113.7", "203.0.113.7", "agree", "+0.00"},
		{"model", "iPhone15,2", "not revealed", "unknown", "+0.00"},
		{"OS version", "17.4.1", "17.4.1", "agree", "+2.20"},
		{"language", "en_US", "fr-FR", "conflict", "-2.00"},
	}
	if got := tableCells(t, page.Body, "signals"); !slices.EqualFunc(got, wantSignals, slices.Equal) {
		t.Errorf("signals table:\n got %q\nwant %q", got, wantSignals)
	}
	wantCands := [][]string{
		{"Tap", "Link", "Tapped (UTC)", "Method", "Score", "Outcome"},
		{"h-scored", "Spring sale", "2026-03-10 12:28:30", "fingerprint", "4.25", "chosen"},
		{"h-older", "Spring sale", "2026-03-10 11:28:30", "fingerprint", "1.50", "lost: An older tap on the same network: the newest compatible one wins."},
	}
	if got := tableCells(t, page.Body, "candidates"); !slices.EqualFunc(got, wantCands, slices.Equal) {
		t.Errorf("candidates table:\n got %q\nwant %q", got, wantCands)
	}

	page = e.get(c, base+below.ID)
	if want := "Score 0.25; the app's minimum score in force was 1.50, so the tap was not credited."; !strings.Contains(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page.Body, ""), want) {
		t.Errorf("below the minimum: the page lacks %q", want)
	}

	page = e.get(c, base+ref.ID)
	if strings.Contains(page.Body, `id="score"`) || strings.Contains(page.Body, "Weight") {
		t.Errorf("a referrer decision shows a score or weights")
	}
	if got := tableCells(t, page.Body, "candidates")[0]; slices.Contains(got, "Score") {
		t.Errorf("a referrer decision's candidates have a score column: %q", got)
	}

	// The JSON API carries the same numbers.
	res := e.get(c, "/api/v1"+base+scored.ID)
	var v dashboard.ConversionView
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || res.Status != http.StatusOK || v.Decision == nil {
		t.Fatalf("api: %d %v %.200s", res.Status, err, res.Body)
	}
	d := v.Decision
	if d.Score != 3.37 || d.MinScore != 0.5 || len(d.Signals) != 4 || d.Signals[2].Weight != 2.2 || d.Signals[3].Weight != -2 ||
		len(d.Candidates) != 2 || d.Candidates[0].Score != 4.25 || d.Candidates[1].Score != 1.5 {
		t.Errorf("api decision = %+v, want score 3.37 of 0.5, weights +2.2 and -2, candidate scores 4.25 and 1.5", d)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(res.Body)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"score":3.37,"min_score":0.5`, `"weight":2.2`, `"weight":-2`, `"score":4.25`} {
		if !strings.Contains(compact.String(), key) {
			t.Errorf("api answer lacks %s", key)
		}
	}
}
