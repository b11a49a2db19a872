// Command tapline runs the whole attribution pipeline in one process:
// collector, matcher and dashboard on the embedded bus and raw store plus
// PostgreSQL. Its subcommands migrate the database, create accounts, apps
// and tracking links, manage funnels and their backfills, explain an
// install's attribution, record erasure requests, and download an app's
// raw data from the dashboard's export API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	err := m.Run(ctx, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	} else if err != nil {
		fmt.Fprintln(m.Stderr, "tapline:", err)
		os.Exit(1)
	}
	if m.Node == nil {
		return // a one-shot subcommand
	}
	status := 0
	select {
	case <-ctx.Done():
	case err := <-m.Node.Failed():
		fmt.Fprintln(m.Stderr, "tapline:", err)
		status = 1
	}
	stop()
	fmt.Fprintln(m.Stderr, "tapline: shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintln(m.Stderr, "tapline:", err)
		os.Exit(1)
	}
	os.Exit(status)
}

const usage = `Usage: tapline [command] [flags]

Commands:
  run             run collector, matcher and dashboard (the default)
  migrate         apply the PostgreSQL migrations and exit
  create-account  create an account and its first user, an owner:  -name -email -password
  create-app      create an app:      -account -name [-ios-url -android-url -web-url ...]
  create-link     create a link:      -app ID | -account -app-name; -slug [-name -ios-url -param k=v ...]
  funnels         create, list, show, edit, delete and backfill funnels ("tapline funnels help")
  datacenters     -refresh -out FILE: fetch the cloud providers' published address ranges into a
                  list the matcher's datacenter fraud rule loads with -fraud-datacenters FILE
  explain         why an install was credited: -app ID (-install ID | -conversion CID | -ad-id X) [-json]
  whatif          what an app's installs would look like under other rules: -app ID -from DAY [-to DAY]
                  [-click-window 3d] [-fingerprint-window 6h] [-fingerprint-min-score 4] [-json]
  erase           erase one device's personal data: -app ID | -account -app-name; -ad-id X | -install-id Y
                  [-wait 30s]; the running matcher performs it ("-status N" shows request N)
  export          download an app's raw data through the dashboard's export API, resuming when the
                  connection drops: -app ID -kind conversions|events|hits -o FILE [-from -to -format csv|ndjson]
                  [-url DASHBOARD_URL] [-token tl_… or TAPLINE_API_TOKEN]

Every command but export takes -database-url (or DATABASE_URL); run
"tapline COMMAND -h" for its flags. Each flag can also be set as TAPLINE_<FLAG>, e.g.
TAPLINE_COLLECTOR_ADDR=0.0.0.0:8080.
`

func printUsage(w io.Writer) { fmt.Fprint(w, usage) }
