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
// ID names a session kept in PostgreSQL, which logging out and a password
// change end.
type session struct {
	AccountID int64
	Account   string // account name, to look the account up
	Expires   time.Time
	ID        string // the server-side session (URL-safe base64)
}

// signSession encodes s as base64url("id|expiry|session|name") "."
// base64url(HMAC).
func signSession(key []byte, s session) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(
		strconv.FormatInt(s.AccountID, 10) + "|" + strconv.FormatInt(s.Expires.Unix(), 10) + "|" + s.ID + "|" + s.Account))
	return payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(key, payload))
}

func sessionMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tapline-session-v2\x00"))
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
	parts := strings.SplitN(string(raw), "|", 4)
	if len(parts) != 4 || parts[2] == "" {
		return session{}, false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return session{}, false
	}
	s := session{AccountID: id, Expires: time.Unix(exp, 0), ID: parts[2], Account: parts[3]}
	if !now.Before(s.Expires) {
		return session{}, false
	}
	return s, true
}

// setSession starts a server-side session for account a and sets its
// cookie.
func (d *Dashboard) setSession(ctx context.Context, w http.ResponseWriter, a *tapline.Account) error {
	exp := d.now().Add(SessionLifetime)
	id, err := d.Accounts.CreateSession(ctx, a, exp)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    signSession(d.Config.SessionKey, session{AccountID: a.ID, Account: a.Name, Expires: exp, ID: id}),
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

// sessionAccount returns the account of r's valid session cookie and the
// session's id, or nil. The account is looked up so a deleted or renamed
// account loses its sessions, and the session so an ended one is refused.
func (d *Dashboard) sessionAccount(r *http.Request) (*tapline.Account, string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", nil
	}
	now := d.now()
	s, ok := parseSession(d.Config.SessionKey, c.Value, now)
	if !ok {
		return nil, "", nil
	}
	a, err := d.Accounts.AccountByName(r.Context(), s.Account)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	if a.ID != s.AccountID {
		return nil, "", nil
	}
	live, err := d.Accounts.SessionLive(r.Context(), a.ID, s.ID, now)
	if err != nil || !live {
		return nil, "", err
	}
	return a, s.ID, nil
}

// principal is who makes a request: a logged-in account or the admin.
type principal struct {
	Account *tapline.Account // nil for the admin
	Admin   bool
	// ReadOnly is set for an API token: it may only read.
	ReadOnly bool
	// Session is the id of a logged-in visitor's session.
	Session string
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
