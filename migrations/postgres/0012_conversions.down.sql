DROP TABLE IF EXISTS conversions;
