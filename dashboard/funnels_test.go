package dashboard_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
)

// sendJSON sends body as JSON from this site's origin, as the builder does.
func (e *env) sendJSON(c *http.Client, method, path, body string) response {
	e.t.Helper()
	return e.do(c, method, path, strings.NewReader(body), map[string]string{"Content-Type": "application/json", "Origin": e.srv.URL})
}

// decode unmarshals a response body into v.
func decode(t *testing.T, res response, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(res.Body), v); err != nil {
		t.Fatalf("decode %.400s: %v", res.Body, err)
	}
}

// threeSteps is a valid definition: a tap on link, the install, an event.
func threeSteps(name string, link *tapline.Link, event string) string {
	return fmt.Sprintf(`{"name":%q,"steps":[{"kind":"tap","links":[%d]},{"kind":"install"},{"kind":"event","event":%q}],
		"window_seconds":604800,"order":"ordered","breakdown":{"kind":"platform"}}`, name, link.ID, event)
}

// funnelsAPI is the funnels path of app.
func funnelsAPI(app *tapline.App) string {
	return "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/funnels"
}

// backfilling stores a one-partition handoff for version f, as a matcher
// does, which moves it to backfilling, and splits its backfill into
// ranges.
func (e *env) backfilling(f *tapline.Funnel, ranges int) {
	e.t.Helper()
	ctx := context.Background()
	h := tapline.FunnelHandoff{VersionID: f.VersionID, Partition: tapline.Partition{Topic: "events", Partition: 0}, Offset: 0, Of: 1}
	if err := e.facts.ApplyFacts(ctx, "dashboard-test", nil, nil, tapline.FlushRows{Handoffs: []tapline.FunnelHandoff{h}}); err != nil {
		e.t.Fatalf("handoff of version %d: %v", f.VersionID, err)
	}
	if err := e.funnels.CreateRanges(ctx, f.VersionID, ranges); err != nil {
		e.t.Fatalf("ranges of version %d: %v", f.VersionID, err)
	}
}

// finishRange claims a range of version f and commits it done.
func (e *env) finishRange(f *tapline.Funnel) {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.funnels.ClaimRange(ctx, f.VersionID, "dashboard-test", time.Minute)
	if err != nil {
		e.t.Fatalf("claim a range of version %d: %v", f.VersionID, err)
	}
	if err := e.funnels.CommitBackfill(ctx, &tapline.BackfillCommit{VersionID: f.VersionID, Owner: "dashboard-test",
		Steps: []tapline.BackfillStep{{Range: r.Range, From: r.Cursor, To: r.End, Done: true}}}, time.Minute); err != nil {
		e.t.Fatalf("commit a range of version %d: %v", f.VersionID, err)
	}
}

// goLive takes version f through its handoff and a one-range backfill.
func (e *env) goLive(f *tapline.Funnel) {
	e.t.Helper()
	e.backfilling(f, 1)
	e.finishRange(f)
	got, err := e.funnels.FunnelVersion(context.Background(), f.VersionID)
	if err != nil || got.Status != tapline.FunnelLive {
		e.t.Fatalf("version %d after its backfill: %+v, %v; want live", f.VersionID, got, err)
	}
}

// stepRow is one fact_funnel_steps delta: day (of March 2026, at noon
// UTC), breakdown, step, bucket, count; the sum is count times the
// bucket's bound plus 100 seconds.
type stepRow struct {
	day       int
	breakdown string
	step      int
	bucket    int
	count     int64
}

// seedSteps applies funnel step facts of version f.
func (e *env) seedSteps(f *tapline.Funnel, rows ...stepRow) {
	e.t.Helper()
	deltas := map[tapline.FactKey]tapline.FactValue{}
	for _, r := range rows {
		k := tapline.FactKey{
			Hour: time.Date(2026, 3, r.day, 12, 0, 0, 0, time.UTC).Unix(), AppID: f.AppID,
			Funnel: f.VersionID, Breakdown: r.breakdown, Step: r.step, Bucket: r.bucket,
		}.For(tapline.FactFunnelSteps)
		v := deltas[k]
		v.Count += r.count
		if r.step > 1 {
			v.Sum += r.count * (tapline.FunnelBuckets[r.bucket] + 100)
		}
		deltas[k] = v
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		e.t.Fatalf("seed funnel steps: %v", err)
	}
}

// standardRows are the results the view tests read: 110 installations
// entered (70 iOS, 40 Android), 55 installed within 300..600 s, 15 bought
// within 1..2 hours.
var standardRows = []stepRow{
	{10, "ios", 1, 0, 60}, {10, "android", 1, 0, 40},
	{10, "ios", 2, 5, 30}, {10, "android", 2, 5, 20},
	{10, "ios", 3, 8, 10}, {10, "android", 3, 8, 5},
	{11, "ios", 1, 0, 10}, {11, "ios", 2, 5, 5},
}

// report is the JSON of a results answer as the tests read it.
type report struct {
	dashboard.FunnelReport
	Breakdown []struct {
		Value      string  `json:"value"`
		Label      string  `json:"label"`
		Steps      []int64 `json:"steps"`
		Conversion float64 `json:"conversion"`
	} `json:"breakdown"`
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestFunnelAPILifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	spring := e.link(app, "spring-sale", "Spring sale")
	c := e.loggedIn("acme")
	base := funnelsAPI(app)

	res := e.get(c, base)
	wantStatus(t, "empty list", res, http.StatusOK)
	var list dashboard.FunnelList
	decode(t, res, &list)
	if list.AppID != app.ID || list.Funnels == nil || len(list.Funnels) != 0 {
		t.Errorf("empty list = %s, want app %d and \"funnels\": []", res.Body, app.ID)
	}

	res = e.sendJSON(c, http.MethodPost, base, threeSteps("  Spring to purchase ", spring, "purchase"))
	wantStatus(t, "create", res, http.StatusCreated)
	var created tapline.Funnel
	decode(t, res, &created)
	if created.ID == 0 || created.VersionID == 0 || created.Version != 1 || created.AppID != app.ID || created.Name != "Spring to purchase" ||
		created.Status != tapline.FunnelPending || len(created.Steps) != 3 || created.Steps[0].Links[0] != spring.ID ||
		created.Breakdown.Kind != tapline.BreakdownPlatform || created.WindowSeconds != 604800 {
		t.Errorf("created = %+v", created)
	}
	fpath := base + "/" + strconv.FormatInt(created.ID, 10)
	if got := res.Header.Get("Location"); got != fpath {
		t.Errorf("Location %q, want %q", got, fpath)
	}
	if got := e.saved.Load(); got != 1 {
		t.Errorf("OnFunnelSaved called %d times after a create, want 1", got)
	}

	res = e.get(c, base)
	decode(t, res, &list)
	if len(list.Funnels) != 1 {
		t.Fatalf("list = %s, want one funnel", res.Body)
	}
	if s := list.Funnels[0]; s.ID != created.ID || s.VersionID != created.VersionID || s.Version != 1 || s.Name != "Spring to purchase" ||
		s.Status != tapline.FunnelPending || s.Progress != 0 || s.ShownVersion != 1 || !s.Partial || s.CreatedAt.IsZero() || s.LiveAt != nil {
		t.Errorf("listed = %+v", s)
	}
	for _, field := range []string{`"id"`, `"version_id"`, `"version"`, `"name"`, `"status"`, `"progress"`, `"rows_scanned"`, `"rows_estimated"`, `"created_at"`} {
		if !strings.Contains(res.Body, field) {
			t.Errorf("list lacks %s: %s", field, res.Body)
		}
	}

	// Live: progress 1, live_at set.
	e.goLive(&created)
	res = e.get(c, fpath)
	wantStatus(t, "show", res, http.StatusOK)
	var shown dashboard.FunnelDetail
	decode(t, res, &shown)
	if shown.Funnel == nil || shown.ID != created.ID || shown.Status != tapline.FunnelLive || shown.Progress != 1 || shown.LiveAt == nil ||
		shown.Steps[2].Event != "purchase" || len(shown.Versions) != 1 {
		t.Errorf("shown = %s", res.Body)
	}

	// An edit is a new version; the live one stays until it is live.
	res = e.sendJSON(c, http.MethodPut, fpath, threeSteps("Spring to signup", spring, "signup"))
	wantStatus(t, "edit", res, http.StatusOK)
	var edited tapline.Funnel
	decode(t, res, &edited)
	if edited.ID != created.ID || edited.Version != 2 || edited.VersionID == created.VersionID || edited.Status != tapline.FunnelPending ||
		edited.Steps[2].Event != "signup" || edited.Name != "Spring to signup" {
		t.Errorf("edited = %+v", edited)
	}
	if got := e.saved.Load(); got != 2 {
		t.Errorf("OnFunnelSaved called %d times after an edit, want 2", got)
	}
	res = e.get(c, fpath)
	decode(t, res, &shown)
	if shown.Version != 2 || len(shown.Versions) != 2 || shown.Versions[0].Version != 2 || shown.Versions[1].Status != tapline.FunnelLive {
		t.Errorf("after the edit: %s", res.Body)
	}
	res = e.get(c, base)
	decode(t, res, &list)
	if s := list.Funnels[0]; s.Version != 2 || s.ShownVersion != 1 || s.Partial {
		t.Errorf("listed after the edit = %+v, want version 2 showing the live version 1", s)
	}

	res = e.do(c, http.MethodDelete, fpath, nil, map[string]string{"Origin": e.srv.URL})
	wantStatus(t, "delete", res, http.StatusNoContent)
	if res.Body != "" {
		t.Errorf("delete body %q, want none", res.Body)
	}
	wantJSONError(t, "show deleted", e.get(c, fpath), http.StatusNotFound, "not_found", "not found")
	wantJSONError(t, "delete again", e.do(c, http.MethodDelete, fpath, nil, nil), http.StatusNotFound, "not_found", "")
	res = e.get(c, base)
	decode(t, res, &list)
	if len(list.Funnels) != 0 {
		t.Errorf("list after delete = %s", res.Body)
	}

	t.Run("duplicate name", func(t *testing.T) {
		res := e.sendJSON(c, http.MethodPost, base, threeSteps("Twice", spring, "purchase"))
		wantStatus(t, "first", res, http.StatusCreated)
		var first tapline.Funnel
		decode(t, res, &first)
		wantJSONError(t, "second", e.sendJSON(c, http.MethodPost, base, threeSteps("Twice", spring, "open")), http.StatusConflict, "conflict", `"Twice"`)
		res = e.sendJSON(c, http.MethodPost, base, threeSteps("Other", spring, "open"))
		wantStatus(t, "other", res, http.StatusCreated)
		var other tapline.Funnel
		decode(t, res, &other)
		wantJSONError(t, "rename onto it", e.sendJSON(c, http.MethodPut, base+"/"+strconv.FormatInt(other.ID, 10), threeSteps("Twice", spring, "open")),
			http.StatusConflict, "conflict", `"Twice"`)
	})
	t.Run("methods and paths", func(t *testing.T) {
		wantJSONError(t, "PATCH", e.do(c, http.MethodPatch, fpath, nil, nil), http.StatusMethodNotAllowed, "method_not_allowed", "PATCH")
		wantJSONError(t, "POST results", e.do(c, http.MethodPost, fpath+"/results", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed", "")
		wantJSONError(t, "DELETE list", e.do(c, http.MethodDelete, base, nil, nil), http.StatusMethodNotAllowed, "method_not_allowed", "")
		wantJSONError(t, "unknown", e.get(c, fpath+"/nothing"), http.StatusNotFound, "not_found", "")
		wantJSONError(t, "bad id", e.get(c, base+"/abc"), http.StatusNotFound, "not_found", "funnel")
		wantJSONError(t, "text body", e.do(c, http.MethodPost, base, strings.NewReader(threeSteps("T", spring, "x")), map[string]string{"Content-Type": "text/plain"}),
			http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json")
	})
}

func TestFunnelInvalidDefinitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme") // retention: the default 60 days
	spring := e.link(app, "spring-sale", "Spring sale")
	foreign := e.link(e.app(e.account("other"), "Other"), "theirs", "Theirs")
	c := e.loggedIn("acme")
	base := funnelsAPI(app)

	// A live funnel to edit: a bad edit must leave it as it is.
	res := e.sendJSON(c, http.MethodPost, base, threeSteps("Kept", spring, "purchase"))
	wantStatus(t, "create", res, http.StatusCreated)
	var kept tapline.Funnel
	decode(t, res, &kept)
	keptPath := base + "/" + strconv.FormatInt(kept.ID, 10)

	two := `[{"kind":"install"},{"kind":"event","event":"purchase"}]`
	withSteps := func(steps string) string { return `{"name":"F","steps":` + steps + `}` }
	withStep := func(first string) string { return withSteps(`[` + first + `,{"kind":"install"}]`) }
	filter := func(f string) string { return withStep(`{"kind":"event","event":"e","filters":[` + f + `]}`) }
	with := func(extra string) string { return `{"name":"F","steps":` + two + `,` + extra + `}` }
	exclusion := func(x string) string { return with(`"exclusions":[` + x + `]`) }
	many := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tests := []struct {
		name, body, msg string
	}{
		{"no name", `{"name":"  ","steps":` + two + `}`, "name: required."},
		{"long name", `{"name":"` + strings.Repeat("n", 101) + `","steps":` + two + `}`, "name: at most 100 bytes."},
		{"one step", withSteps(`[{"kind":"install"}]`), "steps: a funnel has 2 to 20 steps, not 1."},
		{"no steps", `{"name":"F"}`, "steps: a funnel has 2 to 20 steps, not 0."},
		{"21 steps", withSteps(`[` + many(`{"kind":"install"}`, 21) + `]`), "not 21."},
		{"negative window", with(`"window_seconds":-5`), "window_seconds: must not be negative."},
		{"short window", with(`"window_seconds":59`), "window_seconds: at least 60."},
		{"window over retention", with(`"window_seconds":` + strconv.Itoa(61*86400)), "window_seconds: at most the app's raw retention, 5184000 seconds."},
		{"bad order", with(`"order":"sideways"`), `order: "sideways" is not one of ordered, strict, any.`},
		{"step without kind", withStep(`{}`), "step 1: kind: required (tap, install or event)"},
		{"unknown kind", withStep(`{"kind":"click"}`), `step 1: kind "click" is not one of tap, install, event`},
		{"tap with event", withStep(`{"kind":"tap","event":"x"}`), "step 1: a tap step takes links, not an event name"},
		{"install with links", withSteps(`[{"kind":"event","event":"a"},{"kind":"install","links":[1]}]`), "step 2: an install step takes neither links nor an event name"},
		{"event without name", withSteps(`[{"kind":"install"},{"kind":"event","event":" "}]`), "step 2: an event step needs an event name"},
		{"event with links", withStep(`{"kind":"event","event":"a","links":[1]}`), "step 1: an event step takes no links"},
		{"another app's link", withStep(fmt.Sprintf(`{"kind":"tap","links":[%d]}`, foreign.ID)), fmt.Sprintf("step 1: link %d is not a link of this app", foreign.ID)},
		{"11 filters", filter(many(`{"param":"p","op":"eq","value":"v"}`, 11)), "step 1: at most 10 filters"},
		{"filter without param", filter(`{"op":"eq","value":"v"}`), "step 1: filter 1: param is required"},
		{"revenue eq", filter(`{"param":"revenue","op":"eq","value":"1"}`), "step 1: filter 1: revenue is a number: compare it with gt, gte, lt or lte"},
		{"eq with values", filter(`{"param":"p","op":"eq","values":["a"]}`), "step 1: filter 1: eq takes value, not values"},
		{"in without values", filter(`{"param":"p","op":"in"}`), "step 1: filter 1: in takes a non-empty values list, not value"},
		{"gt not a number", filter(`{"param":"p","op":"gt","value":"ten"}`), `step 1: filter 1: gt needs a number, not "ten"`},
		{"filter without op", filter(`{"param":"p","value":"v"}`), "step 1: filter 1: op is required"},
		{"unknown op", filter(`{"param":"p","op":"like","value":"v"}`), `step 1: filter 1: op "like" is not one of eq, ne, in, gt, gte, lt, lte`},
		{"11 exclusions", exclusion(many(`{"kind":"event","event":"x","after":1,"before":2}`, 11)), "exclusions: at most 10."},
		{"tap exclusion", exclusion(`{"kind":"tap","after":1,"before":2}`), "exclusion 1: a tap cannot be excluded; exclude an event."},
		{"exclusion without event", exclusion(`{"kind":"event","after":1,"before":2}`), "exclusion 1: an event step needs an event name"},
		{"exclusion backwards", exclusion(`{"kind":"event","event":"x","after":2,"before":1}`), "exclusion 1: after and before must be step numbers with 1 ≤ after < before ≤ 2, not 2 and 1."},
		{"exclusion past the steps", exclusion(`{"kind":"event","event":"x","after":1,"before":3}`), "not 1 and 3."},
		{"breakdown with param", with(`"breakdown":{"kind":"platform","param":"p"}`), `breakdown: "platform" takes no param.`},
		{"breakdown without param", with(`"breakdown":{"kind":"link_param"}`), `breakdown: "link_param" needs a param.`},
		{"unknown breakdown", with(`"breakdown":{"kind":"country"}`), `breakdown: "country" is not one of link, platform, method, link_param, entry_param.`},
		{"unknown field", with(`"colour":"red"`), `unknown field "colour"`},
		{"wrong type", with(`"window_seconds":"14d"`), "window_seconds: expected int64"},
		{"not json", `{"name":`, "Invalid JSON body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantJSONError(t, "create", e.sendJSON(c, http.MethodPost, base, tt.body), http.StatusBadRequest, "invalid", tt.msg)
			wantJSONError(t, "edit", e.sendJSON(c, http.MethodPut, keptPath, tt.body), http.StatusBadRequest, "invalid", tt.msg)
		})
	}
	// Nothing was stored: still one funnel, at version 1.
	var list dashboard.FunnelList
	decode(t, e.get(c, base), &list)
	if len(list.Funnels) != 1 || list.Funnels[0].Version != 1 || list.Funnels[0].Name != "Kept" {
		t.Errorf("after the bad definitions: %+v, want only Kept at version 1", list.Funnels)
	}
	vs, err := e.funnels.FunnelVersions(context.Background(), kept.ID)
	if err != nil || len(vs) != 1 {
		t.Errorf("versions of Kept: %d, %v; want 1", len(vs), err)
	}
	if got := e.saved.Load(); got != 1 {
		t.Errorf("OnFunnelSaved called %d times, want once (for Kept)", got)
	}
}

func TestFunnelTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	mine := e.app(acme, "Mine")
	second := e.app(acme, "Second")
	other := e.account("other")
	theirs := e.app(other, "Theirs")
	myLink := e.link(mine, "mine", "Mine")
	theirLink := e.link(theirs, "theirs", "Theirs")
	c := e.loggedIn("acme")
	oc := e.loggedIn("other")

	res := e.sendJSON(oc, http.MethodPost, funnelsAPI(theirs), threeSteps("Secret funnel", theirLink, "purchase"))
	wantStatus(t, "their create", res, http.StatusCreated)
	var their tapline.Funnel
	decode(t, res, &their)
	res = e.sendJSON(c, http.MethodPost, funnelsAPI(mine), threeSteps("My funnel", myLink, "purchase"))
	wantStatus(t, "my create", res, http.StatusCreated)
	var my tapline.Funnel
	decode(t, res, &my)
	theirID, myID := strconv.FormatInt(their.ID, 10), strconv.FormatInt(my.ID, 10)

	for _, tt := range []struct{ name, app, fid string }{
		{"their app, their funnel", funnelsAPI(theirs), theirID},
		{"my app, their funnel", funnelsAPI(mine), theirID},
		{"my other app, my funnel", funnelsAPI(second), myID},
		{"unknown app", "/api/v1/apps/999999/funnels", myID},
		{"my app, unknown funnel", funnelsAPI(mine), "999999"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.app + "/" + tt.fid
			for _, res := range []response{
				e.get(c, p), e.get(c, p+"/results"), e.get(c, p+"/results.csv"),
				e.sendJSON(c, http.MethodPut, p, threeSteps("Hijacked", myLink, "x")),
				e.do(c, http.MethodDelete, p, nil, nil),
			} {
				wantJSONError(t, p, res, http.StatusNotFound, "not_found", "not found")
				if strings.Contains(res.Body, "Secret") {
					t.Errorf("%s leaks the other account's funnel: %s", p, res.Body)
				}
			}
		})
	}
	for _, p := range []string{funnelsAPI(theirs), "/api/v1/apps/" + strconv.FormatInt(theirs.ID, 10) + "/funnel-options"} {
		wantJSONError(t, p, e.get(c, p), http.StatusNotFound, "not_found", "not found")
	}
	wantJSONError(t, "create in their app", e.sendJSON(c, http.MethodPost, funnelsAPI(theirs), threeSteps("Planted", myLink, "x")), http.StatusNotFound, "not_found", "")
	for _, p := range []string{"/apps/" + strconv.FormatInt(theirs.ID, 10) + "/funnels", "/apps/" + strconv.FormatInt(theirs.ID, 10) + "/funnels/" + theirID,
		"/apps/" + strconv.FormatInt(mine.ID, 10) + "/funnels/" + theirID, "/apps/" + strconv.FormatInt(mine.ID, 10) + "/funnels/" + theirID + "/edit",
		"/apps/" + strconv.FormatInt(theirs.ID, 10) + "/funnels/new"} {
		res := e.get(c, p)
		wantStatus(t, p, res, http.StatusNotFound)
		if strings.Contains(res.Body, "Secret") {
			t.Errorf("%s leaks the other account's funnel", p)
		}
	}
	// Theirs is untouched.
	f, err := e.funnels.Funnel(context.Background(), their.ID)
	if err != nil || f.Name != "Secret funnel" || f.Version != 1 {
		t.Errorf("their funnel = %+v, %v", f, err)
	}
	// No session: 401, as the rest of the API.
	wantJSONError(t, "logged out", e.get(e.client(), funnelsAPI(mine)), http.StatusUnauthorized, "unauthorized", "")
	// The admin token sees every app.
	res = e.do(e.client(), http.MethodGet, funnelsAPI(theirs)+"/"+theirID, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	wantStatus(t, "admin", res, http.StatusOK)
}

func TestFunnelCrossSiteWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	l := e.link(app, "l", "L")
	c := e.loggedIn("acme")
	for _, h := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Referer": "https://evil.example/page"},
		{"Sec-Fetch-Site": "cross-site"},
	} {
		h["Content-Type"] = "application/json"
		res := e.do(c, http.MethodPost, funnelsAPI(app), strings.NewReader(threeSteps("Forged", l, "x")), h)
		wantJSONError(t, fmt.Sprint(h), res, http.StatusForbidden, "forbidden", "Cross-site")
	}
	var list dashboard.FunnelList
	decode(t, e.get(c, funnelsAPI(app)), &list)
	if len(list.Funnels) != 0 {
		t.Errorf("a cross-site request created %+v", list.Funnels)
	}
}

func TestFunnelResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	spring := e.link(app, "spring-sale", "Spring sale")
	c := e.loggedIn("acme")
	res := e.sendJSON(c, http.MethodPost, funnelsAPI(app), threeSteps("Spring", spring, "purchase"))
	wantStatus(t, "create", res, http.StatusCreated)
	var v1 tapline.Funnel
	decode(t, res, &v1)
	fpath := funnelsAPI(app) + "/" + strconv.FormatInt(v1.ID, 10)
	e.seedSteps(&v1, standardRows...)
	e.goLive(&v1)

	res = e.get(c, fpath+"/results?from=2026-03-09&to=2026-03-12")
	wantStatus(t, "results", res, http.StatusOK)
	var got report
	decode(t, res, &got)
	if got.AppID != app.ID || got.FunnelID != v1.ID || got.TZ != "UTC" || got.From != "2026-03-09" || got.To != "2026-03-12" ||
		got.Funnel == nil || got.Funnel.VersionID != v1.VersionID || got.Partial || got.Newest.Status != tapline.FunnelLive {
		t.Errorf("results header = %.600s", res.Body)
	}
	wantSteps := []struct {
		title       string
		count, drop int64
		conv, total float64
		median, p90 float64 // 0: absent
	}{
		{"Tap on Spring sale", 110, 0, 1, 1, 0, 0},
		{"Install", 55, 55, 0.5, 0.5, 400, 560},
		{"purchase", 15, 40, 15.0 / 55, 15.0 / 110, 3700, 6500},
	}
	if len(got.Steps) != 3 {
		t.Fatalf("steps = %+v", got.Steps)
	}
	for i, w := range wantSteps {
		s := got.Steps[i]
		ok := s.Step == i+1 && s.Title == w.title && s.Count == w.count && s.DropOff == w.drop && near(s.Conversion, w.conv) && near(s.TotalConversion, w.total)
		if w.median == 0 {
			ok = ok && s.MedianSeconds == nil && s.P90Seconds == nil
		} else {
			ok = ok && s.MedianSeconds != nil && near(*s.MedianSeconds, w.median) && s.P90Seconds != nil && near(*s.P90Seconds, w.p90)
		}
		if !ok {
			t.Errorf("step %d = %+v, want %+v", i+1, s, w)
		}
	}
	if len(got.Breakdown) != 2 || got.Breakdown[0].Value != "ios" || got.Breakdown[0].Label != "ios" ||
		fmt.Sprint(got.Breakdown[0].Steps) != "[70 35 10]" || !near(got.Breakdown[0].Conversion, 10.0/70) ||
		got.Breakdown[1].Value != "android" || fmt.Sprint(got.Breakdown[1].Steps) != "[40 20 5]" {
		t.Errorf("breakdown = %+v", got.Breakdown)
	}
	if len(got.Days) != 4 || got.Days[0].Day != "2026-03-09" || fmt.Sprint(got.Days[0].Steps) != "[0 0 0]" ||
		fmt.Sprint(got.Days[1].Steps) != "[100 50 15]" || fmt.Sprint(got.Days[2].Steps) != "[10 5 0]" || got.Days[3].Day != "2026-03-12" {
		t.Errorf("days = %+v", got.Days)
	}

	t.Run("time zone", func(t *testing.T) {
		// Noon UTC is 01:00 the next day in Auckland (UTC+13 in March).
		res := e.get(c, fpath+"/results?from=2026-03-11&to=2026-03-12&tz=Pacific/Auckland")
		wantStatus(t, "results", res, http.StatusOK)
		var got report
		decode(t, res, &got)
		if got.TZ != "Pacific/Auckland" || len(got.Days) != 2 || fmt.Sprint(got.Days[0].Steps) != "[100 50 15]" || fmt.Sprint(got.Days[1].Steps) != "[10 5 0]" {
			t.Errorf("Auckland days = %+v", got.Days)
		}
	})
	t.Run("default range is 30 days to today in UTC", func(t *testing.T) {
		e.clock.Store(time.Date(2026, 3, 20, 23, 30, 0, 0, time.UTC).UnixNano())
		defer e.clock.Store(0)
		res := e.get(c, fpath+"/results")
		wantStatus(t, "results", res, http.StatusOK)
		var got report
		decode(t, res, &got)
		if got.From != "2026-02-19" || got.To != "2026-03-20" || got.TZ != "UTC" || len(got.Days) != 30 || got.Steps[0].Count != 110 {
			t.Errorf("default range: from %s to %s tz %s, %d days, %d entered", got.From, got.To, got.TZ, len(got.Days), got.Steps[0].Count)
		}
	})
	t.Run("bad query", func(t *testing.T) {
		for _, tt := range []struct{ query, msg string }{
			{"tz=Mars/Olympus", `tz: unknown time zone "Mars/Olympus"`},
			{"from=2026-02-30", "from:"},
			{"to=03/10/2026", "to:"},
			{"from=2026-03-10&to=2026-03-09", "from (2026-03-10) is after to (2026-03-09)"},
			{"from=2024-01-01&to=2025-12-31", "at most 366"},
		} {
			for _, p := range []string{fpath + "/results?" + tt.query, fpath + "/results.csv?" + tt.query} {
				wantJSONError(t, p, e.get(c, p), http.StatusBadRequest, "invalid", tt.msg)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		res := e.get(c, fpath+"/results.csv?from=2026-03-10&to=2026-03-11")
		wantStatus(t, "csv", res, http.StatusOK)
		if ct := res.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := res.Header.Get("Content-Disposition"); cd != fmt.Sprintf(`attachment; filename="funnel-%d-2026-03-10-2026-03-11.csv"`, v1.ID) {
			t.Errorf("Content-Disposition %q", cd)
		}
		recs, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
		if err != nil {
			t.Fatalf("parse CSV: %v\n%s", err, res.Body)
		}
		want := [][]string{
			{"section", "value", "label", "step", "step_title", "count", "conversion_from_previous", "conversion_from_first", "drop_off", "median_seconds", "p90_seconds", "mean_seconds"},
			{"total", "", "", "1", "Tap on Spring sale", "110", "1.0000", "1.0000", "0", "", "", ""},
			{"total", "", "", "2", "Install", "55", "0.5000", "0.5000", "55", "400.0", "560.0", "400.0"},
			{"total", "", "", "3", "purchase", "15", "0.2727", "0.1364", "40", "3700.0", "6500.0", "3700.0"},
			{"breakdown", "ios", "ios", "1", "Tap on Spring sale", "70", "1.0000", "1.0000", "0", "", "", ""},
			{"breakdown", "ios", "ios", "2", "Install", "35", "0.5000", "0.5000", "35", "", "", ""},
			{"breakdown", "ios", "ios", "3", "purchase", "10", "0.2857", "0.1429", "25", "", "", ""},
			{"breakdown", "android", "android", "1", "Tap on Spring sale", "40", "1.0000", "1.0000", "0", "", "", ""},
			{"breakdown", "android", "android", "2", "Install", "20", "0.5000", "0.5000", "20", "", "", ""},
			{"breakdown", "android", "android", "3", "purchase", "5", "0.2500", "0.1250", "15", "", "", ""},
			{"day", "2026-03-10", "", "1", "Tap on Spring sale", "100", "1.0000", "1.0000", "0", "", "", ""},
			{"day", "2026-03-10", "", "2", "Install", "50", "0.5000", "0.5000", "50", "", "", ""},
			{"day", "2026-03-10", "", "3", "purchase", "15", "0.3000", "0.1500", "35", "", "", ""},
			{"day", "2026-03-11", "", "1", "Tap on Spring sale", "10", "1.0000", "1.0000", "0", "", "", ""},
			{"day", "2026-03-11", "", "2", "Install", "5", "0.5000", "0.5000", "5", "", "", ""},
			{"day", "2026-03-11", "", "3", "purchase", "0", "0.0000", "0.0000", "5", "", "", ""},
		}
		if fmt.Sprint(recs) != fmt.Sprint(want) {
			t.Errorf("CSV =\n%q\nwant\n%q", recs, want)
		}
	})
}

func TestFunnelCSVNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	res := e.sendJSON(c, http.MethodPost, funnelsAPI(app), `{"name":"F","steps":[{"kind":"tap","label":"=HYPERLINK(\"x\")"},{"kind":"install"}],
		"breakdown":{"kind":"link_param","param":"utm_source"}}`)
	wantStatus(t, "create", res, http.StatusCreated)
	var f tapline.Funnel
	decode(t, res, &f)
	e.seedSteps(&f, stepRow{10, "+cmd|' /C calc'!A0", 1, 0, 3}, stepRow{10, "@SUM(1)", 1, 0, 2})
	res = e.get(c, funnelsAPI(app)+"/"+strconv.FormatInt(f.ID, 10)+"/results.csv?from=2026-03-10&to=2026-03-10")
	wantStatus(t, "csv", res, http.StatusOK)
	recs, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for _, cell := range r {
			if cell != "" && strings.ContainsRune("=+@", rune(cell[0])) {
				t.Errorf("cell %q of row %q starts a formula", cell, r)
			}
		}
	}
	if !strings.Contains(res.Body, `'+cmd|`) || !strings.Contains(res.Body, `'=HYPERLINK`) {
		t.Errorf("CSV lost the values:\n%s", res.Body)
	}
}

func TestFunnelResultsVersionSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	l := e.link(app, "l", "L")
	c := e.loggedIn("acme")
	res := e.sendJSON(c, http.MethodPost, funnelsAPI(app), threeSteps("Switch", l, "purchase"))
	wantStatus(t, "create", res, http.StatusCreated)
	var v1 tapline.Funnel
	decode(t, res, &v1)
	fpath := funnelsAPI(app) + "/" + strconv.FormatInt(v1.ID, 10)
	// Each version counts a different number of entries, to tell them apart.
	e.seedSteps(&v1, stepRow{10, "ios", 1, 0, 100})

	type want struct {
		shown     *tapline.Funnel
		entered   int64
		partial   bool
		newest    int
		status    tapline.FunnelStatus
		progress  float64
		listShown int
	}
	check := func(t *testing.T, w want) {
		t.Helper()
		res := e.get(c, fpath+"/results?from=2026-03-10&to=2026-03-10")
		wantStatus(t, "results", res, http.StatusOK)
		var got report
		decode(t, res, &got)
		if got.Funnel.VersionID != w.shown.VersionID || got.Steps[0].Count != w.entered || got.Partial != w.partial ||
			got.Newest.Version != w.newest || got.Newest.Status != w.status || !near(got.Newest.Progress, w.progress) ||
			got.Newest.ShownVersion != w.shown.Version || got.Newest.Partial != w.partial {
			t.Errorf("shows version %d (%d entered, partial %v), newest v%d %s %.2f; want version %d (%d entered, partial %v), newest v%d %s %.2f",
				got.Funnel.Version, got.Steps[0].Count, got.Partial, got.Newest.Version, got.Newest.Status, got.Newest.Progress,
				w.shown.Version, w.entered, w.partial, w.newest, w.status, w.progress)
		}
		var list dashboard.FunnelList
		decode(t, e.get(c, funnelsAPI(app)), &list)
		if s := list.Funnels[0]; s.ShownVersion != w.listShown || s.Partial != w.partial {
			t.Errorf("list shows version %d (partial %v), want %d (%v)", s.ShownVersion, s.Partial, w.listShown, w.partial)
		}
	}

	t.Run("v1 pending: its partial results", func(t *testing.T) {
		check(t, want{shown: &v1, entered: 100, partial: true, newest: 1, status: tapline.FunnelPending, listShown: 1})
	})
	e.backfilling(&v1, 2)
	e.finishRange(&v1)
	t.Run("v1 backfilling half way", func(t *testing.T) {
		check(t, want{shown: &v1, entered: 100, partial: true, newest: 1, status: tapline.FunnelBackfilling, progress: 0.5, listShown: 1})
	})
	e.finishRange(&v1)
	t.Run("v1 live", func(t *testing.T) {
		check(t, want{shown: &v1, entered: 100, newest: 1, status: tapline.FunnelLive, progress: 1, listShown: 1})
	})

	res = e.sendJSON(c, http.MethodPut, fpath, threeSteps("Switch", l, "signup"))
	wantStatus(t, "edit", res, http.StatusOK)
	var v2 tapline.Funnel
	decode(t, res, &v2)
	e.seedSteps(&v2, stepRow{10, "ios", 1, 0, 200})
	t.Run("v2 pending: v1 shown", func(t *testing.T) {
		check(t, want{shown: &v1, entered: 100, newest: 2, status: tapline.FunnelPending, listShown: 1})
	})
	e.backfilling(&v2, 2)
	e.finishRange(&v2)
	t.Run("v2 backfilling: v1 shown", func(t *testing.T) {
		check(t, want{shown: &v1, entered: 100, newest: 2, status: tapline.FunnelBackfilling, progress: 0.5, listShown: 1})
	})
	e.finishRange(&v2)
	t.Run("v2 live: v2 shown", func(t *testing.T) {
		check(t, want{shown: &v2, entered: 200, newest: 2, status: tapline.FunnelLive, progress: 1, listShown: 2})
	})

	res = e.sendJSON(c, http.MethodPut, fpath, threeSteps("Switch", l, "open"))
	wantStatus(t, "edit again", res, http.StatusOK)
	if _, err := e.funnels.CancelFunnel(context.Background(), v1.ID); err != nil {
		t.Fatal(err)
	}
	t.Run("v3 cancelled: v2 shown", func(t *testing.T) {
		check(t, want{shown: &v2, entered: 200, newest: 3, status: tapline.FunnelCancelled, listShown: 2})
	})
}

func TestFunnelOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := e.link(app, "spring-sale", "Spring sale")
	fall := e.link(app, "fall", "Fall")
	c := e.loggedIn("acme")
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	e.clock.Store(now.UnixNano())
	ev := func(daysAgo int, name string, n int64) (tapline.FactKey, tapline.FactValue) {
		return tapline.FactKey{Table: tapline.FactEvents, Hour: tapline.HourOf(now.AddDate(0, 0, -daysAgo)), AppID: app.ID,
			EventName: name, Platform: tapline.PlatformIOS, Method: tapline.MethodOrganic}, tapline.FactValue{Count: n}
	}
	deltas := map[tapline.FactKey]tapline.FactValue{}
	for _, x := range []struct {
		days int
		name string
		n    int64
	}{{1, "purchase", 3}, {2, "open", 9}, {59, "signup", 1}, {61, "expired", 50}} {
		k, v := ev(x.days, x.name, x.n)
		deltas[k] = v
	}
	if err := e.facts.ApplyFacts(context.Background(), "dashboard-test", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	res := e.get(c, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/funnel-options")
	wantStatus(t, "options", res, http.StatusOK)
	var got dashboard.FunnelOptions
	decode(t, res, &got)
	if got.AppID != app.ID || fmt.Sprint(got.Events) != "[open purchase signup]" ||
		len(got.Links) != 2 || got.Links[0] != (dashboard.LinkOption{ID: spring.ID, Name: "Spring sale", Slug: "spring-sale"}) ||
		got.Links[1] != (dashboard.LinkOption{ID: fall.ID, Name: "Fall", Slug: "fall"}) ||
		got.MaxWindowSeconds != 60*86400 || got.DefaultWindowSeconds != 14*86400 || got.MinSteps != 2 || got.MaxSteps != 20 {
		t.Errorf("options = %s", res.Body)
	}
	wantJSONError(t, "POST", e.do(c, http.MethodPost, "/api/v1/apps/"+strconv.FormatInt(app.ID, 10)+"/funnel-options", nil, nil),
		http.StatusMethodNotAllowed, "method_not_allowed", "")
}

func TestAdminFunnels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	l := e.link(app, "l", "L")
	auth := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	path := "/admin/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/funnels"

	res := e.do(e.client(), http.MethodPost, path, strings.NewReader(threeSteps("By admin", l, "purchase")), auth)
	wantStatus(t, "create", res, http.StatusCreated)
	var f tapline.Funnel
	decode(t, res, &f)
	if f.ID == 0 || f.AppID != app.ID || f.Name != "By admin" || f.Status != tapline.FunnelPending {
		t.Errorf("created = %+v", f)
	}
	if got, want := res.Header.Get("Location"), fmt.Sprintf("/api/v1/apps/%d/funnels/%d", app.ID, f.ID); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if e.saved.Load() != 1 {
		t.Errorf("OnFunnelSaved called %d times, want 1", e.saved.Load())
	}
	res = e.do(e.client(), http.MethodGet, path, nil, auth)
	wantStatus(t, "list", res, http.StatusOK)
	var list dashboard.FunnelList
	decode(t, res, &list)
	if len(list.Funnels) != 1 || list.Funnels[0].ID != f.ID {
		t.Errorf("list = %s", res.Body)
	}
	wantJSONError(t, "invalid", e.do(e.client(), http.MethodPost, path, strings.NewReader(`{"name":"X","steps":[{"kind":"install"}]}`), auth),
		http.StatusBadRequest, "invalid", "steps: a funnel has 2 to 20 steps, not 1.")
	wantJSONError(t, "taken", e.do(e.client(), http.MethodPost, path, strings.NewReader(threeSteps("By admin", l, "x")), auth),
		http.StatusConflict, "conflict", "")
	wantJSONError(t, "unknown app", e.do(e.client(), http.MethodPost, "/admin/v1/apps/999999/funnels", strings.NewReader(threeSteps("Y", l, "x")), auth),
		http.StatusNotFound, "not_found", "")
	wantJSONError(t, "no token", e.do(e.client(), http.MethodPost, path, strings.NewReader(threeSteps("Z", l, "x")), map[string]string{"Content-Type": "application/json"}),
		http.StatusUnauthorized, "unauthorized", "")
	wantJSONError(t, "session is not admin", e.do(e.loggedIn("acme"), http.MethodPost, path, strings.NewReader(threeSteps("Z", l, "x")), map[string]string{"Content-Type": "application/json"}),
		http.StatusUnauthorized, "unauthorized", "")
}

func TestDashboardRequiresFunnels(t *testing.T) {
	t.Parallel()
	cfg := dashboard.Config{SessionKey: []byte(strings.Repeat("s", 32)), CollectorURL: collectorURL}
	d := dashboard.New(cfg, nil, nil)
	err := d.Validate()
	for _, field := range []string{"Accounts is required", "Reports is required", "Funnels is required", "FunnelReports is required"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, want it to name %q", err, field)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Funnels is required") {
			t.Errorf("Handler without a funnel store: recovered %v, want a panic naming Funnels", r)
		}
	}()
	d.Handler()
	t.Error("Handler returned on a dashboard without a funnel store")
}

func TestFunnelPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme := e.account("acme")
	app := e.app(acme, "Acme")
	spring := e.link(app, "spring-sale", "Spring <sale>")
	c := e.loggedIn("acme")
	appPath := "/apps/" + strconv.FormatInt(app.ID, 10)

	res := e.get(c, appPath+"/funnels")
	wantStatus(t, "empty list page", res, http.StatusOK)
	for _, want := range []string{"No funnels yet.", `href="` + appPath + `/funnels/new"`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("empty list page lacks %q", want)
		}
	}
	if !strings.Contains(e.get(c, appPath).Body, `href="`+appPath+`/funnels"`) {
		t.Error("the app page does not link to its funnels")
	}

	res = e.sendJSON(c, http.MethodPost, funnelsAPI(app), threeSteps(`Spring <b>"launch"</b>`, spring, "purchase"))
	wantStatus(t, "create", res, http.StatusCreated)
	var f tapline.Funnel
	decode(t, res, &f)
	fpage := appPath + "/funnels/" + strconv.FormatInt(f.ID, 10)
	e.seedSteps(&f, standardRows...)

	t.Run("pending", func(t *testing.T) {
		res := e.get(c, appPath+"/funnels")
		wantStatus(t, "list page", res, http.StatusOK)
		for _, want := range []string{"Spring &lt;b&gt;&#34;launch&#34;&lt;/b&gt;", "pending handoff", `data-refresh="/api/v1/apps/`, `<script src="/static/funnels.js">`} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("list page lacks %q", want)
			}
		}
		res = e.get(c, fpage+"?from=2026-03-10&to=2026-03-11")
		wantStatus(t, "view", res, http.StatusOK)
		if !strings.Contains(res.Body, "Pending handoff") {
			t.Errorf("pending view lacks the banner")
		}
	})
	e.backfilling(&f, 4)
	e.finishRange(&f)
	t.Run("backfilling", func(t *testing.T) {
		res := e.get(c, appPath+"/funnels")
		for _, want := range []string{`<progress max="1" value="0.25"`, ">25%<", "backfilling"} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("list page lacks %q", want)
			}
		}
		res = e.get(c, fpage+"?from=2026-03-10&to=2026-03-11")
		if !strings.Contains(res.Body, "Backfilling 25%: these results are partial") {
			t.Errorf("backfilling view lacks the partial banner")
		}
	})
	for range 3 {
		e.finishRange(&f)
	}
	t.Run("live", func(t *testing.T) {
		res := e.get(c, appPath+"/funnels")
		if !strings.Contains(res.Body, `<span class="badge live">live</span>`) || strings.Contains(res.Body, "data-refresh") {
			t.Errorf("live list page: %.2000s", res.Body)
		}
		res = e.get(c, fpage+"?from=2026-03-10&to=2026-03-11&tz=UTC")
		wantStatus(t, "view", res, http.StatusOK)
		body := res.Body
		for _, want := range []string{
			"Spring &lt;b&gt;&#34;launch&#34;&lt;/b&gt;",
			`<span class="title">Tap on Spring &lt;sale&gt;</span><span class="count"><b>110</b> <span class="share">100.0%</span>`,
			`<span class="title">Install</span><span class="count"><b>55</b> <span class="share">50.0%</span>`,
			`<span class="title">purchase</span><span class="count"><b>15</b> <span class="share">13.6%</span>`,
			`<rect class="fill" width="50.00" height="14"/>`, `<rect class="prev" width="50.00" height="14"/><rect class="fill" width="13.64"`,
			"<b>27.3%</b> converted", "40 dropped off", "median 6m 40s", "p90 9m 20s", "median 1h 1m", "p90 1h 48m",
			`id="entered">110<`, `id="completed">15<`, `id="overall">13.6%<`,
			`<table class="data" id="breakdown">`, `<td class="num"><b>14.3%</b></td>`, "<td>ios</td>", "<td>android</td>",
			"<td>2026-03-10</td><td class=\"num\">100</td><td class=\"num\">50</td><td class=\"num\">15</td><td class=\"num\">15.0%</td>",
			`href="/api/v1/apps/` + strconv.FormatInt(app.ID, 10) + `/funnels/` + strconv.FormatInt(f.ID, 10) + `/results.csv?from=2026-03-10&amp;to=2026-03-11"`,
			"Steps in order · within 7d of the first step · broken down by platform",
			`name="tz" value="UTC"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("view lacks %q", want)
			}
		}
		if strings.Contains(body, `id="results-banner"`) || strings.Contains(body, "<b>\"launch\"") {
			t.Errorf("live view shows a banner or an unescaped name")
		}
		if t.Failed() {
			t.Logf("page:\n%s", body)
		}
	})
	t.Run("older version while the edit backfills", func(t *testing.T) {
		res := e.sendJSON(c, http.MethodPut, funnelsAPI(app)+"/"+strconv.FormatInt(f.ID, 10), threeSteps("Spring v2", spring, "signup"))
		wantStatus(t, "edit", res, http.StatusOK)
		res = e.get(c, fpage+"?from=2026-03-10&to=2026-03-11")
		for _, want := range []string{"Showing version 1 while the edited version 2 is pending its handoff", `<b>110</b>`} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("view lacks %q", want)
			}
		}
		res = e.get(c, appPath+"/funnels")
		if !strings.Contains(res.Body, "showing v1 until v2 is live") {
			t.Errorf("list lacks the version shown")
		}
	})
	t.Run("builder", func(t *testing.T) {
		res := e.get(c, appPath+"/funnels/new")
		wantStatus(t, "new", res, http.StatusOK)
		for _, want := range []string{`<script type="application/json" id="builder-init">`, `"method":"POST"`, `"save_url":"/api/v1/apps/`,
			`"name":"Spring \u003csale\u003e"`, `<script src="/static/builder.js">`, `<form id="builder"`} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("builder lacks %q", want)
			}
		}
		res = e.get(c, fpage+"/edit")
		wantStatus(t, "edit", res, http.StatusOK)
		for _, want := range []string{`"method":"PUT"`, `"name":"Spring v2"`, `"event":"signup"`, "Save as version 3"} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("edit builder lacks %q", want)
			}
		}
	})
	t.Run("bad range", func(t *testing.T) {
		res := e.get(c, fpage+"?tz=Mars/Olympus")
		wantStatus(t, "bad tz", res, http.StatusBadRequest)
		// The funnel view, with the message above the default range's results.
		for _, want := range []string{`id="range-error"`, "unknown time zone &#34;Mars/Olympus&#34;", "in UTC instead", `id="funnel-steps"`} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("bad range page lacks %q", want)
			}
		}
	})
	t.Run("security headers allow own scripts only", func(t *testing.T) {
		res := e.get(c, fpage)
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP %q", csp)
		}
		for _, external := range []string{`src="http`, `href="http`, "@import", " style=", "onclick="} {
			if strings.Contains(res.Body, external) {
				t.Errorf("view contains %q", external)
			}
		}
		for _, asset := range []string{"/static/funnels.js", "/static/builder.js", "/static/style.css"} {
			wantStatus(t, asset, e.get(c, asset), http.StatusOK)
		}
	})
}
