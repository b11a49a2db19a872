-- Delivered and dead deliveries expire (docs/postbacks.md, "Retention"):
-- a matcher deletes the ones created before the retention in batches,
-- oldest first, through the first index; pending ones are never in it.
-- The delivery log filters by network through the second.
--
-- The table grew without expiry until this migration, and building an
-- index blocks writes to it (the matchers' flushes insert deliveries)
-- for as long as the build takes. A large deployment creates both
-- beforehand with CREATE INDEX CONCURRENTLY and the same definitions
-- (docs/postbacks.md, "Retention"): IF NOT EXISTS then skips them. The
-- migration itself cannot build them concurrently: that waits for every
-- open transaction, among them another process's wait for the migration
-- lock, which waits for this one.
CREATE INDEX IF NOT EXISTS postback_deliveries_finished ON postback_deliveries (created_at) WHERE status <> 'pending';
CREATE INDEX IF NOT EXISTS postback_deliveries_app_network ON postback_deliveries (app_id, network, id DESC);
