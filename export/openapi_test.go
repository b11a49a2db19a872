package export_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"tapline/export"
)

// TestOpenAPI checks real answers of the export, each format and each
// refusal, against docs/openapi.yaml (the dashboard's test checks that it
// names the export's route).
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	doc, err := openapi3.NewLoader().LoadFromFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// NDJSON is text to the description.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	})
	e := newEnv(t)
	e.putHits(e.app, 3)
	e.putConversions(e.app, 2)
	noRaw := export.New(e.accounts, e.reports)
	noRawSrv := httptest.NewServer(noRaw.Handler())
	t.Cleanup(noRawSrv.Close)

	doc.Servers = openapi3.Servers{{URL: e.srv.URL + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	api := e.path(e.app, "", "")
	api = api[:strings.LastIndex(api, "/")+1]
	for _, tc := range []struct {
		base, path, token string
		status            int
	}{
		{e.srv.URL, api + "hits", e.token, 200},
		{e.srv.URL, api + "hits?format=csv&limit=2", e.token, 200},
		{e.srv.URL, api + "conversions?from=2026-01-01", e.token, 200},
		{e.srv.URL, api + "events?format=csv", e.token, 200},
		{e.srv.URL, api + "hits?from=yesterday", e.token, 400},
		{e.srv.URL, api + "hits", "", 401},
		{e.srv.URL, api + "hits", e.otherToken, 404},
		{noRawSrv.URL, api + "events", e.token, 503},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		// The router knows the description's server, not noRawSrv.
		find := req.Clone(ctx)
		find.URL.Host, find.Host = strings.TrimPrefix(e.srv.URL, "http://"), ""
		route, params, err := router.FindRoute(find)
		if err != nil {
			t.Fatalf("GET %s: not in the description: %v", tc.path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: find, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil && tc.status != 400 {
			t.Errorf("GET %s: the request does not match the description: %v", tc.path, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d: %s", tc.path, resp.StatusCode, tc.status, b)
		}
		if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{RequestValidationInput: in,
			Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b))}); err != nil {
			t.Errorf("GET %s: the %d answer does not match the description: %v\n%.300s", tc.path, resp.StatusCode, err, b)
		}
	}
}
