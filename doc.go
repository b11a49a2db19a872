// Package tapline holds the domain of the tapline attribution engine: hits,
// events, conversions, accounts, apps and links, the error codes every layer
// shares, and the interfaces (Bus, RawStore, FactStore, AccountService,
// Reports) that the outside-system packages implement.
//
// The package imports only the standard library. Domain logic lives in
// fingerprint, facts and funnels; drivers live in kafka, cassandra, postgres
// and pebble; the binaries in cmd wire them together.
package tapline
