package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/postbacks"
)

// postbackRequest is a postback or webhook as the JSON API and the form
// take it; the timeout is a duration ("10s").
type postbackRequest struct {
	Kind            string   `json:"kind"`
	Network         string   `json:"network"`
	Source          string   `json:"source"`
	LinkIDs         []int64  `json:"link_ids"`
	Events          []string `json:"events"`
	Method          string   `json:"method"`
	URL             string   `json:"url"`
	Body            string   `json:"body"`
	ContentType     string   `json:"content_type"`
	Fields          []string `json:"fields"`
	OnReattribution string   `json:"on_reattribution"`
	MaxConcurrent   int      `json:"max_concurrent"`
	MaxPerSecond    float64  `json:"max_per_second"`
	Timeout         string   `json:"timeout"`
	Disabled        bool     `json:"disabled"`
}

// postback returns the request as a postback of app.
func (q *postbackRequest) postback(appID int64) (*tapline.Postback, error) {
	p := &tapline.Postback{AppID: appID, Kind: q.Kind, Network: q.Network, Source: q.Source, LinkIDs: q.LinkIDs, Events: q.Events,
		Method: q.Method, URL: strings.TrimSpace(q.URL), Body: q.Body, ContentType: q.ContentType, Fields: q.Fields,
		OnReattribution: q.OnReattribution, MaxConcurrent: q.MaxConcurrent, MaxPerSecond: q.MaxPerSecond, Disabled: q.Disabled}
	if s := strings.TrimSpace(q.Timeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, tapline.Errorf(tapline.EINVALID, "timeout: %q is not a duration such as \"10s\"", q.Timeout)
		}
		p.Timeout = d
	}
	return p, nil
}

// postbackView is a postback as the JSON API shows it: its settings as a
// request gives them, and what tapline adds. Secret is set only in the
// answer that made it: a webhook's secret is never shown again.
type postbackView struct {
	ID int64 `json:"id"`
	postbackRequest
	CreatedAt             time.Time  `json:"created_at"`
	Secret                string     `json:"secret,omitempty"`
	PreviousSecretExpires *time.Time `json:"previous_secret_expires,omitempty"`
}

// postbackViewOf shows p; a principal who may not change it (a viewer, a
// reporting token) sees the URL's scheme and host only, and no body:
// templates often carry a network's credentials.
func postbackViewOf(p *tapline.Postback, readOnly bool) postbackView {
	v := postbackView{ID: p.ID, CreatedAt: p.CreatedAt, PreviousSecretExpires: p.PreviousSecretExpires, postbackRequest: postbackRequest{
		Kind: p.Kind, Network: p.Network, Source: p.Source, LinkIDs: p.LinkIDs, Events: p.Events, Method: p.Method, URL: p.URL,
		Body: p.Body, ContentType: p.ContentType, Fields: p.Fields, OnReattribution: p.OnReattribution,
		MaxConcurrent: p.MaxConcurrent, MaxPerSecond: p.MaxPerSecond, Disabled: p.Disabled}}
	if v.LinkIDs == nil {
		v.LinkIDs = []int64{}
	}
	if v.Fields == nil {
		v.Fields = []string{}
	}
	if p.Timeout != 0 {
		v.Timeout = p.Timeout.String()
	}
	if readOnly {
		v.URL, v.Body = redactURL(p.URL), ""
	}
	return v
}

// redactURL keeps a URL's scheme and host.
func redactURL(s string) string {
	u, err := url.Parse(tapline.ExpandMacros(s, func(string, string) string { return "x" }))
	if err != nil || u.Host == "" {
		return "…"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// deliveryView is a delivery of the log.
type deliveryView struct {
	ID           int64                  `json:"id"`
	PostbackID   int64                  `json:"postback_id"`
	Kind         string                 `json:"kind"`
	Network      string                 `json:"network"`
	Trigger      string                 `json:"trigger"`
	ConversionID string                 `json:"conversion_id,omitempty"`
	EventID      string                 `json:"event_id,omitempty"`
	Method       string                 `json:"method"`
	URL          string                 `json:"url"`
	Status       tapline.DeliveryStatus `json:"status"`
	Attempts     int                    `json:"attempts"`
	NextAttempt  *time.Time             `json:"next_attempt,omitempty"`
	LastCode     int                    `json:"last_code,omitempty"`
	LastError    string                 `json:"last_error,omitempty"`
	LastBody     string                 `json:"last_body,omitempty"`
	CreatedAt    time.Time              `json:"created_at"`
	DeliveredAt  *time.Time             `json:"delivered_at,omitempty"`
}

func deliveryViewOf(d *tapline.Delivery, readOnly bool) deliveryView {
	v := deliveryView{ID: d.ID, PostbackID: d.PostbackID, Kind: d.Kind, Network: d.Network, Trigger: d.Trigger, ConversionID: d.ConversionID,
		EventID: d.EventID, Method: d.Method, URL: d.URL, Status: d.Status, Attempts: d.Attempts, LastCode: d.LastCode,
		LastError: d.LastError, LastBody: d.LastBody, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
	if d.Status == tapline.DeliveryPending {
		next := d.NextAttempt
		v.NextAttempt = &next
	}
	if readOnly {
		// The URL, and the answer, may carry a network's credentials and
		// the personal data the network may receive.
		v.URL, v.LastBody = redactURL(d.URL), ""
	}
	return v
}

// postbacksRouter serves /api/v1/apps/{id}/postbacks and the delivery log.
func (d *Dashboard) apiPostbackRoutes(r chi.Router) {
	r.Get("/apps/{id}/postbacks", d.apiPostbacks)
	r.Post("/apps/{id}/postbacks", d.apiCreatePostback)
	r.Put("/apps/{id}/postbacks/{pid}", d.apiUpdatePostback)
	r.Delete("/apps/{id}/postbacks/{pid}", d.apiDeletePostback)
	r.Post("/apps/{id}/postbacks/{pid}/test", d.apiTestPostback)
	r.Post("/apps/{id}/postbacks/{pid}/rotate-secret", d.apiRotateSecret)
	r.Get("/apps/{id}/deliveries", d.apiDeliveries)
}

// appWith reads the path's app for a page (page) or the JSON API, and
// then answers 503 when what the route needs is not configured
// (configured false), naming it: another account's app is a 404 first.
func (d *Dashboard) appWith(w http.ResponseWriter, r *http.Request, page, configured bool, what string) (*tapline.App, bool) {
	var app *tapline.App
	var ok bool
	if page {
		app, ok = d.pageApp(w, r)
	} else {
		app, ok = d.apiApp(w, r)
	}
	if !ok || configured {
		return app, ok
	}
	err := tapline.Errorf(tapline.EUNAVAILABLE, "%s are not configured on this dashboard.", what)
	if page {
		d.writeError(w, r, err)
	} else {
		d.writeJSONError(w, r, err)
	}
	return nil, false
}

func decodePostbackRequest(r *http.Request) (*postbackRequest, error) {
	var req postbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, bodyError(err, maxBody, "The body is not a postback: %v.")
	}
	return &req, nil
}

func (d *Dashboard) apiPostbacks(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	ps, err := svc.Postbacks(r.Context(), app.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	ro := !principalFrom(r.Context()).canWrite()
	views := make([]postbackView, len(ps))
	for i, p := range ps {
		views[i] = postbackViewOf(p, ro)
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"postbacks": views})
}

func (d *Dashboard) apiCreatePostback(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	req, err := decodePostbackRequest(r)
	var p *tapline.Postback
	if err == nil {
		p, err = req.postback(app.ID)
	}
	if err == nil {
		err = svc.CreatePostback(r.Context(), p)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	v := postbackViewOf(p, false)
	if p.IsWebhook() && len(p.Secrets) > 0 {
		v.Secret = p.Secrets[0]
	}
	d.writeJSON(w, http.StatusCreated, v)
}

// pathPostbackID reads {pid}.
func pathPostbackID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "pid"), 10, 64)
	if err != nil || id <= 0 {
		return 0, tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
	}
	return id, nil
}

// appPostback returns postback {pid} of app.
func appPostback(r *http.Request, svc tapline.PostbackService, appID int64) (*tapline.Postback, error) {
	id, err := pathPostbackID(r)
	if err != nil {
		return nil, err
	}
	ps, err := svc.Postbacks(r.Context(), appID)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
}

func (d *Dashboard) apiUpdatePostback(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	id, err := pathPostbackID(r)
	var req *postbackRequest
	if err == nil {
		req, err = decodePostbackRequest(r)
	}
	var p *tapline.Postback
	if err == nil {
		p, err = req.postback(app.ID)
	}
	if err == nil {
		p.ID = id
		err = svc.UpdatePostback(r.Context(), p)
	}
	if err == nil {
		p, err = appPostback(r, svc, app.ID)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, postbackViewOf(p, false))
}

func (d *Dashboard) apiDeletePostback(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	id, err := pathPostbackID(r)
	if err == nil {
		err = svc.DeletePostback(r.Context(), app.ID, id)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// testResult is the answer of a test call.
type testResult struct {
	Method    string `json:"method"`
	URL       string `json:"url"`
	Body      string `json:"body,omitempty"`
	Key       string `json:"key"`
	Code      int    `json:"code"`
	Error     string `json:"error,omitempty"`
	Answer    string `json:"answer,omitempty"`
	Delivered bool   `json:"delivered"`
}

// tryPostback renders postback p of app for a made-up install or event
// and calls it once.
func (d *Dashboard) tryPostback(r *http.Request, app *tapline.App, p *tapline.Postback) (*testResult, error) {
	if d.TryPostback == nil {
		return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Test calls are not configured on this dashboard.")
	}
	slug := "test"
	if len(p.LinkIDs) > 0 {
		if l, err := d.Accounts.Link(r.Context(), p.LinkIDs[0]); err == nil && l.AppID == app.ID {
			slug = l.Slug
		}
	}
	del := postbacks.Sample(p, slug, d.now())
	res := d.TryPostback(r.Context(), del)
	return &testResult{Method: del.Method, URL: del.URL, Body: string(del.Body), Key: del.Key, Code: res.Code, Error: res.Error,
		Answer: res.Body, Delivered: res.Code >= 200 && res.Code < 300}, nil
}

func (d *Dashboard) apiTestPostback(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	p, err := appPostback(r, svc, app.ID)
	var res *testResult
	if err == nil {
		res, err = d.tryPostback(r, app, p)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, res)
}

func (d *Dashboard) apiRotateSecret(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	id, err := pathPostbackID(r)
	var secret string
	if err == nil {
		secret, err = svc.RotateWebhookSecret(r.Context(), app.ID, id)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"secret": secret, "previous_secret_expires": d.now().UTC().Add(tapline.WebhookRotationOverlap)})
}

// deliveryQuery reads ?network=&status=&before=&limit= for app.
func deliveryQuery(q url.Values, appID int64) (tapline.DeliveryQuery, error) {
	dq := tapline.DeliveryQuery{AppID: appID, Network: strings.TrimSpace(q.Get("network")), Status: tapline.DeliveryStatus(q.Get("status"))}
	switch dq.Status {
	case "", tapline.DeliveryPending, tapline.DeliveryDelivered, tapline.DeliveryDead:
	default:
		return dq, tapline.Errorf(tapline.EINVALID, "status: pending, delivered or dead, not %q", dq.Status)
	}
	if len(dq.Network) > maxNetwork {
		return dq, tapline.Errorf(tapline.EINVALID, "network: at most %d characters", maxNetwork)
	}
	if s := q.Get("before"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return dq, tapline.Errorf(tapline.EINVALID, "before: a delivery id, not %q", s)
		}
		dq.Before = v
	}
	dq.Limit = tapline.DefaultDeliveryPage
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > tapline.MaxDeliveryPage {
			return dq, tapline.Errorf(tapline.EINVALID, "limit: 1 to %d, not %q", tapline.MaxDeliveryPage, s)
		}
		dq.Limit = v
	}
	return dq, nil
}

// maxNetwork is the longest network name a postback takes
// (tapline.Postback.Validate).
const maxNetwork = 100

func (d *Dashboard) apiDeliveries(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, false, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	q, err := deliveryQuery(r.URL.Query(), app.ID)
	var ds []*tapline.Delivery
	if err == nil {
		ds, err = svc.Deliveries(r.Context(), q)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	ro := !principalFrom(r.Context()).canWrite()
	views := make([]deliveryView, len(ds))
	for i, del := range ds {
		views[i] = deliveryViewOf(del, ro)
	}
	next := ""
	if len(ds) == q.Limit {
		next = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"deliveries": views, "next_before": next})
}

// integrationsData feeds the integrations page.
type integrationsData struct {
	App        *tapline.App
	Postbacks  []postbackView
	Links      []*tapline.Link
	Deliveries []deliveryView
	Status     string // the log's filters: status and network
	Network    string
	Networks   []string // the networks to filter by: the postbacks', and the filter's
	NextBefore string
	Retention  string // how long finished deliveries are kept: "30 days"
	Form       map[string]string
	Error      string
	Secret     string      // a webhook secret just made, shown once
	SecretFor  int64       // the webhook it belongs to
	Test       *testResult // a test call just made
	TestFor    int64
}

// integrationsPage shows the app's postbacks and webhooks and the delivery
// log.
func (d *Dashboard) integrationsPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	data := &integrationsData{App: app, Form: map[string]string{"kind": tapline.PostbackKindNetwork, "events": "install"}}
	d.renderIntegrations(w, r, http.StatusOK, data)
}

// renderIntegrations loads the lists into data and renders the page.
func (d *Dashboard) renderIntegrations(w http.ResponseWriter, r *http.Request, status int, data *integrationsData) {
	svc := d.Postbacks
	ctx := r.Context()
	ps, err := svc.Postbacks(ctx, data.App.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	ro := !principalFrom(ctx).canWrite()
	for _, p := range ps {
		data.Postbacks = append(data.Postbacks, postbackViewOf(p, ro))
	}
	if data.Links, err = d.Accounts.LinksByApp(ctx, data.App.ID); err != nil {
		d.writeError(w, r, err)
		return
	}
	q, err := deliveryQuery(r.URL.Query(), data.App.ID)
	if err != nil {
		q = tapline.DeliveryQuery{AppID: data.App.ID}
	}
	q.Limit = 50
	ds, err := svc.Deliveries(ctx, q)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data.Status, data.Network = string(q.Status), q.Network
	for _, p := range ps {
		if !slices.Contains(data.Networks, p.Network) {
			data.Networks = append(data.Networks, p.Network)
		}
	}
	if q.Network != "" && !slices.Contains(data.Networks, q.Network) {
		data.Networks = append(data.Networks, q.Network) // a deleted postback's
	}
	slices.Sort(data.Networks)
	for _, del := range ds {
		data.Deliveries = append(data.Deliveries, deliveryViewOf(del, ro))
	}
	if len(ds) == q.Limit {
		data.NextBefore = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	data.Retention = retentionText(d.Config.DeliveryRetention)
	d.render(w, r, status, "integrations", *data)
}

// retentionText says a retention in whole days ("30 days"), or in hours
// when shorter than two days.
func retentionText(d time.Duration) string {
	switch {
	case d < 2*time.Hour:
		return "an hour"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// splitList splits a comma- or newline-separated form field.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// createPostbackForm handles the page's form.
func (d *Dashboard) createPostbackForm(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	form := map[string]string{}
	for _, k := range []string{"kind", "network", "source", "link_id", "events", "method", "url", "body", "fields", "on_reattribution", "timeout"} {
		form[k] = r.PostForm.Get(k)
	}
	if r.PostForm["fields"] != nil {
		form["fields"] = strings.Join(r.PostForm["fields"], ",")
	}
	req := &postbackRequest{Kind: form["kind"], Network: form["network"], Source: form["source"], Events: splitList(form["events"]),
		Method: form["method"], URL: form["url"], Body: form["body"], Fields: splitList(form["fields"]),
		OnReattribution: form["on_reattribution"], Timeout: form["timeout"]}
	if req.Kind == tapline.PostbackKindWebhook {
		req.Method, req.Body, req.Fields = "", "", nil
	}
	var err error
	if s := form["link_id"]; s != "" {
		var id int64
		if id, err = strconv.ParseInt(s, 10, 64); err != nil {
			err = tapline.Errorf(tapline.EINVALID, "link: choose one of the app's links")
		}
		req.LinkIDs = []int64{id}
	}
	var p *tapline.Postback
	if err == nil {
		p, err = req.postback(app.ID)
	}
	if err == nil {
		err = svc.CreatePostback(r.Context(), p)
	}
	if err != nil {
		if tapline.ErrorCode(err) != tapline.EINVALID && tapline.ErrorCode(err) != tapline.ENOTFOUND {
			d.writeError(w, r, err)
			return
		}
		d.renderIntegrations(w, r, http.StatusBadRequest, &integrationsData{App: app, Form: form, Error: tapline.ErrorMessage(err)})
		return
	}
	data := &integrationsData{App: app, Form: map[string]string{"kind": tapline.PostbackKindNetwork, "events": "install"}}
	if p.IsWebhook() {
		data.Secret, data.SecretFor = p.Secrets[0], p.ID
	}
	d.renderIntegrations(w, r, http.StatusOK, data)
}

// postbackActionForm handles a postback's buttons: test, rotate, delete,
// enable and disable.
func (d *Dashboard) postbackActionForm(w http.ResponseWriter, r *http.Request) {
	app, ok := d.appWith(w, r, true, d.Postbacks != nil, "Postbacks")
	if !ok {
		return
	}
	svc := d.Postbacks
	p, err := appPostback(r, svc, app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := &integrationsData{App: app, Form: map[string]string{"kind": tapline.PostbackKindNetwork, "events": "install"}}
	switch chi.URLParam(r, "action") {
	case "test":
		data.Test, err = d.tryPostback(r, app, p)
		data.TestFor = p.ID
	case "rotate":
		data.Secret, err = svc.RotateWebhookSecret(r.Context(), app.ID, p.ID)
		data.SecretFor = p.ID
	case "delete":
		if err = svc.DeletePostback(r.Context(), app.ID, p.ID); err == nil {
			http.Redirect(w, r, fmt.Sprintf("/apps/%d/integrations", app.ID), http.StatusSeeOther)
			return
		}
	case "disable", "enable":
		p.Disabled = chi.URLParam(r, "action") == "disable"
		if err = svc.UpdatePostback(r.Context(), p); err == nil {
			http.Redirect(w, r, fmt.Sprintf("/apps/%d/integrations", app.ID), http.StatusSeeOther)
			return
		}
	default:
		err = tapline.Errorf(tapline.ENOTFOUND, "Page not found.")
	}
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	d.renderIntegrations(w, r, http.StatusOK, data)
}
