// Package postgres implements tapline's PostgreSQL side: the AccountService
// (accounts, apps, links), the FactStore (hourly fact tables and the
// matcher's consumed offsets) and the Reports the dashboard reads.
//
// It is the only package that imports pgx. A DB wraps a connection pool;
// Open connects, Migrate applies the embedded migrations of package
// migrations with golang-migrate. Driver errors are translated into
// tapline error codes: unique violations into ECONFLICT, missing rows into
// ENOTFOUND, connection failures into EUNAVAILABLE.
package postgres
