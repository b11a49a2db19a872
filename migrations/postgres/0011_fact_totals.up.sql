-- Hourly totals of hits, installs, conversions, events and revenue per
-- app, without the other dimensions (tapline.FactTotals): the daily chart
-- and table read these few rows instead of summing every hourly row of the
-- range. Kept by the fact store in the transaction of the rows they sum;
-- filled here from the rows already there. An install's method is organic
-- without a link, attributed with one.
CREATE TABLE fact_totals (
	app_id   bigint NOT NULL,
	hour     timestamptz NOT NULL,
	measure  text NOT NULL,
	method   text NOT NULL,
	currency text NOT NULL,
	count    bigint NOT NULL DEFAULT 0,
	sum      bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, hour, measure, method, currency)
);

INSERT INTO fact_totals (app_id, hour, measure, method, currency, count, sum)
SELECT app_id, hour, measure, method, currency, sum(count), sum(sum) FROM (
	SELECT app_id, hour, 'hits' AS measure, '' AS method, '' AS currency, count, sum FROM fact_hits
	UNION ALL
	SELECT app_id, hour, 'installs', CASE WHEN link_id = 0 THEN 'organic' ELSE 'attributed' END, '', count, sum FROM fact_installs
	UNION ALL
	SELECT app_id, hour, 'conversions', method, '', count, sum FROM fact_conversions
	UNION ALL
	SELECT app_id, hour, 'events', method, '', count, sum FROM fact_events
	UNION ALL
	SELECT app_id, hour, 'revenue', method, currency, count, sum FROM fact_revenue
) rows
GROUP BY app_id, hour, measure, method, currency
HAVING sum(count) <> 0 OR sum(sum) <> 0;
