package migrations

import "embed"

// Postgres holds the PostgreSQL migrations under postgres/, for
// golang-migrate's iofs source.
//
//go:embed postgres/*.sql
var Postgres embed.FS
