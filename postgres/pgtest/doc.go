// Package pgtest gives tests their own freshly migrated PostgreSQL database.
//
// The server is DATABASE_URL's when that is set (a URL, not a key=value
// string, whose user may create databases), otherwise the repository's
// private test cluster started by scripts/postgres.sh --test (in memory
// where /dev/shm allows, without fsync). Each process migrates a
// template database once per schema version (serialised across processes by
// an advisory lock) and every test gets a CREATE DATABASE ... TEMPLATE copy
// with a random name, dropped when the test ends.
package pgtest
