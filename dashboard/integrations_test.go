package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postbacks"
	"tapline/postgres"
	"tapline/webhook"
)

// withPostbacks gives the env's dashboard the postback store and a test
// caller that may reach loopback.
func (e *env) withPostbacks() *postgres.PostbackService {
	svc := postgres.NewPostbackService(e.db)
	e.d.Postbacks = svc
	s := postbacks.NewSender(nil)
	s.Client = postbacks.NewClient(true)
	e.d.TryPostback = s.Try
	return svc
}

// TestPostbacksAPI creates, lists, changes, tests and deletes an app's
// postbacks and webhooks through the JSON API, reads the delivery log, and
// checks who may do what.
func TestPostbacksAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	svc := e.withPostbacks()
	acme, other := e.account("acme"), e.account("other")
	app, otherApp := e.app(acme, "Acme"), e.app(other, "Other")
	link := e.link(app, "spring", "Spring")
	c := e.loggedIn("acme")
	base := fmt.Sprintf("/api/v1/apps/%d", app.ID)

	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	nw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, string(b))
		mu.Unlock()
		fmt.Fprint(w, "thanks")
	}))
	defer nw.Close()

	res := e.sendJSON(c, http.MethodPost, base+"/postbacks", fmt.Sprintf(`{"network":"meta","events":["install","purchase"],"link_ids":[%d],
		"url":"%s/pb?c={click_id}&sub={sub_id}&slug={link_slug}&k={idempotency_key}","timeout":"3s","fields":["idfa"]}`, link.ID, nw.URL))
	wantStatus(t, "create a postback", res, http.StatusCreated)
	var pb struct {
		ID      int64
		Kind    string
		Secret  string
		Timeout string
		URL     string
	}
	decode(t, res, &pb)
	if pb.Kind != "network" || pb.Secret != "" || pb.Timeout != "3s" {
		t.Errorf("created %+v", pb)
	}
	res = e.sendJSON(c, http.MethodPost, base+"/postbacks", `{"kind":"webhook","events":["install","kind:purchase"],"url":"`+nw.URL+`/hook"}`)
	wantStatus(t, "create a webhook", res, http.StatusCreated)
	var hook struct {
		ID     int64
		Secret string
		Method string
	}
	decode(t, res, &hook)
	if !strings.HasPrefix(hook.Secret, "whsec_") || hook.Method != "POST" {
		t.Fatalf("a new webhook: %+v, want its secret once and POST", hook)
	}
	for name, body := range map[string]string{
		"no url":        `{"network":"x","events":["install"]}`,
		"unknown field": `{"network":"x","events":["install"],"url":"https://n.example/","colour":1}`,
		"bad timeout":   `{"network":"x","events":["install"],"url":"https://n.example/","timeout":"soon"}`,
		"webhook body":  `{"kind":"webhook","events":["install"],"url":"https://n.example/","body":"{}"}`,
		"foreign link":  fmt.Sprintf(`{"network":"x","events":["install"],"url":"https://n.example/","link_ids":[%d]}`, e.link(otherApp, "theirs", "Theirs").ID),
	} {
		wantJSONError(t, name, e.sendJSON(c, http.MethodPost, base+"/postbacks", body), http.StatusBadRequest, "invalid", "")
	}

	res = e.get(c, base+"/postbacks")
	wantStatus(t, "list", res, http.StatusOK)
	if strings.Contains(res.Body, hook.Secret) || !strings.Contains(res.Body, `"kind": "webhook"`) || !strings.Contains(res.Body, "{click_id}") {
		t.Errorf("list %s: want both, the templates, never the secret", res.Body)
	}

	// The test button: one call, signed for the webhook, nothing recorded.
	res = e.sendJSON(c, http.MethodPost, fmt.Sprintf("%s/postbacks/%d/test", base, pb.ID), "")
	wantStatus(t, "test the postback", res, http.StatusOK)
	var tr struct {
		URL       string
		Code      int
		Answer    string
		Delivered bool
		Key       string
	}
	decode(t, res, &tr)
	if !tr.Delivered || tr.Code != 200 || tr.Answer != "thanks" || !strings.Contains(tr.URL, "sub=test") || !strings.Contains(tr.URL, "slug=spring") {
		t.Errorf("test call %+v", tr)
	}
	res = e.sendJSON(c, http.MethodPost, fmt.Sprintf("%s/postbacks/%d/test", base, hook.ID), "")
	wantStatus(t, "test the webhook", res, http.StatusOK)
	mu.Lock()
	if len(got) != 2 || got[0].Header.Get("Idempotency-Key") != tr.Key {
		t.Errorf("the network got %d calls", len(got))
	} else {
		k, _ := webhook.ParseSecret(hook.Secret)
		if err := webhook.Verify([]webhook.Secret{k}, got[1].Header, []byte(bodies[1]), time.Now(), 0); err != nil {
			t.Errorf("the webhook's test call does not verify with its secret: %v", err)
		}
	}
	mu.Unlock()
	if ds, _ := svc.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 10}); len(ds) != 0 {
		t.Errorf("test calls recorded %d deliveries", len(ds))
	}

	// Rotation gives a new secret; a network postback has none.
	res = e.sendJSON(c, http.MethodPost, fmt.Sprintf("%s/postbacks/%d/rotate-secret", base, hook.ID), "")
	wantStatus(t, "rotate", res, http.StatusOK)
	if !strings.Contains(res.Body, "whsec_") || strings.Contains(res.Body, hook.Secret) {
		t.Errorf("rotation answered %s", res.Body)
	}
	wantJSONError(t, "rotate a postback", e.sendJSON(c, http.MethodPost, fmt.Sprintf("%s/postbacks/%d/rotate-secret", base, pb.ID), ""),
		http.StatusBadRequest, "invalid", "")

	res = e.sendJSON(c, http.MethodPut, fmt.Sprintf("%s/postbacks/%d", base, pb.ID), `{"network":"meta","events":["install"],"url":"https://n.example/pb?c={click_id}","disabled":true}`)
	wantStatus(t, "update", res, http.StatusOK)
	if !strings.Contains(res.Body, `"disabled": true`) || strings.Contains(res.Body, "purchase") {
		t.Errorf("updated %s", res.Body)
	}

	// The log, filtered and paged.
	fs := postgres.NewFactStore(e.db)
	now := time.Now().UTC()
	var ds []*tapline.Delivery
	for i := range 5 {
		ds = append(ds, &tapline.Delivery{Key: fmt.Sprintf("log-%d", i), AppID: app.ID, PostbackID: pb.ID, Network: "meta", Trigger: "install",
			Method: "GET", URL: "https://n.example/pb?c=secret-token", Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now})
	}
	if err := fs.ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	res = e.get(c, base+"/deliveries?limit=3")
	var page struct {
		Deliveries []struct {
			ID     int64
			Status string
			URL    string
		}
		NextBefore string `json:"next_before"`
	}
	decode(t, res, &page)
	if len(page.Deliveries) != 3 || page.NextBefore == "" || page.Deliveries[0].Status != "pending" || page.Deliveries[0].URL != "https://n.example/pb?c=secret-token" {
		t.Fatalf("log page %s", res.Body)
	}
	res = e.get(c, base+"/deliveries?limit=3&before="+page.NextBefore)
	decode(t, res, &page)
	if len(page.Deliveries) != 2 || page.NextBefore != "" {
		t.Errorf("second page %s", res.Body)
	}
	wantJSONError(t, "bad status", e.get(c, base+"/deliveries?status=lost"), http.StatusBadRequest, "invalid", "status")
	if res := e.get(c, base+"/deliveries?status=delivered"); !strings.Contains(res.Body, `"deliveries": []`) {
		t.Errorf("delivered filter %s", res.Body)
	}

	// A reporting token reads, redacted, and changes nothing.
	_, secret, err := e.accounts.CreateAPIToken(ctx, acme.ID, "reports")
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}
	res = e.do(e.client(), http.MethodGet, base+"/postbacks", nil, tok)
	wantStatus(t, "token lists", res, http.StatusOK)
	if strings.Contains(res.Body, "{click_id}") {
		t.Errorf("a read-only token sees the templates: %s", res.Body)
	}
	if res := e.do(e.client(), http.MethodGet, base+"/deliveries", nil, tok); strings.Contains(res.Body, "secret-token") {
		t.Errorf("a read-only token sees delivery URLs: %s", res.Body)
	}
	wantStatus(t, "token creates", e.do(e.client(), http.MethodPost, base+"/postbacks", strings.NewReader(`{"network":"x","events":["install"],"url":"https://n.example/"}`), tok), http.StatusForbidden)

	// So does a viewer, on the API as on the page.
	viewer := e.join(c, "viewer@acme.example", tapline.RoleViewer)
	if res := e.get(viewer, base+"/postbacks"); res.Status != http.StatusOK || strings.Contains(res.Body, "{click_id}") {
		t.Errorf("a viewer's list: %d %s", res.Status, res.Body)
	}
	if res := e.get(viewer, base+"/deliveries"); strings.Contains(res.Body, "secret-token") {
		t.Errorf("a viewer sees delivery URLs: %s", res.Body)
	}
	if res := e.get(viewer, fmt.Sprintf("/apps/%d/integrations", app.ID)); strings.Contains(res.Body, "secret-token") || strings.Contains(res.Body, "pb?c={click_id}") {
		t.Errorf("a viewer's page shows templates or delivery URLs")
	}
	wantStatus(t, "viewer creates", e.sendJSON(viewer, http.MethodPost, base+"/postbacks", `{"network":"x","events":["install"],"url":"https://n.example/"}`), http.StatusForbidden)

	// Another account sees none of it.
	o := e.loggedIn("other")
	for _, p := range []string{base + "/postbacks", base + "/deliveries"} {
		wantStatus(t, "other account reads "+p, e.get(o, p), http.StatusNotFound)
	}
	wantStatus(t, "other account deletes", e.sendJSON(o, http.MethodDelete, fmt.Sprintf("%s/postbacks/%d", base, pb.ID), ""), http.StatusNotFound)
	wantStatus(t, "delete under another app", e.sendJSON(e.loggedIn("other"), http.MethodDelete, fmt.Sprintf("/api/v1/apps/%d/postbacks/%d", otherApp.ID, pb.ID), ""), http.StatusNotFound)

	wantStatus(t, "delete", e.sendJSON(c, http.MethodDelete, fmt.Sprintf("%s/postbacks/%d", base, pb.ID), ""), http.StatusNoContent)
	wantStatus(t, "delete again", e.sendJSON(c, http.MethodDelete, fmt.Sprintf("%s/postbacks/%d", base, pb.ID), ""), http.StatusNotFound)
}

// TestIntegrationsPage adds a postback with the page's form, sends a test,
// and shows the log.
func TestIntegrationsPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withPostbacks()
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	page := fmt.Sprintf("/apps/%d/integrations", app.ID)
	res := e.get(c, page)
	wantStatus(t, "page", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="no-postbacks"`) || !strings.Contains(res.Body, `id="postback-form"`) {
		t.Fatalf("empty page lacks its parts: %.600s", res.Body)
	}
	nw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	defer nw.Close()
	post := func(path string, form url.Values) response {
		return e.do(c, http.MethodPost, path, strings.NewReader(form.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
	}
	res = post(page, url.Values{"kind": {"network"}, "network": {"tiktok"}, "url": {"ftp://nope"}, "events": {"install"}})
	wantStatus(t, "bad form", res, http.StatusBadRequest)
	if !strings.Contains(res.Body, `id="form-error"`) || !strings.Contains(res.Body, "ftp://nope") {
		t.Errorf("a refused form does not show its error and keep its values")
	}
	res = post(page, url.Values{"kind": {"network"}, "network": {"tiktok"}, "url": {nw.URL + "/pb?c={click_id}"}, "events": {"install, purchase"},
		"fields": {"idfa", "gaid"}})
	wantStatus(t, "add", res, http.StatusOK)
	if !strings.Contains(res.Body, "tiktok") || !strings.Contains(res.Body, "install, purchase") || !strings.Contains(res.Body, "sends gaid") {
		t.Errorf("the new postback is not listed: %.800s", res.Body)
	}
	res = post(page, url.Values{"kind": {"webhook"}, "url": {nw.URL + "/hook"}, "events": {"install"}})
	wantStatus(t, "add a webhook", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="secret-value">whsec_`) {
		t.Errorf("the webhook's secret is not shown once")
	}
	if res := e.get(c, page); strings.Contains(res.Body, "whsec_") {
		t.Errorf("the secret is shown again")
	}
	ps, _ := e.d.Postbacks.Postbacks(context.Background(), app.ID)
	res = post(fmt.Sprintf("%s/%d/test", page, ps[0].ID), nil)
	wantStatus(t, "test", res, http.StatusOK)
	if !strings.Contains(res.Body, `id="test-result"`) || !strings.Contains(res.Body, "not delivered") || !strings.Contains(res.Body, "answer 418") {
		t.Errorf("the test result is not shown: %.1200s", res.Body)
	}
	wantStatus(t, "unknown action", post(fmt.Sprintf("%s/%d/explode", page, ps[0].ID), nil), http.StatusNotFound)
	wantStatus(t, "delete", post(fmt.Sprintf("%s/%d/delete", page, ps[0].ID), nil), http.StatusSeeOther)
	if res := e.get(c, page); strings.Contains(res.Body, "tiktok") {
		t.Errorf("a deleted postback is listed")
	}
}

// TestDeliveryLogFilter filters the delivery log by network and status, in
// the JSON API and on the integrations page (a plain form, no script), and
// pages within the filter.
func TestDeliveryLogFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	svc := e.withPostbacks()
	app := e.app(e.account("acme"), "Acme")
	c := e.loggedIn("acme")
	byNetwork := map[string]*tapline.Postback{}
	for _, nw := range []string{"tiktok", "meta", "gone"} {
		p := &tapline.Postback{AppID: app.ID, Network: nw, Events: []string{"install"}, URL: "https://" + nw + ".example/pb?c={click_id}"}
		if err := svc.CreatePostback(ctx, p); err != nil {
			t.Fatal(err)
		}
		byNetwork[nw] = p
	}
	now := time.Now().UTC()
	var ds []*tapline.Delivery
	for i := range 9 {
		nw := []string{"meta", "tiktok", "gone"}[i%3]
		ds = append(ds, &tapline.Delivery{Key: fmt.Sprintf("filter-%d", i), AppID: app.ID, PostbackID: byNetwork[nw].ID, Network: nw,
			Trigger: "install", Method: "GET", URL: fmt.Sprintf("https://%s.example/pb?c=tap-%d", nw, i), Status: tapline.DeliveryPending,
			NextAttempt: now, CreatedAt: now})
	}
	if err := postgres.NewFactStore(e.db).ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	// One tiktok delivery is delivered; the "gone" postback is deleted,
	// its deliveries stay.
	due, err := svc.ClaimDeliveries(ctx, 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.Key == "filter-4" {
			if err := svc.RecordAttempt(ctx, d.ID, d.Claim, tapline.DeliveryDelivered, now, tapline.DeliveryResult{Code: 200}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := svc.DeletePostback(ctx, app.ID, byNetwork["gone"].ID); err != nil {
		t.Fatal(err)
	}

	base := fmt.Sprintf("/api/v1/apps/%d/deliveries", app.ID)
	type page struct {
		Deliveries []struct {
			Network, URL, Status string
		}
		NextBefore string `json:"next_before"`
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		res := e.get(c, base+query)
		wantStatus(t, "deliveries"+query, res, http.StatusOK)
		var p page
		decode(t, res, &p)
		var out []string
		for _, d := range p.Deliveries {
			out = append(out, d.Network+" "+d.Status+" "+d.URL[strings.LastIndex(d.URL, "=")+1:])
		}
		return out, p.NextBefore
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?network=tiktok", []string{"tiktok pending tap-7", "tiktok delivered tap-4", "tiktok pending tap-1"}},
		{"?network=tiktok&status=pending", []string{"tiktok pending tap-7", "tiktok pending tap-1"}},
		{"?network=meta&status=delivered", nil},
		{"?network=gone", []string{"gone pending tap-8", "gone pending tap-5", "gone pending tap-2"}},
		{"?network=%20meta%20&limit=2", []string{"meta pending tap-6", "meta pending tap-3"}},
		{"?network=nobody", nil},
	} {
		if got, _ := list(tc.query); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
		}
	}
	first, next := list("?network=meta&limit=2")
	if len(first) != 2 || next == "" {
		t.Fatalf("meta, first page: %q, next %q", first, next)
	}
	if rest, next := list("?network=meta&limit=2&before=" + next); strings.Join(rest, ",") != "meta pending tap-0" || next != "" {
		t.Errorf("meta, second page: %q, next %q", rest, next)
	}
	wantJSONError(t, "an over-long network", e.get(c, base+"?network="+strings.Repeat("n", 101)), http.StatusBadRequest, "invalid", "network")

	// The page: a form of two selects, the rows of the filter only.
	pageURL := fmt.Sprintf("/apps/%d/integrations", app.ID)
	res := e.get(c, pageURL+"?network=tiktok&status=pending")
	wantStatus(t, "the filtered page", res, http.StatusOK)
	for _, want := range []string{`id="delivery-filter"`, `<option value="tiktok" selected>tiktok</option>`, `<option value="meta">meta</option>`,
		`<option value="pending" selected>Pending</option>`, "tap-7", "tap-1", `id="delivery-retention"`, "30 days"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the page filtered by tiktok, pending lacks %q", want)
		}
	}
	for _, unwanted := range []string{"tap-4", "tap-6", "tap-8", `<option value="gone"`} {
		if strings.Contains(res.Body, unwanted) {
			t.Errorf("the page filtered by tiktok, pending shows %q", unwanted)
		}
	}
	// A deleted postback's network is offered while it is the filter.
	res = e.get(c, pageURL+"?network=gone")
	if !strings.Contains(res.Body, `<option value="gone" selected>gone</option>`) || !strings.Contains(res.Body, "tap-5") || strings.Contains(res.Body, "tap-6") {
		t.Errorf("the page filtered by a deleted postback's network:\n%s", res.Body)
	}
	res = e.get(c, pageURL+"?network=nobody&status=dead")
	if !strings.Contains(res.Body, `id="no-deliveries"`) || !strings.Contains(res.Body, "No deliveries dead to nobody.") {
		t.Errorf("an empty filter's page lacks its message")
	}
	// Paging keeps the filter.
	var older []string
	for i := range 60 {
		older = append(older, fmt.Sprintf("filter-more-%02d", i))
	}
	ds = ds[:0]
	for _, k := range older {
		ds = append(ds, &tapline.Delivery{Key: k, AppID: app.ID, PostbackID: byNetwork["meta"].ID, Network: "meta", Trigger: "install",
			Method: "GET", URL: "https://meta.example/pb?c=" + k, Status: tapline.DeliveryPending, NextAttempt: now.Add(time.Hour), CreatedAt: now})
	}
	if err := postgres.NewFactStore(e.db).ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	res = e.get(c, pageURL+"?network=meta")
	if !strings.Contains(res.Body, `id="older-deliveries"`) || !strings.Contains(res.Body, "?network=meta&amp;before=") {
		t.Errorf("the meta page's Older link does not keep the filter")
	}
}
