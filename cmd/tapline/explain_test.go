package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/fingerprint"
	"tapline/internal/node"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// explainConversions stores, through the postgres package as the
// matcher's flush does, a conversion re-attributed by a late tap with a
// scored fingerprint decision on link, a referrer conversion, and two
// organic installs of one device (one advertising id). It returns them in
// that order.
func explainConversions(t *testing.T, c *cli, link int64) []*tapline.Conversion {
	t.Helper()
	at := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	app := c.app.ID
	late := &tapline.Conversion{
		ID: tapline.ConversionID("e-late"), AppID: app, EventID: "e-late", InstallID: "inst-late",
		InstallTime: at, Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.7|ios",
		AdID:      "AAAAAAAA-1111-2222-3333-444444444444",
		UpdatedAt: at.Add(time.Minute),
	}
	hitTime := at.Add(-90 * time.Second)
	late.Attribution = tapline.Attribution{HitID: "h-late", LinkID: link, Method: tapline.MethodFingerprint, HitTime: hitTime,
		HitParams: map[string]string{"utm_source": "facebook", "utm_campaign": "spring"}}
	late.ClickToInstall = at.Sub(hitTime)
	late.History = []tapline.AttributionChange{
		{By: "events/0/7", To: tapline.Attribution{Method: tapline.MethodOrganic}, At: at},
		{By: "hits/1/9", From: &tapline.Attribution{Method: tapline.MethodOrganic}, To: late.Attribution, At: at.Add(time.Minute)},
	}
	reason := "A tap consumed after the install, 1m30s before it, matched it by fingerprint within the 1d window."
	late.Decision = &tapline.Decision{Rule: tapline.RuleLateHit, Reason: reason, Window: 24 * time.Hour, Considered: 7,
		Score: 3.37, MinScore: 0.5,
		Signals: []tapline.Signal{
			{Name: "model", Install: "iPhone15,2", Hit: "iPhone15,2", Verdict: tapline.VerdictAgree, Weight: 3},
			{Name: "os_version", Install: "17.4.1", Verdict: tapline.VerdictUnknown},
			{Name: "language", Install: "en_US", Hit: "fr-FR", Verdict: tapline.VerdictConflict, Weight: -2},
			{Name: "click_to_install", Install: "1m30s", Verdict: tapline.VerdictAgree, Weight: 0.75},
		},
		Candidates: []tapline.Candidate{
			{HitID: "h-late", LinkID: link, HitTime: hitTime, Method: tapline.MethodFingerprint, Chosen: true, Score: 4.25, Reason: reason},
			{HitID: "h-other", LinkID: 987654, HitTime: hitTime.Add(-time.Hour), Method: tapline.MethodFingerprint, Score: -1.5,
				Reason: "Another model: iPhone14,2 (tap)."},
		}}

	ref := &tapline.Conversion{
		ID: tapline.ConversionID("e-ref"), AppID: app, EventID: "e-ref", InstallID: "inst-ref",
		InstallTime: at.Add(time.Hour), Platform: tapline.PlatformAndroid, Fingerprint: "198.51.100.0|android",
		Attribution: tapline.Attribution{HitID: "h-ref", LinkID: link, Method: tapline.MethodReferrer, HitTime: at},
		UpdatedAt:   at.Add(time.Hour),
	}
	ref.ClickToInstall = time.Hour
	ref.History = []tapline.AttributionChange{{By: "events/0/8", To: ref.Attribution, At: ref.InstallTime}}
	ref.Decision = &tapline.Decision{Rule: tapline.RuleReferrer, Reason: "The install referrer names tap h-ref.", Window: 7 * 24 * time.Hour, Considered: 1,
		Signals:    []tapline.Signal{{Name: "install_referrer", Install: "h-ref", Hit: "h-ref", Verdict: tapline.VerdictAgree}},
		Candidates: []tapline.Candidate{{HitID: "h-ref", LinkID: link, HitTime: at, Method: tapline.MethodReferrer, Chosen: true, Reason: "named"}}}

	convs := []*tapline.Conversion{late, ref}
	for i, id := range []string{"inst-again-1", "inst-again-2"} {
		o := &tapline.Conversion{
			ID: tapline.ConversionID("e-" + id), AppID: app, EventID: "e-" + id, InstallID: id,
			InstallTime: at.Add(time.Duration(i+2) * time.Hour), Platform: tapline.PlatformAndroid,
			AdID: "bbbbbbbb-0000-0000-0000-000000000001", Attribution: tapline.Attribution{Method: tapline.MethodOrganic},
			Decision: &tapline.Decision{Rule: tapline.RuleOrganic, Reason: "Organic: no tap fits."},
		}
		o.UpdatedAt = o.InstallTime
		o.History = []tapline.AttributionChange{{By: fmt.Sprintf("events/0/%d", 10+i), To: o.Attribution, At: o.InstallTime}}
		convs = append(convs, o)
	}
	if err := postgres.NewFactStore(c.pg).ApplyFacts(t.Context(), "explain-test", nil, nil, tapline.FlushRows{Conversions: convs}); err != nil {
		t.Fatal(err)
	}
	return convs
}

// explanation is the text "tapline explain" printed, read back: the
// fields before the first table, and each titled section's rows split
// into cells (the header row first).
type explanation struct {
	fields   map[string]string
	sections map[string][][]string
}

var cellSep = regexp.MustCompile(` {2,}`)

func parseExplanation(t *testing.T, out string) explanation {
	t.Helper()
	e := explanation{fields: map[string]string{}, sections: map[string][][]string{}}
	blocks := strings.Split(strings.TrimRight(out, "\n"), "\n\n")
	for _, line := range strings.Split(blocks[0], "\n") {
		k, v, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("field line %q has no value", line)
		}
		e.fields[k] = strings.TrimSpace(v)
	}
	for _, b := range blocks[1:] {
		lines := strings.Split(b, "\n")
		title, _, _ := strings.Cut(lines[0], " (")
		var rows [][]string
		for _, l := range lines[1:] {
			rows = append(rows, cellSep.Split(strings.TrimSpace(l), -1))
		}
		e.sections[title] = rows
		e.fields[title+" title"] = lines[0]
	}
	return e
}

func TestExplain(t *testing.T) {
	c := newCLI(t)
	var spring dashboard.LinkView
	if err := json.Unmarshal([]byte(c.mustRun("create-link", "-app", fmt.Sprint(c.app.ID), "-slug", "spring-sale", "-name", "Spring sale")), &spring); err != nil {
		t.Fatal(err)
	}
	convs := explainConversions(t, c, spring.ID)
	late := convs[0]
	app := fmt.Sprint(c.app.ID)

	// Found by install id, by conversion id and by advertising id (in
	// another case): the same explanation.
	out := c.mustRun("explain", "-app", app, "-install", "inst-late")
	for _, args := range [][]string{{"-conversion", late.ID}, {"-ad-id", strings.ToLower(late.AdID)}} {
		if again := c.mustRun(append([]string{"explain", "-app", app}, args...)...); again != out {
			t.Errorf("explain %v:\n%s\nwant what -install printed:\n%s", args, again, out)
		}
	}
	e := parseExplanation(t, out)
	wantFields := map[string]string{
		"conversion":       late.ID,
		"app":              "Shop (app " + app + ")",
		"install":          "inst-late",
		"event":            "e-late",
		"installed":        "2026-03-10 12:30:00.000 UTC",
		"platform":         "ios",
		"method":           "fingerprint",
		"link":             fmt.Sprintf("Spring sale (link %d)", spring.ID),
		"tap":              "h-late at 2026-03-10 12:28:30.000 UTC",
		"click to install": "1m30s",
		"campaign":         "facebook / spring",
		"rule":             "late_hit",
		"reason":           late.Decision.Reason,
		"score":            "3.37 (the app's min score in force: 0.50; credited)",
		"window":           "1d",
		"Candidates title": "Candidates (7 considered, 2 shown)",
	}
	for k, want := range wantFields {
		if got, ok := e.fields[k]; got != want || !ok {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	wantSections := map[string][][]string{
		"Signals compared": {
			{"SIGNAL", "INSTALL", "TAP", "VERDICT", "WEIGHT"},
			{"model", "iPhone15,2", "iPhone15,2", "agree", "+3.00"},
			{"os_version", "17.4.1", "not revealed", "unknown", "+0.00"},
			{"language", "en_US", "fr-FR", "conflict", "-2.00"},
			{"click_to_install", "1m30s", "not revealed", "agree", "+0.75"},
		},
		"Candidates": {
			{"TAP", "LINK", "TAPPED (UTC)", "METHOD", "SCORE", "OUTCOME"},
			{"h-late", fmt.Sprintf("Spring sale (link %d)", spring.ID), "2026-03-10 12:28:30", "fingerprint", "4.25", "chosen"},
			{"h-other", "link 987654", "2026-03-10 11:28:30", "fingerprint", "-1.50", "lost: Another model: iPhone14,2 (tap)."},
		},
		"History": {
			{"AT (UTC)", "BY", "CHANGE"},
			{"2026-03-10 12:30:00", "events/0/7", "matched as organic"},
			{"2026-03-10 12:31:00", "hits/1/9", fmt.Sprintf("re-attributed from organic to fingerprint (tap h-late on Spring sale (link %d))", spring.ID)},
		},
	}
	if len(e.sections) != len(wantSections) {
		t.Errorf("sections %v, want %d", e.sections, len(wantSections))
	}
	for title, want := range wantSections {
		if got := e.sections[title]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", title, got, want)
		}
	}
	// The columns are aligned: each cell of a table starts where its
	// header does.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "SIGNAL ") {
			continue
		}
		head := l
		for _, row := range lines[i+1 : i+5] {
			for _, col := range []string{"INSTALL", "TAP", "VERDICT"} {
				at := strings.Index(head, col)
				if row[at-2:at] != "  " || row[at] == ' ' {
					t.Errorf("row %q: column %s does not start at %d", row, col, at)
				}
			}
			if len(row) != len(head) {
				t.Errorf("row %q does not end under WEIGHT (right-aligned) in %q", row, head)
			}
		}
	}

	// -json is what the API answers: the conversion view, decision and
	// all, with the link's name.
	var got dashboard.ConversionView
	if err := json.Unmarshal([]byte(c.mustRun("explain", "-app", app, "-install", "inst-late", "-json")), &got); err != nil {
		t.Fatal(err)
	}
	want := dashboard.NewConversionView(late, []*tapline.Link{spring.Link})
	want.AdID, want.Fingerprint = "", fingerprint.MaskFingerprint(late.Fingerprint) // kept hashed and masked
	if !reflect.DeepEqual(got.Conversion, want.Conversion) || got.LinkName != "Spring sale" ||
		!reflect.DeepEqual(got.Campaign, want.Campaign) || *got.ClickToInstallMillis != 90_000 {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("-json:\n got %s\nwant %s", gj, wj)
	}

	// A decision without a score: no score, no weights.
	e = parseExplanation(t, c.mustRun("explain", "-app", app, "-install", "inst-ref"))
	if _, ok := e.fields["score"]; ok || e.fields["rule"] != "referrer" || e.fields["window"] != "7d" || e.fields["click to install"] != "1h0m0s" {
		t.Errorf("referrer explanation fields: %q", e.fields)
	}
	if s := e.sections["Signals compared"]; len(s) != 2 || len(s[0]) != 4 || !reflect.DeepEqual(s[1], []string{"install_referrer", "h-ref", "h-ref", "agree"}) {
		t.Errorf("referrer signals: %q", s)
	}
	if s := e.sections["Candidates"]; len(s) != 2 || !reflect.DeepEqual(s[0], []string{"TAP", "LINK", "TAPPED (UTC)", "METHOD", "OUTCOME"}) {
		t.Errorf("referrer candidates: %q", s)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown app", []string{"-app", "999999", "-install", "inst-late"}, []string{"not_found", "No app with id 999999"}},
		{"unknown app name", []string{"-account", "acme", "-app-name", "Nope", "-install", "inst-late"}, []string{"not_found", `no app named "Nope"`}},
		{"unknown install", []string{"-app", app, "-install", "inst-nobody"}, []string{"not_found", `no conversion of install "inst-nobody"`, "next flush"}},
		{"a tap id is no install id", []string{"-app", app, "-install", "h-late"}, []string{"not_found", `install "h-late"`}},
		{"unknown conversion", []string{"-app", app, "-conversion", "cv-nobody"}, []string{"not_found", `no conversion "cv-nobody"`}},
		{"unknown advertising id", []string{"-app", app, "-ad-id", "cccccccc-0000-0000-0000-000000000009"}, []string{"not_found", "advertising id"}},
		{"one device, two installs", []string{"-app", app, "-ad-id", "BBBBBBBB-0000-0000-0000-000000000001"},
			[]string{"invalid", "2 conversions", "-conversion", "cv-e-inst-again-1", "cv-e-inst-again-2"}},
		{"no install named", []string{"-app", app}, []string{"exactly one of -install, -conversion or -ad-id"}},
		{"two named", []string{"-app", app, "-install", "inst-late", "-conversion", late.ID}, []string{"exactly one of"}},
		{"empty", []string{"-app", app, "-install", " "}, []string{"-install: empty"}},
		{"no app", []string{"-install", "inst-late"}, []string{"-app: required"}},
		{"stray argument", []string{"-app", app, "-install", "inst-late", "extra"}, []string{`unexpected argument "extra"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := c.run(append([]string{"explain"}, tc.args...)...)
			if err == nil {
				t.Fatalf("no error; printed:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("printed %q with the error", out)
			}
		})
	}
}

// TestExplainPipeline runs the all-in-one, taps the demo link and posts
// the install from the same iPhone, and explains the install the matcher
// stored, whatever it decided: -json is what the API answers for it, the
// text shows the decision's fields, each signal and each candidate.
func TestExplainPipeline(t *testing.T) {
	m, _ := runMain(t)
	n := m.Node
	const phoneIP, install = "203.0.113.78", "5D0A3C1B-7E2F-4A9B-8C6D-1E2F3A4B5C6D"
	tap(t, n, node.DemoLinkSlug+"?utm_campaign=explain", phoneIP)
	postInstall(t, n, phoneIP, install)
	demo, err := node.SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	explain := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		cli := &Main{Stdout: &out, Stderr: &errOut}
		args = append([]string{"explain", "-app", strconv.FormatInt(demo.App.ID, 10), "-install", install, "-database-url", n.Config.DatabaseURL}, args...)
		err := cli.Run(context.Background(), args)
		return out.String(), err
	}
	// Until the matcher's flush stores the conversion, it is not found.
	var js string
	for deadline := time.Now().Add(15 * time.Second); ; {
		if js, err = explain("-json"); err == nil {
			break
		}
		if !strings.Contains(err.Error(), "not_found") || time.Now().After(deadline) {
			t.Fatalf("explain: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var fromCLI, fromAPI any
	if err := json.Unmarshal([]byte(js), &fromCLI); err != nil {
		t.Fatal(err)
	}
	var v dashboard.ConversionView
	if err := json.Unmarshal([]byte(js), &v); err != nil || v.Decision == nil {
		t.Fatalf("explain -json printed %s (%v), want a conversion with its decision", js, err)
	}

	// The API, logged in as the demo user, answers the same.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar}
	resp, err := browser.PostForm(n.DashboardURL+"/login", url.Values{"login": {node.DemoEmail}, "password": {node.DemoPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(fmt.Sprintf("%s/api/v1/apps/%d/conversions/%s", n.DashboardURL, demo.App.ID, v.ID))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&fromAPI)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("api: %d %v", resp.StatusCode, err)
	}
	if !reflect.DeepEqual(fromCLI, fromAPI) {
		t.Errorf("explain -json:\n%v\nthe API:\n%v", fromCLI, fromAPI)
	}

	out, err := explain()
	if err != nil {
		t.Fatal(err)
	}
	e := parseExplanation(t, out)
	d := v.Decision
	want := map[string]string{"install": install, "method": string(v.Method), "rule": d.Rule, "reason": d.Reason}
	if d.Scored() {
		verdict := "credited"
		if d.Score < d.MinScore {
			verdict = "under it: not credited"
		}
		want["score"] = fmt.Sprintf("%s (the app's min score in force: %s; %s)", score(d.Score), score(d.MinScore), verdict)
	}
	for k, w := range want {
		if e.fields[k] != w {
			t.Errorf("%s = %q, want %q", k, e.fields[k], w)
		}
	}
	signals := e.sections["Signals compared"]
	if len(signals) != len(d.Signals)+1 {
		t.Fatalf("%d signal rows, want %d:\n%s", len(signals)-1, len(d.Signals), out)
	}
	for i, s := range d.Signals {
		row := signals[i+1]
		wantRow := []string{s.Name, revealed(s.Install), revealed(s.Hit), string(s.Verdict)}
		if d.Scored() {
			wantRow = append(wantRow, weight(s.Weight))
		}
		if !reflect.DeepEqual(row, wantRow) {
			t.Errorf("signal row %q, want %q", row, wantRow)
		}
	}
	cands := e.sections["Candidates"]
	if len(cands) != len(d.Candidates)+1 || len(d.Candidates) == 0 {
		t.Fatalf("%d candidate rows for %d candidates:\n%s", len(cands)-1, len(d.Candidates), out)
	}
	for i, c := range d.Candidates {
		row := cands[i+1]
		if row[0] != c.HitID || row[1] != "Demo campaign (link "+strconv.FormatInt(demo.Link.ID, 10)+")" || row[3] != string(c.Method) ||
			(d.Scored() && row[4] != score(c.Score)) || (c.Chosen != (row[len(row)-1] == "chosen")) {
			t.Errorf("candidate row %q for %+v", row, c)
		}
	}
	if h := e.sections["History"]; len(h) != len(v.History)+1 {
		t.Errorf("history rows %q for %d changes", h, len(v.History))
	}
}

// TestExplainExitStatus runs the real main in a child process: an unknown
// app is a one-line message on stderr and exit status 1, nothing on
// stdout.
func TestExplainExitStatus(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPLINE_TEST_AS_MAIN=1",
		"TAPLINE_TEST_ARGS=explain -app 999999 -install inst-1 -database-url "+pgtest.URL(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	if got, want := stderr.String(), "tapline: not_found: No app with id 999999.\n"; got != want || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want stderr %q and nothing on stdout", got, stdout.String(), want)
	}
}
