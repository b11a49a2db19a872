package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/funnels"
	"tapline/postgres"
)

// maxAmbiguous bounds the conversions an ambiguous -ad-id lists.
const maxAmbiguous = 10

// explain runs "tapline explain": why an install was credited as it was,
// read from the conversions table the matcher writes in its flush.
func (m *Main) explain(ctx context.Context, args []string) error {
	c := m.subcommand("explain", "-app ID (-install ID | -conversion CID | -ad-id X) [-json]", `Explain why an install was credited as it was: the match method, the rule and its reason,
the fingerprint score against the app's minimum, the window, every signal compared
(with its weight in the score), the candidates considered and why they lost, and
the attribution's history (late taps that re-attributed it). Name the install with
one of -install, -conversion or -ad-id (as the dashboard's conversions explorer
searches). -json prints what GET /api/v1/apps/{id}/conversions/{cid} answers.`, true)
	af := c.appFlags()
	install := c.fs.String("install", "", "the install id (the SDK's install identifier)")
	conv := c.fs.String("conversion", "", "the conversion id (cv-…), as the dashboard's conversion page names it")
	adID := c.fs.String("ad-id", "", "the install's advertising id (IDFA or GAID), in any case")
	if err := c.parseNone(args); err != nil {
		return err
	}
	var given []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"install", install}, {"conversion", conv}, {"ad-id", adID}} {
		*f.v = strings.TrimSpace(*f.v)
		if c.set(f.name) {
			given = append(given, "-"+f.name)
			if *f.v == "" {
				return fmt.Errorf("explain: -%s: empty", f.name)
			}
		}
	}
	if len(given) != 1 {
		return fmt.Errorf("explain: name the install with exactly one of -install, -conversion or -ad-id (got %d)", len(given))
	}
	db, err := m.openDB(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := postgres.NewAccountService(db)
	app, err := af.app(ctx, svc)
	if err != nil {
		if tapline.ErrorCode(err) == tapline.ENOTFOUND && *af.id != 0 {
			err = tapline.Errorf(tapline.ENOTFOUND, "No app with id %d.", *af.id)
		}
		return describe(err)
	}
	cv, err := findConversion(ctx, postgres.NewReports(db), app.ID, *install, *conv, *adID)
	if err != nil {
		return describe(err)
	}
	links, err := svc.LinksByApp(ctx, app.ID)
	if err != nil {
		return fmt.Errorf("links of app %d: %w", app.ID, err)
	}
	v := dashboard.NewConversionView(cv, links)
	if *c.asJSON {
		return m.printJSON(v)
	}
	writeExplanation(m.Stdout, app, v)
	return nil
}

// notStored is what a missing conversion's error adds.
const notStored = " The matcher stores an install's conversion at its next flush, seconds after the install reaches it."

// findConversion returns the app's conversion named by one of install,
// conversion id and advertising id, or ENOTFOUND; an advertising id
// several installs carried is EINVALID, listing them.
func findConversion(ctx context.Context, r *postgres.Reports, appID int64, install, id, adID string) (*tapline.Conversion, error) {
	if id != "" {
		c, err := r.Conversion(ctx, appID, id)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return nil, tapline.Errorf(tapline.ENOTFOUND, "App %d has no conversion %q.", appID, id)
		}
		return c, err
	}
	search, flag := install, "-install"
	if search == "" {
		search, flag = adID, "-ad-id"
	}
	if len(search) > 200 {
		return nil, tapline.Errorf(tapline.EINVALID, "%s: at most 200 characters", flag)
	}
	page, err := r.Conversions(ctx, tapline.ConversionQuery{AppID: appID, Search: search, Limit: tapline.MaxConversionPage})
	if err != nil {
		return nil, err
	}
	// The search also matches tap and conversion ids: keep the install's.
	var found []*tapline.Conversion
	for _, c := range page.Conversions {
		if install == "" || c.InstallID == install {
			found = append(found, c)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && install != "":
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App %d has no conversion of install %q.%s", appID, install, notStored)
	case len(found) == 0:
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App %d has no conversion of an install with advertising id %q.%s", appID, adID, notStored)
	}
	var b strings.Builder
	what := "advertising id " + strconv.Quote(adID)
	if install != "" {
		what = "install " + strconv.Quote(install)
	}
	more := ""
	if page.Next != "" {
		more = " or more"
	}
	fmt.Fprintf(&b, "%d%s conversions of app %d have %s; name one with -conversion:", len(found), more, appID, what)
	for i, c := range found {
		if i == maxAmbiguous {
			fmt.Fprintf(&b, "\n  … and %d%s more", len(found)-i, more)
			break
		}
		fmt.Fprintf(&b, "\n  %s  install %s at %s, %s", c.ID, c.InstallID, c.InstallTime.UTC().Format(time.DateTime), c.Method)
	}
	return nil, tapline.Errorf(tapline.EINVALID, "%s", b.String())
}

// writeExplanation writes v, a conversion of app, for a person: the
// install, the decision, the signals, the candidates and the history.
func writeExplanation(w io.Writer, app *tapline.App, v dashboard.ConversionView) {
	fields := [][2]string{
		{"conversion", v.ID},
		{"app", fmt.Sprintf("%s (app %d)", app.Name, app.ID)},
		{"install", v.InstallID},
		{"event", v.EventID},
		{"installed", v.InstallTime.UTC().Format(timeLayout) + " UTC"},
		{"platform", string(v.Platform)},
		{"method", string(v.Method)},
	}
	if v.LinkID != 0 {
		fields = append(fields, [2]string{"link", linkText(v, v.LinkID)})
	}
	if v.HitID != "" {
		fields = append(fields, [2]string{"tap", v.HitID + " at " + v.HitTime.UTC().Format(timeLayout) + " UTC"})
	}
	if v.ClickToInstallMillis != nil {
		fields = append(fields, [2]string{"click to install", funnels.FormatWindow(*v.ClickToInstallMillis / 1000)})
	}
	if s := v.CampaignText(); s != "" {
		fields = append(fields, [2]string{"campaign", s})
	}
	d := v.Decision
	if d == nil {
		writeFields(w, fields)
		fmt.Fprintln(w, "\nNo decision was recorded for this conversion (it was stored before tapline recorded them).")
		writeHistory(w, v)
		return
	}
	fields = append(fields, [2]string{"rule", d.Rule}, [2]string{"reason", d.Reason})
	if d.Scored() {
		verdict := "credited"
		if d.Score < d.MinScore {
			verdict = "under it: not credited"
		}
		fields = append(fields, [2]string{"score", fmt.Sprintf("%s (the app's min score in force: %s; %s)", score(d.Score), score(d.MinScore), verdict)})
	}
	if d.Window > 0 {
		fields = append(fields, [2]string{"window", funnels.FormatWindow(int64(d.Window / time.Second))})
	}
	writeFields(w, fields)

	if len(d.Signals) > 0 {
		fmt.Fprintln(w, "\nSignals compared")
		head := []string{"SIGNAL", "INSTALL", "TAP", "VERDICT"}
		if d.Scored() {
			head = append(head, "WEIGHT")
		}
		t := newTable(head...).alignRight(4)
		for _, s := range d.Signals {
			row := []string{s.Name, revealed(s.Install), revealed(s.Hit), string(s.Verdict)}
			if d.Scored() {
				row = append(row, weight(s.Weight))
			}
			t.add(row...)
		}
		t.write(w)
	}

	shown := ""
	if d.Considered > len(d.Candidates) {
		shown = fmt.Sprintf(", %d shown", len(d.Candidates))
	}
	fmt.Fprintf(w, "\nCandidates (%d considered%s)\n", d.Considered, shown)
	if len(d.Candidates) == 0 {
		fmt.Fprintln(w, "No tap was a candidate.")
	} else {
		head := []string{"TAP", "LINK", "TAPPED (UTC)", "METHOD"}
		if d.Scored() {
			head = append(head, "SCORE")
		}
		t := newTable(append(head, "OUTCOME")...).alignRight(4)
		for _, c := range d.Candidates {
			link, at := "-", "-"
			if c.LinkID != 0 {
				link = linkText(v, c.LinkID)
			}
			if !c.HitTime.IsZero() {
				at = c.HitTime.UTC().Format(time.DateTime)
			}
			row := []string{c.HitID, link, at, string(c.Method)}
			if d.Scored() {
				s := "-"
				if c.Method == tapline.MethodFingerprint {
					s = score(c.Score)
				}
				row = append(row, s)
			}
			outcome := "lost: " + c.Reason
			if c.Chosen {
				outcome = "chosen"
			}
			t.add(append(row, outcome)...)
		}
		t.write(w)
	}
	writeHistory(w, v)
}

// timeLayout writes an install's or a tap's time to the millisecond.
const timeLayout = "2006-01-02 15:04:05.000"

// writeHistory writes the conversion's changes of attribution, oldest
// first.
func writeHistory(w io.Writer, v dashboard.ConversionView) {
	fmt.Fprintln(w, "\nHistory")
	if len(v.History) == 0 {
		fmt.Fprintln(w, "No change recorded.")
		return
	}
	t := newTable("AT (UTC)", "BY", "CHANGE")
	for _, ch := range v.History {
		change := "matched as " + attributionText(v, ch.To)
		if ch.From != nil {
			change = "re-attributed from " + attributionText(v, *ch.From) + " to " + attributionText(v, ch.To)
		}
		t.add(ch.At.UTC().Format(time.DateTime), ch.By, change)
	}
	t.write(w)
}

// attributionText names an attribution briefly: "fingerprint (tap h-1 on
// Spring sale (link 4))".
func attributionText(v dashboard.ConversionView, a tapline.Attribution) string {
	s := string(a.Method)
	if a.HitID != "" {
		s += " (tap " + a.HitID
		if a.LinkID != 0 {
			s += " on " + linkText(v, a.LinkID)
		}
		s += ")"
	}
	return s
}

// linkText names a link of the conversion's app with its id.
func linkText(v dashboard.ConversionView, id int64) string {
	name := v.LinkLabel(id)
	if name == "link "+strconv.FormatInt(id, 10) {
		return name
	}
	return fmt.Sprintf("%s (link %d)", name, id)
}

// writeFields writes name-value pairs, the values aligned.
func writeFields(w io.Writer, fields [][2]string) {
	width := 0
	for _, f := range fields {
		width = max(width, len(f[0]))
	}
	for _, f := range fields {
		fmt.Fprintf(w, "%-*s  %s\n", width, f[0], f[1])
	}
}

// revealed is a signal's value, or says that its side did not reveal it.
func revealed(s string) string {
	if s == "" {
		return "not revealed"
	}
	return s
}

// score writes a fingerprint score with two decimals, as the dashboard.
func score(s float64) string { return strconv.FormatFloat(s, 'f', 2, 64) }

// weight writes what a signal added to a score, signed, as the dashboard.
func weight(w float64) string { return fmt.Sprintf("%+.2f", w) }
