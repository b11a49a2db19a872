DROP TABLE IF EXISTS funnel_backfill_ranges;
DROP TABLE IF EXISTS funnel_handoffs;
DROP TABLE IF EXISTS funnel_versions;
DROP TABLE IF EXISTS funnels;
