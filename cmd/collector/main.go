// Command collector runs tapline's HTTP edge alone, producing hits and
// events to Kafka (with a disk spool while Kafka is unreachable); run as
// many as the traffic needs behind a load balancer. Its flags are those of
// `tapline run` (see the README); -kafka-brokers is required. Give it a
// -metrics-addr off the public network: /metrics then leaves its listener.
package main

import (
	"os"

	"tapline/internal/node"
)

func main() { os.Exit(node.Main(node.TargetCollector, os.Args[1:], os.Stderr)) }
