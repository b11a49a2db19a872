package tapline

import (
	"context"
	"time"
)

// Role is what a user may do in their account.
type Role string

// The roles of a user: an owner may do everything a logged-in user can
// (links, app settings, funnels, API tokens, the team, the raw data
// export); a viewer reads the reports and changes nothing but their own
// password.
const (
	RoleOwner  Role = "owner"
	RoleViewer Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleViewer }

// CanWrite reports whether a user of role r may change the account's
// apps, links, funnels, tokens and team.
func (r Role) CanWrite() bool { return r == RoleOwner }

// CanExport reports whether a user of role r may download an app's raw
// data (conversions, hits, events) from the dashboard: an owner, who could
// make an API token and export it anyway; not a viewer, who reads the
// reports and may make no token.
func (r Role) CanExport() bool { return r == RoleOwner }

// InviteLifetime is how long an invite link can be accepted.
const InviteLifetime = 7 * 24 * time.Hour

// User is a person who logs in to an account's dashboard. Their email is
// unique among all users, compared without case.
type User struct {
	ID        int64     `json:"id"`
	AccountID int64     `json:"account_id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	// PasswordGen counts the password's changes: a session is made only
	// under the generation its login checked (CreateSession).
	PasswordGen int64 `json:"-"`
}

// Invite asks someone, by a one-time link, to join an account with a
// role. The link's token is shown once, when made, and kept only as a
// hash; accepting it makes the user.
type Invite struct {
	ID        int64     `json:"id"`
	AccountID int64     `json:"account_id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// InvitedBy is the user who made it, 0 when they are gone.
	InvitedBy int64 `json:"invited_by,omitempty"`
	// AcceptedAt and RevokedAt are when it was used or revoked; nil when
	// not.
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Usable returns nil when inv can be accepted at now, else EGONE saying
// why: it was used, revoked or has expired.
func (inv *Invite) Usable(now time.Time) error {
	switch {
	case inv.AcceptedAt != nil:
		return Errorf(EGONE, "This invite has been used already: log in, or ask an owner for a new one.")
	case inv.RevokedAt != nil:
		return Errorf(EGONE, "This invite was revoked: ask an owner of the account for a new one.")
	case !now.Before(inv.ExpiresAt):
		return Errorf(EGONE, "This invite expired on %s: ask an owner of the account for a new one.", inv.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return nil
}

// UserService manages the users of accounts, their invites, logins and
// dashboard sessions. Lookups return ENOTFOUND when nothing matches
// (within the account named, so one account cannot reach another's users
// or invites).
type UserService interface {
	// Authenticate returns the user whose email is login, or, when login
	// is an account's name, that account's first owner, if password is
	// theirs; else EUNAUTHORIZED.
	Authenticate(ctx context.Context, login, password string) (*User, *Account, error)
	// UserByLogin returns the user login names, as Authenticate reads
	// it, or ENOTFOUND.
	UserByLogin(ctx context.Context, login string) (*User, error)
	// Users lists the account's users, oldest first.
	Users(ctx context.Context, accountID int64) ([]*User, error)
	// SetUserRole changes the role of the account's user; EINVALID for
	// an unknown role, ECONFLICT when it would leave the account without
	// an owner.
	SetUserRole(ctx context.Context, accountID, userID int64, role Role) error
	// RemoveUser deletes the account's user and ends their sessions;
	// ECONFLICT for the account's last owner.
	RemoveUser(ctx context.Context, accountID, userID int64) error

	// CreateInvite stores inv (AccountID, Email, Role, ExpiresAt,
	// InvitedBy set) and returns the token of its link, which is not kept.
	// An email that is a user's already is ECONFLICT; an earlier pending
	// invite of the same email to the account is revoked.
	CreateInvite(ctx context.Context, inv *Invite) (string, error)
	// Invites lists the account's pending invites (neither accepted,
	// revoked nor expired at now), newest first.
	Invites(ctx context.Context, accountID int64, now time.Time) ([]*Invite, error)
	// RevokeInvite ends the account's pending invite id; ENOTFOUND when
	// the account has no such pending invite.
	RevokeInvite(ctx context.Context, accountID, id int64) error
	// InviteByToken returns the invite of token and its account: ENOTFOUND
	// for an unknown token, EGONE for one accepted, revoked or expired at
	// now.
	InviteByToken(ctx context.Context, token string, now time.Time) (*Invite, *Account, error)
	// AcceptInvite makes the invite's user with password (EINVALID when
	// weak) and marks the invite used, in one transaction: a second
	// acceptance is EGONE, as for InviteByToken.
	AcceptInvite(ctx context.Context, token, password string, now time.Time) (*User, error)

	// Dashboard sessions, kept server-side so they can be ended.
	// CreateSession starts one for user u until expires and returns its
	// id, which is not kept (only its hash); EUNAUTHORIZED when the
	// password changed since u was read (a login racing a change) or the
	// user is gone.
	CreateSession(ctx context.Context, u *User, expires time.Time) (string, error)
	// SessionUser returns the user of session id and their account when
	// the session exists and has not expired at now; ENOTFOUND otherwise.
	SessionUser(ctx context.Context, id string, now time.Time) (*User, *Account, error)
	// EndSession ends one session (logging out); EndSessions ends every
	// session of the user but keep ("" for none).
	EndSession(ctx context.Context, id string) error
	EndSessions(ctx context.Context, userID int64, keep string) error
	// ChangePassword sets the user's password when old is their current
	// one (else EUNAUTHORIZED; a weak new one is EINVALID) and, in the
	// same transaction, ends every session of the user but keep.
	ChangePassword(ctx context.Context, userID int64, old, new, keep string) error

	// Login attempts, shared by every dashboard process: keys name what
	// is throttled (a user, a network). RecordLoginAttempt notes an
	// attempt at at for each key and returns, atomically with it, each
	// key's attempts at or after since (this one included), so concurrent
	// guesses cannot all see a low count. ForgetLoginAttempt drops the
	// attempt of key at at (a login that succeeded); ClearLoginFailures
	// forgets all of key's.
	RecordLoginAttempt(ctx context.Context, keys []string, at, since time.Time) (map[string]int, error)
	ForgetLoginAttempt(ctx context.Context, key string, at time.Time) error
	ClearLoginFailures(ctx context.Context, key string) error
}
