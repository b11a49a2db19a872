// Command loadgen generates a seeded synthetic population (package
// tapline/loadgen), writes its ground truth, and replays it against a
// tapline collector over HTTP.
//
//	loadgen gen  -seed 1 -devices 10000 -truth truth.jsonl
//	loadgen play -url http://127.0.0.1:8080 -account acme -secret S -sdk-key K \
//	             -links spring,social -devices 10000 -compression 3600 -truth truth.jsonl
//
// play sends taps with the device's address in X-Forwarded-For, so start
// tapline with -trusted-proxies 127.0.0.1/32, and configure the app's
// windows divided by -compression (loadgen gen prints them).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"tapline/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || (args[0] != "gen" && args[0] != "play") {
		return fmt.Errorf("usage: loadgen gen|play [flags] (loadgen gen -h)")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("loadgen "+cmd, flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "population seed")
	devices := fs.Int("devices", 10000, "tapping devices (organic ones are 30% on top)")
	links := fs.String("links", "", "comma-separated link slugs (default: the generator's)")
	truth := fs.String("truth", "", "write the ground truth (JSON lines) to this file")
	compression := fs.Float64("compression", 3600, "play: simulated seconds per real second, 0 for as fast as possible")
	workers := fs.Int("workers", 32, "play: concurrent workers")
	t := loadgen.Target{}
	fs.StringVar(&t.BaseURL, "url", "http://127.0.0.1:8080", "play: collector base URL")
	fs.StringVar(&t.Account, "account", "", "play: account name")
	fs.StringVar(&t.Secret, "secret", "", "play: the app's SDK secret")
	fs.StringVar(&t.SDKKey, "sdk-key", "", "play: the app's SDK key")
	fs.StringVar(&t.AppName, "app-name", "benchapp", "play: app name in Tapstream event names")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg := loadgen.NewConfig(*seed, *devices)
	if *links != "" {
		cfg.Links = strings.Split(*links, ",")
	}
	w, err := loadgen.Generate(cfg)
	if err != nil {
		return err
	}
	win := cfg.Windows.Scaled(*compression)
	fmt.Fprintf(out, "devices %d, taps %d, installs %d, events %d, simulated span %s\n",
		len(w.Devices), len(w.Taps), len(w.Installs), len(w.Events), w.Span().Round(1e9))
	fmt.Fprintf(out, "app windows at compression %.0f: click %s, fingerprint %s, lateness %s\n",
		*compression, win.Click, win.Fingerprint, win.Lateness)
	if *truth != "" {
		f, err := os.Create(*truth)
		if err != nil {
			return err
		}
		if err := loadgen.WriteTruth(f, w); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if cmd == "gen" {
		for _, m := range []struct {
			name string
			got  map[int]loadgen.Answer
		}{{"naive IP only", loadgen.NaiveIP(w)}, {"naive IP + exact UA", loadgen.NaiveIPUA(w)}} {
			a := loadgen.Score(w, m.got)
			fmt.Fprintf(out, "%s: precision %.3f recall %.3f organic misattributed %.3f\n", m.name, a.Precision, a.Recall, a.OrganicMisattribution)
		}
		return nil
	}
	p := &loadgen.Player{Target: t, Workload: w, Compression: *compression, Workers: *workers, Retries: 3}
	res, err := p.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "taps      %s\ninstalls  %s\nevents    %s\nmax lag   %s\n", res.Taps, res.Installs, res.Events, res.Lag)
	return nil
}
