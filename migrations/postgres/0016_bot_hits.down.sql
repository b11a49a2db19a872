DROP TABLE IF EXISTS fact_bot_hits;
