DROP TABLE postback_deliveries;
DROP TABLE postbacks;
