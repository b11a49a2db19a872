package dashboard

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// accountData feeds the account page.
type accountData struct {
	Account *tapline.Account
	User    *tapline.User
	Tokens  []*tapline.APIToken
	// NewToken and NewSecret are the token just made: its secret is
	// shown this once.
	NewToken  *tapline.APIToken
	NewSecret string
	Error     string
	Revoked   bool
	// PasswordError is why a password change was refused; Password is
	// set after one.
	PasswordError string
	Password      bool
}

func (d *Dashboard) accountPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d.renderAccount(w, r, http.StatusOK, accountData{Revoked: q.Get("revoked") == "1", Password: q.Get("password") == "changed"})
}

// changePasswordForm changes the password and ends every other session of
// the account.
func (d *Dashboard) changePasswordForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	current, next := r.PostForm.Get("current"), r.PostForm.Get("new")
	// A guess at the current password counts as a login attempt: a stolen
	// session cannot try passwords here faster than at the login form.
	attempt, blocked, err := d.tryPassword(w, r, userKey(p.User))
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if blocked {
		d.renderAccount(w, r, http.StatusTooManyRequests, accountData{PasswordError: "Too many wrong passwords for this login. Try again in a few minutes."})
		return
	}
	if next != r.PostForm.Get("confirm") {
		err = tapline.Errorf(tapline.EINVALID, "The new password and its confirmation differ.")
	} else {
		err = d.Accounts.ChangePassword(r.Context(), p.User.ID, current, next, p.Session)
	}
	if err != nil {
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.EUNAUTHORIZED && code != tapline.ECONFLICT {
			d.writeError(w, r, err)
			return
		}
		d.renderAccount(w, r, http.StatusBadRequest, accountData{PasswordError: tapline.ErrorMessage(err)})
		return
	}
	if err := d.passwordRight(r, attempt); err != nil {
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account?password=changed", http.StatusSeeOther)
}

// renderAccount answers the account page with its tokens listed.
func (d *Dashboard) renderAccount(w http.ResponseWriter, r *http.Request, status int, data accountData) {
	p := principalFrom(r.Context())
	tokens, err := d.Accounts.APITokens(r.Context(), p.Account.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data.Account, data.User, data.Tokens = p.Account, p.User, tokens
	d.render(w, r, status, "account", data)
}

func (d *Dashboard) createTokenForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	t, secret, err := d.Accounts.CreateAPIToken(r.Context(), p.Account.ID, r.PostForm.Get("name"))
	if err != nil {
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.ECONFLICT {
			d.writeError(w, r, err)
			return
		}
		d.renderAccount(w, r, http.StatusBadRequest, accountData{Error: tapline.ErrorMessage(err)})
		return
	}
	// Shown in this answer only: not a redirect, so nothing keeps it.
	w.Header().Set("Cache-Control", "no-store")
	d.renderAccount(w, r, http.StatusCreated, accountData{NewToken: t, NewSecret: secret})
}

func (d *Dashboard) revokeTokenForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := parseID(chi.URLParam(r, "tid"), "API token")
	if err == nil {
		err = d.Accounts.RevokeAPIToken(r.Context(), p.Account.ID, id)
	}
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account?revoked=1", http.StatusSeeOther)
}
