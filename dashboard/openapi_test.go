package dashboard_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/export"
	"tapline/postgres"
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
	e.withPostbacks()
	e.d.WhatIfs = postgres.NewWhatIfStore(e.db)
	app := e.app(e.account("acme"), "Acme")
	spring := seedCampaigns(t, e, app)
	if err := e.facts.ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{
		testConversion(app.ID, "openapi", spring.ID), testConversion(app.ID, "organic", 0)}}); err != nil {
		t.Fatal(err)
	}
	seedPostbacks(t, e, app)
	c := e.loggedIn("acme")

	// The routes the router serves under /api/v1 and the operations the
	// description names are the same.
	routes, _ := e.d.Handler().(chi.Routes)
	var served, described []string
	// The export is served on the same listener, ahead of the router
	// (internal/node): its route is the customer API's too.
	exports, _ := export.New(e.accounts, e.d.Reports).Handler().(chi.Routes)
	for _, r := range []chi.Routes{routes, exports} {
		if err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if p, ok := strings.CutPrefix(route, "/api/v1"); ok {
				served = append(served, method+" "+p)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
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
		{http.MethodPatch, api, `{"app_store_id":525463029,"conversion_schema":{"fine":{"20":"purchase"},"coarse":{"high":"paying"}}}`},
		{http.MethodGet, api + "/skadnetwork?from=2026-03-01&to=2026-03-31", ""},
		{http.MethodGet, api + "/skadnetwork?tz=Europe/Berlin", ""}, // an error, described too
		{http.MethodGet, api + "/skadnetwork/postbacks?limit=2", ""},
		{http.MethodGet, api + "/skadnetwork/postbacks?status=rejected", ""},
		{http.MethodGet, api + "/funnel-options", ""},
		{http.MethodGet, api + "/funnels/", ""},
		{http.MethodDelete, api + "/devices", `{"ad_id":"6d9c5b8e1f2a4c3b9d8e7f6a5b4c3d2e"}`},
		{http.MethodGet, api + "/erasures/1", ""}, // the request just made, the database's first
		{http.MethodPost, api + "/postbacks", `{"network":"meta","events":["install"],"url":"https://n.example/pb?c={click_id}"}`},
		{http.MethodGet, api + "/postbacks", ""},
		{http.MethodPut, api + "/postbacks/1", `{"network":"meta","events":["install","purchase"],"url":"https://n.example/pb?c={click_id}"}`},
		{http.MethodGet, api + "/deliveries?network=meta&status=pending&limit=5", ""},
		{http.MethodPost, api + "/whatif", `{"from":"2026-11-01","to":"2026-11-08","click_window":"3d"}`},
		{http.MethodGet, api + "/whatif", ""},
		{http.MethodGet, api + "/whatif/1", ""},
		{http.MethodDelete, api + "/devices", `{"install_id":""}`}, // an error, described too
		{http.MethodGet, api + "/breakdown?by=colour", ""},         // an error, described too
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
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil && !strings.Contains(tc.path, "colour") && !strings.Contains(tc.path, "psychic") && !strings.Contains(tc.path, "Berlin") {
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

// TestOpenAPIDecision checks that docs/openapi.yaml describes every field
// of a conversion's decision, its signals and its candidates, with the
// JSON type they are encoded as.
func TestOpenAPIDecision(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	decision := doc.Components.Schemas["Decision"].Value
	for _, tc := range []struct {
		name   string
		typ    reflect.Type
		schema *openapi3.Schema
	}{
		{"Decision", reflect.TypeFor[tapline.Decision](), decision},
		{"Signal", reflect.TypeFor[tapline.Signal](), decision.Properties["signals"].Value.Items.Value},
		{"Candidate", reflect.TypeFor[tapline.Candidate](), decision.Properties["candidates"].Value.Items.Value},
	} {
		for f := range tc.typ.Fields() {
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			prop := tc.schema.Properties[key]
			if prop == nil {
				t.Errorf("%s.%s: no property %q in the description", tc.name, f.Name, key)
				continue
			}
			want := map[reflect.Kind]string{reflect.Float64: openapi3.TypeNumber, reflect.Int: openapi3.TypeInteger, reflect.Int64: openapi3.TypeInteger,
				reflect.String: openapi3.TypeString, reflect.Bool: openapi3.TypeBoolean, reflect.Slice: openapi3.TypeArray}[f.Type.Kind()]
			if f.Type == reflect.TypeFor[time.Time]() {
				want = openapi3.TypeString
			}
			if want != "" && !prop.Value.Type.Is(want) {
				t.Errorf("%s.%s: %q is described as %v, want %s", tc.name, f.Name, key, prop.Value.Type, want)
			}
		}
	}
}
