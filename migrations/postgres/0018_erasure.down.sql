-- Keyed hashes cannot be turned back into the unkeyed SHA-256: rows not
-- rehashed yet get theirs back, the others lose their advertising id hash.
UPDATE conversions SET ad_id_hash = ad_id_sha256 WHERE ad_id_sha256 <> '';
UPDATE conversions SET ad_id_hash = '' WHERE ad_id_sha256 = '' AND ad_id_hash <> '';
DROP INDEX IF EXISTS conversions_ad_id_sha256;
ALTER TABLE conversions DROP COLUMN IF EXISTS ad_id_sha256;
ALTER TABLE conversions DROP COLUMN IF EXISTS erased_at;
DROP TABLE IF EXISTS erasure_requests;
DROP TABLE IF EXISTS hash_keys;
