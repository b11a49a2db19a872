package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"tapline"
)

func sessionHash(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// CreateSession starts a session of the account until expires; the id is
// 32 random bytes in URL-safe base64, stored as SHA-256. Expired sessions
// of the account are dropped on the way.
func (s *AccountService) CreateSession(ctx context.Context, accountID int64, expires time.Time) (string, error) {
	id, err := randomToken()
	if err != nil {
		return "", err
	}
	if _, err := s.db.pool.Exec(ctx, `
		WITH gone AS (DELETE FROM sessions WHERE account_id = $1 AND expires_at < now())
		INSERT INTO sessions (id_hash, account_id, expires_at) VALUES ($2, $1, $3)`,
		accountID, sessionHash(id), expires); err != nil {
		if pgCode(err) == codeForeignKeyViolation {
			return "", tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
		}
		return "", fmt.Errorf("create session: %w", translate(err))
	}
	return id, nil
}

// SessionLive reports whether session id of the account exists and has not
// expired at now.
func (s *AccountService) SessionLive(ctx context.Context, accountID int64, id string, now time.Time) (bool, error) {
	var live bool
	err := s.db.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM sessions WHERE id_hash = $1 AND account_id = $2 AND expires_at > $3)`,
		sessionHash(id), accountID, now).Scan(&live)
	if err != nil {
		return false, fmt.Errorf("check session: %w", translate(err))
	}
	return live, nil
}

// EndSession ends session id; an unknown one is no error.
func (s *AccountService) EndSession(ctx context.Context, id string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, sessionHash(id)); err != nil {
		return fmt.Errorf("end session: %w", translate(err))
	}
	return nil
}

// EndSessions ends every session of the account but keep.
func (s *AccountService) EndSessions(ctx context.Context, accountID int64, keep string) error {
	if _, err := s.db.pool.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2`,
		accountID, sessionHash(keep)); err != nil {
		return fmt.Errorf("end sessions: %w", translate(err))
	}
	return nil
}

// ChangePassword sets the account's password when old is its current one.
func (s *AccountService) ChangePassword(ctx context.Context, accountID int64, old, new string) error {
	_, hash, err := s.account(ctx, `WHERE id = $1`, accountID)
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(old)) != nil {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "The current password is wrong.")
	}
	if len(new) < MinPasswordLength {
		return tapline.Errorf(tapline.EINVALID, "password: must be at least %d characters", MinPasswordLength)
	}
	if len(new) > MaxPasswordLength {
		return tapline.Errorf(tapline.EINVALID, "password: must be at most %d bytes", MaxPasswordLength)
	}
	if new == old {
		return tapline.Errorf(tapline.EINVALID, "password: the new one must differ from the current one")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(new), s.cost())
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if _, err := s.db.pool.Exec(ctx, `UPDATE accounts SET password_hash = $2 WHERE id = $1`, accountID, string(h)); err != nil {
		return fmt.Errorf("change password: %w", translate(err))
	}
	return nil
}

// AccountByLogin returns the account whose name or email is login.
func (s *AccountService) AccountByLogin(ctx context.Context, login string) (*tapline.Account, error) {
	login = strings.TrimSpace(login)
	if login == "" || !storable(login) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	}
	a, _, err := s.account(ctx, `WHERE name = $1 OR email = lower($1) ORDER BY id LIMIT 1`, login)
	return a, err
}

// LoginFailures counts each key's failures at or after since.
func (s *AccountService) LoginFailures(ctx context.Context, keys []string, since time.Time) (map[string]int, error) {
	rows, err := s.db.pool.Query(ctx, `
		SELECT key, count(*)::int FROM login_failures WHERE key = ANY($1) AND at >= $2 GROUP BY key`, keys, since)
	if err != nil {
		return nil, fmt.Errorf("count login failures: %w", translate(err))
	}
	out := make(map[string]int, len(keys))
	var k string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error { out[k] = n; return nil }); err != nil {
		return nil, fmt.Errorf("count login failures: %w", translate(err))
	}
	return out, nil
}

// loginFailureHorizon is how long failures are kept at all.
const loginFailureHorizon = 24 * time.Hour

// RecordLoginFailure notes a failure at at for each key, dropping the
// keys' failures older than a day.
func (s *AccountService) RecordLoginFailure(ctx context.Context, keys []string, at time.Time) error {
	_, err := s.db.pool.Exec(ctx, `
		WITH old AS (DELETE FROM login_failures WHERE key = ANY($1) AND at < $3)
		INSERT INTO login_failures (key, at) SELECT unnest($1::text[]), $2`, keys, at, at.Add(-loginFailureHorizon))
	if err != nil {
		return fmt.Errorf("record login failure: %w", translate(err))
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
