DROP TABLE IF EXISTS cohort_seen; DROP TABLE IF EXISTS fact_cohort_revenue; DROP TABLE IF EXISTS fact_cohort_activity;
