package dashboard

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/internal/clientip"
)

// Login throttling, shared by every dashboard process through
// PostgreSQL: after MaxLoginFailures wrong passwords for one user within
// LoginFailureWindow, whichever login names them (their email, or for an
// account's first owner the account's name), further attempts for them
// are refused (429) until the window has passed, whatever the password;
// after MaxAddressFailures from one network (an IPv4 /24, an IPv6 /64),
// attempts from there are refused too, so one attacker cannot lock every
// user out and guess at speed from many.
const (
	MaxLoginFailures   = 10
	MaxAddressFailures = 100
	LoginFailureWindow = 15 * time.Minute
)

// passwordAttempt is one password tried, counted against the throttle:
// keys are its user's and its network's.
type passwordAttempt struct {
	keys [2]string
	at   time.Time
}

// userKey is the throttle key of a user of an account: the account's
// name and the user's email count as one.
func userKey(u *tapline.User) string {
	return "account:" + strconv.FormatInt(u.AccountID, 10) + ":user:" + strconv.FormatInt(u.ID, 10)
}

// loginUserKey returns the throttle key of the user login names ("login:"
// and the login when it names none, so unknown logins are throttled
// alike).
func (d *Dashboard) loginUserKey(r *http.Request, login string) (string, error) {
	u, err := d.Accounts.UserByLogin(r.Context(), login)
	switch {
	case err == nil:
		return userKey(u), nil
	case tapline.ErrorCode(err) == tapline.ENOTFOUND:
		return "login:" + strings.ToLower(strings.TrimSpace(login)), nil
	}
	return "", err
}

// tryPassword counts an attempt of a password against the user key
// and the client's network before the password is checked, so parallel
// guesses cannot all pass on a low count, and reports whether either is
// over its limit (the caller answers 429, with the Retry-After set here).
func (d *Dashboard) tryPassword(w http.ResponseWriter, r *http.Request, account string) (passwordAttempt, bool, error) {
	a := passwordAttempt{keys: [2]string{account, "addr:" + d.clientNetwork(r)}, at: d.now()}
	n, err := d.Accounts.RecordLoginAttempt(r.Context(), a.keys[:], a.at, a.at.Add(-LoginFailureWindow))
	if err != nil {
		return a, false, err
	}
	if n[a.keys[0]] > MaxLoginFailures || n[a.keys[1]] > MaxAddressFailures {
		w.Header().Set("Retry-After", strconv.Itoa(int(LoginFailureWindow.Seconds())))
		return a, true, nil
	}
	return a, false, nil
}

// passwordRight takes a back: a right password clears its user's
// failures and forgets its attempt from the network.
func (d *Dashboard) passwordRight(r *http.Request, a passwordAttempt) error {
	if err := d.Accounts.ClearLoginFailures(r.Context(), a.keys[0]); err != nil {
		return err
	}
	return d.Accounts.ForgetLoginAttempt(r.Context(), a.keys[1], a.at)
}

// clientNetwork is the /24 or /64 of the request's client (behind
// Config.TrustedProxies).
func (d *Dashboard) clientNetwork(r *http.Request) string {
	ip := clientip.Of(r, d.Config.TrustedProxies)
	if !ip.IsValid() {
		return r.RemoteAddr
	}
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}
