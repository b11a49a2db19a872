package dashboard_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"tapline"
	"tapline/export"
	"tapline/internal/browsertest"
	"tapline/pebble"
)

// exportEnv is the raw data export of an env, served on its listener as
// the all-in-one serves it: ahead of the dashboard (export.API.Mount) for
// API tokens, and behind it (export.API.Download) for logged-in owners.
type exportEnv struct {
	api *export.API
	raw *pebble.RawStore
	// cut makes the export's scans of hits fail after that many rows;
	// -1: never.
	cut atomic.Int64
}

// withExport gives e the raw data export over an embedded raw store.
func withExport(e *env) {
	e.t.Helper()
	x := &exportEnv{raw: pebble.NewRawStore(e.t.TempDir())}
	x.cut.Store(-1)
	x.raw.CacheSize = 8 << 20
	if err := x.raw.Open(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { x.raw.Close() })
	x.api = export.New(e.accounts, e.d.Reports)
	x.api.Raw = cutRaw{x}
	x.api.Logger = slog.New(slog.DiscardHandler)
	e.d.Export = x.api.Mount
	e.d.Download = x.api.Download
	e.export = x
}

// cutRaw is the export's view of the raw store, whose hit scans fail after
// cut rows.
type cutRaw struct{ x *exportEnv }

func (c cutRaw) ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Hit) error) error {
	n, i := c.x.cut.Load(), int64(0)
	return c.x.raw.ScanHitRows(ctx, appID, from, to, after, func(h *tapline.Hit) error {
		if i == n {
			return errors.New("the raw store failed (test)")
		}
		i++
		return fn(h)
	})
}

func (c cutRaw) ScanEventRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Event) error) error {
	return c.x.raw.ScanEventRows(ctx, appID, from, to, after, fn)
}

// adID is the advertising id every seeded row carries: it must never
// leave.
const adID = "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"

// seedRaw stores a hit, an event and a conversion of app at each of
// times, ids prefixed with prefix.
func (x *exportEnv) seedRaw(t *testing.T, e *env, app *tapline.App, prefix string, times []time.Time) {
	t.Helper()
	ctx := context.Background()
	var convs []*tapline.Conversion
	for i, at := range times {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		h := &tapline.Hit{ID: "h-" + id, AppID: app.ID, LinkID: 7, Time: at, IP: "203.0.113.77", UserAgent: "Mozilla/5.0 (iPhone)",
			AdID: adID, Platform: tapline.PlatformIOS, OSVersion: "17.4", Model: "iPhone15,2",
			Params: map[string]string{"utm_source": "facebook", "idfa": adID}, Fingerprint: "203.0.113.77|ios", Source: "hits/0/" + strconv.Itoa(i)}
		if _, err := x.raw.PutHit(ctx, h); err != nil {
			t.Fatal(err)
		}
		ev := &tapline.Event{ID: "e-" + id, AppID: app.ID, Name: "purchase", Kind: tapline.KindPurchase, Time: at, ReceivedAt: at,
			InstallID: "inst-" + id, IP: "2001:db8:1:2:3:4:5:6", Device: tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7", GAID: adID},
			Revenue: &tapline.Revenue{Micros: 990000, Currency: "EUR"}, Protocol: "v1", Fingerprint: "2001:db8:1:2::|android"}
		if _, err := x.raw.PutEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		c := &tapline.Conversion{ID: tapline.ConversionID("i-" + id), AppID: app.ID, EventID: "i-" + id, InstallID: "inst-" + id,
			InstallTime: at, Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.7|ios", AdID: adID, UpdatedAt: at,
			Attribution: tapline.Attribution{HitID: "h-" + id, LinkID: 7, Method: tapline.MethodFingerprint, HitTime: at.Add(-time.Minute),
				HitParams: map[string]string{"utm_source": "facebook"}},
			ClickToInstall: time.Minute, Decision: &tapline.Decision{Rule: tapline.RuleFingerprint, Reason: "same network"}}
		c.History = []tapline.AttributionChange{{By: "events/0/" + strconv.Itoa(i), To: c.Attribution, At: at}}
		convs = append(convs, c)
	}
	if err := e.facts.ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Conversions: convs}); err != nil {
		t.Fatal(err)
	}
}

// apiToken makes an API token of account a and returns its secret.
func (e *env) apiToken(a *tapline.Account) string {
	e.t.Helper()
	_, secret, err := e.accounts.CreateAPIToken(context.Background(), a.ID, "export")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// exportDays are the times the download tests seed: every 12 minutes from
// two days before today's midnight (UTC) to 12 hours after it, so that the
// days of a range differ in UTC and in Paris.
func exportDays(today time.Time) []time.Time {
	var out []time.Time
	for at := today.Add(-48 * time.Hour); at.Before(today.Add(12 * time.Hour)); at = at.Add(12 * time.Minute) {
		out = append(out, at)
	}
	return out
}

// TestExportDownload checks the app page's raw data download: a logged-in
// owner gets, for every kind and format, in UTC and in another zone, the
// very bytes the export API sends an API token for the same instants, the
// file named after the app, kind and days; nothing of another account's
// and no advertising id.
func TestExportDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withExport)
	acme := e.account("acme")
	app := e.app(acme, "Acme Shop!")
	theirs := e.app(e.account("other"), "Theirs")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	times := exportDays(today)
	e.export.seedRaw(t, e, app, "acme", times)
	e.export.seedRaw(t, e, theirs, "theirs", times)
	token := e.apiToken(acme)
	c := e.loggedIn("acme")

	from, to := today.AddDate(0, 0, -1).Format("2006-01-02"), today.Format("2006-01-02")
	for _, tz := range []string{"UTC", "Europe/Paris", "America/New_York"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		start, _ := time.ParseInLocation("2006-01-02", from, loc)
		end, _ := time.ParseInLocation("2006-01-02", to, loc)
		end = end.AddDate(0, 0, 1)
		want := 0
		for _, at := range times {
			if !at.Before(start) && at.Before(end) {
				want++
			}
		}
		for _, kind := range export.Kinds {
			for _, format := range []string{"csv", "ndjson"} {
				t.Run(tz+" "+kind+" "+format, func(t *testing.T) {
					path := fmt.Sprintf("/apps/%d/export?%s", app.ID, url.Values{"kind": {kind}, "format": {format}, "from": {from}, "to": {to}, "tz": {tz}}.Encode())
					got := e.get(c, path)
					wantStatus(t, "GET "+path, got, http.StatusOK)
					name := fmt.Sprintf("acme-shop-%s-%s-%s.%s", kind, from, to, format)
					if cd := got.Header.Get("Content-Disposition"); cd != `attachment; filename="`+name+`"` {
						t.Errorf("Content-Disposition %q, want an attachment named %s", cd, name)
					}
					if cc := got.Header.Get("Cache-Control"); cc != "no-store" {
						t.Errorf("Cache-Control %q, want no-store", cc)
					}
					api := fmt.Sprintf("/api/v1/apps/%d/export/%s?%s", app.ID, kind, url.Values{"format": {format},
						"from": {start.UTC().Format(time.RFC3339Nano)}, "to": {end.UTC().Format(time.RFC3339Nano)}}.Encode())
					byToken := e.do(e.client(), http.MethodGet, api, nil, map[string]string{"Authorization": "Bearer " + token})
					wantStatus(t, "GET "+api, byToken, http.StatusOK)
					if got.Body != byToken.Body {
						t.Fatalf("the download differs from the token's export of %s to %s:\n%.600s\nwant\n%.600s", start, end, got.Body, byToken.Body)
					}
					if got.Header.Get("Content-Type") != byToken.Header.Get("Content-Type") {
						t.Errorf("Content-Type %q, the API's %q", got.Header.Get("Content-Type"), byToken.Header.Get("Content-Type"))
					}
					rows := 0
					if format == "csv" {
						recs, err := csv.NewReader(strings.NewReader(got.Body)).ReadAll()
						if err != nil {
							t.Fatalf("not CSV: %v", err)
						}
						rows = len(recs) - 1
					} else {
						lines := strings.Split(strings.TrimSuffix(got.Body, "\n"), "\n")
						var tr export.Trailer
						if err := json.Unmarshal([]byte(lines[len(lines)-1]), &tr); err != nil || !tr.Complete || tr.Rows != int64(len(lines)-1) {
							t.Errorf("last line %q, want a complete trailer of %d rows (%v)", lines[len(lines)-1], len(lines)-1, err)
						}
						rows = len(lines) - 1
					}
					if rows != want {
						t.Errorf("%d rows, want the %d of %s to %s in %s", rows, want, from, to, tz)
					}
					for _, secret := range []string{adID, "theirs-", "Mozilla"} {
						if strings.Contains(got.Body, secret) {
							t.Errorf("the download carries %q", secret)
						}
					}
				})
			}
		}
	}

	t.Run("the token path is unchanged", func(t *testing.T) {
		// A session is no way into the API's export, nor a token into the page's.
		path := fmt.Sprintf("/api/v1/apps/%d/export/hits", app.ID)
		wantJSONError(t, "a session on "+path, e.get(c, path), http.StatusUnauthorized, tapline.EUNAUTHORIZED, "API token")
		page := fmt.Sprintf("/apps/%d/export?kind=hits", app.ID)
		res := e.do(e.client(), http.MethodGet, page, nil, map[string]string{"Authorization": "Bearer " + token})
		wantStatus(t, "a token on "+page, res, http.StatusSeeOther)
	})
}

// TestExportDownloadRefused checks who may not download and which
// requests are refused, each with its status and a message saying why.
func TestExportDownloadRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withExport)
	acme := e.account("acme")
	app := e.app(acme, "Acme Shop")
	theirs := e.app(e.account("other"), "Theirs <secret>")
	c := e.loggedIn("acme")
	viewer := e.join(c, "viewer@example.com", tapline.RoleViewer)
	mine := fmt.Sprintf("/apps/%d/export?", app.ID)
	old := time.Now().UTC().AddDate(0, 0, -90).Format("2006-01-02")

	tests := []struct {
		name   string
		client *http.Client
		path   string
		status int
		msg    string
	}{
		{"other account's app", c, fmt.Sprintf("/apps/%d/export?kind=hits&format=csv", theirs.ID), 404, "not found"},
		{"no such app", c, "/apps/999999/export?kind=hits", 404, "not found"},
		{"app not an id", c, "/apps/abc/export?kind=hits", 404, "not found"},
		{"viewer", viewer, mine + "kind=conversions&format=csv", 403, "only owners download raw data"},
		{"viewer, other account's app", viewer, fmt.Sprintf("/apps/%d/export?kind=hits", theirs.ID), 404, "not found"},
		{"no kind", c, mine + "format=csv", 400, "kind: missing; choose one of conversions, events, hits"},
		{"unknown kind", c, mine + "kind=clicks", 400, `kind: &#34;clicks&#34; is not one of conversions, events, hits`},
		{"bad format", c, mine + "kind=hits&format=xlsx", 400, `format: &#34;xlsx&#34; is not csv or ndjson`},
		{"bad from", c, mine + "kind=hits&from=yesterday", 400, `from: &#34;yesterday&#34; is not a date like 2006-01-02`},
		{"bad to", c, mine + "kind=hits&to=2026-13-01", 400, "to: "},
		{"from after to", c, mine + "kind=hits&from=2026-11-30&to=2026-11-01", 400, "from (2026-11-30) is after to (2026-11-01)"},
		{"too long", c, mine + "kind=conversions&from=2024-01-01&to=2026-01-01", 400, "at most 366"},
		{"bad zone", c, mine + "kind=hits&tz=Mars/Olympus", 400, "unknown time zone"},
		{"before retention", c, mine + "kind=hits&from=" + old + "&to=" + old, 400, "the range ends before that"},
		{"unknown parameter", c, mine + "kind=hits&cursor=abc", 400, "cursor: unknown parameter; a download takes kind, format, from, to, tz"},
		{"repeated parameter", c, mine + "kind=hits&kind=events", 400, "kind: given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.get(tt.client, tt.path)
			wantStatus(t, tt.path, res, tt.status)
			if !strings.Contains(res.Body, tt.msg) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				t.Errorf("%s: %s page %.300q, want one saying %q", tt.path, res.Header.Get("Content-Type"), res.Body, tt.msg)
			}
			if res.Header.Get("Content-Disposition") != "" {
				t.Errorf("%s: a refusal with Content-Disposition %q", tt.path, res.Header.Get("Content-Disposition"))
			}
			if strings.Contains(res.Body, "Theirs") {
				t.Errorf("%s shows the other account's app", tt.path)
			}
		})
	}

	t.Run("not logged in", func(t *testing.T) {
		path := mine + "kind=hits&format=csv"
		res := e.get(e.client(), path)
		wantStatus(t, path, res, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != "/login?next="+url.QueryEscape(path) {
			t.Errorf("Location %q, want the login page coming back to the download", loc)
		}
	})

	t.Run("the page shows viewers no form", func(t *testing.T) {
		res := e.get(viewer, fmt.Sprintf("/apps/%d", app.ID))
		wantStatus(t, "app page", res, http.StatusOK)
		if strings.Contains(res.Body, `id="export-form"`) || !strings.Contains(res.Body, `id="export-owners-only"`) {
			t.Errorf("a viewer's app page shows the export form, or not why it does not")
		}
		res = e.get(c, fmt.Sprintf("/apps/%d?from=2026-11-01&to=2026-11-30&tz=Europe/Paris", app.ID))
		for _, want := range []string{`id="export-form"`, `name="from" id="export-from" value="2026-11-01"`, `name="to" id="export-to" value="2026-11-30"`,
			`name="tz" value="Europe/Paris"`, fmt.Sprintf(`action="/apps/%d/export"`, app.ID)} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("an owner's app page lacks %s", want)
			}
		}
	})
}

// TestExportDownloadUnavailable checks a dashboard without the export: the
// download answers 503, still after the tenant and role checks.
func TestExportDownloadUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	theirs := e.app(e.account("other"), "Theirs")
	c := e.loggedIn("acme")
	wantStatus(t, "without the export", e.get(c, fmt.Sprintf("/apps/%d/export?kind=conversions", app.ID)), http.StatusServiceUnavailable)
	wantStatus(t, "another account's app", e.get(c, fmt.Sprintf("/apps/%d/export?kind=conversions", theirs.ID)), http.StatusNotFound)
}

// TestExportDownloadCutShort checks what a download that fails part way
// looks like: a failure before the first byte is an error page; one
// after it cuts the response short, without its trailer line and without
// the end of its chunked body, so no client takes it for complete.
func TestExportDownloadCutShort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withExport)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	e.export.seedRaw(t, e, app, "acme", exportDays(today)) // 300 rows, 100 KB and more of NDJSON
	c := e.loggedIn("acme")
	path := fmt.Sprintf("/apps/%d/export?kind=hits&format=ndjson&from=%s&to=%s", app.ID,
		today.AddDate(0, 0, -2).Format("2006-01-02"), today.Format("2006-01-02"))

	e.export.cut.Store(0)
	res := e.get(c, path)
	wantStatus(t, "a store failing at once", res, http.StatusInternalServerError)
	if res.Header.Get("Content-Disposition") != "" || !strings.Contains(res.Body, "Internal error") {
		t.Errorf("a store failing at once answers %q with Content-Disposition %q, want an error page", res.Body, res.Header.Get("Content-Disposition"))
	}

	e.export.cut.Store(250)
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a store failing after 250 rows: status %d, reading the body: %v; want 200 and a body cut short", resp.StatusCode, err)
	}
	if n := strings.Count(string(body), "\n"); n > 250 || n < 100 || strings.Contains(string(body), `"next_cursor"`) {
		t.Errorf("the cut body has %d lines, or a trailer; want at most the 250 rows before the failure and no trailer", n)
	}
	if resp.Trailer.Get(export.TrailerComplete) != "" {
		t.Errorf("a cut body with the trailer %s: %q", export.TrailerComplete, resp.Trailer.Get(export.TrailerComplete))
	}
}

// TestExportBrowser downloads raw data from the app page in headless
// Chromium as a marketer would: the form starts on the page's range and
// zone; the file the browser saves has the right name and exactly the
// bytes the export API sends a token for that range; a download the
// store cuts short ends failed in the browser, not as a complete file;
// a bad range shows the error page.
func TestExportBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withExport)
	acme := e.account("acme")
	app := e.app(acme, "Acme Shop")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	times := exportDays(today)
	e.export.seedRaw(t, e, app, "acme", times)
	for i := range times {
		times[i] = times[i].Add(6 * time.Minute)
	}
	e.export.seedRaw(t, e, app, "acme2", times)
	token := e.apiToken(acme)
	from, to := today.AddDate(0, 0, -1).Format("2006-01-02"), today.Format("2006-01-02")

	b := newBrowser(t, e)
	page := fmt.Sprintf("%s/apps/%d?from=%s&to=%s&tz=Europe/Paris", e.srv.URL, app.ID, from, to)
	b.logIn(page, "#export-form")
	if got := browsertest.Eval[[]string](b.Browser, `['export-from', 'export-to'].map(id => document.getElementById(id).value)
		.concat([document.querySelector('#export-form input[name=tz]').value])`); strings.Join(got, " ") != from+" "+to+" Europe/Paris" {
		t.Errorf("the export form starts on %q, want the page's %s to %s in Europe/Paris", got, from, to)
	}

	b.Do("scroll to the export", chromedp.ScrollIntoView(chromedp.ID("raw-export")))
	b.Screenshot("app-export")

	dir := t.TempDir()
	downloads := make(chan any, 64)
	if err := chromedp.Listen(b.Ctx(), func(ev any) {
		switch ev.(type) {
		case *cdpbrowser.EventDownloadWillBegin, *cdpbrowser.EventDownloadProgress:
			select {
			case downloads <- ev:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.Do("let downloads into a directory", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		enabled := true
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &enabled})
		return err
	}))
	// download clicks the form's button and returns the file's suggested
	// name and the state the download ended in.
	download := func(kind, format string) (name string, end *cdpbrowser.EventDownloadProgress) {
		t.Helper()
		b.SetSelect("#export-kind", kind)
		b.SetSelect("#export-format", format)
		b.Do("download "+kind, chromedp.Click(chromedp.ID("export-download")))
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev := <-downloads:
				switch ev := ev.(type) {
				case *cdpbrowser.EventDownloadWillBegin:
					name = ev.SuggestedFilename
				case *cdpbrowser.EventDownloadProgress:
					if ev.State != cdpbrowser.DownloadProgressStateInProgress {
						return name, ev
					}
				}
			case <-timeout:
				t.Fatalf("the %s download did not end within 30 s", kind)
			}
		}
	}

	for _, kind := range []string{export.KindHits, export.KindConversions} {
		name, end := download(kind, "csv")
		if want := fmt.Sprintf("acme-shop-%s-%s-%s.csv", kind, from, to); name != want {
			t.Errorf("the browser saves the %s as %q, want %q", kind, name, want)
		}
		if end.State != cdpbrowser.DownloadProgressStateCompleted {
			t.Fatalf("the %s download ended %s", kind, end.State)
		}
		got, err := os.ReadFile(filepath.Join(dir, end.GUID))
		if err != nil {
			t.Fatal(err)
		}
		paris, _ := time.LoadLocation("Europe/Paris")
		start, _ := time.ParseInLocation("2006-01-02", from, paris)
		stop, _ := time.ParseInLocation("2006-01-02", to, paris)
		api := fmt.Sprintf("/api/v1/apps/%d/export/%s?%s", app.ID, kind, url.Values{"format": {"csv"},
			"from": {start.UTC().Format(time.RFC3339)}, "to": {stop.AddDate(0, 0, 1).UTC().Format(time.RFC3339)}}.Encode())
		want := e.do(e.client(), http.MethodGet, api, nil, map[string]string{"Authorization": "Bearer " + token})
		wantStatus(t, api, want, http.StatusOK)
		if string(got) != want.Body || strings.Count(want.Body, "\n") < 100 {
			t.Errorf("the downloaded %s (%d bytes) differ from the token's export of the page's days (%d bytes, %d lines)",
				kind, len(got), len(want.Body), strings.Count(want.Body, "\n"))
		}
	}
	if loc := browsertest.Eval[string](b.Browser, `location.href`); loc != page {
		t.Errorf("after the downloads the tab shows %s, want the app page still", loc)
	}

	// The store fails after 300 of the range's 370 hits, well past the
	// first 32 KB sent: the browser gets rows, then a connection cut
	// short, and says the download failed.
	e.export.cut.Store(300)
	if name, end := download(export.KindHits, "ndjson"); end.State != cdpbrowser.DownloadProgressStateCanceled || !strings.HasSuffix(name, ".ndjson") {
		t.Errorf("a download cut short ended %s (%s), want canceled: the browser must not show it complete", end.State, name)
	}
	e.export.cut.Store(-1)

	// A bad range: the error page says why.
	b.Do("set a range ending before it starts", chromedp.SetValue(chromedp.ID("export-from"), to), chromedp.SetValue(chromedp.ID("export-to"), from))
	b.Do("download", chromedp.Click(chromedp.ID("export-download")))
	b.WaitFor("the error page", `document.querySelector('p.error[role=alert]')`)
	if got := b.Text("p.error[role=alert]"); got != fmt.Sprintf("from (%s) is after to (%s)", to, from) {
		t.Errorf("the error page says %q", got)
	}
}
