DROP TABLE fact_skan;
DROP TABLE skan_postbacks;
ALTER TABLE apps DROP COLUMN conversion_schema, DROP COLUMN app_store_id;
