-- Counts each account's password changes: a login makes its session only
-- under the generation it checked, so one racing a password change cannot
-- outlive it.
ALTER TABLE accounts ADD COLUMN password_gen bigint NOT NULL DEFAULT 0;
