// Command chaos runs tapline's fault campaign (package tapline/bench/chaos):
// the real binaries as child processes on loopback, seeded load, seeded
// faults, and an exact comparison of the fact tables with what was
// acknowledged. It prints the fault table, the totals and VERDICT PASS or
// FAIL, writes the result as JSON, and exits 1 on FAIL. `make chaos`
// builds the binaries into bin/ and runs it with the defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"tapline/bench/chaos"
)

func main() { os.Exit(run(os.Args[1:])) }

func names() string {
	var out []string
	for n := range chaos.FaultNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func run(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var cfg chaos.Config
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory of the collector, matcher, tapline and kfakebroker binaries")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "directory for logs, data directories and the PostgreSQL cluster (kept; default a temporary one, deleted)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the load and of the fault schedule")
	fs.BoolVar(&cfg.Short, "short", false, "the 60-second campaign (each fault kind once, short outages)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long load is offered at most (default 10m; 60s with -short)")
	fs.Int64Var(&cfg.Events, "events", 0, "SDK events offered in all, 70% to the Kafka topology (default 1050000; 40000 with -short)")
	fs.Float64Var(&cfg.TapRate, "tap-rate", 0, "taps per second offered to each topology (default 150; 60 with -short)")
	fs.DurationVar(&cfg.Outage, "outage", 0, "how long the broker and PostgreSQL stay down (default 60s; 5s with -short)")
	fs.DurationVar(&cfg.Overload, "overload", 0, "how long the 5x redirect overload lasts (default 30s; 5s with -short)")
	fs.IntVar(&cfg.OverloadInFlight, "overload-in-flight", 0, "requests the overload keeps in flight at most; one due past that is counted as not sent (default 12000)")
	fs.IntVar(&cfg.Kills, "kills", 0, "kill -9 faults of each process kind (default 3; 1 with -short)")
	fs.StringVar(&cfg.CassandraHosts, "cassandra-hosts", "", "comma-separated Cassandra hosts: the Kafka topology's raw store is Cassandra and it runs two matchers")
	fs.StringVar(&cfg.PGBin, "pg-bin", "", "directory of PostgreSQL's initdb and postgres (default: pg_config or /usr/lib/postgresql/*/bin)")
	fs.BoolVar(&cfg.Profile, "profile", false, "have each matcher and the all-in-one write a CPU profile of each run into the work directory")
	only := fs.String("only", "", "comma-separated fault names to inject, the rest left out: "+names())
	result := fs.String("result", "chaos-result.json", "write the result as JSON to this file")
	verbose := fs.Bool("v", false, "log the processes' progress at debug level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for n := range strings.SplitSeq(*only, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if chaos.FaultNames[n] == "" {
			fmt.Fprintf(os.Stderr, "chaos: -only: unknown fault %q (want %s)\n", n, names())
			return 2
		}
		cfg.Only = append(cfg.Only, n)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := chaos.Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if err := res.WriteJSON(*result); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if res.Verdict != "PASS" {
		return 1
	}
	return 0
}
