package postgres

// FactTableName exposes factTableName to the schema test.
var FactTableName = factTableName
