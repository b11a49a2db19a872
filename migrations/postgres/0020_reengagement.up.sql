-- Re-engagement links and the per-app re-engagement and reinstall
-- settings (tapline.Link.Reengagement, tapline.App.ReengagementWindow,
-- ReinstallWindow, ReattributeReinstalls; windows in seconds, defaults
-- tapline.DefaultReengagementWindow and DefaultReinstallWindow).
ALTER TABLE links ADD COLUMN reengagement boolean NOT NULL DEFAULT false;
ALTER TABLE apps
	ADD COLUMN reengagement_window bigint NOT NULL DEFAULT 604800,
	ADD COLUMN reinstall_window bigint NOT NULL DEFAULT 5184000,
	ADD COLUMN reattribute_reinstalls boolean NOT NULL DEFAULT false;

-- Re-engagements (tapline.FactReengagements): opens of an installed app
-- credited to a tap on a re-engagement link, in the hour of the open, by
-- the tap's link and campaign and how the open matched it.
CREATE TABLE fact_reengagements (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	method   text        NOT NULL,
	source   text        NOT NULL,
	medium   text        NOT NULL,
	campaign text        NOT NULL,
	adgroup  text        NOT NULL,
	creative text        NOT NULL,
	site     text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method, source, medium, campaign, adgroup, creative, site)
);

-- Reinstalls (tapline.FactReinstalls): installs from a device that
-- installed the app before, within its reinstall window, in the hour of
-- the install; never in fact_installs.
CREATE TABLE fact_reinstalls (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	method   text        NOT NULL,
	source   text        NOT NULL,
	medium   text        NOT NULL,
	campaign text        NOT NULL,
	adgroup  text        NOT NULL,
	creative text        NOT NULL,
	site     text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, method, source, medium, campaign, adgroup, creative, site)
);

-- A reinstall's conversion says so (tapline.Conversion.Reinstall).
ALTER TABLE conversions ADD COLUMN reinstall jsonb;
