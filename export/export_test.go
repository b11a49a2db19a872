package export_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/export"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// env is an export API over PostgreSQL and an embedded raw store, with
// two accounts, an app each and an API token each.
type env struct {
	t          *testing.T
	accounts   *postgres.AccountService
	facts      *postgres.FactStore
	reports    *postgres.Reports
	raw        *pebble.RawStore
	api        *export.API
	srv        *httptest.Server
	acme       *tapline.Account
	app, other *tapline.App
	token      string // acme's
	otherToken string // the other account's
	now        time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.Open(t)
	e := &env{t: t, accounts: postgres.NewAccountService(db), facts: postgres.NewFactStore(db), reports: postgres.NewReports(db),
		now: time.Now().UTC().Truncate(time.Millisecond)}
	e.raw = pebble.NewRawStore(t.TempDir())
	e.raw.CacheSize = 8 << 20
	if err := e.raw.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.raw.Close() })
	e.acme, e.app, e.token = e.account("acme")
	_, e.other, e.otherToken = e.account("other")
	e.api = export.New(e.accounts, e.reports)
	e.api.Raw = e.raw
	e.api.Logger = slog.New(slog.DiscardHandler)
	e.srv = httptest.NewServer(e.api.Mount(http.NotFoundHandler()))
	t.Cleanup(e.srv.Close)
	return e
}

// account creates an account with an app and an API token.
func (e *env) account(name string) (*tapline.Account, *tapline.App, string) {
	e.t.Helper()
	ctx := e.t.Context()
	a := &tapline.Account{Name: name}
	if err := e.accounts.CreateAccount(ctx, a, &tapline.User{Email: name + "@example.com"}, "a-long-password"); err != nil {
		e.t.Fatal(err)
	}
	app := &tapline.App{AccountID: a.ID, Name: name + " app", WebURL: "https://example.com/"}
	if err := e.accounts.CreateApp(ctx, app); err != nil {
		e.t.Fatal(err)
	}
	_, secret, err := e.accounts.CreateAPIToken(ctx, a.ID, "export")
	if err != nil {
		e.t.Fatal(err)
	}
	return a, app, secret
}

// get sends GET path with token ("": none).
func (e *env) get(path, token string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// read returns a 200 answer's body and trailers.
func (e *env) read(path string) (string, http.Header) {
	e.t.Helper()
	resp := e.get(path, e.token)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b), resp.Trailer
}

func (e *env) path(app *tapline.App, kind, query string) string {
	return fmt.Sprintf("/api/v1/apps/%d/export/%s?%s", app.ID, kind, query)
}

// putHits stores n hits of app, one a minute back from e.now, each with
// what must not leave: an advertising id, the User-Agent, the address.
func (e *env) putHits(app *tapline.App, n int) []*tapline.Hit {
	e.t.Helper()
	out := make([]*tapline.Hit, 0, n)
	for i := range n {
		h := &tapline.Hit{ID: fmt.Sprintf("h-%04d", i), AppID: app.ID, LinkID: 7, Time: e.now.Add(-time.Duration(i+1) * time.Minute),
			IP: "203.0.113.77", UserAgent: "Mozilla/5.0 (iPhone)", Referer: "https://mail.example/?to=someone",
			AdID: "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e", Platform: tapline.PlatformIOS, OSVersion: "17.4", Model: "iPhone15,2",
			Params:      map[string]string{"utm_source": "facebook", "idfa": "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"},
			Fingerprint: "203.0.113.77|ios", Source: "hits/0/" + strconv.Itoa(i), AcceptLanguage: "en-US"}
		if _, err := e.raw.PutHit(e.t.Context(), h); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// putEvents stores n events of app, one a minute back from e.now.
func (e *env) putEvents(app *tapline.App, n int) []*tapline.Event {
	e.t.Helper()
	out := make([]*tapline.Event, 0, n)
	for i := range n {
		ev := &tapline.Event{ID: fmt.Sprintf("e-%04d", i), AppID: app.ID, Name: "purchase", Kind: tapline.KindPurchase,
			Time: e.now.Add(-time.Duration(i+1) * time.Minute), ReceivedAt: e.now, InstallID: "inst-1", IP: "2001:db8:1:2:3:4:5:6",
			Device:  tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7", GAID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", IDFV: "vendor-id"},
			Revenue: &tapline.Revenue{Micros: 990000, Currency: "EUR"}, Protocol: "v1", Fingerprint: "2001:db8:1:2::|android",
			Referrer: "utm_source=facebook&gaid=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d&tapline_hit=h-1"}
		if _, err := e.raw.PutEvent(e.t.Context(), ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// putConversions stores n conversions of app in the conversions table,
// one a minute back from e.now.
func (e *env) putConversions(app *tapline.App, n int) []*tapline.Conversion {
	e.t.Helper()
	var out []*tapline.Conversion
	for i := range n {
		at := e.now.Add(-time.Duration(i+1) * time.Minute).Truncate(time.Microsecond)
		c := &tapline.Conversion{ID: tapline.ConversionID(fmt.Sprintf("e-%04d", i)), AppID: app.ID, EventID: fmt.Sprintf("e-%04d", i),
			InstallID: fmt.Sprintf("inst-%04d", i), InstallTime: at, Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.7|ios",
			AdID:        "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e",
			Attribution: tapline.Attribution{Method: tapline.MethodOrganic}, UpdatedAt: at,
			Decision: &tapline.Decision{Rule: tapline.RuleOrganic, Reason: "=no tap fits"}}
		if i%2 == 0 {
			c.Attribution = tapline.Attribution{HitID: "h-1", LinkID: 7, Method: tapline.MethodFingerprint, HitTime: at.Add(-time.Minute),
				HitParams: map[string]string{"utm_source": "facebook"}}
			c.ClickToInstall = time.Minute
		}
		c.History = []tapline.AttributionChange{{By: "events/0/" + strconv.Itoa(i), To: c.Attribution, At: at}}
		out = append(out, c)
	}
	if err := e.facts.ApplyFacts(e.t.Context(), "t", nil, nil, tapline.FlushRows{Conversions: out}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// ndjson splits an NDJSON export into its rows and its trailer.
func ndjson(t *testing.T, body string) (rows []map[string]any, trailer *export.Trailer) {
	t.Helper()
	lines := strings.SplitAfter(body, "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Fatalf("the export does not end with a newline: %q", last)
	}
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		if strings.Contains(l, `"next_cursor"`) {
			if i != len(lines)-1 {
				t.Fatalf("the trailer is line %d of %d", i+1, len(lines))
			}
			trailer = new(export.Trailer)
			if err := json.Unmarshal([]byte(l), trailer); err != nil {
				t.Fatal(err)
			}
			break
		}
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("line %d: %v: %q", i+1, err, l)
		}
		rows = append(rows, row)
	}
	if trailer == nil {
		t.Fatalf("the export has no trailer line")
	}
	return rows, trailer
}

// ids returns the id of each row.
func ids(rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i], _ = r["id"].(string)
	}
	return out
}

// readCSV reads a CSV export.
func readCSV(t *testing.T, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v", err)
	}
	return recs
}

// TestErrors checks what the export refuses, and with which answer.
func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	revoked, secret, err := e.accounts.CreateAPIToken(t.Context(), e.acme.ID, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.accounts.RevokeAPIToken(t.Context(), e.acme.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}
	noRaw := export.New(e.accounts, e.reports)
	noRaw.RawMissing = "set -cassandra-hosts"
	noRawSrv := httptest.NewServer(noRaw.Handler())
	t.Cleanup(noRawSrv.Close)

	app := e.path(e.app, "hits", "")
	old := e.now.Add(-90 * 24 * time.Hour).Format("2006-01-02")
	tests := []struct {
		name, method, path, auth string
		status                   int
		code, message            string // message: a part of it
	}{
		{"no token", "GET", app, "", 401, tapline.EUNAUTHORIZED, "API token"},
		{"not a bearer", "GET", app, "Basic YTpi", 401, tapline.EUNAUTHORIZED, "API token"},
		{"admin-style token", "GET", app, "Bearer " + strings.Repeat("t", 32), 401, tapline.EUNAUTHORIZED, "API token"},
		{"unknown token", "GET", app, "Bearer tl_nope", 401, tapline.EUNAUTHORIZED, ""},
		{"revoked token", "GET", app, "Bearer " + secret, 401, tapline.EUNAUTHORIZED, ""},
		{"other account's app", "GET", e.path(e.other, "hits", ""), "Bearer " + e.token, 404, tapline.ENOTFOUND, fmt.Sprintf("App %d not found", e.other.ID)},
		{"other account's conversions", "GET", e.path(e.app, "conversions", ""), "Bearer " + e.otherToken, 404, tapline.ENOTFOUND, "not found"},
		{"no such app", "GET", "/api/v1/apps/999999/export/hits", "Bearer " + e.token, 404, tapline.ENOTFOUND, "App 999999 not found"},
		{"app not an id", "GET", "/api/v1/apps/abc/export/hits", "Bearer " + e.token, 400, tapline.EINVALID, `app: "abc"`},
		{"unknown kind", "GET", fmt.Sprintf("/api/v1/apps/%d/export/clicks", e.app.ID), "Bearer " + e.token, 400, tapline.EINVALID, "kind:"},
		{"no kind", "GET", fmt.Sprintf("/api/v1/apps/%d/export", e.app.ID), "Bearer " + e.token, 404, tapline.ENOTFOUND, "No export here"},
		{"bad format", "GET", app + "format=xml", "Bearer " + e.token, 400, tapline.EINVALID, "format:"},
		{"bad from", "GET", app + "from=yesterday", "Bearer " + e.token, 400, tapline.EINVALID, "from:"},
		{"bad to", "GET", app + "to=2026-13-01", "Bearer " + e.token, 400, tapline.EINVALID, "to:"},
		{"to before from", "GET", app + "from=2026-03-02&to=2026-03-01T00:00:00Z", "Bearer " + e.token, 400, tapline.EINVALID, "to: must be after from"},
		{"before retention", "GET", app + "to=" + old, "Bearer " + e.token, 400, tapline.EINVALID, "60 days"},
		{"unknown parameter", "GET", app + "form=2026-03-01", "Bearer " + e.token, 400, tapline.EINVALID, "form: unknown parameter"},
		{"repeated parameter", "GET", app + "format=csv&format=csv", "Bearer " + e.token, 400, tapline.EINVALID, "given 2 times"},
		{"bad cursor", "GET", app + "cursor=bm9wZQ", "Bearer " + e.token, 400, tapline.EINVALID, "cursor:"},
		{"bad limit", "GET", app + "limit=0", "Bearer " + e.token, 400, tapline.EINVALID, "limit:"},
		{"POST", "POST", app, "Bearer " + e.token, 405, "method_not_allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, e.srv.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			checkError(t, req, tt.status, tt.code, tt.message)
		})
	}
	t.Run("no raw store", func(t *testing.T) {
		for _, kind := range []string{"hits", "events"} {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", noRawSrv.URL+e.path(e.app, kind, ""), nil)
			req.Header.Set("Authorization", "Bearer "+e.token)
			checkError(t, req, 503, tapline.EUNAVAILABLE, "set -cassandra-hosts")
		}
		req, _ := http.NewRequestWithContext(t.Context(), "GET", noRawSrv.URL+e.path(e.app, "conversions", ""), nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("conversions without a raw store: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("other paths pass", func(t *testing.T) {
		resp := e.get("/api/v1/apps/1/daily", e.token)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("a dashboard path reached %d %q, want the next handler's 404", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}

// checkError sends req and checks its JSON error answer.
func checkError(t *testing.T, req *http.Request, status int, code, message string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Message string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != status || body.Error != code ||
		!strings.Contains(body.Message, message) || body.Message == "" {
		t.Errorf("%s %s: %d %s, want %d with error %q and a message with %q", req.Method, req.URL.Path, resp.StatusCode, b, status, code, message)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q, want JSON", resp.Header.Get("Content-Type"))
	}
	if status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("a 401 without WWW-Authenticate")
	}
}

// TestHits checks a hits export against the store, in both formats, and
// what it leaves out.
func TestHits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hits := e.putHits(e.app, 1200)
	e.putHits(e.other, 10)
	direct := 0
	if err := e.raw.ScanHitRows(t.Context(), e.app.ID, time.Time{}, e.now.Add(time.Hour), tapline.RowPos{}, func(*tapline.Hit) error { direct++; return nil }); err != nil {
		t.Fatal(err)
	}

	body, tr := e.read(e.path(e.app, "hits", ""))
	rows, trailer := ndjson(t, body)
	if len(rows) != direct || len(rows) != len(hits) || trailer.Rows != int64(direct) || !trailer.Complete {
		t.Fatalf("exported %d hits, trailer %+v; the store scans %d, %d were stored", len(rows), trailer, direct, len(hits))
	}
	if got := ids(rows); len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
		t.Errorf("a hit came twice")
	}
	last := rows[len(rows)-1]
	if want := export.RowCursor(last["time"].(string), last["id"].(string)); trailer.NextCursor != want || tr.Get(export.TrailerNextCursor) != want ||
		tr.Get(export.TrailerComplete) != "true" || tr.Get(export.TrailerRows) != strconv.Itoa(direct) {
		t.Errorf("trailer %+v, HTTP trailers %v; want the cursor %s of the last row", trailer, tr, want)
	}
	for _, key := range []string{"ad_id", "user_agent", "referer", "source", "client_hints"} {
		if _, ok := rows[0][key]; ok {
			t.Errorf("a hit carries %s: %v", key, rows[0])
		}
	}
	if rows[0]["ip"] != "203.0.113.0/24" || rows[0]["fingerprint"] != "203.0.113.0/24|ios" ||
		fmt.Sprint(rows[0]["params"]) != "map[utm_source:facebook]" {
		t.Errorf("a hit's address, fingerprint or params leave unmasked: %v", rows[0])
	}
	if strings.Contains(body, "6d9c5b8e") {
		t.Errorf("the export carries the advertising id")
	}

	csvBody, tr := e.read(e.path(e.app, "hits", "format=csv"))
	recs := readCSV(t, csvBody)
	if len(recs) != direct+1 || tr.Get(export.TrailerRows) != strconv.Itoa(direct) {
		t.Fatalf("the CSV has %d records, trailers %v; want a header and %d rows", len(recs), tr, direct)
	}
	want := "id,time,link_id,platform,os_version,model,network,accept_language,bot,source,medium,campaign,adgroup,creative,site,params"
	if got := strings.Join(recs[0], ","); got != want {
		t.Errorf("header %s, want %s", got, want)
	}
	for i, rec := range recs[1:] {
		if rec[0] != rows[i]["id"] || rec[1] != rows[i]["time"] {
			t.Fatalf("CSV row %d is %v, NDJSON row %v: the formats' orders differ", i, rec, rows[i])
		}
	}
	if r := recs[1]; r[6] != "203.0.113.0/24" || r[9] != "facebook" || r[15] != "utm_source=facebook" {
		t.Errorf("a CSV hit: %q", r)
	}
	if strings.Contains(csvBody, "6d9c5b8e") || strings.Contains(csvBody, "Mozilla") {
		t.Errorf("the CSV carries the advertising id or the User-Agent")
	}

	// A range: from and to as times and as days.
	from, to := hits[100].Time, hits[10].Time // to is excluded
	body, _ = e.read(e.path(e.app, "hits", "from="+from.Format(time.RFC3339Nano)+"&to="+to.Format(time.RFC3339Nano)))
	if rows, _ := ndjson(t, body); len(rows) != 90 {
		t.Errorf("[hits[100], hits[10]) exported %d hits, want 90", len(rows))
	}
	day := e.now.Format("2006-01-02")
	body, _ = e.read(e.path(e.app, "hits", "from="+day+"&to="+day))
	n := 0
	for _, h := range hits {
		if h.Time.Format("2006-01-02") == day {
			n++
		}
	}
	if rows, _ := ndjson(t, body); len(rows) != n {
		t.Errorf("from=to=%s exported %d hits, want the day's %d", day, len(rows), n)
	}
}

// TestResume checks that an export resumed from any row's cursor yields
// exactly the rows after it, of each kind and format.
func TestResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putHits(e.app, 700)
	e.putEvents(e.app, 700)
	e.putConversions(e.app, 1100) // more than a page of the conversions table
	for _, kind := range export.Kinds {
		t.Run(kind, func(t *testing.T) {
			body, _ := e.read(e.path(e.app, kind, ""))
			all, _ := ndjson(t, body)
			if len(all) < 700 {
				t.Fatalf("%d rows", len(all))
			}
			timeKey := "time"
			if kind == export.KindConversions {
				timeKey = "install_time"
			}
			for _, k := range []int{1, 499, 500, 501, len(all) - 1} {
				body, tr := e.read(e.path(e.app, kind, "limit="+strconv.Itoa(k)))
				first, trailer := ndjson(t, body)
				row := all[k-1]
				cursor := export.RowCursor(row[timeKey].(string), row["id"].(string))
				if len(first) != k || trailer.Complete || trailer.NextCursor != cursor || tr.Get(export.TrailerComplete) != "false" {
					t.Fatalf("limit=%d: %d rows, trailer %+v, want %d rows and the cursor of row %d", k, len(first), trailer, k, k)
				}
				body, _ = e.read(e.path(e.app, kind, "cursor="+cursor))
				rest, trailer := ndjson(t, body)
				if got := append(ids(first), ids(rest)...); !slices.Equal(got, ids(all)) || !trailer.Complete {
					t.Fatalf("limit=%d, then the rest: %d + %d rows, want the %d of the export in its order", k, len(first), len(rest), len(all))
				}
				// CSV resumes from the same cursor.
				csvBody, _ := e.read(e.path(e.app, kind, "format=csv&cursor="+cursor))
				if recs := readCSV(t, csvBody); len(recs)-1 != len(rest) || (len(rest) > 0 && recs[1][0] != rest[0]["id"]) {
					t.Fatalf("CSV after row %d: %d rows, want %d", k, len(recs)-1, len(rest))
				}
			}
			body, _ = e.read(e.path(e.app, kind, "cursor="+export.RowCursor(all[len(all)-1][timeKey].(string), all[len(all)-1]["id"].(string))))
			if rest, trailer := ndjson(t, body); len(rest) != 0 || !trailer.Complete || trailer.Rows != 0 {
				t.Errorf("after the last row: %d rows, %+v", len(rest), trailer)
			}
		})
	}
}

// TestConversions checks a conversions export against the table, newest
// first, in both formats.
func TestConversions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	convs := e.putConversions(e.app, 30)
	e.putConversions(e.other, 5)
	link := &tapline.Link{AppID: e.app.ID, Slug: "spring", Name: "Spring"}
	if err := e.accounts.CreateLink(t.Context(), link); err != nil {
		t.Fatal(err)
	}
	body, _ := e.read(e.path(e.app, "conversions", ""))
	rows, trailer := ndjson(t, body)
	if len(rows) != len(convs) || !trailer.Complete {
		t.Fatalf("%d conversions, %+v; want %d", len(rows), trailer, len(convs))
	}
	for i, r := range rows {
		if r["id"] != convs[i].ID { // stored newest first
			t.Fatalf("row %d is %v, want %s: newest install first", i, r["id"], convs[i].ID)
		}
	}
	if rows[0]["fingerprint"] != "203.0.113.0/24|ios" || strings.Contains(body, "6d9c5b8e") {
		t.Errorf("a conversion leaves with its address or advertising id: %v", rows[0])
	}
	csvBody, _ := e.read(e.path(e.app, "conversions", "format=csv&from="+convs[9].InstallTime.Format(time.RFC3339Nano)))
	recs := readCSV(t, csvBody)
	want := "conversion_id,install_id,install_time,platform,method,link_id,link_name,hit_id,hit_time,click_to_install_ms,source,medium,campaign,adgroup,creative,site,rule,reason,changes"
	if got := strings.Join(recs[0], ","); got != want || len(recs) != 11 {
		t.Fatalf("header %s and %d rows, want %s and 10", got, len(recs)-1, want)
	}
	if r := recs[1]; r[0] != convs[0].ID || r[5] != "7" || r[6] != "link 7" || r[9] != "60000" || r[10] != "facebook" || r[17] != "'=no tap fits" {
		t.Errorf("a conversion's CSV row: %q", r)
	}
}

// TestEvents checks what of an event leaves.
func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putEvents(e.app, 3)
	body, _ := e.read(e.path(e.app, "events", ""))
	rows, _ := ndjson(t, body)
	if len(rows) != 3 {
		t.Fatalf("%d events", len(rows))
	}
	dev, _ := rows[0]["device"].(map[string]any)
	if rows[0]["ip"] != "2001:db8:1:2::/64" || dev["gaid"] != nil || dev["idfv"] != nil || dev["model"] != "Pixel 7" ||
		rows[0]["referrer"] != "tapline_hit=h-1&utm_source=facebook" {
		t.Errorf("an event leaves as %v", rows[0])
	}
	if strings.Contains(body, "0a1b2c3d") {
		t.Errorf("the export carries the advertising id")
	}
	csvBody, _ := e.read(e.path(e.app, "events", "format=csv"))
	recs := readCSV(t, csvBody)
	want := "id,time,received_at,name,kind,install_id,platform,os_version,model,vendor,locale,resolution,app_version,limit_ad_tracking,network,referrer,revenue_micros,revenue_currency,params,protocol"
	if got := strings.Join(recs[0], ","); got != want || len(recs) != 4 {
		t.Fatalf("header %s, %d rows", got, len(recs)-1)
	}
	if r := recs[1]; r[14] != "2001:db8:1:2::/64" || r[16] != "990000" || r[17] != "EUR" {
		t.Errorf("an event's CSV row: %q", r)
	}
}

// TestDocumentedColumns checks that docs/dashboard-api.md lists each
// kind's CSV columns as the export writes them.
func TestDocumentedColumns(t *testing.T) {
	t.Parallel()
	doc, err := readFile("../docs/dashboard-api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range export.Kinds {
		cols := strings.Join(export.Columns(kind), ",")
		if !strings.Contains(doc, "\n"+cols+"\n") {
			t.Errorf("docs/dashboard-api.md does not list the %s columns on a line of their own:\n%s", kind, cols)
		}
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
