-- Daily and weekly rollups of hits, installs, conversions, events and
-- revenue per app (tapline.FactDaily, tapline.FactWeekly): per UTC day (or
-- UTC week from Monday) and measure, the period's total (dim '') and the
-- sums per value of each report dimension the measure's table keeps (dim a
-- tapline.ReportDim name, value its value as text, a link id in decimal).
-- Breakdowns read them for the whole UTC weeks and days of their range
-- instead of every hourly row (postgres/breakdown.go states when). method
-- and currency are as in fact_totals: an install's method is organic
-- without a link, attributed with one. Kept by the fact store in the
-- transaction of the hourly rows they sum; filled here from the rows
-- already there. The keys lead with the dimension so that a breakdown by
-- one reads one range of the index.
CREATE TABLE fact_daily (
	app_id   bigint NOT NULL,
	day      date NOT NULL,
	dim      text NOT NULL,
	measure  text NOT NULL,
	value    text NOT NULL,
	method   text NOT NULL,
	currency text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, dim, day, measure, value, method, currency)
);

INSERT INTO fact_daily (app_id, day, dim, measure, value, method, currency, count, sum)
SELECT app_id, (hour AT TIME ZONE 'UTC')::date, d.dim, measure, d.value, method, currency, sum(count), sum(sum) FROM (
	SELECT app_id, hour, 'hits' AS measure, '' AS method, '' AS currency, count, sum,
		ARRAY['', 'link', 'platform', 'source', 'medium', 'campaign', 'adgroup', 'creative', 'site'] AS dims,
		ARRAY['', link_id::text, platform, source, medium, campaign, adgroup, creative, site] AS vals
	FROM fact_hits
	UNION ALL
	SELECT app_id, hour, 'installs', CASE WHEN link_id = 0 THEN 'organic' ELSE 'attributed' END, '', count, sum,
		ARRAY['', 'link', 'platform', 'method', 'source', 'medium', 'campaign', 'adgroup', 'creative', 'site'],
		ARRAY['', link_id::text, platform, method, source, medium, campaign, adgroup, creative, site]
	FROM fact_installs
	UNION ALL
	SELECT app_id, hour, 'conversions', method, '', count, sum,
		ARRAY['', 'link', 'platform', 'method', 'source', 'medium', 'campaign', 'adgroup', 'creative', 'site'],
		ARRAY['', link_id::text, platform, method, source, medium, campaign, adgroup, creative, site]
	FROM fact_conversions
	UNION ALL
	SELECT app_id, hour, 'events', method, '', count, sum,
		ARRAY['', 'link', 'platform', 'method', 'event', 'source', 'medium', 'campaign', 'adgroup', 'creative', 'site'],
		ARRAY['', link_id::text, platform, method, event_name, source, medium, campaign, adgroup, creative, site]
	FROM fact_events
	UNION ALL
	SELECT app_id, hour, 'revenue', method, currency, count, sum,
		ARRAY['', 'link', 'platform', 'method', 'source', 'medium', 'campaign', 'adgroup', 'creative', 'site'],
		ARRAY['', link_id::text, platform, method, source, medium, campaign, adgroup, creative, site]
	FROM fact_revenue
) rows
CROSS JOIN LATERAL unnest(rows.dims, rows.vals) AS d (dim, value)
GROUP BY 1, 2, 3, 4, 5, 6, 7
HAVING sum(count) <> 0 OR sum(sum) <> 0;

CREATE TABLE fact_weekly (
	app_id   bigint NOT NULL,
	week     date NOT NULL,
	dim      text NOT NULL,
	measure  text NOT NULL,
	value    text NOT NULL,
	method   text NOT NULL,
	currency text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, dim, week, measure, value, method, currency)
);

INSERT INTO fact_weekly (app_id, week, dim, measure, value, method, currency, count, sum)
SELECT app_id, date_trunc('week', day)::date, dim, measure, value, method, currency, sum(count), sum(sum)
FROM fact_daily
GROUP BY 1, 2, 3, 4, 5, 6, 7
HAVING sum(count) <> 0 OR sum(sum) <> 0;

-- Statistics now, not at autovacuum's next round: without them the
-- planner takes the filled rollups for empty and sorts them on disk.
ANALYZE fact_daily;
ANALYZE fact_weekly;
