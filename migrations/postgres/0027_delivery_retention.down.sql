DROP INDEX IF EXISTS postback_deliveries_app_network;
DROP INDEX IF EXISTS postback_deliveries_finished;
