-- Fraud rules (tapline.FraudPolicy, docs/fraud.md): per app, what the
-- matcher does about each signal (flag: keep the attribution and record
-- it; reject: the install stays organic) and the rules' thresholds.
ALTER TABLE apps
	ADD COLUMN fraud_click_injection        text             NOT NULL DEFAULT 'flag'
		CHECK (fraud_click_injection IN ('flag', 'reject')),
	ADD COLUMN fraud_click_flooding         text             NOT NULL DEFAULT 'flag'
		CHECK (fraud_click_flooding IN ('flag', 'reject')),
	ADD COLUMN fraud_datacenter             text             NOT NULL DEFAULT 'flag'
		CHECK (fraud_datacenter IN ('flag', 'reject')),
	ADD COLUMN fraud_tap_after_install      text             NOT NULL DEFAULT 'flag'
		CHECK (fraud_tap_after_install IN ('flag', 'reject')),
	ADD COLUMN fraud_min_click_to_install   bigint           NOT NULL DEFAULT 10000, -- milliseconds
	ADD COLUMN fraud_flood_min_taps         integer          NOT NULL DEFAULT 500,
	ADD COLUMN fraud_flood_max_install_rate double precision NOT NULL DEFAULT 0.001;

-- Fraud signals found on the taps installs were credited to (action
-- flag) or refused (action reject), by the install's hour, the tap's link,
-- the install's platform (tapline.FactFraud).
CREATE TABLE fact_fraud (
	app_id   bigint      NOT NULL,
	hour     timestamptz NOT NULL,
	link_id  bigint      NOT NULL,
	platform text        NOT NULL,
	signal   text        NOT NULL,
	action   text        NOT NULL,
	count    bigint      NOT NULL DEFAULT 0,
	sum      bigint      NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, link_id, platform, signal, action)
);
