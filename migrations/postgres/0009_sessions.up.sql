-- Dashboard sessions kept server-side, so logging out and changing the
-- password end them; the cookie carries the id, the table its SHA-256.
CREATE TABLE sessions (
	id_hash    bytea PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_account ON sessions (account_id);

-- Failed logins per throttled key (an account, an address), shared by
-- every dashboard process.
CREATE TABLE login_failures (
	key text NOT NULL,
	at  timestamptz NOT NULL
);

CREATE INDEX login_failures_key_at ON login_failures (key, at);
