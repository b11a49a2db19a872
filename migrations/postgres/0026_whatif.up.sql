-- What-if replays (package whatif): requested from the dashboard or the
-- CLI, run by a process that holds the raw store, their results kept.
CREATE TABLE whatif_runs (
	id            bigserial PRIMARY KEY,
	app_id        bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	request       jsonb NOT NULL,
	status        text NOT NULL DEFAULT 'pending',
	result        jsonb,
	error         text NOT NULL DEFAULT '',
	requested_by  text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL DEFAULT now(),
	started_at    timestamptz,
	finished_at   timestamptz,
	claimed_until timestamptz
);

CREATE INDEX whatif_runs_app ON whatif_runs (app_id, id DESC);
CREATE INDEX whatif_runs_pending ON whatif_runs (id) WHERE status IN ('pending', 'running');
