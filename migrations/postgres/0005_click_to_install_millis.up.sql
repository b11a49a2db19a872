-- fact_conversions.sum holds click-to-install milliseconds, no longer whole
-- seconds: a sub-second install had a mean of 0, which showed as no data.
-- Rows written before are converted. An install attributed before this
-- migration and re-attributed after it takes back its exact milliseconds
-- where it added whole seconds: under a second of drift in that row's sum,
-- the count stays exact.
UPDATE fact_conversions SET sum = sum * 1000;
