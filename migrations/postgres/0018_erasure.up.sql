-- Secret keys of keyed hashes (HMAC-SHA256), one per name, made at random
-- by the first process that needs one (postgres.DB): 'ad_id' keys the
-- advertising id hashes of the conversions table and of erasure requests.
CREATE TABLE hash_keys (
	name       text PRIMARY KEY,
	key        bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- A data subject's request to erase one device's personal data from an
-- app: recorded by the dashboard or the CLI, performed by the matcher,
-- which owns the raw store. key is the advertising id (normalised) or
-- install id, kept only while the request is pending; key_hash, its keyed
-- hash, stays. claimed_until is the lease of the matcher performing it.
CREATE TABLE erasure_requests (
	id              bigserial PRIMARY KEY,
	app_id          bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	kind            text NOT NULL CHECK (kind IN ('ad_id', 'install_id')),
	key             text,
	key_hash        text NOT NULL,
	requested_by    text NOT NULL,
	requested_at    timestamptz NOT NULL DEFAULT now(),
	claimed_until   timestamptz,
	done_at         timestamptz,
	hits            int NOT NULL DEFAULT 0,
	events          int NOT NULL DEFAULT 0,
	hits_stripped   int NOT NULL DEFAULT 0,
	conversions     int NOT NULL DEFAULT 0,
	conversion_rows int NOT NULL DEFAULT 0,
	CHECK ((done_at IS NULL) = (key IS NOT NULL))
);

CREATE INDEX erasure_requests_pending ON erasure_requests (id) WHERE done_at IS NULL;
CREATE INDEX erasure_requests_app ON erasure_requests (app_id, id);

-- The conversions table's advertising id hash becomes keyed: HMAC-SHA256
-- of the app id and the id's SHA-256, which the unkeyed hash stored so far
-- is. The migration moves those to ad_id_sha256; postgres.DB.Migrate then
-- rehashes them with the key (SQL has no HMAC without an extension) and
-- empties the column.
ALTER TABLE conversions ADD COLUMN ad_id_sha256 text NOT NULL DEFAULT '';
UPDATE conversions SET ad_id_sha256 = ad_id_hash, ad_id_hash = '' WHERE ad_id_hash <> '';
CREATE INDEX conversions_ad_id_sha256 ON conversions (app_id, id) WHERE ad_id_sha256 <> '';

-- When an erasure stripped the row of its device's values; a flush of the
-- conversion that comes later keeps the stripped decision.
ALTER TABLE conversions ADD COLUMN erased_at timestamptz;
