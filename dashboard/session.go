package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// sessionCookie is the name of the session cookie.
const sessionCookie = "tapline_session"

// session is what a session cookie carries. The cookie is signed, and its
// ID names a session kept in PostgreSQL, which logging out, a password
// change and the user's removal end.
type session struct {
	UserID  int64
	Expires time.Time
	ID      string // the server-side session (URL-safe base64)
}

// signSession encodes s as base64url("user|expiry|session") "."
// base64url(HMAC).
func signSession(key []byte, s session) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(
		strconv.FormatInt(s.UserID, 10) + "|" + strconv.FormatInt(s.Expires.Unix(), 10) + "|" + s.ID))
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(key, payload))
}

func sessionMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tapline-session-v3\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// parseSession verifies value's signature and expiry at now.
func parseSession(key []byte, value string, now time.Time) (session, bool) {
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, sessionMAC(key, payload)) {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, false
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[2] == "" {
		return session{}, false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return session{}, false
	}
	s := session{UserID: id, Expires: time.Unix(exp, 0), ID: parts[2]}
	if !now.Before(s.Expires) {
		return session{}, false
	}
	return s, true
}

// setSession starts a server-side session for user u and sets its cookie.
func (d *Dashboard) setSession(ctx context.Context, w http.ResponseWriter, u *tapline.User) error {
	exp := d.now().Add(SessionLifetime)
	id, err := d.Accounts.CreateSession(ctx, u, exp)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    signSession(d.Config.SessionKey, session{UserID: u.ID, Expires: exp, ID: id}),
		Path:     "/",
		Expires:  exp,
		MaxAge:   int(SessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   d.Config.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// clearSession removes the session cookie.
func (d *Dashboard) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   d.Config.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// sessionPrincipal returns the logged-in user of r's valid session cookie,
// with their account and the session's id, or nil. The user and their
// role are read with the session, so a removed user is logged out and a
// changed role applies at once.
func (d *Dashboard) sessionPrincipal(r *http.Request) (*principal, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	now := d.now()
	s, ok := parseSession(d.Config.SessionKey, c.Value, now)
	if !ok {
		return nil, nil
	}
	u, a, err := d.Accounts.SessionUser(r.Context(), s.ID, now)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if u.ID != s.UserID {
		return nil, nil
	}
	return &principal{Account: a, User: u, Session: s.ID}, nil
}

// principal is who makes a request: a logged-in user of an account, an
// API token of an account, or the admin.
type principal struct {
	Account *tapline.Account // nil for the admin
	// User is the logged-in user; nil for an API token or the admin.
	User  *tapline.User
	Admin bool
	// ReadOnly is set for an API token: it may only read.
	ReadOnly bool
	// Session is the id of a logged-in visitor's session.
	Session string
}

// canWrite reports whether p may change the account's things: the admin,
// and logged-in owners; not viewers, nor API tokens.
func (p *principal) canWrite() bool {
	if p == nil {
		return false
	}
	return p.Admin || (p.User != nil && p.User.Role.CanWrite())
}

// canExport reports whether p may download the account's raw data from
// the dashboard: logged-in users whose role may (owners). API tokens
// export through the export API instead.
func (p *principal) canExport() bool {
	return p != nil && p.User != nil && p.User.Role.CanExport()
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalFrom returns the request's principal; the auth middleware
// guarantees one on every guarded route.
func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}
