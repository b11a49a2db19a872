package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tapline"
	"tapline/internal/browsertest"
)

// browser is one headless Chromium tab on the test's dashboard.
type browser struct {
	*browsertest.Browser
	t   *testing.T
	ctx context.Context
}

// newBrowser starts headless Chromium for the test's dashboard.
func newBrowser(t *testing.T, _ *env) *browser {
	bt := browsertest.New(t)
	return &browser{Browser: bt, t: t, ctx: bt.Ctx()}
}

// logIn opens url, which sends a visitor to the login form, logs in as
// acme and waits until the page shows the element the CSS selector sel
// selects.
func (b *browser) logIn(url, sel string) {
	b.t.Helper()
	b.LogIn(url, "acme@example.com", password, sel)
}

func TestFunnelBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme Shop")
	spring := e.link(app, "spring-sale", "Spring sale")
	e.link(app, "fall-promo", "Fall promo")
	// Event names the builder offers, from the fact table.
	now := time.Now()
	deltas := map[tapline.FactKey]tapline.FactValue{}
	for i, name := range []string{"purchase", "open", "signup"} {
		deltas[tapline.FactKey{Table: tapline.FactEvents, Hour: tapline.HourOf(now.Add(-24 * time.Hour)), AppID: app.ID, EventName: name,
			Platform: tapline.PlatformIOS, Method: tapline.MethodOrganic}] = tapline.FactValue{Count: int64(10 - i)}
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, e)
	base := e.srv.URL
	appPath := "/apps/" + strconv.FormatInt(app.ID, 10)

	// Log in through the form.
	b.logIn(base+appPath+"/funnels", "#new-funnel")
	if got := b.Text(".empty-state strong"); got != "No funnels yet." {
		t.Errorf("empty funnels page says %q", got)
	}

	// Build tap → install → event in the builder.
	b.Do("open the builder", chromedp.Click(chromedp.ID("new-funnel")))
	b.WaitFor("the builder", `document.querySelector('#steps li[data-step="2"]')`)
	if opts := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#event-names option')].map(o => o.value)`); strings.Join(opts, ",") != "purchase,open,signup" {
		t.Errorf("builder offers events %q, want purchase, open, signup", opts)
	}
	b.Do("fill in the funnel",
		chromedp.SendKeys(chromedp.ID("f-name"), "Spring to purchase"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#steps li[data-step="1"] input[type=checkbox][value="%d"]`, spring.ID))),
		chromedp.Click(chromedp.ID("add-step")),
		chromedp.WaitVisible(chromedp.CSS(`#steps li[data-step="3"] input.event-name`)),
		chromedp.SendKeys(chromedp.CSS(`#steps li[data-step="3"] input.event-name`), "purchase"),
		// A filter on the purchase: revenue ≥ 1.
		chromedp.Click(chromedp.CSS(`#steps li[data-step="3"] .filters button.link-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#steps li[data-step="3"] .filter input.param`)),
		chromedp.SendKeys(chromedp.CSS(`#steps li[data-step="3"] .filter input.param`), "revenue"),
	)
	b.SetSelect(`#steps li[data-step="3"] .filter select.op`, "gte")
	b.Do("filter value", chromedp.SendKeys(chromedp.CSS(`#steps li[data-step="3"] .filter input.value`), "1"))
	// Exclude an uninstall between the install and the purchase.
	b.Do("exclusion",
		chromedp.Click(chromedp.ID("add-exclusion")),
		chromedp.WaitVisible(chromedp.CSS(`#exclusions li[data-exclusion="1"] input.event-name`)),
		chromedp.SendKeys(chromedp.CSS(`#exclusions li[data-exclusion="1"] input.event-name`), "uninstall"),
	)
	b.SetSelect(`#exclusions li[data-exclusion="1"] select[aria-label="After step"]`, "2")
	b.SetSelect("#f-breakdown", "platform")
	b.Do("window", chromedp.SetValue(chromedp.ID("f-window"), ""), chromedp.SendKeys(chromedp.ID("f-window"), "7"))
	b.Do("save", chromedp.Click(chromedp.ID("save")))
	b.WaitFor("the funnel view", `location.pathname.match(/\/funnels\/\d+$/) && document.querySelector('#funnel-steps')`,
		`document.getElementById("builder-error") && document.getElementById("builder-error").textContent`, `location.href`, `document.getElementById("save") && document.getElementById("save").disabled`)

	fs, err := e.funnels.FunnelsByApp(context.Background(), app.ID)
	if err != nil || len(fs) != 1 {
		t.Fatalf("funnels after saving: %+v, %v", fs, err)
	}
	f := fs[0]
	if f.Name != "Spring to purchase" || len(f.Steps) != 3 || f.Steps[0].Kind != tapline.StepTap || fmt.Sprint(f.Steps[0].Links) != fmt.Sprint([]int64{spring.ID}) ||
		f.Steps[1].Kind != tapline.StepInstall || f.Steps[2].Kind != tapline.StepEvent || f.Steps[2].Event != "purchase" ||
		len(f.Steps[2].Filters) != 1 || f.Steps[2].Filters[0].String() != "revenue ≥ 1" ||
		f.WindowSeconds != 7*86400 || f.Order != tapline.OrderOrdered || f.Breakdown.Kind != tapline.BreakdownPlatform ||
		len(f.Exclusions) != 1 || f.Exclusions[0].Kind != tapline.StepEvent || f.Exclusions[0].Event != "uninstall" || f.Exclusions[0].After != 2 || f.Exclusions[0].Before != 3 {
		t.Errorf("saved funnel = %+v", f)
	}
	if e.saved.Load() != 1 {
		t.Errorf("OnFunnelSaved called %d times, want 1", e.saved.Load())
	}
	if got := b.Text("#results-banner .text"); !strings.HasPrefix(got, "Pending handoff") {
		t.Errorf("banner of a new funnel = %q", got)
	}

	// Listed, pending.
	b.Do("list", chromedp.Navigate(base+appPath+"/funnels"), chromedp.WaitVisible(chromedp.ID("funnels")))
	if got := b.Text(fmt.Sprintf("#funnel-%d a.name", f.ID)); got != "Spring to purchase" {
		t.Errorf("listed name %q", got)
	}
	if got := b.Text(fmt.Sprintf("#funnel-%d .badge", f.ID)); got != "pending handoff" {
		t.Errorf("listed status %q", got)
	}

	// The backfill half done: the list shows its progress and refreshes by itself.
	e.seedSteps(f, standardRows...)
	e.backfilling(f, 2)
	e.finishRange(f)
	b.WaitFor("the list to show the backfill", fmt.Sprintf(`(document.querySelector('#funnel-%d .pct') || {}).textContent === '50%%'`, f.ID))
	b.Screenshot("funnel-list")
	e.finishRange(f)
	b.WaitFor("the list to show it live", fmt.Sprintf(`(document.querySelector('#funnel-%d .badge') || {}).textContent === 'live'`, f.ID))

	// The view with results.
	b.Do("open the view", chromedp.Click(chromedp.CSS(fmt.Sprintf("#funnel-%d a.name", f.ID))))
	b.WaitFor("the view", `document.getElementById('funnel-steps')`)
	b.Do("view March",
		chromedp.Navigate(base+appPath+"/funnels/"+strconv.FormatInt(f.ID, 10)+"?from=2026-03-10&to=2026-03-11&tz=Europe/Paris"),
		chromedp.WaitVisible(chromedp.ID("breakdown")),
	)
	counts := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#funnel-steps .fstep .count b')].map(e => e.textContent)`)
	shares := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#funnel-steps .fstep .share')].map(e => e.textContent)`)
	widths := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#funnel-steps svg.bar rect.fill')].map(e => e.getAttribute('width'))`)
	barPx := browsertest.Eval[[]float64](b.Browser, `[...document.querySelectorAll('#funnel-steps svg.bar rect.fill')].map(e => e.getBoundingClientRect().width)`)
	if strings.Join(counts, ",") != "110,55,15" || strings.Join(shares, ",") != "100.0%,50.0%,13.6%" || strings.Join(widths, ",") != "100.00,50.00,13.64" {
		t.Errorf("steps: counts %q, shares %q, bar widths %q", counts, shares, widths)
	}
	if len(barPx) != 3 || barPx[0] < 300 || barPx[1] < barPx[0]*0.45 || barPx[1] > barPx[0]*0.55 {
		t.Errorf("rendered bar widths %v px: the second should be half the first", barPx)
	}
	titles := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#funnel-steps .fstep .title')].map(e => e.textContent)`)
	if strings.Join(titles, "|") != "Tap on Spring sale|Install|purchase where revenue ≥ 1" {
		t.Errorf("step titles %q", titles)
	}
	if got := b.Text("#funnel-steps .between"); !strings.Contains(got, "50.0% converted") || !strings.Contains(got, "55 dropped off") || !strings.Contains(got, "median 6m 40s") {
		t.Errorf("between steps 1 and 2: %q", got)
	}
	rows := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#breakdown tbody tr')].map(r => [...r.cells].map(c => c.innerText.replace(/\s+/g, ' ').trim()).join('|'))`)
	if strings.Join(rows, "\n") != "ios|70|35 50.0%|10 14.3%|14.3%\nandroid|40|20 50.0%|5 12.5%|12.5%" {
		t.Errorf("breakdown rows:\n%s", strings.Join(rows, "\n"))
	}
	if got := browsertest.Eval[string](b.Browser, `document.querySelector('input[name=tz]').value`); got != "Europe/Paris" {
		t.Errorf("time zone field %q", got)
	}
	if href := browsertest.Eval[string](b.Browser, `document.getElementById('export-csv').getAttribute('href')`); !strings.HasSuffix(href, "/results.csv?from=2026-03-10&to=2026-03-11&tz=Europe%2FParis") {
		t.Errorf("CSV link %q", href)
	}
	b.Screenshot("funnel-view")

	// A bad definition: the API's message shows, nothing typed is lost.
	b.Do("bad definition",
		chromedp.Navigate(base+appPath+"/funnels/new"),
		chromedp.WaitVisible(chromedp.CSS(`#steps li[data-step="2"]`)),
		chromedp.SendKeys(chromedp.ID("f-name"), "Half done"),
		chromedp.Click(chromedp.ID("add-step")),
		chromedp.WaitVisible(chromedp.CSS(`#steps li[data-step="3"] input.event-name`)),
		chromedp.Click(chromedp.ID("save")),
	)
	b.WaitFor("the error", `!document.getElementById('builder-error').hidden`)
	if got := b.Text("#builder-error"); got != "step 3: an event step needs an event name" {
		t.Errorf("builder error %q", got)
	}
	if got := browsertest.Eval[string](b.Browser, `document.getElementById('f-name').value`); got != "Half done" {
		t.Errorf("name after the error %q, want it kept", got)
	}
	if !browsertest.Eval[bool](b.Browser, `document.querySelector('#steps li[data-step="3"]').classList.contains('invalid')`) {
		t.Error("step 3 is not marked invalid")
	}
	b.Screenshot("funnel-builder-error")

	// Then a taken name: 409, said next to the form.
	browsertest.Eval[chromedp.Void](b.Browser, `document.getElementById('f-name').value = ''`)
	b.Do("taken name",
		chromedp.SendKeys(chromedp.CSS(`#steps li[data-step="3"] input.event-name`), "open"),
		chromedp.SendKeys(chromedp.ID("f-name"), "Spring to purchase"),
		chromedp.Click(chromedp.ID("save")),
	)
	b.WaitFor("the conflict", `document.getElementById('builder-error').textContent.includes('already')`)
	if n, err := e.funnels.FunnelsByApp(context.Background(), app.ID); err != nil || len(n) != 1 {
		t.Errorf("funnels after the bad saves: %d, %v; want 1", len(n), err)
	}
	wantStatus(t, "the dashboard is still up", e.get(e.client(), "/healthz"), http.StatusOK)
}

// TestAppPageBrowser views the app page in headless Chromium at a phone's
// width and a desktop's: no horizontal overflow of the page, every column
// of every table inside the page's width, the chart labelled up to its
// last day and the daily table newest first.
func TestAppPageBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme Shop")
	seedFacts(t, e, app)
	b := newBrowser(t, e)
	page := e.srv.URL + "/apps/" + strconv.FormatInt(app.ID, 10) + "?from=2026-02-10&to=2026-03-11"
	b.logIn(page, "#daily")
	for _, width := range []int64{390, 1400} {
		b.Do(fmt.Sprint("view at ", width), chromedp.EmulateViewport(width, 900), chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("daily")))
		if over := browsertest.Eval[float64](b.Browser, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			t.Errorf("%d px: the page is %.0f px wider than the window", width, over)
		}
		// Every cell of every table shows inside the window, with nothing
		// to scroll to sideways.
		cut := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('table.data td, table.data th')].filter(c => {
			const r = c.getBoundingClientRect();
			return r.width > 0 && (r.right > document.documentElement.clientWidth + 0.5 || r.left < 0);
		}).map(c => c.closest('table').id + ': ' + c.textContent.trim())`)
		if len(cut) > 0 {
			t.Errorf("%d px: cells beyond the window: %q", width, cut)
		}
		// And the values keep their column names: on a phone beside them.
		if width < 600 {
			if got := browsertest.Eval[string](b.Browser, `getComputedStyle(document.querySelector('#daily tbody td[data-label="Installs"]'), '::before').content`); got != `"Installs"` {
				t.Errorf("%d px: an installs cell is labelled %s", width, got)
			}
		}
		b.Screenshot(fmt.Sprintf("app-%d", width))
	}
	if got := browsertest.Eval[string](b.Browser, `[...document.querySelectorAll('svg.chart text.axis')].pop().textContent`); got != "Mar 11" {
		t.Errorf("the chart's last label is %q, want Mar 11", got)
	}
	days := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#daily tbody td.day')].map(td => td.textContent)`)
	if strings.Join(days, ",") != "2026-03-11,2026-03-10" {
		t.Errorf("daily rows %v, want 2026-03-11, 2026-03-10 (the empty days folded)", days)
	}
	if got := b.Text("#daily tr.empty-run"); !strings.Contains(got, "2026-02-10 to 2026-03-09") {
		t.Errorf("the folded row says %q", got)
	}

	// Switch the breakdown to platforms with its form, then drill into iOS:
	// the page filters by it and breaks it down by match method.
	b.SetSelect("#by", "platform")
	b.Do("break down by platform", chromedp.Click(chromedp.CSS(`#breakdown-form button[type=submit]`)))
	b.WaitFor("the platform breakdown", `document.querySelector('#breakdown[data-by="platform"]')`)
	if got := browsertest.Eval[[]string](b.Browser, `[...document.querySelectorAll('#breakdown tbody td.value')].map(td => td.textContent)`); strings.Join(got, ",") != "Web,iOS,Android" {
		t.Errorf("platforms %v, want Web, iOS, Android (by hits)", got)
	}
	b.Do("drill into iOS", chromedp.Click(chromedp.CSS(`#breakdown tbody tr:nth-child(2) td.value a`)))
	b.WaitFor("the iOS filter", `document.querySelector('#breakdown[data-by="method"]') && document.querySelector('#filters')`)
	if got := b.Text("#filters .chip"); !strings.HasPrefix(got, "Platform: iOS") {
		t.Errorf("filter chip %q", got)
	}

	// The CSV download holds what the JSON API says: fetched by the page's
	// own Export link, with the page's filters.
	csvURL := browsertest.Eval[string](b.Browser, `document.getElementById('breakdown-csv').href`)
	csv := browsertest.Eval[string](b.Browser, `fetch(document.getElementById('breakdown-csv').href).then(r => r.text())`)
	api := browsertest.Eval[map[string]any](b.Browser, `fetch(document.getElementById('breakdown-csv').href.replace('/breakdown.csv', '/breakdown')).then(r => r.json())`)
	total, _ := api["total"].(map[string]any)
	// By method, hits are missing: an empty cell in the CSV.
	if !strings.Contains(csvURL, "platform=ios") || total == nil || total["installs"] != float64(37) ||
		!strings.Contains(csv, fmt.Sprintf("\ntotal,,Total,,%v,%v,%v,", total["installs"], total["organic_installs"], total["conversions"])) {
		t.Errorf("CSV %s:\n%s\nJSON total %v", csvURL, csv, total)
	}
}

// TestLinkBrowser makes a link through the form in headless Chromium and
// looks at its page at a phone's width: the QR code drawn, nothing wider
// than the window.
func TestLinkBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme Shop")
	b := newBrowser(t, e)
	links := e.srv.URL + "/apps/" + strconv.FormatInt(app.ID, 10) + "/links"
	b.logIn(links, "#new-link")
	b.Do("new link",
		chromedp.Click(chromedp.ID("new-link")),
		chromedp.WaitVisible(chromedp.ID("f-slug")),
		chromedp.SendKeys(chromedp.ID("f-slug"), "spring-fb"),
		chromedp.SendKeys(chromedp.ID("f-name"), "Spring on Facebook"),
		chromedp.SendKeys(chromedp.ID("f-params"), "utm_source=facebook\nutm_campaign=spring"),
		chromedp.Click(chromedp.ID("save-link")),
		chromedp.WaitVisible(chromedp.ID("tracking-url")),
	)
	if got := b.Text("#tracking-url"); got != collectorURL+"/l/spring-fb" {
		t.Errorf("tracking URL %q", got)
	}
	if got := b.Text("#saved"); !strings.HasPrefix(got, "Link created.") {
		t.Errorf("banner %q", got)
	}
	if w := browsertest.Eval[float64](b.Browser, `document.querySelector('svg.qr').getBoundingClientRect().width`); w < 100 {
		t.Errorf("the QR code is %.0f px wide", w)
	}
	b.Screenshot("link")
	b.Do("phone width", chromedp.EmulateViewport(390, 900), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("tracking-url")))
	if over := browsertest.Eval[float64](b.Browser, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
		b.Screenshot("link-390")
		t.Errorf("390 px: the link page is %.0f px wider than the window", over)
	}
	b.Do("the list", chromedp.Navigate(links), chromedp.WaitVisible(chromedp.ID("links")))
	if over := browsertest.Eval[float64](b.Browser, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
		b.Screenshot("links-390")
		t.Errorf("390 px: the links list is %.0f px wider than the window", over)
	}
	if got := b.Text("#links tbody tr td"); !strings.HasPrefix(got, "Spring on Facebook") {
		t.Errorf("the list's first link is %q", got)
	}
}

// TestLiveBrowser opens the live view, lets facts of the current hour
// arrive, and waits for the page to show them without a reload.
func TestLiveBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.d.LiveRefresh = time.Second
	app := e.app(e.account("acme"), "Acme Shop")
	link := e.link(app, "live", "Live link")
	b := newBrowser(t, e)
	page := e.srv.URL + "/apps/" + strconv.FormatInt(app.ID, 10) + "/live"
	b.logIn(page, "#live-hours")
	if got := b.Text("#live-hits"); got != "0" {
		t.Fatalf("hits before any tap: %q", got)
	}
	if rows := browsertest.Eval[int](b.Browser, `document.querySelectorAll('#live-hours tbody tr').length`); rows != 24 {
		t.Errorf("%d hour rows, want 24", rows)
	}
	if csv := browsertest.Eval[string](b.Browser, `fetch(document.getElementById('live-csv').href).then(r => r.text())`); !strings.HasPrefix(csv, "row,hour,label,hits,") {
		t.Errorf("the live view's CSV: %.200s", csv)
	}
	browsertest.Eval[chromedp.Void](b.Browser, `window.sameDocument = true`)
	now := e.d.Now()
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", map[tapline.FactKey]tapline.FactValue{
		{Table: tapline.FactHits, Hour: tapline.HourOf(now), AppID: app.ID, LinkID: link.ID, Platform: tapline.PlatformIOS}: {Count: 1234},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	b.WaitFor("the new hits", `document.getElementById('live-hits').textContent === '1,234'`, `document.getElementById('live-hits').textContent`)
	if !browsertest.Eval[bool](b.Browser, `window.sameDocument === true`) {
		t.Error("the live view reloaded the page")
	}
	if got := b.Text("#live-hours tbody tr td:nth-child(2)"); got != "1,234" {
		t.Errorf("the current hour's row shows %q hits", got)
	}
}

// TestCohortsBrowser shows the cohorts at 1400 and 390 px: the table
// scrolls inside its card, the page never wider than the window.
func TestCohortsBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Store(time.Date(2026, 3, 12, 12, 0, 0, 0, time.UTC).UnixNano())
	app := e.app(e.account("acme"), "Acme Shop")
	seedCohorts(t, e, app, e.link(app, "spring", "Spring").ID, e.link(app, "other", "Other").ID)
	b := newBrowser(t, e)
	page := e.srv.URL + "/apps/" + strconv.FormatInt(app.ID, 10) + "/cohorts?from=2026-03-01&to=2026-03-10"
	b.logIn(page, "#cohorts")
	for _, width := range []int64{1400, 390} {
		b.Do("resize", chromedp.EmulateViewport(width, 900), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("cohorts")))
		if got := b.Text("#cohorts tbody tr"); !strings.Contains(got, "2026-03-09") || !strings.Contains(got, "100.0%") {
			t.Errorf("%d px: the first cohort reads %q", width, got)
		}
		if over := browsertest.Eval[float64](b.Browser, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			t.Errorf("%d px: the cohorts page is %.0f px wider than the window", width, over)
		}
		if width == 1400 {
			b.Screenshot("cohorts")
		}
	}
}

// TestTeamBrowser has an owner invite a viewer on the team page and copy
// the link shown once; after logging out, the invitee opens the link,
// chooses a password and lands logged in on the apps, where the links
// show no "New link" and the team page no invite form.
func TestTeamBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme Shop")
	b := newBrowser(t, e)
	b.logIn(e.srv.URL+"/account/users", "#invite-form")
	b.Do("invite",
		chromedp.SendKeys(chromedp.ID("invite-email"), "viewer@example.com"),
	)
	b.SetSelect("#invite-role", "viewer")
	b.Do("send the invite",
		chromedp.Click(chromedp.ID("invite")),
		chromedp.WaitVisible(chromedp.ID("invite-url")),
	)
	link := b.Text("#invite-url")
	if !strings.HasPrefix(link, e.srv.URL+"/invite/") {
		t.Fatalf("the invite link %q is not on this site", link)
	}
	if got := b.Text("#invites tbody tr td"); got != "viewer@example.com" {
		t.Errorf("the pending invite is %q", got)
	}
	b.Screenshot("team-invite")
	b.Do("log out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)),
	)
	b.Do("accept",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("invite-password")),
		chromedp.SendKeys(chromedp.ID("invite-password"), "viewer-password"),
		chromedp.SendKeys(chromedp.ID("invite-confirm"), "viewer-password"),
		chromedp.Click(chromedp.ID("accept")),
	)
	b.WaitFor("the apps", `location.pathname === '/apps' && document.querySelector('h1').innerText === 'Apps'`, "location.href")
	if who := b.Text(".who"); !strings.Contains(who, "viewer@example.com") {
		t.Errorf("logged in as %q, want the viewer", who)
	}
	b.Do("the links", chromedp.Navigate(e.srv.URL+"/apps/"+strconv.FormatInt(app.ID, 10)+"/links"))
	b.WaitFor("the links page", `document.querySelector('.empty-state') !== null`)
	if browsertest.Eval[bool](b.Browser, `document.getElementById('new-link') !== null`) {
		t.Error("the viewer's links page offers New link")
	}
	b.Do("the team", chromedp.Navigate(e.srv.URL+"/account/users"))
	b.WaitFor("the team page", `document.getElementById('users') !== null`)
	if browsertest.Eval[bool](b.Browser, `document.getElementById('invite-form') !== null`) {
		t.Error("the viewer's team page has the invite form")
	}
	if got := b.Text("#read-only"); !strings.Contains(got, "Owners") {
		t.Errorf("the viewer's team page says %q", got)
	}
}
