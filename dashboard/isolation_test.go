package dashboard_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// TestEveryAppRouteIsolatesTenants walks the dashboard's own route list
// and asks each route under an app, with every method it serves, for
// another account's app, funnel and link: each must answer 404 and show
// nothing of theirs. A route added later is covered without naming it
// here; the admin routes answer 401 to a session.
func TestEveryAppRouteIsolatesTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mine := e.app(e.account("acme"), "Mine")
	theirs := e.app(e.account("other"), "Theirs <secret>")
	link := e.link(theirs, "their-link", "Their link")
	f, err := e.funnels.CreateFunnel(context.Background(), theirs.ID, tapline.FunnelDefinition{Name: "Their funnel",
		Steps: []tapline.FunnelStep{{Kind: tapline.StepTap, Links: []int64{link.ID}}, {Kind: tapline.StepInstall}}})
	if err != nil {
		t.Fatal(err)
	}
	conv := testConversion(theirs.ID, "their-install", link.ID)
	if err := e.facts.ApplyFacts(context.Background(), "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{conv}}); err != nil {
		t.Fatal(err)
	}
	// Their postback and what-if, which this account's own app must not
	// reach either.
	pb := &tapline.Postback{AppID: theirs.ID, Network: "theirs", Events: []string{"install"}, URL: "https://nw.example/pb"}
	if err := e.d.Postbacks.CreatePostback(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	run := &tapline.WhatIfRun{AppID: theirs.ID, Request: []byte(`{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z","rules":{"click_window":3600000000000}}`)}
	if err := e.d.WhatIfs.RequestWhatIf(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("acme")
	routes, ok := e.d.Handler().(chi.Routes)
	if !ok {
		t.Fatal("the dashboard's handler is not a chi router")
	}
	// First their app; then this account's own app with their funnel or
	// link under it.
	objects := []string{"{fid}", strconv.FormatInt(f.ID, 10), "{lid}", strconv.FormatInt(link.ID, 10), "{cid}", conv.ID,
		"{pid}", strconv.FormatInt(pb.ID, 10), "{rid}", strconv.FormatInt(run.ID, 10), "{action}", "test", "/*", "/"}
	theirIDs := strings.NewReplacer(append([]string{"{id}", strconv.FormatInt(theirs.ID, 10)}, objects...)...)
	mixedIDs := strings.NewReplacer(append([]string{"{id}", strconv.FormatInt(mine.ID, 10)}, objects...)...)
	checked := 0
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !strings.Contains(route, "{id}") {
			return nil
		}
		checked++
		paths := []string{theirIDs.Replace(route)}
		if strings.Contains(route, "{fid}") || strings.Contains(route, "{lid}") || strings.Contains(route, "{cid}") ||
			strings.Contains(route, "{pid}") || strings.Contains(route, "{rid}") {
			paths = append(paths, mixedIDs.Replace(route))
		}
		for _, path := range paths {
			t.Run(method+" "+path, func(t *testing.T) {
				body := "{}"
				ct := "application/json"
				if !strings.HasPrefix(route, "/api/") && !strings.HasPrefix(route, "/admin/") {
					body, ct = "name=x", "application/x-www-form-urlencoded"
				}
				res := e.do(c, method, path, strings.NewReader(body), map[string]string{"Content-Type": ct, "Origin": e.srv.URL})
				want := http.StatusNotFound
				if strings.HasPrefix(route, "/admin/") {
					want = http.StatusUnauthorized
				}
				if res.Status != want {
					t.Errorf("%s %s: status %d, want %d", method, path, res.Status, want)
				}
				for _, secret := range []string{"Theirs", theirs.SDKKey, theirs.SDKSecret, "their-link", "Their funnel", "their-install"} {
					if strings.Contains(res.Body, secret) {
						t.Errorf("%s %s shows %q", method, path, secret)
					}
				}
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Errorf("walked %d app routes; the route list seems incomplete", checked)
	}
}
