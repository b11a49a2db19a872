-- SKAdNetwork and AdAttributionKit (docs/skadnetwork.md).
--
-- An app's App Store id names it in Apple's postbacks (app-id): at most one
-- app has each. Its conversion schema labels the conversion values in the
-- reports: {"fine": {"20": "purchase"}, "coarse": {"high": "..."}}.
ALTER TABLE apps
	ADD COLUMN app_store_id      bigint UNIQUE CHECK (app_store_id > 0),
	ADD COLUMN conversion_schema jsonb NOT NULL DEFAULT '{}';

-- Every postback the collector took, as received (raw) and as read, with
-- what was made of it: verified (counted once by its key), rejected (the
-- signature does not check out; never counted) or duplicate (its key was
-- counted before). The same body again is the same postback resent: its
-- row's received goes up, nothing else.
CREATE TABLE skan_postbacks (
	id                bigserial PRIMARY KEY,
	app_id            bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	kind              text NOT NULL CHECK (kind IN ('skadnetwork', 'adattributionkit')),
	version           text NOT NULL DEFAULT '',
	via               text NOT NULL CHECK (via IN ('developer', 'network')),
	ad_network_id     text NOT NULL,
	source_identifier text NOT NULL,
	app_store_id      bigint NOT NULL,
	transaction_id    text NOT NULL,
	postback_window   smallint NOT NULL CHECK (postback_window BETWEEN 0 AND 2),
	conversion_value  smallint CHECK (conversion_value BETWEEN 0 AND 63),
	coarse_value      text NOT NULL DEFAULT '' CHECK (coarse_value IN ('', 'low', 'medium', 'high')),
	conversion_type   text NOT NULL DEFAULT '' CHECK (conversion_type IN ('', 'download', 'redownload', 're-engagement')),
	fidelity_type     smallint NOT NULL,
	redownload        boolean NOT NULL,
	did_win           boolean,
	source_app_id     bigint,
	source_domain     text NOT NULL DEFAULT '',
	status            text NOT NULL CHECK (status IN ('verified', 'rejected', 'duplicate')),
	reason            text NOT NULL DEFAULT '',
	key               text NOT NULL,
	raw               bytea NOT NULL,
	body_sha256       bytea NOT NULL,
	received_at       timestamptz NOT NULL,
	last_received_at  timestamptz NOT NULL,
	received          integer NOT NULL DEFAULT 1,
	UNIQUE (app_id, body_sha256)
);

-- A key (kind, transaction id, window) is counted once: one verified row
-- holds it; later ones are duplicates, rejected ones hold nothing.
CREATE UNIQUE INDEX skan_postbacks_key ON skan_postbacks (key) WHERE status = 'verified';
CREATE INDEX skan_postbacks_app ON skan_postbacks (app_id, id DESC);
CREATE INDEX skan_postbacks_app_status ON skan_postbacks (app_id, status, id DESC);

-- Postbacks per UTC day of receipt, ad network, source identifier, window,
-- conversion value (fine in decimal, or coarse) and outcome (won, not_won,
-- reengagement, rejected, duplicate), written with each postback
-- (tapline.FactSKAN).
CREATE TABLE fact_skan (
	app_id            bigint  NOT NULL,
	day               date    NOT NULL,
	ad_network        text    NOT NULL,
	source_identifier text    NOT NULL,
	postback_window   integer NOT NULL,
	conversion_value  text    NOT NULL,
	outcome           text    NOT NULL,
	count             bigint  NOT NULL DEFAULT 0,
	sum               bigint  NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, day, ad_network, source_identifier, postback_window, conversion_value, outcome)
);
