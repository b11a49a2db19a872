// Command matcher runs tapline's matcher alone: a member of a Kafka
// consumer group that keeps raw rows in Cassandra and facts in PostgreSQL.
// Run up to one per partition. Its flags are those of `tapline run` (see
// the README); -kafka-brokers is required, and -cassandra-hosts as soon as
// more than one matcher runs (else the raw store is embedded). It serves
// /metrics, /healthz and /livez on -metrics-addr.
package main

import (
	"os"

	"tapline/internal/node"
)

func main() { os.Exit(node.Main(node.TargetMatcher, os.Args[1:], os.Stderr)) }
