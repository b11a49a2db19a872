DROP TABLE IF EXISTS fact_totals;
