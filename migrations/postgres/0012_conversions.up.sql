-- Every conversion (an install and its attribution, organic ones too) in
-- its latest state, written by the matcher in the transaction that stores
-- its facts and offsets: the dashboard's conversions explorer reads it.
-- changes is the length of the conversion's history: a state with fewer
-- changes than stored is older and is never written over a newer one.
-- Kept forever, it holds no address and no advertising id in clear: the
-- fingerprint with its address masked to the /24 (IPv4) or /64, the
-- advertising id as the hex SHA-256 of its lower-case form, to search by.
CREATE TABLE conversions (
	app_id              bigint      NOT NULL,
	id                  text        NOT NULL,
	install_id          text        NOT NULL,
	event_id            text        NOT NULL,
	install_time        timestamptz NOT NULL,
	platform            text        NOT NULL,
	ad_id_hash          text        NOT NULL DEFAULT '',
	fingerprint         text        NOT NULL DEFAULT '',
	method              text        NOT NULL,
	link_id             bigint      NOT NULL DEFAULT 0,
	hit_id              text        NOT NULL DEFAULT '',
	hit_time            timestamptz,
	click_to_install_ms bigint,
	hit_params          jsonb,
	decision            jsonb,
	history             jsonb       NOT NULL,
	changes             int         NOT NULL,
	updated_at          timestamptz NOT NULL,
	PRIMARY KEY (app_id, id)
);

CREATE INDEX conversions_latest ON conversions (app_id, install_time DESC, id DESC);
CREATE INDEX conversions_install ON conversions (app_id, install_id);
CREATE INDEX conversions_ad_id ON conversions (app_id, ad_id_hash) WHERE ad_id_hash <> '';
CREATE INDEX conversions_hit ON conversions (app_id, hit_id) WHERE hit_id <> '';
