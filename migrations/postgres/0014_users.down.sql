-- Back to one login per account: its first owner's. Other users and
-- their sessions are dropped.
DROP TABLE IF EXISTS invites;

ALTER TABLE accounts ADD COLUMN email text, ADD COLUMN password_hash text,
	ADD COLUMN password_gen bigint NOT NULL DEFAULT 0;
UPDATE accounts a SET email = u.email, password_hash = u.password_hash, password_gen = u.password_gen
FROM (SELECT DISTINCT ON (account_id) account_id, email, password_hash, password_gen
	FROM users WHERE role = 'owner' ORDER BY account_id, id) u
WHERE u.account_id = a.id;
-- An account left without an owner cannot be logged in to.
UPDATE accounts SET email = 'account-' || id || '@invalid', password_hash = '!' WHERE email IS NULL;
ALTER TABLE accounts ALTER COLUMN email SET NOT NULL, ALTER COLUMN password_hash SET NOT NULL,
	ADD CONSTRAINT accounts_email_key UNIQUE (email);

ALTER TABLE sessions ADD COLUMN account_id bigint REFERENCES accounts (id) ON DELETE CASCADE;
DELETE FROM sessions s USING users u
WHERE u.id = s.user_id AND u.id IS DISTINCT FROM (SELECT min(o.id) FROM users o WHERE o.account_id = u.account_id AND o.role = 'owner');
UPDATE sessions s SET account_id = u.account_id FROM users u WHERE u.id = s.user_id;
ALTER TABLE sessions ALTER COLUMN account_id SET NOT NULL;
DROP INDEX sessions_user;
ALTER TABLE sessions DROP COLUMN user_id;
CREATE INDEX sessions_account ON sessions (account_id);

DROP TABLE users;
