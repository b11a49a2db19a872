DROP TABLE IF EXISTS fact_fraud;
ALTER TABLE apps
	DROP COLUMN IF EXISTS fraud_click_injection,
	DROP COLUMN IF EXISTS fraud_click_flooding,
	DROP COLUMN IF EXISTS fraud_datacenter,
	DROP COLUMN IF EXISTS fraud_tap_after_install,
	DROP COLUMN IF EXISTS fraud_min_click_to_install,
	DROP COLUMN IF EXISTS fraud_flood_min_taps,
	DROP COLUMN IF EXISTS fraud_flood_max_install_rate;
