package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// maxTokensPerAccount bounds the live tokens of one account.
const maxTokensPerAccount = 50

// CreateAPIToken makes a read-only API token for the account: its secret
// is APITokenPrefix and 32 random bytes in URL-safe base64, stored as
// SHA-256.
func (s *AccountService) CreateAPIToken(ctx context.Context, accountID int64, name string) (*tapline.APIToken, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxNameLength || !storable(name) {
		return nil, "", tapline.Errorf(tapline.EINVALID, "name: required, at most %d characters (say what uses the token)", maxNameLength)
	}
	random, err := randomToken()
	if err != nil {
		return nil, "", err
	}
	secret := tapline.APITokenPrefix + random
	sum := sha256.Sum256([]byte(secret))
	t := &tapline.APIToken{AccountID: accountID, Name: name, Prefix: secret[:len(tapline.APITokenPrefix)+6]}
	// The count and the insert in one statement: a burst cannot pass the
	// bound by much, and an unknown account inserts nothing.
	err = s.db.pool.QueryRow(ctx, `
		INSERT INTO api_tokens (account_id, name, prefix, secret_hash)
		SELECT $1, $2, $3, $4 FROM accounts
		WHERE id = $1 AND (SELECT count(*) FROM api_tokens WHERE account_id = $1 AND revoked_at IS NULL) < $5
		RETURNING id, created_at`, accountID, name, t.Prefix, sum[:], maxTokensPerAccount).Scan(&t.ID, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, aerr := s.account(ctx, `WHERE id = $1`, accountID); aerr != nil {
			return nil, "", aerr
		}
		return nil, "", tapline.Errorf(tapline.ECONFLICT, "An account has at most %d live API tokens; revoke one first.", maxTokensPerAccount)
	}
	if err != nil {
		return nil, "", fmt.Errorf("create api token: %w", translate(err))
	}
	return t, secret, nil
}

// APITokens lists the account's tokens, newest first.
func (s *AccountService) APITokens(ctx context.Context, accountID int64) ([]*tapline.APIToken, error) {
	rows, err := s.db.pool.Query(ctx, `
		SELECT id, account_id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens
		WHERE account_id = $1 ORDER BY id DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", translate(err))
	}
	tokens, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.APIToken, error) {
		var t tapline.APIToken
		err := r.Scan(&t.ID, &t.AccountID, &t.Name, &t.Prefix, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
		return &t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", translate(err))
	}
	return tokens, nil
}

// RevokeAPIToken ends the account's token id (again: no change).
func (s *AccountService) RevokeAPIToken(ctx context.Context, accountID, id int64) error {
	tag, err := s.db.pool.Exec(ctx, `
		UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND account_id = $2`, id, accountID)
	if err != nil {
		return fmt.Errorf("revoke api token: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ENOTFOUND, "API token %d not found.", id)
	}
	return nil
}

// AccountByAPIToken returns the account of a live token and notes its use
// (at most once a minute per token).
func (s *AccountService) AccountByAPIToken(ctx context.Context, secret string) (*tapline.Account, error) {
	bad := tapline.Errorf(tapline.EUNAUTHORIZED, "Invalid API token.")
	if !strings.HasPrefix(secret, tapline.APITokenPrefix) || len(secret) > 200 {
		return nil, bad
	}
	sum := sha256.Sum256([]byte(secret))
	var id int64
	err := s.db.pool.QueryRow(ctx, `
		UPDATE api_tokens SET last_used_at = now()
		WHERE secret_hash = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
		RETURNING account_id`, sum[:]).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.db.pool.QueryRow(ctx, `SELECT account_id FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL`, sum[:]).Scan(&id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bad
	}
	if err != nil {
		return nil, fmt.Errorf("check api token: %w", translate(err))
	}
	return s.account(ctx, `WHERE id = $1`, id)
}
