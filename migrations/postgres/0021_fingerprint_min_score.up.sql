-- The decision score the best fingerprint candidate must reach to be
-- credited (tapline.App.FingerprintMinScore); existing apps get the
-- default of the release that added it.
ALTER TABLE apps ADD COLUMN fingerprint_min_score double precision NOT NULL DEFAULT 2.5;
