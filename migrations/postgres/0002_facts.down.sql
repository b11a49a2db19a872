DROP TABLE IF EXISTS consumer_offsets;
DROP TABLE IF EXISTS fact_revenue;
DROP TABLE IF EXISTS fact_conversions;
DROP TABLE IF EXISTS fact_installs;
DROP TABLE IF EXISTS fact_events;
DROP TABLE IF EXISTS fact_hits;
