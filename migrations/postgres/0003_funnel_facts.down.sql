DROP TABLE IF EXISTS fact_funnel_steps;
