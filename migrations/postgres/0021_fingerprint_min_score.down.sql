ALTER TABLE apps DROP COLUMN fingerprint_min_score;
