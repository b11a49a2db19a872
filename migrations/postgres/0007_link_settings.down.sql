ALTER TABLE links DROP COLUMN params, DROP COLUMN deep_link, DROP COLUMN archived_at;
