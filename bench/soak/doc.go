// Package soak runs tapline's all-in-one binary under steady load for a
// long time and watches whether it settles: every interval it samples the
// process's resident memory, goroutines and open files, the embedded
// bus's and raw store's sizes on disk, the PostgreSQL fact and conversion
// tables' sizes, the matcher's lag behind the bus and the raw store's
// expiry, writes each sample to a CSV file as it is taken, and at the end
// judges the series (Judge) and plots them (Plot). `make soak` runs it
// through bench/cmd/soak; docs/soak.md describes the rules.
package soak
