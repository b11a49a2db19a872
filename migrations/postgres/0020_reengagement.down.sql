ALTER TABLE conversions DROP COLUMN IF EXISTS reinstall;
DROP TABLE IF EXISTS fact_reinstalls;
DROP TABLE IF EXISTS fact_reengagements;
ALTER TABLE apps
	DROP COLUMN IF EXISTS reattribute_reinstalls,
	DROP COLUMN IF EXISTS reinstall_window,
	DROP COLUMN IF EXISTS reengagement_window;
ALTER TABLE links DROP COLUMN IF EXISTS reengagement;
