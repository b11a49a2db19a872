-- Funnels: definitions, their versions, the handoffs the matchers fix and
-- the backfill's scan ranges. docs/funnels.md says how they fit together.
-- Results live in fact_funnel_steps, keyed by funnel_versions.id.

CREATE TABLE funnels (
	id         bigserial PRIMARY KEY,
	app_id     bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	name       text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	deleted_at timestamptz
);

CREATE UNIQUE INDEX funnels_app_name ON funnels (app_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE funnel_versions (
	id         bigserial PRIMARY KEY,
	funnel_id  bigint NOT NULL REFERENCES funnels (id) ON DELETE CASCADE,
	version    int NOT NULL,
	definition jsonb NOT NULL,
	status     text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'backfilling', 'live', 'superseded', 'cancelled')),
	created_at timestamptz NOT NULL DEFAULT now(),
	handoff_at timestamptz,
	live_at    timestamptz,
	ended_at   timestamptz,
	UNIQUE (funnel_id, version)
);

CREATE INDEX funnel_versions_active ON funnel_versions (status)
	WHERE status IN ('pending', 'backfilling', 'live');

-- One row per partition of the hits and events topics: the first offset
-- the live matcher counts the version at. Written with the matcher's
-- offsets, in the same transaction.
CREATE TABLE funnel_handoffs (
	version_id  bigint NOT NULL REFERENCES funnel_versions (id) ON DELETE CASCADE,
	topic       text NOT NULL,
	partition   int NOT NULL,
	next_offset bigint NOT NULL,
	PRIMARY KEY (version_id, topic, partition)
);

-- The backfill's ranges (start_pos, end_pos] of the raw store's
-- installation key ring; cursor_pos is the last key counted. A worker
-- holds a range by owner and lease_until.
CREATE TABLE funnel_backfill_ranges (
	version_id    bigint NOT NULL REFERENCES funnel_versions (id) ON DELETE CASCADE,
	range_no      int NOT NULL,
	start_pos     bigint NOT NULL,
	end_pos       bigint NOT NULL,
	cursor_pos    bigint NOT NULL,
	done          boolean NOT NULL DEFAULT false,
	rows_scanned  bigint NOT NULL DEFAULT 0,
	installations bigint NOT NULL DEFAULT 0,
	owner         text,
	lease_until   timestamptz,
	updated_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (version_id, range_no)
);
