// Package migrations embeds the schema migrations of tapline's stores. The
// postgres/*.sql set, in golang-migrate's NNNN_name.up.sql / .down.sql
// format, defines the accounts, apps, links, hourly fact tables and consumer
// offsets; the cassandra/*.cql set arrives with the Cassandra raw store.
package migrations
