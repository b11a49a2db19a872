-- Links made and edited in the dashboard: query parameters every tap
-- carries, the deep link value, and archiving (off the lists, still
-- redirecting).
ALTER TABLE links
	ADD COLUMN params jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN deep_link text NOT NULL DEFAULT '',
	ADD COLUMN archived_at timestamptz;
