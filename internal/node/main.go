package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main is the main function of the single-component binaries
// (cmd/collector, cmd/matcher, cmd/dashboard): it parses args into a Config
// for target, opens a Node, and closes it on SIGINT or SIGTERM. It returns
// the process exit status. "healthcheck URL" instead checks that URL answers
// 200, for container health checks in images without a shell.
func Main(target string, args []string, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "healthcheck" {
		return healthcheck(args[1:], stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet(target, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := NewConfig()
	cfg.Target = target
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		return 2
	}
	if cfg.Target == TargetCollector && cfg.KafkaBrokers == "" {
		// The scale-out collector without its Kafka would record into a
		// local bus no matcher reads; `tapline run -target collector`
		// does that on purpose.
		fmt.Fprintf(stderr, "%s: -kafka-brokers is required (tapline run -target collector collects onto the embedded bus instead)\n", target)
		return 2
	}
	n := New(cfg, cfg.NewLogger(os.Stderr))
	if err := n.Open(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", target, err)
		return 1
	}
	status := 0
	select {
	case <-ctx.Done():
	case err := <-n.Failed():
		fmt.Fprintf(stderr, "%s: %v\n", target, err)
		status = 1
	}
	stop()
	n.Logger.Info("shutting down", "target", target)
	if err := n.Close(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", target, err)
		return 1
	}
	return status
}

func healthcheck(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: healthcheck URL")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
