package migrations

import "embed"

// Postgres holds the PostgreSQL migrations under postgres/, for
// golang-migrate's iofs source.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// Cassandra holds the Cassandra migrations under cassandra/, for
// golang-migrate's iofs source and its cassandra driver with
// multi-statement mode on (statements end with ';', which comments never
// contain). They create tables only: the keyspace comes from the store's
// configuration.
//
//go:embed cassandra/*.cql
var Cassandra embed.FS
