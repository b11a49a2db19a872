-- Read-only reporting API tokens of an account. The secret is kept only as
-- its SHA-256; prefix is its first characters, shown to tell tokens apart.
CREATE TABLE api_tokens (
	id           bigserial PRIMARY KEY,
	account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name         text NOT NULL,
	prefix       text NOT NULL,
	secret_hash  bytea NOT NULL UNIQUE,
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz,
	revoked_at   timestamptz
);

CREATE INDEX api_tokens_account ON api_tokens (account_id);
