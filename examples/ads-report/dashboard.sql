-- What the ads dashboard shows: per customer and day, impressions, clicks, spend and click-through
-- rate, over the export of `quarry export` (only the authoritative run of each partition is there).
-- Run it: node examples/ads-report/query.mjs ads.duckdb examples/ads-report/dashboard.sql
SELECT
  category                                                      AS customer,
  CAST(day AS VARCHAR)                                          AS day,
  count(*)                                                      AS campaigns,
  sum(CAST(data->>'impressions' AS BIGINT))                     AS impressions,
  sum(CAST(data->>'clicks' AS BIGINT))                          AS clicks,
  round(sum(CAST(data->>'cost_cents' AS BIGINT)) / 100.0, 2)    AS spend,
  round(100.0 * sum(CAST(data->>'clicks' AS BIGINT))
              / sum(CAST(data->>'impressions' AS BIGINT)), 2)   AS ctr_pct,
  any_value(run_id)                                             AS run_id
FROM quarry_items
WHERE source = 'ads' AND item_type = 'campaign_day'
GROUP BY category, day
ORDER BY customer, day;
