// Command kfakebroker serves franz-go's kfake, an in-process implementation
// of the Kafka wire protocol, on one loopback port, so that a test harness
// can run it as a process of its own: kill it with SIGKILL and start it
// again on the same port, like a broker. It is for tests only.
//
// With -data-dir the broker keeps its log segments and metadata in that
// directory (kfake's persistence: written through the OS page cache, so a
// SIGKILL loses nothing the kernel already has; a power cut might) and a
// restart on the same directory serves the same topics and offsets.
// Without it everything lives in memory and a restart is an empty broker:
// no topics, offsets from 0, no committed group offsets.
//
// Topics are created on demand (auto-creation) with -partitions
// partitions, besides the explicit CreateTopics tapline's kafka package
// sends.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kfakebroker", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address (loopback host and port)")
	dataDir := fs.String("data-dir", "", "keep log segments and metadata here across restarts (empty: in memory only)")
	partitions := fs.Int("partitions", 8, "partitions of a topic created on demand")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, p, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("-addr: want a port from 1 to 65535, got %q", p)
	}
	if *partitions < 1 {
		return fmt.Errorf("-partitions: must be at least 1, got %d", *partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake on %s: %w", *addr, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("kfakebroker listening", "addrs", c.ListenAddrs(), "data_dir", *dataDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	c.Close()
	log.Info("kfakebroker stopped")
	return nil
}
