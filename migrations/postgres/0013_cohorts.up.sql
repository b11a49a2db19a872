-- Cohorts (tapline.FactCohortActivity, tapline.FactCohortRevenue): keyed by
-- the UTC hour of the install and the day after it (day_n, 0 to
-- tapline.MaxCohortDay), under the install's attribution. Activity counts
-- the installs on day 0 and the installs active on day N; revenue the
-- purchases on day N and their micros.
CREATE TABLE fact_cohort_activity (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	method   text        NOT NULL,
	day_n    int         NOT NULL,
	source   text        NOT NULL,
	medium   text        NOT NULL,
	campaign text        NOT NULL,
	adgroup  text        NOT NULL,
	creative text        NOT NULL,
	site     text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method, day_n, source, medium, campaign, adgroup, creative, site)
);

CREATE TABLE fact_cohort_revenue (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	method   text        NOT NULL,
	currency text        NOT NULL,
	day_n    int         NOT NULL,
	source   text        NOT NULL,
	medium   text        NOT NULL,
	campaign text        NOT NULL,
	adgroup  text        NOT NULL,
	creative text        NOT NULL,
	site     text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method, currency, day_n, source, medium, campaign, adgroup, creative, site)
);

-- The installations already counted active on a day: the flush that first
-- stores (app, install, day) counts it, in the same transaction, so an
-- installation counts once a day however many events it sends and
-- whichever partitions they come through. Rows of installs older than
-- twice tapline.MaxCohortDay days are pruned, and activity of such an
-- install is no longer counted (postgres.CohortSeenKept).
CREATE TABLE cohort_seen (
	app_id       bigint      NOT NULL,
	install_id   text        NOT NULL,
	day_n        int         NOT NULL,
	install_hour timestamptz NOT NULL,
	PRIMARY KEY (app_id, install_id, day_n)
);

CREATE INDEX cohort_seen_install_hour ON cohort_seen (install_hour);
