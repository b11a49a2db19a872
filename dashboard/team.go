package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/internal/httperr"
)

// teamData feeds the team page: the account's users and pending invites.
type teamData struct {
	Account *tapline.Account
	Me      *tapline.User
	Users   []*tapline.User
	Invites []*tapline.Invite
	// Owners counts the owners among Users: the last one cannot be
	// removed or demoted.
	Owners int
	// NewInvite and NewInviteURL are the invite just made: its link is
	// shown this once.
	NewInvite    *tapline.Invite
	NewInviteURL string
	// Email and Role refill the invite form after a refusal.
	Email string
	Role  tapline.Role
	Error string
	// Notice says what the last change did.
	Notice string
}

// teamNotices are the notices a change's redirect may ask for.
var teamNotices = map[string]string{
	"revoked": "Invite revoked: its link no longer works.",
	"role":    "Role changed.",
	"removed": "User removed: their sessions have ended.",
}

func (d *Dashboard) teamPage(w http.ResponseWriter, r *http.Request) {
	d.renderTeam(w, r, http.StatusOK, teamData{Notice: teamNotices[r.URL.Query().Get("done")]})
}

// renderTeam answers the team page with the account's users and pending
// invites.
func (d *Dashboard) renderTeam(w http.ResponseWriter, r *http.Request, status int, data teamData) {
	p := principalFrom(r.Context())
	users, err := d.Accounts.Users(r.Context(), p.Account.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	invites, err := d.Accounts.Invites(r.Context(), p.Account.ID, d.now())
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data.Account, data.Me, data.Users, data.Invites = p.Account, p.User, users, invites
	for _, u := range users {
		if u.Role == tapline.RoleOwner {
			data.Owners++
		}
	}
	if data.Role == "" {
		data.Role = tapline.RoleViewer
	}
	d.render(w, r, status, "team", data)
}

// teamFormError answers a refused team change on the page, with the status
// of its code, or as an error page when it is not the form's fault (an
// unknown user or invite is 404).
func (d *Dashboard) teamFormError(w http.ResponseWriter, r *http.Request, err error, data teamData) {
	switch tapline.ErrorCode(err) {
	case tapline.EINVALID:
		data.Error = tapline.ErrorMessage(err)
		d.renderTeam(w, r, http.StatusBadRequest, data)
	case tapline.ECONFLICT:
		data.Error = tapline.ErrorMessage(err)
		d.renderTeam(w, r, http.StatusConflict, data)
	default:
		d.writeError(w, r, err)
	}
}

// parseRole reads a role from a form.
func parseRole(s string) (tapline.Role, error) {
	role := tapline.Role(strings.TrimSpace(s))
	if !role.Valid() {
		return "", tapline.Errorf(tapline.EINVALID, "Choose a role: owner or viewer.")
	}
	return role, nil
}

// createInviteForm makes an invite and shows its link once.
func (d *Dashboard) createInviteForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := parseForm(w, r); err != nil {
		d.teamFormError(w, r, err, teamData{})
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	data := teamData{Email: email, Role: tapline.Role(r.PostForm.Get("role"))}
	if email == "" {
		d.teamFormError(w, r, tapline.Errorf(tapline.EINVALID, "Enter the email address of the person to invite."), data)
		return
	}
	role, err := parseRole(r.PostForm.Get("role"))
	if err != nil {
		data.Role = ""
		d.teamFormError(w, r, err, data)
		return
	}
	inv := &tapline.Invite{AccountID: p.Account.ID, Email: email, Role: role, InvitedBy: p.User.ID,
		ExpiresAt: d.now().Add(tapline.InviteLifetime)}
	token, err := d.Accounts.CreateInvite(r.Context(), inv)
	if err != nil {
		d.teamFormError(w, r, err, data)
		return
	}
	// Shown in this answer only: not a redirect, so nothing keeps it.
	w.Header().Set("Cache-Control", "no-store")
	d.renderTeam(w, r, http.StatusCreated, teamData{NewInvite: inv, NewInviteURL: d.inviteURL(r, token)})
}

// inviteURL is the link of an invite token on the site r was sent to
// (behind a proxy, the host it names).
func (d *Dashboard) inviteURL(r *http.Request, token string) string {
	scheme := "http"
	if r.TLS != nil || d.Config.SecureCookies {
		scheme = "https"
	}
	host := r.Host
	if fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); strings.TrimSpace(fwd) != "" {
		host = strings.TrimSpace(fwd)
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: "/invite/" + token}).String()
}

func (d *Dashboard) revokeInviteForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := parseID(chi.URLParam(r, "iid"), "Invite")
	if err == nil {
		err = d.Accounts.RevokeInvite(r.Context(), p.Account.ID, id)
	}
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account/users?done=revoked", http.StatusSeeOther)
}

func (d *Dashboard) setRoleForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := parseID(chi.URLParam(r, "uid"), "User")
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if err := parseForm(w, r); err != nil {
		d.teamFormError(w, r, err, teamData{})
		return
	}
	role, err := parseRole(r.PostForm.Get("role"))
	if err == nil {
		err = d.Accounts.SetUserRole(r.Context(), p.Account.ID, id, role)
	}
	if err != nil {
		d.teamFormError(w, r, err, teamData{})
		return
	}
	http.Redirect(w, r, "/account/users?done=role", http.StatusSeeOther)
}

// removeUserForm removes a user of the account; removing oneself logs out.
func (d *Dashboard) removeUserForm(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := parseID(chi.URLParam(r, "uid"), "User")
	if err == nil {
		err = d.Accounts.RemoveUser(r.Context(), p.Account.ID, id)
	}
	if err != nil {
		d.teamFormError(w, r, err, teamData{})
		return
	}
	if id == p.User.ID {
		d.clearSession(w)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account/users?done=removed", http.StatusSeeOther)
}

// inviteData feeds the page where an invite is accepted.
type inviteData struct {
	Invite  *tapline.Invite
	Account *tapline.Account
	Token   string
	Error   string
}

// invitePage shows an invite and the form to accept it, or why it cannot
// be: an unknown link is 404, a used, revoked or expired one 410.
func (d *Dashboard) invitePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := chi.URLParam(r, "token")
	inv, a, err := d.Accounts.InviteByToken(r.Context(), token, d.now())
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "invite", inviteData{Invite: inv, Account: a, Token: token})
}

// acceptInvite makes the invited user with the password chosen and logs
// them in.
func (d *Dashboard) acceptInvite(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := chi.URLParam(r, "token")
	inv, a, err := d.Accounts.InviteByToken(r.Context(), token, d.now())
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := inviteData{Invite: inv, Account: a, Token: token}
	if err := parseForm(w, r); err != nil {
		data.Error = tapline.ErrorMessage(err)
		d.render(w, r, http.StatusBadRequest, "invite", data)
		return
	}
	password := r.PostForm.Get("password")
	var u *tapline.User
	if password != r.PostForm.Get("confirm") {
		err = tapline.Errorf(tapline.EINVALID, "The password and its confirmation differ.")
	} else {
		u, err = d.Accounts.AcceptInvite(r.Context(), token, password, d.now())
	}
	switch tapline.ErrorCode(err) {
	case "":
	case tapline.EINVALID, tapline.ECONFLICT:
		data.Error = tapline.ErrorMessage(err)
		d.render(w, r, httperr.Status(tapline.ErrorCode(err)), "invite", data)
		return
	default:
		d.writeError(w, r, err)
		return
	}
	// A browser logged in as someone else is now the new user's: the
	// other session ends rather than linger behind a replaced cookie.
	if old, err := d.sessionPrincipal(r); err == nil && old != nil {
		if err := d.Accounts.EndSession(r.Context(), old.Session); err != nil {
			d.writeError(w, r, err)
			return
		}
	}
	if err := d.setSession(r.Context(), w, u); err != nil {
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
}
