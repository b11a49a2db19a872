-- A link's own attribution windows in seconds (tapline.Link.ClickWindow
-- and FingerprintWindow); 0, as every existing link gets, uses the app's.
ALTER TABLE links
	ADD COLUMN click_window bigint NOT NULL DEFAULT 0 CHECK (click_window >= 0),
	ADD COLUMN fingerprint_window bigint NOT NULL DEFAULT 0 CHECK (fingerprint_window >= 0);
