package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
)

// healthBody is the JSON of /healthz.
type healthBody struct {
	Status string `json:"status"`
	Checks []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Value string `json:"value"`
		Error string `json:"error"`
	} `json:"checks"`
}

func readHealth(t *testing.T, res response) healthBody {
	t.Helper()
	var h healthBody
	if err := json.Unmarshal([]byte(res.Body), &h); err != nil {
		t.Fatalf("healthz body %q is not JSON: %v", res.Body, err)
	}
	return h
}

// TestHealthzPingsPostgres checks that /healthz answers 200 with the
// PostgreSQL ping while the database answers, that a storm of concurrent
// probes pings it once, and that once the database is gone /healthz
// answers 503 naming the failed check while /livez still answers 200.
func TestHealthzPingsPostgres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.get(e.client(), "/healthz")
	wantStatus(t, "healthz", res, http.StatusOK)
	h := readHealth(t, res)
	if h.Status != "ok" || len(h.Checks) != 1 || h.Checks[0].Name != "postgres" || !h.Checks[0].OK || h.Checks[0].Value == "" {
		t.Errorf("healthz = %+v, want ok with one passed postgres check and its round trip", h)
	}

	// A dashboard whose check counts its pings, probed 50 times at once.
	var mu sync.Mutex
	count := 0
	run := e.d.Health[0].Run
	e.d.Health[0].Run = func(ctx context.Context) (string, error) {
		mu.Lock()
		count++
		mu.Unlock()
		return run(ctx)
	}
	srv := newServer(t, e.d.Handler())
	// The clock stands still: however slowly the machine serves the storm,
	// the report stays fresh.
	e.clock.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Go(func() {
			res, err := http.Get(srv + "/healthz")
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("probe %d: %d, want 200", i, c)
		}
	}
	mu.Lock()
	if count != 1 {
		t.Errorf("50 concurrent probes pinged PostgreSQL %d times, want 1 (the report is shared for a second)", count)
	}
	mu.Unlock()

	// The database goes away: a new handler (a cache of its own) says so.
	e.clock.Store(0)
	e.db.Close()
	res = getURL(t, newServer(t, e.d.Handler())+"/healthz")
	wantStatus(t, "healthz with postgres closed", res, http.StatusServiceUnavailable)
	h = readHealth(t, res)
	if h.Status != "failing" || len(h.Checks) != 1 || h.Checks[0].OK || h.Checks[0].Error == "" {
		t.Errorf("healthz with postgres closed = %+v, want failing with the postgres check's error", h)
	}
	if strings.Contains(res.Body, "closed pool") {
		t.Errorf("healthz shows the driver's error: %s", res.Body)
	}
	wantStatus(t, "livez with postgres closed", e.get(e.client(), "/livez"), http.StatusOK)
}

// TestHealthzWithoutChecks checks that a dashboard given no checks does not
// claim to be healthy.
func TestHealthzWithoutChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.d.Health = nil
	res := getURL(t, newServer(t, e.d.Handler())+"/healthz")
	wantStatus(t, "healthz without checks", res, http.StatusServiceUnavailable)
}

// TestDashboardMetrics hits a few routes, scrapes /metrics and checks the
// counts per route pattern and code, that raw paths (ids, slugs) never
// become labels, and that a route failing because PostgreSQL is gone
// counts as a 5xx.
func TestDashboardMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.account("metrics")
	app := e.app(a, "Metered")
	id := strconv.FormatInt(app.ID, 10)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	for range 3 {
		wantStatus(t, "login page", e.get(e.client(), "/login"), http.StatusOK)
	}
	wantStatus(t, "daily", e.do(e.client(), http.MethodGet, "/api/v1/apps/"+id+"/daily", nil, admin), http.StatusOK)
	wantStatus(t, "daily without token", e.get(e.client(), "/api/v1/apps/"+id+"/daily"), http.StatusUnauthorized)
	wantStatus(t, "unknown page", e.get(e.client(), "/no/such/page-12345"), http.StatusNotFound)
	e.db.Close()
	res := e.login(e.client(), "metrics", password)
	if res.Status < 500 {
		t.Fatalf("login with postgres closed: %d, want a 5xx", res.Status)
	}

	metrics := e.get(e.client(), "/metrics")
	wantStatus(t, "metrics", metrics, http.StatusOK)
	for _, want := range []string{
		`tapline_dashboard_requests_total{code="200",route="/login"} 3`,
		`tapline_dashboard_request_duration_seconds_count{route="/login"} 4`,
		`tapline_dashboard_requests_total{code="200",route="/api/v1/apps/{id}/daily"} 1`,
		// The API refuses a request without credentials before it
		// routes it: it counts under the API's mount pattern.
		`tapline_dashboard_requests_total{code="401",route="/api/v1/*"} 1`,
		`tapline_dashboard_requests_total{code="404",route="unmatched"} 1`,
		fmt.Sprintf(`tapline_dashboard_requests_total{code="%d",route="/login"} 1`, res.Status),
	} {
		if !strings.Contains(metrics.Body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	route := regexp.MustCompile(`route="([^"]*)"`)
	for _, m := range route.FindAllStringSubmatch(metrics.Body, -1) {
		if strings.Contains(m[1]+"/", "/"+id+"/") || strings.Contains(m[1], "page-12345") {
			t.Errorf("a raw path is a label: %s", m[0])
		}
	}
}

// TestBodyLimits sends a body over the bound to every route of the
// dashboard that takes one (POST, PUT, PATCH and DELETE, found by walking
// the router) and checks each answers 413 with a clear message; then,
// logged in, sends oversized bodies without a Content-Length (chunked) to
// a form, the JSON API and the what-if request, whose own bound is lower,
// and checks they answer 413 and store nothing.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.account("limits")
	app := e.app(a, "Limited")
	id := strconv.FormatInt(app.ID, 10)
	big := strings.Repeat("x", 65<<10)

	var routes []string
	err := chi.Walk(e.d.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			routes = append(routes, method+" "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 20 {
		t.Fatalf("found %d routes taking a body, want the dashboard's 20 or more: %v", len(routes), routes)
	}
	param := regexp.MustCompile(`\{[^}]*\}`)
	for _, r := range routes {
		method, route, _ := strings.Cut(r, " ")
		path := strings.TrimSuffix(param.ReplaceAllString(route, id), "/*")
		res := e.do(e.client(), method, path, strings.NewReader(big), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL, "Authorization": "Bearer " + adminToken})
		if res.Status != http.StatusRequestEntityTooLarge || !strings.Contains(res.Body, "The body is over 64 KiB.") {
			t.Errorf("%s %s with %d bytes: %d %.200q, want 413 saying the body is over 64 KiB", method, path, len(big), res.Status, res.Body)
		}
	}

	c := e.loggedIn("limits")
	links := func() int {
		ls, err := e.accounts.LinksByApp(t.Context(), app.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}
	before := links()
	form := url.Values{"slug": {"huge"}, "name": {big}}.Encode()
	res := e.do(c, http.MethodPost, "/apps/"+id+"/links", chunked(form), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
	wantStatus(t, "chunked link form", res, http.StatusRequestEntityTooLarge)
	res = e.do(e.client(), http.MethodPost, "/api/v1/apps/"+id+"/links", chunked(`{"slug":"huge","name":"`+big+`"}`), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + adminToken})
	wantJSONError(t, "chunked API link", res, http.StatusRequestEntityTooLarge, "too_large", "over 64 KiB")
	if n := links(); n != before {
		t.Errorf("links after the refused bodies: %d, want %d", n, before)
	}
	res = e.do(e.client(), http.MethodPost, "/api/v1/apps/"+id+"/whatif", strings.NewReader(`{"from":"`+strings.Repeat("y", 20<<10)+`"}`), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + adminToken})
	wantJSONError(t, "what-if over its own bound", res, http.StatusRequestEntityTooLarge, "too_large", "over 16 KiB")
}

// chunked is a body whose length the client does not know, so it is sent
// without a Content-Length.
func chunked(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

// newServer serves h on loopback until the test ends and returns its URL.
func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func getURL(t *testing.T, u string) response {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}
