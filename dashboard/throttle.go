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
// PostgreSQL: after MaxLoginFailures wrong passwords for one account
// within LoginFailureWindow, whichever login names it (its name or its
// email), further attempts for it are refused (429) until the window has
// passed, whatever the password; after MaxAddressFailures from one network
// (an IPv4 /24, an IPv6 /64), attempts from there are refused too, so one
// attacker cannot lock every account out and guess at speed from many.
const (
	MaxLoginFailures   = 10
	MaxAddressFailures = 100
	LoginFailureWindow = 15 * time.Minute
)

// throttleKeys returns the keys a login attempt counts against: its
// account ("login:" and the login when it names none, so unknown logins
// are throttled alike), and the client's network.
func (d *Dashboard) throttleKeys(r *http.Request, login string) ([2]string, error) {
	acct := "login:" + strings.ToLower(strings.TrimSpace(login))
	a, err := d.Accounts.AccountByLogin(r.Context(), login)
	switch {
	case err == nil:
		acct = "account:" + strconv.FormatInt(a.ID, 10)
	case tapline.ErrorCode(err) != tapline.ENOTFOUND:
		return [2]string{}, err
	}
	return [2]string{acct, "addr:" + d.clientNetwork(r)}, nil
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
