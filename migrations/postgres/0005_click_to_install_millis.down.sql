UPDATE fact_conversions SET sum = sum / 1000;
