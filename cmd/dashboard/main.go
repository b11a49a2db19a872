// Command dashboard runs tapline's customer web UI, JSON API and admin API
// alone, over PostgreSQL. Its flags are those of `tapline run` (see the
// README); set -admin-token and -session-key explicitly when several run.
package main

import (
	"os"

	"tapline/internal/node"
)

func main() { os.Exit(node.Main(node.TargetDashboard, os.Args[1:], os.Stderr)) }
