package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"golang.org/x/crypto/bcrypt"

	"tapline"
)

// CreateSession starts a session of user u until expires, if their
// password is still of u.PasswordGen; the id is 32 random bytes in URL-safe
// base64, stored as SHA-256. Expired sessions of the user are dropped on
// the way.
func (s *AccountService) CreateSession(ctx context.Context, u *tapline.User, expires time.Time) (string, error) {
	id, err := randomToken()
	if err != nil {
		return "", err
	}
	tag, err := s.db.pool.Exec(ctx, `
		WITH gone AS (DELETE FROM sessions WHERE user_id = $1 AND expires_at < now())
		INSERT INTO sessions (id_hash, user_id, expires_at)
		SELECT $2, id, $3 FROM users WHERE id = $1 AND password_gen = $4`,
		u.ID, hashToken(id), expires, u.PasswordGen)
	if err != nil {
		return "", fmt.Errorf("create session: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return "", tapline.Errorf(tapline.EUNAUTHORIZED, "The password changed while logging in: log in again.")
	}
	return id, nil
}

// SessionUser returns the user of session id, live at now, and their
// account; ENOTFOUND when there is no such session.
func (s *AccountService) SessionUser(ctx context.Context, id string, now time.Time) (*tapline.User, *tapline.Account, error) {
	var a tapline.Account
	u, err := scanUser(s.db.pool.QueryRow(ctx, `
		SELECT `+userColumns+`, a.id, a.name, a.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id JOIN accounts a ON a.id = u.account_id
		WHERE s.id_hash = $1 AND s.expires_at > $2`, hashToken(id), now), &a.ID, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, tapline.Errorf(tapline.ENOTFOUND, "Session not found.")
	} else if err != nil {
		return nil, nil, fmt.Errorf("get session: %w", translate(err))
	}
	return u, &a, nil
}

// EndSession ends session id; an unknown one is no error.
func (s *AccountService) EndSession(ctx context.Context, id string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, hashToken(id)); err != nil {
		return fmt.Errorf("end session: %w", translate(err))
	}
	return nil
}

// EndSessions ends every session of the user but keep.
func (s *AccountService) EndSessions(ctx context.Context, userID int64, keep string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2`,
		userID, hashToken(keep)); err != nil {
		return fmt.Errorf("end sessions: %w", translate(err))
	}
	return nil
}

// ChangePassword sets the user's password when old is their current one
// and ends every other session of the user but keep, in one transaction
// that also moves the password's generation on (so a login checked against
// the old password makes no session).
func (s *AccountService) ChangePassword(ctx context.Context, userID int64, old, new, keep string) error {
	var hash string
	u, err := scanUser(s.db.pool.QueryRow(ctx, `SELECT `+userColumns+`, u.password_hash FROM users u WHERE u.id = $1`, userID), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "User not found.")
	} else if err != nil {
		return fmt.Errorf("change password: %w", translate(err))
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(old)) != nil {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "The current password is wrong.")
	}
	if new == old {
		return tapline.Errorf(tapline.EINVALID, "password: the new one must differ from the current one")
	}
	h, err := s.hashPassword(new)
	if err != nil {
		return err
	}
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("change password: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, password_gen = password_gen + 1 WHERE id = $1 AND password_gen = $3`,
		userID, h, u.PasswordGen)
	if err != nil {
		return fmt.Errorf("change password: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ECONFLICT, "The password changed meanwhile; try again.")
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2`, userID, hashToken(keep)); err != nil {
		return fmt.Errorf("change password: end sessions: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("change password: %w", translate(err))
	}
	return nil
}

// loginFailureHorizon is how long attempts are kept at all.
const loginFailureHorizon = 24 * time.Hour

// RecordLoginAttempt notes an attempt at at for each key and counts each
// key's attempts at or after since, this one included, dropping the keys'
// attempts older than a day. Each key is counted under a transaction lock
// of its own, taken in key order, so of concurrent attempts the k-th to
// count sees at least k.
func (s *AccountService) RecordLoginAttempt(ctx context.Context, keys []string, at, since time.Time) (map[string]int, error) {
	keys = slices.Sorted(slices.Values(keys))
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record login attempt: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	out := make(map[string]int, len(keys))
	for _, k := range keys {
		// The lock first, in a statement of its own: the count below then
		// reads a snapshot taken after it, which holds the attempts of
		// every transaction that had the lock before.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('login/' || $1, 0))`, k); err != nil {
			return nil, fmt.Errorf("record login attempt: %w", translate(err))
		}
		var n int
		if err := tx.QueryRow(ctx, `
			WITH old AS (DELETE FROM login_failures WHERE key = $1 AND at < $4),
			ins AS (INSERT INTO login_failures (key, at) VALUES ($1, $2))
			SELECT count(*)::int + 1 FROM login_failures WHERE key = $1 AND at >= $3`, // + this attempt, not visible to its own statement
			k, at, since, at.Add(-loginFailureHorizon)).Scan(&n); err != nil {
			return nil, fmt.Errorf("record login attempt: %w", translate(err))
		}
		out[k] = n
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record login attempt: %w", translate(err))
	}
	return out, nil
}

// ForgetLoginAttempt drops one attempt of key at at.
func (s *AccountService) ForgetLoginAttempt(ctx context.Context, key string, at time.Time) error {
	if _, err := s.db.pool.Exec(ctx, `
		DELETE FROM login_failures WHERE ctid = (SELECT ctid FROM login_failures WHERE key = $1 AND at = $2 LIMIT 1)`, key, at); err != nil {
		return fmt.Errorf("forget login attempt: %w", translate(err))
	}
	return nil
}

// ClearLoginFailures forgets key's failures.
func (s *AccountService) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key); err != nil {
		return fmt.Errorf("clear login failures: %w", translate(err))
	}
	return nil
}
