-- Several users per account. Each account's login (email, password and its
-- generation) becomes its first user, an owner, so existing logins keep
-- working; sessions belong to a user from here on.
CREATE TABLE users (
	id            bigserial PRIMARY KEY,
	account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	email         text NOT NULL,
	password_hash text NOT NULL,
	-- Counts the password's changes (see 0010_password_gen).
	password_gen  bigint NOT NULL DEFAULT 0,
	role          text NOT NULL CHECK (role IN ('owner', 'viewer')),
	created_at    timestamptz NOT NULL DEFAULT now()
);

-- One user per email, whatever its case, across every account.
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_account ON users (account_id);

INSERT INTO users (account_id, email, password_hash, password_gen, role, created_at)
SELECT id, lower(email), password_hash, password_gen, 'owner', created_at FROM accounts ORDER BY id;

ALTER TABLE sessions ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
UPDATE sessions s SET user_id = u.id FROM users u WHERE u.account_id = s.account_id;
ALTER TABLE sessions ALTER COLUMN user_id SET NOT NULL;
DROP INDEX sessions_account;
ALTER TABLE sessions DROP COLUMN account_id;
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE accounts DROP COLUMN email, DROP COLUMN password_hash, DROP COLUMN password_gen;

-- Invites by one-time link: the token is kept only as its SHA-256.
CREATE TABLE invites (
	id          bigserial PRIMARY KEY,
	account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	email       text NOT NULL,
	role        text NOT NULL CHECK (role IN ('owner', 'viewer')),
	token_hash  bytea NOT NULL UNIQUE,
	invited_by  bigint REFERENCES users (id) ON DELETE SET NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	accepted_at timestamptz,
	revoked_at  timestamptz
);

CREATE INDEX invites_account ON invites (account_id);
