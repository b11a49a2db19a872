package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"tapline"
	"tapline/internal/httperr"
)

// loginData feeds the login template.
type loginData struct {
	Login string
	Next  string
	Error string
}

// loginPage serves the login form, or sends a logged-in visitor on.
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if p, err := d.sessionPrincipal(r); err == nil && p != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", loginData{Next: next})
}

// login checks the form's credentials and sets the session cookie.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	login := strings.TrimSpace(r.PostForm.Get("login"))
	password := r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	if login == "" || password == "" {
		d.render(w, r, http.StatusBadRequest, "login", loginData{Login: login, Next: next, Error: "Enter your email or account name and your password."})
		return
	}
	key, err := d.loginUserKey(r, login)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	attempt, blocked, err := d.tryPassword(w, r, key)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if blocked {
		d.render(w, r, http.StatusTooManyRequests, "login", loginData{Login: login, Next: next,
			Error: "Too many wrong passwords for this account, or from this network. Try again in a few minutes."})
		return
	}
	u, _, err := d.Accounts.Authenticate(r.Context(), login, password)
	if code := tapline.ErrorCode(err); code == tapline.EUNAUTHORIZED || code == tapline.ENOTFOUND {
		d.render(w, r, http.StatusUnauthorized, "login", loginData{Login: login, Next: next, Error: "Wrong email, account name or password."})
		return
	} else if err != nil {
		d.writeError(w, r, err)
		return
	}
	if err := d.passwordRight(r, attempt); err != nil {
		d.writeError(w, r, err)
		return
	}
	if err := d.setSession(r.Context(), w, u); err != nil {
		if tapline.ErrorCode(err) == tapline.EUNAUTHORIZED {
			d.render(w, r, http.StatusUnauthorized, "login", loginData{Login: login, Next: next, Error: tapline.ErrorMessage(err)})
			return
		}
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and clears its cookie: a copy of the cookie
// no longer works.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	p, err := d.sessionPrincipal(r)
	if err == nil && p != nil {
		err = d.Accounts.EndSession(r.Context(), p.Session)
	}
	if err != nil {
		// The session may still be live: say so rather than pretend.
		d.writeError(w, r, err)
		return
	}
	d.clearSession(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext returns next when it is a path on this site, else "/apps".
// Control characters and backslashes are refused outright: browsers drop
// tabs and newlines from a Location and read "\\" as "/", so "/\t/evil"
// would leave the site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/apps"
	}
	return next
}

// requirePageSession lets logged-in visitors through and sends others to
// the login page.
func (d *Dashboard) requirePageSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := d.sessionPrincipal(r)
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		if p == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// requireAPIAuth lets through requests with a session cookie or the admin
// bearer token and answers 401 to others.
func (d *Dashboard) requireAPIAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "+tapline.APITokenPrefix); ok {
			a, err := d.Accounts.AccountByAPIToken(r.Context(), tapline.APITokenPrefix+secret)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tapline"`)
				httperr.Write(w, r, d.logger(), err)
				return
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.EFORBIDDEN, "API tokens are read-only: log in to change anything."))
				return
			}
			next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), &principal{Account: a, ReadOnly: true})))
			return
		}
		if r.Header.Get("Authorization") != "" {
			if !d.adminAuthorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tapline"`)
				httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.EUNAUTHORIZED, "Invalid bearer token."))
				return
			}
			next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), &principal{Admin: true})))
			return
		}
		p, err := d.sessionPrincipal(r)
		if err != nil {
			httperr.Write(w, r, d.logger(), err)
			return
		}
		if p == nil {
			httperr.Write(w, r, d.logger(), tapline.Errorf(tapline.EUNAUTHORIZED, "Log in or send the admin bearer token."))
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// adminAuthorized reports whether r carries the admin bearer token. It is
// false whenever the admin API is off.
func (d *Dashboard) adminAuthorized(r *http.Request) bool {
	if d.Config.AdminToken == "" {
		return false
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing first makes the comparison constant-time in the length too.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(d.Config.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// sameHost reports whether host is the host r was sent to: its Host, or
// the X-Forwarded-Host a reverse proxy set. A cross-site form cannot set
// X-Forwarded-Host, so trusting it here opens nothing.
func sameHost(host string, r *http.Request) bool {
	if strings.EqualFold(host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	fwd = strings.TrimSpace(fwd)
	return fwd != "" && strings.EqualFold(host, fwd)
}

// checkOrigin rejects state-changing requests a browser sent from another
// site with an error page (see crossSite).
func (d *Dashboard) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := crossSite(r); err != nil {
			d.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkAPIOrigin is checkOrigin for the JSON API: the refusal is JSON.
func (d *Dashboard) checkAPIOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := crossSite(r); err != nil {
			httperr.Write(w, r, d.logger(), err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite returns EFORBIDDEN for a state-changing request a browser sent
// from another site: its Origin, or without one its Referer, must name
// this host. Requests with neither header come from non-browser clients,
// which carry no ambient cookies to abuse.
func crossSite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return tapline.Errorf(tapline.EFORBIDDEN, "Cross-site request refused.")
	}
	source := r.Header.Get("Origin")
	if source == "" {
		source = r.Header.Get("Referer")
	}
	if source != "" {
		u, err := url.Parse(source)
		if err != nil || u.Host == "" || !sameHost(u.Host, r) {
			return tapline.Errorf(tapline.EFORBIDDEN, "Cross-site request refused: the request's origin does not match this site.")
		}
	}
	return nil
}

// viewerMayPost lists the paths a viewer may send changes to: their own
// password. Logging out is outside the session routes, open to anyone.
var viewerMayPost = map[string]bool{
	"/account/password": true,
}

// errReadOnly is the refusal of a change to a user who may only read.
var errReadOnly = tapline.Errorf(tapline.EFORBIDDEN, "Your role in this account is viewer, which can only read: ask an owner of the account to make this change.")

// readOnlyViewers refuses every request but GET, HEAD and OPTIONS from a
// logged-in user whose role may not change things, except to the paths
// of viewerMayPost, with an error page (403). It sits on every router of
// session routes, so a route added there is guarded without naming it.
func (d *Dashboard) readOnlyViewers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := writeRefused(r); err != nil {
			d.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readOnlyAPIViewers is readOnlyViewers for the JSON API: the refusal is
// JSON.
func (d *Dashboard) readOnlyAPIViewers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := writeRefused(r); err != nil {
			httperr.Write(w, r, d.logger(), err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeRefused returns EFORBIDDEN for a change a logged-in viewer asks
// for, nil for anything else (API tokens are refused by requireAPIAuth).
func writeRefused(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	p := principalFrom(r.Context())
	if p == nil || p.User == nil || p.canWrite() || viewerMayPost[r.URL.Path] {
		return nil
	}
	return errReadOnly
}
