package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tapline"
	"tapline/export"
	"tapline/internal/health"
)

// SessionLifetime is how long a login lasts.
const SessionLifetime = 7 * 24 * time.Hour

// MinSessionKeyLen is the shortest accepted Config.SessionKey, in bytes.
const MinSessionKeyLen = 32

// MinAdminTokenLen is the shortest accepted non-empty Config.AdminToken.
const MinAdminTokenLen = 16

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config holds the settings of the dashboard.
type Config struct {
	// AdminToken is the bearer token of the admin API; empty disables the
	// admin API (it answers 404).
	AdminToken string
	// TrustedProxies are the peers whose X-Forwarded-For names the
	// client, for the login throttle's per-network count.
	TrustedProxies []netip.Prefix
	// SessionKey is the HMAC-SHA256 key signing session cookies; at least
	// MinSessionKeyLen bytes.
	SessionKey []byte
	// SecureCookies sets the Secure flag on cookies; turn it off only for
	// plain-HTTP development on localhost.
	SecureCookies bool
	// CollectorURL is the public base URL of the collector, e.g.
	// http://localhost:8080; tracking links and SDK endpoints shown in the UI
	// are built on it.
	CollectorURL string
	// DeliveryRetention is how long the matchers keep delivered and dead
	// postback deliveries, as the delivery log tells its readers; New
	// sets tapline.DefaultDeliveryRetention for 0.
	DeliveryRetention time.Duration
}

// Validate reports every invalid field of c, each named.
func (c *Config) Validate() error {
	var errs []error
	if len(c.SessionKey) < MinSessionKeyLen {
		errs = append(errs, fmt.Errorf("dashboard: SessionKey must be at least %d bytes, got %d", MinSessionKeyLen, len(c.SessionKey)))
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen {
		errs = append(errs, fmt.Errorf("dashboard: AdminToken must be empty (admin API off) or at least %d characters", MinAdminTokenLen))
	}
	if u, err := url.Parse(c.CollectorURL); c.CollectorURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("dashboard: CollectorURL must be an absolute http(s) URL, got %q", c.CollectorURL))
	}
	return errors.Join(errs...)
}

// Dashboard serves the web UI, the JSON API and the admin API. Set its
// fields, then call Validate, before calling Handler.
type Dashboard struct {
	// Config holds the settings.
	Config Config
	// Accounts holds the accounts, apps and links.
	Accounts tapline.AccountService
	// Reports answers the statistics from the fact tables.
	Reports tapline.Reports
	// Funnels keeps the funnel definitions and their versions (required).
	Funnels tapline.FunnelStore
	// FunnelReports reads funnel results and the event names the builder
	// offers from the fact tables (required).
	FunnelReports tapline.FunnelReports
	// OnFunnelSaved, when set, is called after a funnel is created or
	// edited, so a backfill runner in this process starts at once (the
	// all-in-one sets it to funnels.Runner.Wake); without it the matchers'
	// runners pick the new version up on their next poll.
	OnFunnelSaved func()
	// Erasures records erasure requests (DELETE /api/v1/apps/{id}/devices);
	// without it those routes answer 503.
	Erasures tapline.ErasureService
	// Postbacks keeps the apps' postbacks and webhooks and their delivery
	// log; without it the integrations page and routes answer 503.
	Postbacks tapline.PostbackService
	// TryPostback, when set, makes one call of a rendered delivery and
	// returns its result (the integrations' test button); without it the
	// button answers 503.
	TryPostback func(ctx context.Context, d *tapline.Delivery) tapline.DeliveryResult
	// WhatIfs keeps what-if requests and their results, which a matcher
	// process runs; without it the what-if page and routes answer 503.
	WhatIfs tapline.WhatIfStore
	// SKAN reads the SKAdNetwork and AdAttributionKit counts (fact rows)
	// and the postbacks the collector stored; without it the SKAdNetwork
	// page and routes answer 503.
	SKAN tapline.SKANStore
	// Logger receives errors that are not the caller's fault.
	Logger *slog.Logger
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// LiveRefresh is how often the live view refreshes itself; 0 means
	// 10 seconds.
	LiveRefresh time.Duration
	// Health are the checks of the readiness probe GET /healthz (a
	// PostgreSQL ping; the all-in-one adds the matcher's). Without any,
	// /healthz answers 503: it would otherwise say ok about nothing.
	Health []health.Check
	// Registry receives the dashboard's request metrics and is served at
	// GET /metrics, unless PrivateMetrics (the process serves it on a
	// listener of its own); when nil, Handler makes one of its own.
	Registry       *prometheus.Registry
	PrivateMetrics bool
	// Export, when set, is put in front of the dashboard's routes to serve
	// the raw data export on the same listener (export.API.Mount); its
	// requests are counted in the dashboard's metrics too.
	Export func(next http.Handler) http.Handler
	// Download, when set, streams the raw data a logged-in owner downloads
	// from the app page (GET /apps/{id}/export; export.API.Download), once
	// the dashboard has checked the session, the app's account and the
	// user's role; without it that route answers 503.
	Download func(w http.ResponseWriter, r *http.Request, d export.Download) error
}

// New returns a Dashboard over accounts and reports, logging to
// slog.Default and reading the wall clock.
func New(cfg Config, accounts tapline.AccountService, reports tapline.Reports) *Dashboard {
	if cfg.DeliveryRetention == 0 {
		cfg.DeliveryRetention = tapline.DefaultDeliveryRetention
	}
	return &Dashboard{
		Config:   cfg,
		Accounts: accounts,
		Reports:  reports,
		Logger:   slog.Default(),
		Now:      time.Now,
	}
}

// Validate reports every invalid field of the Config and every missing
// dependency, each named.
func (d *Dashboard) Validate() error {
	errs := []error{d.Config.Validate()}
	for _, dep := range []struct {
		name  string
		unset bool
	}{
		{"Accounts", d.Accounts == nil},
		{"Reports", d.Reports == nil},
		{"Funnels", d.Funnels == nil},
		{"FunnelReports", d.FunnelReports == nil},
	} {
		if dep.unset {
			errs = append(errs, fmt.Errorf("dashboard: %s is required", dep.name))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the chi router serving every route of the dashboard,
// with the export in front when Export is set; every request is counted
// and timed (metrics) and its body bounded (limitBodies). The handler is a
// chi.Routes too, listing the dashboard's routes. It panics when
// Validate fails: a dashboard missing its funnel store would otherwise
// start and fail on the first funnel page.
func (d *Dashboard) Handler() http.Handler {
	if err := d.Validate(); err != nil {
		panic(fmt.Sprintf("dashboard: Handler on a dashboard that does not validate: %v", err))
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		panic(fmt.Sprintf("dashboard: %v", err))
	}
	r := d.router(reg)
	var h http.Handler = r
	if d.Export != nil {
		h = d.Export(h)
	}
	return routed{Handler: m.instrument(h), mux: r}
}

// routed serves requests through Handler and lists the dashboard's routes
// (chi.Walk), those of the export in front of it left out.
type routed struct {
	http.Handler
	mux *chi.Mux
}

var _ chi.Routes = routed{}

func (r routed) Routes() []chi.Route          { return r.mux.Routes() }
func (r routed) Middlewares() chi.Middlewares { return r.mux.Middlewares() }
func (r routed) Match(rctx *chi.Context, method, path string) bool {
	return r.mux.Match(rctx, method, path)
}
func (r routed) Find(rctx *chi.Context, method, path string) string {
	return r.mux.Find(rctx, method, path)
}

// router returns the dashboard's routes, serving reg at /metrics unless
// PrivateMetrics.
func (d *Dashboard) router(reg *prometheus.Registry) *chi.Mux {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, securityHeaders, d.limitBodies)

	r.Get("/healthz", (&health.Checker{Checks: d.Health, Logger: d.logger(), Now: d.now}).ServeHTTP)
	r.Get("/livez", health.Live)
	if !d.PrivateMetrics {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	static, _ := fs.Sub(staticFS, "static")
	// Only reads: a route that answered every method would take changes
	// (and the viewers' guard) for nothing.
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	r.Get("/static/*", files.ServeHTTP)
	r.Head("/static/*", files.ServeHTTP)

	r.Mount("/admin/v1", d.adminRouter())
	r.Mount("/api/v1", d.apiRouter())
	r.Group(func(r chi.Router) {
		r.Use(d.checkOrigin)
		r.Get("/login", d.loginPage)
		r.Post("/login", d.login)
		r.Post("/logout", d.logout)
		r.Get("/invite/{token}", d.invitePage)
		r.Post("/invite/{token}", d.acceptInvite)
		r.Group(func(r chi.Router) {
			r.Use(d.requirePageSession, d.readOnlyViewers)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/apps", http.StatusSeeOther)
			})
			r.Get("/apps", d.appsPage)
			r.Get("/account", d.accountPage)
			r.Post("/account/tokens", d.createTokenForm)
			r.Post("/account/password", d.changePasswordForm)
			r.Post("/account/tokens/{tid}/revoke", d.revokeTokenForm)
			r.Get("/account/users", d.teamPage)
			r.Post("/account/invites", d.createInviteForm)
			r.Post("/account/invites/{iid}/revoke", d.revokeInviteForm)
			r.Post("/account/users/{uid}/role", d.setRoleForm)
			r.Post("/account/users/{uid}/remove", d.removeUserForm)
			r.Get("/apps/{id}", d.appPage)
			r.Get("/apps/{id}/export", d.exportDownload)
			r.Mount("/apps/{id}/funnels", d.funnelPages())
			r.Mount("/apps/{id}/links", d.linkPages())
			r.Get("/apps/{id}/live", d.livePage)
			r.Get("/apps/{id}/cohorts", d.cohortsPage)
			r.Get("/apps/{id}/conversions", d.conversionsPage)
			r.Get("/apps/{id}/conversions/{cid}", d.conversionPage)
			r.Get("/apps/{id}/whatif", d.whatIfPage)
			r.Post("/apps/{id}/whatif", d.requestWhatIfForm)
			r.Get("/apps/{id}/whatif/{rid}", d.whatIfResultPage)
			r.Get("/apps/{id}/integrations", d.integrationsPage)
			r.Post("/apps/{id}/integrations", d.createPostbackForm)
			r.Post("/apps/{id}/integrations/{pid}/{action}", d.postbackActionForm)
			r.Get("/apps/{id}/skadnetwork", d.skanPage)
			r.Get("/apps/{id}/settings", d.settingsPage)
			r.Post("/apps/{id}/settings", d.saveSettings)
		})
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		d.writeError(w, r, tapline.Errorf(tapline.ENOTFOUND, "Page not found."))
	})
	return r
}

// securityHeaders sets the headers every response carries: no framing, no
// sniffing, no assets from elsewhere; scripts only from /static, and
// requests from them only to this site.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		next.ServeHTTP(w, r)
	})
}

// collectorBase returns CollectorURL without a trailing slash.
func (d *Dashboard) collectorBase() string {
	return strings.TrimRight(d.Config.CollectorURL, "/")
}

// trackingURL returns the public URL of the link with slug.
func (d *Dashboard) trackingURL(slug string) string {
	return TrackingURL(d.Config.CollectorURL, slug)
}

// TrackingURL returns the URL of the link with slug under collectorURL,
// the collector's base URL as phones reach it.
func TrackingURL(collectorURL, slug string) string {
	return strings.TrimRight(collectorURL, "/") + "/l/" + url.PathEscape(slug)
}

// now returns the current time from d.Now, or the wall clock.
func (d *Dashboard) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// logger returns d.Logger, or slog.Default.
func (d *Dashboard) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
