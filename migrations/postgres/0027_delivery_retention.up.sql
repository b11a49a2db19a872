-- Delivered and dead deliveries expire (docs/postbacks.md, "Retention"):
-- a matcher deletes the ones created before the retention in batches,
-- oldest first, through this index; pending ones are never in it. The
-- delivery log filters by network.
CREATE INDEX postback_deliveries_finished ON postback_deliveries (created_at) WHERE status <> 'pending';
CREATE INDEX postback_deliveries_app_network ON postback_deliveries (app_id, network, id DESC);
