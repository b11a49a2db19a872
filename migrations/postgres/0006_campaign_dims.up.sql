-- Campaign dimensions on the facts of taps and what they led to: source,
-- medium, campaign, ad group, creative and site, from the tap's utm,
-- AppsFlyer or Adjust query parameters (tapline.CampaignDims); '' when the
-- tap named none. Rows written before have ''. Each app keeps at most
-- tapline.CampaignValueCap distinct values per dimension (campaign_values);
-- the fact store counts later new values as '(other)'.

ALTER TABLE fact_hits
	ADD COLUMN source text NOT NULL DEFAULT '',
	ADD COLUMN medium text NOT NULL DEFAULT '',
	ADD COLUMN campaign text NOT NULL DEFAULT '',
	ADD COLUMN adgroup text NOT NULL DEFAULT '',
	ADD COLUMN creative text NOT NULL DEFAULT '',
	ADD COLUMN site text NOT NULL DEFAULT '',
	DROP CONSTRAINT fact_hits_pkey,
	ADD PRIMARY KEY (app_id, hour, link_id, platform, source, medium, campaign, adgroup, creative, site);

ALTER TABLE fact_events
	ADD COLUMN source text NOT NULL DEFAULT '',
	ADD COLUMN medium text NOT NULL DEFAULT '',
	ADD COLUMN campaign text NOT NULL DEFAULT '',
	ADD COLUMN adgroup text NOT NULL DEFAULT '',
	ADD COLUMN creative text NOT NULL DEFAULT '',
	ADD COLUMN site text NOT NULL DEFAULT '',
	DROP CONSTRAINT fact_events_pkey,
	ADD PRIMARY KEY (app_id, hour, link_id, event_name, platform, method, source, medium, campaign, adgroup, creative, site);

ALTER TABLE fact_installs
	ADD COLUMN source text NOT NULL DEFAULT '',
	ADD COLUMN medium text NOT NULL DEFAULT '',
	ADD COLUMN campaign text NOT NULL DEFAULT '',
	ADD COLUMN adgroup text NOT NULL DEFAULT '',
	ADD COLUMN creative text NOT NULL DEFAULT '',
	ADD COLUMN site text NOT NULL DEFAULT '',
	DROP CONSTRAINT fact_installs_pkey,
	ADD PRIMARY KEY (app_id, hour, link_id, platform, method, source, medium, campaign, adgroup, creative, site);

ALTER TABLE fact_conversions
	ADD COLUMN source text NOT NULL DEFAULT '',
	ADD COLUMN medium text NOT NULL DEFAULT '',
	ADD COLUMN campaign text NOT NULL DEFAULT '',
	ADD COLUMN adgroup text NOT NULL DEFAULT '',
	ADD COLUMN creative text NOT NULL DEFAULT '',
	ADD COLUMN site text NOT NULL DEFAULT '',
	DROP CONSTRAINT fact_conversions_pkey,
	ADD PRIMARY KEY (app_id, hour, link_id, platform, method, source, medium, campaign, adgroup, creative, site);

-- Revenue also keeps its installation's match method, as events do ('' on
-- rows from before).
ALTER TABLE fact_revenue
	ADD COLUMN method text NOT NULL DEFAULT '',
	ADD COLUMN source text NOT NULL DEFAULT '',
	ADD COLUMN medium text NOT NULL DEFAULT '',
	ADD COLUMN campaign text NOT NULL DEFAULT '',
	ADD COLUMN adgroup text NOT NULL DEFAULT '',
	ADD COLUMN creative text NOT NULL DEFAULT '',
	ADD COLUMN site text NOT NULL DEFAULT '',
	DROP CONSTRAINT fact_revenue_pkey,
	ADD PRIMARY KEY (app_id, hour, link_id, platform, currency, method, source, medium, campaign, adgroup, creative, site);


-- The campaign dimension values each app's facts keep, at most
-- tapline.CampaignValueCap per app and dimension.
CREATE TABLE campaign_values (
	app_id     bigint NOT NULL,
	dim        text NOT NULL,
	value      text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (app_id, dim, value)
);
