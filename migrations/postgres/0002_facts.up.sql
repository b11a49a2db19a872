-- Hourly fact tables, one per tapline.FactTable. hour is the UTC hour;
-- link_id 0 means no link (organic). count and sum are what deltas add to.

CREATE TABLE fact_hits (
	app_id   bigint NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint NOT NULL,
	platform text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform)
);

CREATE TABLE fact_events (
	app_id     bigint NOT NULL,
	hour       timestamptz NOT NULL,
	link_id    bigint NOT NULL,
	event_name text NOT NULL,
	platform   text NOT NULL,
	method     text NOT NULL,
	count      bigint NOT NULL DEFAULT 0,
	sum        bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, event_name, platform, method)
);

CREATE TABLE fact_installs (
	app_id   bigint NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint NOT NULL,
	platform text NOT NULL,
	method   text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method)
);

-- sum is the total click-to-install time in seconds.
CREATE TABLE fact_conversions (
	app_id   bigint NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint NOT NULL,
	platform text NOT NULL,
	method   text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method)
);

-- count is purchases, sum is revenue in micros of currency.
CREATE TABLE fact_revenue (
	app_id   bigint NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint NOT NULL,
	platform text NOT NULL,
	currency text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, currency)
);

CREATE TABLE consumer_offsets (
	consumer    text NOT NULL,
	topic       text NOT NULL,
	partition   int NOT NULL,
	next_offset bigint NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, topic, partition)
);
