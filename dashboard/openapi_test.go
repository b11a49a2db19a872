package dashboard_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"

	"tapline"
)

// TestOpenAPI checks docs/openapi.yaml: it is a valid OpenAPI 3
// description, it names every route of the customer API and no other, and
// real answers of each operation (and the requests sent) match it.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI 3: %v", err)
	}

	e := newEnv(t)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	if err := e.facts.ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{
		testConversion(app.ID, "openapi", spring.ID), testConversion(app.ID, "organic", 0)}}); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")

	// The routes the router serves under /api/v1 and the operations the
	// description names are the same.
	routes, _ := e.d.Handler().(chi.Routes)
	var served, described []string
	if err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if p, ok := strings.CutPrefix(route, "/api/v1"); ok {
			served = append(served, method+" "+p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(described)
	if !slices.Equal(served, described) {
		t.Errorf("routes served:\n  %s\ndescribed:\n  %s", strings.Join(served, "\n  "), strings.Join(described, "\n  "))
	}

	doc.Servers = openapi3.Servers{{URL: e.srv.URL + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10)
	link := api + "/links/" + strconv.FormatInt(spring.ID, 10)
	day := "from=2026-03-10&to=2026-03-10"
	checked := map[string]bool{}
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/apps", ""},
		{http.MethodGet, api + "/daily?" + day + "&compare=previous&source=facebook", ""},
		{http.MethodGet, api + "/breakdown?by=campaign&limit=1&" + day, ""},
		{http.MethodGet, api + "/breakdown?by=event&" + day, ""},
		{http.MethodGet, api + "/breakdown.csv?by=source&" + day, ""},
		{http.MethodGet, api + "/live?tz=Europe/Berlin", ""},
		{http.MethodGet, api + "/cohorts?by=week&split=source&" + day, ""},
		{http.MethodGet, api + "/cohorts.csv?source=facebook&" + day, ""},
		{http.MethodGet, api + "/conversions?limit=1", ""},
		{http.MethodGet, api + "/conversions?method=fingerprint&q=inst-1", ""},
		{http.MethodGet, api + "/conversions.csv?method=organic", ""},
		{http.MethodGet, api + "/conversions/" + tapline.ConversionID("e-openapi"), ""},
		{http.MethodGet, api + "/conversions?method=psychic", ""}, // an error, described too
		{http.MethodGet, api + "/links?" + day, ""},
		{http.MethodPost, api + "/links", `{"slug":"openapi","params":{"utm_source":"x"},"click_window":"30d"}`},
		{http.MethodGet, link, ""},
		{http.MethodPatch, link, `{"archived":true,"fingerprint_window":"12h"}`},
		{http.MethodPatch, api, `{"fingerprint_window":"12h"}`},
		{http.MethodGet, api + "/funnel-options", ""},
		{http.MethodGet, api + "/funnels/", ""},
		{http.MethodGet, api + "/breakdown?by=colour", ""}, // an error, described too
		{http.MethodGet, "/api/v1/apps/999999/daily", ""},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, err := http.NewRequestWithContext(ctx, tc.method, e.srv.URL+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Origin", e.srv.URL)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the description: %v", tc.method, tc.path, err)
			continue
		}
		checked[tc.method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil && !strings.Contains(tc.path, "colour") && !strings.Contains(tc.path, "psychic") {
			t.Errorf("%s %s: the request does not match the description: %v", tc.method, tc.path, err)
		}
		if tc.body != "" {
			req.Body = io.NopCloser(strings.NewReader(tc.body)) // ValidateRequest read it
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{RequestValidationInput: in,
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(b))}); err != nil {
			t.Errorf("%s %s: the %d answer does not match the description: %v\n%.400s", tc.method, tc.path, res.StatusCode, err, b)
		}
	}
	if len(checked) < 12 {
		t.Errorf("checked %d operations", len(checked))
	}
}
