package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tapline/fraud"
)

// maxSourceBytes bounds one published range file (AWS's is about 2 MB).
const maxSourceBytes = 64 << 20

// sourceFlags collects -source provider,format,url flags.
type sourceFlags []fraud.Source

func (s *sourceFlags) String() string { return fmt.Sprint(len(*s)) }

func (s *sourceFlags) Set(v string) error {
	parts := strings.SplitN(v, ",", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return fmt.Errorf("want provider,format,url, got %q", v)
	}
	switch parts[1] {
	case fraud.FormatAWS, fraud.FormatGCP, fraud.FormatOracle, fraud.FormatText:
	default:
		return fmt.Errorf("format %q: want aws, gcp, oracle or text", parts[1])
	}
	*s = append(*s, fraud.Source{Provider: parts[0], Format: parts[1], URL: parts[2]})
	return nil
}

// datacenters runs "tapline datacenters": with -refresh it fetches every
// source (the providers' published files unless -source names others) and
// writes the range list to -out, only when every source was read; without
// it, it says how many ranges the list in use has.
func (m *Main) datacenters(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline datacenters", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	refresh := fs.Bool("refresh", false, "fetch the published range files and write the list")
	out := fs.String("out", "-", "file to write the list to (replaced only when every source was read); - for standard output")
	file := fs.String("file", "", "without -refresh: the list to describe (default the shipped one)")
	timeout := fs.Duration("timeout", time.Minute, "time allowed to fetch each source")
	var sources sourceFlags
	fs.Var(&sources, "source", "provider,format,url of a source to fetch instead of the defaults (repeatable; format aws, gcp, oracle or text)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*refresh {
		ranges := fraud.Shipped()
		if *file != "" {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			rs, err := fraud.ReadList(f)
			if err != nil {
				return err
			}
			ranges = fraud.NewRanges(rs)
		}
		fmt.Fprintf(m.Stdout, "%d datacenter ranges (after folding nested ones)\n", ranges.Len())
		return nil
	}
	if len(sources) == 0 {
		sources = fraud.DefaultSources
	}
	client := &http.Client{Timeout: *timeout}
	var all []fraud.Range
	header := []string{
		`Datacenter and hosting address ranges: one "prefix provider" a line (tapline datacenters -refresh).`,
		"Fetched " + time.Now().UTC().Format(time.RFC3339) + " from:",
	}
	for _, s := range sources {
		rs, err := fetchSource(ctx, client, s)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "%s: %d ranges from %s\n", s.Provider, len(rs), s.URL)
		header = append(header, fmt.Sprintf("  %s (%s): %s", s.Provider, s.Format, s.URL))
		all = append(all, rs...)
	}
	if *out == "-" {
		return fraud.WriteList(m.Stdout, header, all)
	}
	return writeFileAtomic(*out, func(w io.Writer) error { return fraud.WriteList(w, header, all) })
}

// fetchSource gets and parses one source.
func fetchSource(ctx context.Context, client *http.Client, s fraud.Source) ([]fraud.Range, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Provider, err)
	}
	req.Header.Set("User-Agent", "tapline-datacenters/1")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: fetch %s: %w", s.Provider, s.URL, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: fetch %s: %s", s.Provider, s.URL, res.Status)
	}
	return s.Parse(io.LimitReader(res.Body, maxSourceBytes))
}

// writeFileAtomic writes path through a temporary file in its directory,
// renamed over it only when write succeeded.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".datacenters-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
