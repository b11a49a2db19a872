-- Hourly funnel results, tapline.FactFunnelSteps (docs/funnels.md, "Outcome
-- and results"). hour is the UTC hour the installation entered the funnel;
-- funnel_version is a funnel version's id; step is the level reached,
-- 1-based; bucket indexes tapline.FunnelBuckets. count is installations
-- that reached the step with the time from the previous step in the bucket,
-- sum the total of those times in seconds.

CREATE TABLE fact_funnel_steps (
	app_id         bigint NOT NULL,
	hour           timestamptz NOT NULL,
	funnel_version bigint NOT NULL,
	breakdown      text NOT NULL,
	step           int NOT NULL,
	bucket         int NOT NULL,
	count          bigint NOT NULL DEFAULT 0,
	sum            bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, funnel_version, breakdown, step, bucket)
);
