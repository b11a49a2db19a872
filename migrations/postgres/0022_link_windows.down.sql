ALTER TABLE links DROP COLUMN click_window, DROP COLUMN fingerprint_window;
