package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"tapline"
)

// maxPendingInvites bounds the pending invites of one account.
const maxPendingInvites = 100

// userColumns lists the columns scanUser reads, in order.
const userColumns = `u.id, u.account_id, u.email, u.role, u.created_at, u.password_gen`

func scanUser(row pgx.Row, extra ...any) (*tapline.User, error) {
	var u tapline.User
	if err := row.Scan(append([]any{&u.ID, &u.AccountID, &u.Email, &u.Role, &u.CreatedAt, &u.PasswordGen}, extra...)...); err != nil {
		return nil, err
	}
	return &u, nil
}

// hashToken is what a session id or an invite token is stored as.
func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// insertUser inserts u, of a known account, with password hash, filling in
// ID and CreatedAt; a taken email is ECONFLICT.
func insertUser(ctx context.Context, tx pgx.Tx, u *tapline.User, hash string) error {
	err := tx.QueryRow(ctx, `
		INSERT INTO users (account_id, email, password_hash, role) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at, password_gen`, u.AccountID, u.Email, hash, string(u.Role)).Scan(&u.ID, &u.CreatedAt, &u.PasswordGen)
	if pgCode(err) == codeUniqueViolation {
		return tapline.Errorf(tapline.ECONFLICT, "A user with this email exists already.")
	} else if err != nil {
		return fmt.Errorf("create user: %w", translate(err))
	}
	return nil
}

// userByLogin returns the user login names, with their password hash.
func (s *AccountService) userByLogin(ctx context.Context, login string) (*tapline.User, string, error) {
	login = strings.TrimSpace(login)
	if login == "" || !storable(login) {
		return nil, "", tapline.Errorf(tapline.ENOTFOUND, "User not found.")
	}
	var hash string
	// An email names its user; an account's name its first owner. Names
	// have no '@', so no login can be both.
	u, err := scanUser(s.db.pool.QueryRow(ctx, `
		(SELECT `+userColumns+`, u.password_hash FROM users u WHERE lower(u.email) = lower($1))
		UNION ALL
		(SELECT `+userColumns+`, u.password_hash FROM users u JOIN accounts a ON a.id = u.account_id
			WHERE a.name = $1 AND u.role = 'owner' ORDER BY u.id LIMIT 1)
		LIMIT 1`, login), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", tapline.Errorf(tapline.ENOTFOUND, "User not found.")
	} else if err != nil {
		return nil, "", fmt.Errorf("get user: %w", translate(err))
	}
	return u, hash, nil
}

// UserByLogin returns the user whose email is login, or the first owner
// of the account named login; ENOTFOUND when none.
func (s *AccountService) UserByLogin(ctx context.Context, login string) (*tapline.User, error) {
	u, _, err := s.userByLogin(ctx, login)
	return u, err
}

// Authenticate returns the user login names and their account if password
// is theirs, or EUNAUTHORIZED. An unknown login takes as long as a wrong
// password.
func (s *AccountService) Authenticate(ctx context.Context, login, password string) (*tapline.User, *tapline.Account, error) {
	u, hash, err := s.userByLogin(ctx, login)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		s.dummyOnce.Do(func() {
			s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("tapline-no-such-user"), s.cost())
		})
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return nil, nil, tapline.Errorf(tapline.EUNAUTHORIZED, "Wrong login or password.")
	} else if err != nil {
		return nil, nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return nil, nil, tapline.Errorf(tapline.EUNAUTHORIZED, "Wrong login or password.")
	}
	a, err := s.account(ctx, `WHERE id = $1`, u.AccountID)
	if err != nil {
		return nil, nil, err
	}
	return u, a, nil
}

// Users lists the account's users, oldest first.
func (s *AccountService) Users(ctx context.Context, accountID int64) ([]*tapline.User, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+userColumns+` FROM users u WHERE u.account_id = $1 ORDER BY u.id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	return users, nil
}

// teamChange runs fn in a transaction that holds the account's row lock,
// so changes to one account's users are serialised: two owners demoting
// each other at once cannot both pass the last-owner check. fn gets the
// role of the account's user userID (ENOTFOUND when the account has no
// such user) and the account's number of owners.
func (s *AccountService) teamChange(ctx context.Context, what string, accountID, userID int64, fn func(tx pgx.Tx, role tapline.Role, owners int) error) error {
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := lockAccount(ctx, tx, accountID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var role tapline.Role
	var owners int
	err = tx.QueryRow(ctx, `
		SELECT u.role, (SELECT count(*)::int FROM users o WHERE o.account_id = $1 AND o.role = 'owner')
		FROM users u WHERE u.id = $2 AND u.account_id = $1`, accountID, userID).Scan(&role, &owners)
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "User not found.")
	} else if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	if err := fn(tx, role, owners); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	return nil
}

// lockAccount takes the row lock of the account in tx, in a statement of
// its own: the statements after it read a snapshot taken once the lock is
// held, so they see what every earlier holder committed. ENOTFOUND for an
// unknown account.
func lockAccount(ctx context.Context, tx pgx.Tx, accountID int64) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE id = $1 FOR UPDATE`, accountID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	} else if err != nil {
		return fmt.Errorf("lock account: %w", translate(err))
	}
	return nil
}

// SetUserRole changes the role of the account's user, revoking a former
// owner's pending invites; the account keeps at least one owner (else
// ECONFLICT).
func (s *AccountService) SetUserRole(ctx context.Context, accountID, userID int64, role tapline.Role) error {
	if !role.Valid() {
		return tapline.Errorf(tapline.EINVALID, "role: %q; want owner or viewer", role)
	}
	return s.teamChange(ctx, "set user role", accountID, userID, func(tx pgx.Tx, old tapline.Role, owners int) error {
		if old == tapline.RoleOwner && role != tapline.RoleOwner && owners <= 1 {
			return tapline.Errorf(tapline.ECONFLICT, "This is the account's last owner: make another user an owner first.")
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET role = $2 WHERE id = $1`, userID, string(role)); err != nil {
			return fmt.Errorf("set user role: %w", translate(err))
		}
		if role != tapline.RoleOwner {
			return revokeInvitesBy(ctx, tx, userID)
		}
		return nil
	})
}

// revokeInvitesBy revokes the pending invites user made: an owner removed
// or made a viewer cannot come back, or bring anyone in, through them.
func revokeInvitesBy(ctx context.Context, tx pgx.Tx, userID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE invites SET revoked_at = now()
		WHERE invited_by = $1 AND accepted_at IS NULL AND revoked_at IS NULL`, userID); err != nil {
		return fmt.Errorf("revoke the invites of user %d: %w", userID, translate(err))
	}
	return nil
}

// RemoveUser deletes the account's user, and with them their sessions and
// pending invites; the account keeps at least one owner (else ECONFLICT).
func (s *AccountService) RemoveUser(ctx context.Context, accountID, userID int64) error {
	return s.teamChange(ctx, "remove user", accountID, userID, func(tx pgx.Tx, role tapline.Role, owners int) error {
		if role == tapline.RoleOwner && owners <= 1 {
			return tapline.Errorf(tapline.ECONFLICT, "This is the account's last owner: an account cannot be left without one.")
		}
		if err := revokeInvitesBy(ctx, tx, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, userID); err != nil {
			return fmt.Errorf("remove user: %w", translate(err))
		}
		return nil
	})
}

// CreateInvite stores inv and returns its token: 32 random bytes in
// URL-safe base64, stored as SHA-256. The email is stored in lower case.
func (s *AccountService) CreateInvite(ctx context.Context, inv *tapline.Invite) (string, error) {
	inv.Email = strings.ToLower(strings.TrimSpace(inv.Email))
	if err := validateEmail(inv.Email); err != nil {
		return "", err
	}
	if !inv.Role.Valid() {
		return "", tapline.Errorf(tapline.EINVALID, "role: %q; want owner or viewer", inv.Role)
	}
	if inv.ExpiresAt.IsZero() {
		return "", tapline.Errorf(tapline.EINVALID, "expires_at: required")
	}
	token, err := randomToken()
	if err != nil {
		return "", err
	}
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("create invite: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := lockAccount(ctx, tx, inv.AccountID); err != nil {
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			return "", err
		}
		return "", fmt.Errorf("create invite: %w", err)
	}
	var taken bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)`, inv.Email).Scan(&taken)
	if err != nil {
		return "", fmt.Errorf("create invite: %w", translate(err))
	}
	if taken {
		return "", tapline.Errorf(tapline.ECONFLICT, "%s is a user already (of this account or another).", inv.Email)
	}
	// A new invite to the same email replaces the pending one.
	if _, err := tx.Exec(ctx, `
		UPDATE invites SET revoked_at = now()
		WHERE account_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL`, inv.AccountID, inv.Email); err != nil {
		return "", fmt.Errorf("create invite: %w", translate(err))
	}
	var invitedBy *int64
	if inv.InvitedBy != 0 {
		invitedBy = &inv.InvitedBy
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO invites (account_id, email, role, token_hash, invited_by, expires_at)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE (SELECT count(*) FROM invites WHERE account_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()) < $7
		RETURNING id, created_at`,
		inv.AccountID, inv.Email, string(inv.Role), hashToken(token), invitedBy, inv.ExpiresAt, maxPendingInvites).Scan(&inv.ID, &inv.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", tapline.Errorf(tapline.ECONFLICT, "An account has at most %d pending invites; revoke some first.", maxPendingInvites)
	} else if pgCode(err) == codeForeignKeyViolation {
		return "", tapline.Errorf(tapline.ENOTFOUND, "User not found.") // the inviter was removed meanwhile
	} else if err != nil {
		return "", fmt.Errorf("create invite: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("create invite: %w", translate(err))
	}
	return token, nil
}

// inviteColumns lists the columns scanInvite reads, in order.
const inviteColumns = `i.id, i.account_id, i.email, i.role, i.created_at, i.expires_at, COALESCE(i.invited_by, 0), i.accepted_at, i.revoked_at`

func scanInvite(row pgx.Row) (*tapline.Invite, error) {
	var inv tapline.Invite
	if err := row.Scan(&inv.ID, &inv.AccountID, &inv.Email, &inv.Role, &inv.CreatedAt, &inv.ExpiresAt, &inv.InvitedBy, &inv.AcceptedAt, &inv.RevokedAt); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Invites lists the account's pending invites at now, newest first.
func (s *AccountService) Invites(ctx context.Context, accountID int64, now time.Time) ([]*tapline.Invite, error) {
	rows, err := s.db.pool.Query(ctx, `
		SELECT `+inviteColumns+` FROM invites i
		WHERE i.account_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > $2
		ORDER BY i.id DESC`, accountID, now)
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", translate(err))
	}
	invites, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.Invite, error) { return scanInvite(r) })
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", translate(err))
	}
	return invites, nil
}

// RevokeInvite ends the account's pending invite id.
func (s *AccountService) RevokeInvite(ctx context.Context, accountID, id int64) error {
	tag, err := s.db.pool.Exec(ctx, `
		UPDATE invites SET revoked_at = now()
		WHERE id = $1 AND account_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL`, id, accountID)
	if err != nil {
		return fmt.Errorf("revoke invite: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ENOTFOUND, "Invite not found.")
	}
	return nil
}

// invite reads the invite of token through q, locking it when lock is
// set; ENOTFOUND when there is none.
func invite(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, token string, lock bool) (*tapline.Invite, error) {
	if token == "" || !storable(token) || len(token) > 128 {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "This invite link is not valid: check that it was copied whole.")
	}
	sql := `SELECT ` + inviteColumns + ` FROM invites i WHERE i.token_hash = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	inv, err := scanInvite(q.QueryRow(ctx, sql, hashToken(token)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "This invite link is not valid: check that it was copied whole.")
	} else if err != nil {
		return nil, fmt.Errorf("get invite: %w", translate(err))
	}
	return inv, nil
}

// InviteByToken returns the invite of token and its account if it can be
// accepted at now: ENOTFOUND for an unknown token, EGONE for a used,
// revoked or expired one.
func (s *AccountService) InviteByToken(ctx context.Context, token string, now time.Time) (*tapline.Invite, *tapline.Account, error) {
	inv, err := invite(ctx, s.db.pool, token, false)
	if err != nil {
		return nil, nil, err
	}
	if err := inv.Usable(now); err != nil {
		return nil, nil, err
	}
	a, err := s.account(ctx, `WHERE id = $1`, inv.AccountID)
	if err != nil {
		return nil, nil, err
	}
	return inv, a, nil
}

// AcceptInvite makes the user of the invite of token with password and
// marks the invite accepted, in one transaction holding the invite's row
// lock: of two acceptances at once, the second finds it used (EGONE).
func (s *AccountService) AcceptInvite(ctx context.Context, token, password string, now time.Time) (*tapline.User, error) {
	hash, err := s.hashPassword(password)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept invite: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	inv, err := invite(ctx, tx, token, true)
	if err != nil {
		return nil, err
	}
	if err := inv.Usable(now); err != nil {
		return nil, err
	}
	u := &tapline.User{AccountID: inv.AccountID, Email: inv.Email, Role: inv.Role}
	if err := insertUser(ctx, tx, u, hash); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE invites SET accepted_at = $2 WHERE id = $1`, inv.ID, now); err != nil {
		return nil, fmt.Errorf("accept invite: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("accept invite: %w", translate(err))
	}
	return u, nil
}
