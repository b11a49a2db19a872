package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/internal/httperr"
)

// maxBody is the largest request body accepted, in bytes.
const maxBody = 64 << 10

// adminRouter serves the admin JSON API behind the admin bearer token. It
// answers 404 everywhere when no token is configured.
func (d *Dashboard) adminRouter() chi.Router {
	r := chi.NewRouter()
	r.Use(d.requireAdmin)
	r.Post("/accounts", d.adminCreateAccount)
	r.Get("/accounts/{name}", d.adminAccount)
	r.Post("/accounts/{name}/apps", d.adminCreateApp)
	r.Get("/accounts/{name}/apps", d.adminApps)
	r.Patch("/apps/{id}", d.adminUpdateApp)
	r.Post("/apps/{id}/links", d.adminCreateLink)
	r.Get("/apps/{id}/links", d.adminLinks)
	r.Post("/apps/{id}/funnels", d.adminCreateFunnel)
	r.Get("/apps/{id}/funnels", d.adminFunnels)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.ENOTFOUND, "No such admin endpoint."))
	})
	r.MethodNotAllowed(d.methodNotAllowed)
	return r
}

// requireAdmin checks the bearer token against Config.AdminToken.
func (d *Dashboard) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if d.Config.AdminToken == "" {
			httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.ENOTFOUND, "The admin API is disabled."))
			return
		}
		if !d.adminAuthorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tapline-admin"`)
			httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.EUNAUTHORIZED, "Send Authorization: Bearer <admin token>."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AppView is the JSON shape of an app in both APIs and the CLI: durations
// are Go duration strings such as "168h0m0s".
type AppView struct {
	ID                int64     `json:"id"`
	AccountID         int64     `json:"account_id"`
	Name              string    `json:"name"`
	SDKSecret         string    `json:"sdk_secret"`
	SDKKey            string    `json:"sdk_key"`
	IOSURL            string    `json:"ios_url"`
	AndroidURL        string    `json:"android_url"`
	WebURL            string    `json:"web_url"`
	ClickWindow       string    `json:"click_window"`
	FingerprintWindow string    `json:"fingerprint_window"`
	LatenessHorizon   string    `json:"lateness_horizon"`
	Retention         string    `json:"retention"`
	Fraud             FraudView `json:"fraud"`
	// FingerprintMinScore: see tapline.App.
	FingerprintMinScore float64 `json:"fingerprint_min_score"`
	// Re-engagement and reinstall rules (see tapline.App).
	ReengagementWindow    string `json:"reengagement_window"`
	ReinstallWindow       string `json:"reinstall_window"`
	ReattributeReinstalls bool   `json:"reattribute_reinstalls"`
	// AppStoreID names the app in SKAdNetwork postbacks; ConversionSchema
	// labels its conversion values (see tapline.App).
	AppStoreID       int64                    `json:"app_store_id,omitempty"`
	ConversionSchema tapline.ConversionSchema `json:"conversion_schema"`
	CreatedAt        time.Time                `json:"created_at"`
}

// FraudView is the JSON shape of an app's fraud policy: the minimum
// click-to-install time as a Go duration string.
type FraudView struct {
	ClickInjection      tapline.FraudAction `json:"click_injection"`
	ClickFlooding       tapline.FraudAction `json:"click_flooding"`
	Datacenter          tapline.FraudAction `json:"datacenter"`
	TapAfterInstall     tapline.FraudAction `json:"tap_after_install"`
	MinClickToInstall   string              `json:"min_click_to_install"`
	FloodMinTaps        int                 `json:"flood_min_taps"`
	FloodMaxInstallRate float64             `json:"flood_max_install_rate"`
}

// NewAppView returns a's JSON shape.
func NewAppView(a *tapline.App) AppView {
	return AppView{
		ID: a.ID, AccountID: a.AccountID, Name: a.Name, SDKSecret: a.SDKSecret, SDKKey: a.SDKKey,
		IOSURL: a.IOSURL, AndroidURL: a.AndroidURL, WebURL: a.WebURL,
		ClickWindow: a.ClickWindow.String(), FingerprintWindow: a.FingerprintWindow.String(),
		LatenessHorizon: a.LatenessHorizon.String(), Retention: a.Retention.String(),
		Fraud: FraudView{ClickInjection: a.Fraud.ClickInjection, ClickFlooding: a.Fraud.ClickFlooding, Datacenter: a.Fraud.Datacenter,
			TapAfterInstall: a.Fraud.TapAfterInstall, MinClickToInstall: a.Fraud.MinClickToInstall.String(),
			FloodMinTaps: a.Fraud.FloodMinTaps, FloodMaxInstallRate: a.Fraud.FloodMaxInstallRate},
		FingerprintMinScore: a.FingerprintMinScore,
		ReengagementWindow:  a.ReengagementWindow.String(), ReinstallWindow: a.ReinstallWindow.String(),
		ReattributeReinstalls: a.ReattributeReinstalls,
		AppStoreID:            a.AppStoreID, ConversionSchema: a.ConversionSchema,
		CreatedAt: a.CreatedAt,
	}
}

func appViews(apps []*tapline.App) []AppView {
	views := make([]AppView, 0, len(apps))
	for _, a := range apps {
		views = append(views, NewAppView(a))
	}
	return views
}

// LinkView is the JSON shape of a link in the APIs and the CLI: the link
// and its tracking URL. Its own windows are Go duration strings such as
// "720h0m0s", as an app's are, absent when the link has the app's.
type LinkView struct {
	*tapline.Link
	TrackingURL       string `json:"tracking_url"`
	ClickWindow       string `json:"click_window,omitempty"`
	FingerprintWindow string `json:"fingerprint_window,omitempty"`
}

// NewLinkView returns l's JSON shape, its tracking URL under collectorURL,
// the collector's base URL as phones reach it.
func NewLinkView(l *tapline.Link, collectorURL string) LinkView {
	v := LinkView{Link: l, TrackingURL: TrackingURL(collectorURL, l.Slug)}
	if l.ClickWindow > 0 {
		v.ClickWindow = l.ClickWindow.String()
	}
	if l.FingerprintWindow > 0 {
		v.FingerprintWindow = l.FingerprintWindow.String()
	}
	return v
}

func (d *Dashboard) linkView(l *tapline.Link) LinkView {
	return NewLinkView(l, d.Config.CollectorURL)
}

// createAccountRequest is the body of POST /admin/v1/accounts.
type createAccountRequest struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

var (
	accountNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	slugRE        = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func (d *Dashboard) adminCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req createAccountRequest
	if !d.decodeJSON(w, r, &req) {
		return
	}
	switch {
	case !accountNameRE.MatchString(req.Name):
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "name: 1 to 63 lower-case letters, digits or '-', not starting or ending with '-'"))
		return
	case !validEmail(req.Email):
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "email: %q is not an email address", req.Email))
		return
	case req.Password == "":
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "password: required"))
		return
	}
	a, owner := &tapline.Account{Name: req.Name}, &tapline.User{Email: req.Email}
	if err := d.Accounts.CreateAccount(r.Context(), a, owner, req.Password); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusCreated, NewAccountView(a, owner))
}

// AccountView is the JSON shape of an account in the admin API and the
// CLI: the account and the email of its first owner, who logs in with it.
type AccountView struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// NewAccountView returns a's JSON shape with owner's email.
func NewAccountView(a *tapline.Account, owner *tapline.User) AccountView {
	return AccountView{ID: a.ID, Name: a.Name, Email: owner.Email, CreatedAt: a.CreatedAt}
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

func (d *Dashboard) adminAccount(w http.ResponseWriter, r *http.Request) {
	a, err := d.Accounts.AccountByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	users, err := d.Accounts.Users(r.Context(), a.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	owner := &tapline.User{}
	for _, u := range users {
		if u.Role == tapline.RoleOwner {
			owner = u
			break
		}
	}
	d.writeJSON(w, http.StatusOK, NewAccountView(a, owner))
}

// createAppRequest is the body of POST /admin/v1/accounts/{name}/apps;
// empty windows take the defaults.
type createAppRequest struct {
	Name              string `json:"name"`
	IOSURL            string `json:"ios_url"`
	AndroidURL        string `json:"android_url"`
	WebURL            string `json:"web_url"`
	ClickWindow       string `json:"click_window"`
	FingerprintWindow string `json:"fingerprint_window"`
	LatenessHorizon   string `json:"lateness_horizon"`
	Retention         string `json:"retention"`
}

func (d *Dashboard) adminCreateApp(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := d.Accounts.AccountByName(ctx, chi.URLParam(r, "name"))
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	var req createAppRequest
	if !d.decodeJSON(w, r, &req) {
		return
	}
	app := &tapline.App{AccountID: a.ID, Name: strings.TrimSpace(req.Name), IOSURL: req.IOSURL, AndroidURL: req.AndroidURL, WebURL: req.WebURL}
	if err := validateApp(app, req); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	if err := d.Accounts.CreateApp(ctx, app); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusCreated, NewAppView(app))
}

// validateApp checks the request's fields and sets app's windows from it.
func validateApp(app *tapline.App, req createAppRequest) error {
	if app.Name == "" || len(app.Name) > 200 {
		return tapline.Errorf(tapline.EINVALID, "name: required, at most 200 characters")
	}
	for _, u := range []struct{ field, v string }{{"ios_url", app.IOSURL}, {"android_url", app.AndroidURL}, {"web_url", app.WebURL}} {
		if err := validateURL(u.field, u.v); err != nil {
			return err
		}
	}
	for _, w := range []struct {
		field, v string
		dst      *time.Duration
	}{
		{"click_window", req.ClickWindow, &app.ClickWindow},
		{"fingerprint_window", req.FingerprintWindow, &app.FingerprintWindow},
		{"lateness_horizon", req.LatenessHorizon, &app.LatenessHorizon},
		{"retention", req.Retention, &app.Retention},
	} {
		if w.v == "" {
			continue
		}
		dur, err := time.ParseDuration(w.v)
		if err != nil || dur <= 0 {
			return tapline.Errorf(tapline.EINVALID, "%s: %q is not a positive duration such as \"168h\"", w.field, w.v)
		}
		*w.dst = dur
	}
	return nil
}

// validateURL accepts "" or an absolute URL; store links may use custom
// schemes (itms-apps:, market:), so any scheme goes.
func validateURL(field, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Path == "") || len(v) > 2048 {
		return tapline.Errorf(tapline.EINVALID, "%s: %q is not an absolute URL", field, v)
	}
	if s := strings.ToLower(u.Scheme); s == "javascript" || s == "data" || s == "vbscript" {
		return tapline.Errorf(tapline.EINVALID, "%s: the %s: scheme is not allowed", field, s)
	}
	return nil
}

func (d *Dashboard) adminApps(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := d.Accounts.AccountByName(ctx, chi.URLParam(r, "name"))
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	apps, err := d.Accounts.AppsByAccount(ctx, a.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"apps": appViews(apps)})
}

// createLinkRequest is the body of POST /admin/v1/apps/{id}/links.
type createLinkRequest struct {
	Slug       string `json:"slug"`
	Name       string `json:"name"`
	IOSURL     string `json:"ios_url"`
	AndroidURL string `json:"android_url"`
	WebURL     string `json:"web_url"`
}

func (d *Dashboard) adminCreateLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	app, err := d.Accounts.App(ctx, id)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	var req createLinkRequest
	if !d.decodeJSON(w, r, &req) {
		return
	}
	if !slugRE.MatchString(req.Slug) {
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "slug: 1 to 64 letters, digits, '_' or '-'"))
		return
	}
	l := &tapline.Link{AppID: app.ID, Slug: req.Slug, Name: strings.TrimSpace(req.Name), IOSURL: req.IOSURL, AndroidURL: req.AndroidURL, WebURL: req.WebURL}
	if l.Name == "" {
		l.Name = l.Slug
	}
	for _, u := range []struct{ field, v string }{{"ios_url", l.IOSURL}, {"android_url", l.AndroidURL}, {"web_url", l.WebURL}} {
		if err := validateURL(u.field, u.v); err != nil {
			d.writeJSONError(w, r, err)
			return
		}
	}
	if err := d.Accounts.CreateLink(ctx, l); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusCreated, d.linkView(l))
}

func (d *Dashboard) adminLinks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	if _, err := d.Accounts.App(ctx, id); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	links, err := d.Accounts.LinksByApp(ctx, id)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	views := make([]LinkView, 0, len(links))
	for _, l := range links {
		views = append(views, d.linkView(l))
	}
	d.writeJSON(w, http.StatusOK, map[string]any{"links": views})
}

// adminApp reads the app of the path, answering the error itself.
func (d *Dashboard) adminApp(w http.ResponseWriter, r *http.Request) (*tapline.App, bool) {
	id, err := parseID(chi.URLParam(r, "id"), "app")
	if err == nil {
		var app *tapline.App
		if app, err = d.Accounts.App(r.Context(), id); err == nil {
			return app, true
		}
	}
	d.writeJSONError(w, r, err)
	return nil, false
}

// adminCreateFunnel creates a funnel of any app: the body is its
// definition, as in POST /api/v1/apps/{id}/funnels.
func (d *Dashboard) adminCreateFunnel(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.adminApp(w, r); ok {
		d.createFunnel(w, r, app, "/api/v1/apps/%d/funnels/%d")
	}
}

// adminFunnels lists the funnels of any app.
func (d *Dashboard) adminFunnels(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.adminApp(w, r); ok {
		d.writeFunnels(w, r, app)
	}
}

// decodeJSON reads r's body into v: JSON content type (else 415), at most
// maxBody bytes (else 413), one object with known fields only (else 400).
// It answers the error itself and reports whether decoding succeeded.
func (d *Dashboard) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Accept", "application/json")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		_ = json.NewEncoder(w).Encode(httperr.Body{Error: "unsupported_media_type", Message: "Send the body as Content-Type: application/json."})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			d.writeJSONError(w, r, tooLarge(maxBody))
		} else {
			d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "Invalid JSON body: %s", jsonProblem(err)))
		}
		return false
	}
	return true
}

// jsonProblem describes a decoding error without internals.
func jsonProblem(err error) string {
	if e, ok := errors.AsType[*tapline.Error](err); ok {
		return e.Message
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("%s: expected %s", e.Field, e.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
