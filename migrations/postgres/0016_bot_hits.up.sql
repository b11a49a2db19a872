-- Requests for links answered with their redirect (or a pixel) that are
-- no taps: HEAD requests, prefetches, link previewers and crawlers
-- (tapline.FactBotHits; agent is tapline.Hit.Bot). They are never hits
-- and never credited with an install.
CREATE TABLE fact_bot_hits (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	agent    text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, agent)
);
