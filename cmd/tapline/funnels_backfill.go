package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"tapline"
	"tapline/facts"
	"tapline/funnels"
	"tapline/internal/node"
	"tapline/pebble"
	"tapline/postgres"
)

// rawStore is what a backfill reads, and closes.
type rawStore interface {
	funnels.Source
	Close() error
}

// rawLockedError says the embedded raw store is held by another process:
// the running tapline, which backfills in-process.
type rawLockedError struct {
	dir string
	pid int // 0: unknown
	err error
}

func (e *rawLockedError) Error() string {
	return fmt.Sprintf("the embedded raw store %s is held by %s", e.dir, e.holder())
}

func (e *rawLockedError) Unwrap() error { return e.err }

func (e *rawLockedError) holder() string {
	if e.pid > 0 {
		return fmt.Sprintf("the running tapline process (pid %d)", e.pid)
	}
	return "a running tapline process"
}

// openRaw opens the raw store the configuration names: Cassandra with
// -cassandra-hosts, else the embedded store under <data-dir>/raw, which a
// running "tapline run" holds locked (a *rawLockedError then).
func openRaw(ctx context.Context, cfg *node.Config, logger *slog.Logger) (rawStore, error) {
	if cfg.CassandraHosts != "" {
		// The keyspace exists already: "tapline migrate" creates it.
		s := node.CassandraStore(cfg)
		s.Logger = logger
		if err := s.Open(ctx); err != nil {
			return nil, fmt.Errorf("open cassandra: %w", err)
		}
		return s, nil
	}
	dir := filepath.Join(cfg.DataDir, "raw")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "There is no embedded raw store in %s: point -data-dir at the data directory of \"tapline run\", or give -cassandra-hosts.", dir)
	}
	if pid := lockHolder(dir); pid != 0 {
		return nil, &rawLockedError{dir: dir, pid: pid}
	}
	s := pebble.NewRawStore(dir)
	s.Logger = logger
	s.CacheSize = int64(min(cfg.RawCacheMB, node.BackfillRawCacheMB)) << 20
	s.MemTableSize = int64(min(cfg.MemTableMB, node.BackfillMemTableMB)) << 20
	if err := s.Open(); err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return nil, &rawLockedError{dir: dir, pid: lockHolder(dir), err: err}
		}
		return nil, err
	}
	return s, nil
}

// progressEvery is how often the plain progress display writes a line.
func (m *Main) progressEvery() time.Duration {
	if m.ProgressEvery > 0 {
		return m.ProgressEvery
	}
	return 5 * time.Second
}

func (m *Main) funnelsBackfill(ctx context.Context, args []string) error {
	c := m.command("backfill", "ID", `Backfill the funnel's newest version in this process, alongside any other process working on
it (they share the ranges), until it is live. A cancelled version is restarted; a pending one
waits for its handoff first. When the embedded raw store is held by the running tapline, that
process backfills in-process: this command follows its progress. Ctrl-C stops; the work
committed so far stays, and running the command again resumes.`, true)
	workers := c.fs.Int("workers", 0, "range scans in parallel in this process (default: -backfill-workers, else the number of cores)")
	rate := c.fs.Float64("rate", 0, "raw rows read per second by this process, 0 for no bound (default: -backfill-rate)")
	dry := c.fs.Bool("dry-run", false, "count as the backfill would (as of the handoff when complete, else as of now), print the results and write nothing")
	id, err := c.parseID(args)
	if err != nil {
		return err
	}
	// The node's -backfill-workers and -backfill-rate (TAPLINE_BACKFILL_*)
	// are the defaults.
	*workers = cmp.Or(*workers, max(c.cfg.BackfillWorkers, 0), runtime.NumCPU())
	if !c.set("rate") {
		*rate = c.cfg.BackfillRate
	}
	if *workers < 1 {
		return fmt.Errorf("-workers: at least 1, not %d", *workers)
	}
	if *rate < 0 {
		return fmt.Errorf("-rate: must not be negative")
	}
	// Messages and progress go to stdout, to stderr with -json.
	out := m.Stdout
	if *c.asJSON {
		out = m.Stderr
	}
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return c.withStores(ctx, func(_ *postgres.DB, s *postgres.FunnelStore) error {
		f, err := s.Funnel(ctx, id)
		if err != nil {
			return describe(err)
		}
		if *dry {
			return m.dryRun(ctx, c, s, f, *workers, out, logger)
		}
		b := &backfill{m: m, c: c, s: s, out: out, logger: logger, workers: *workers, rate: *rate}
		return b.run(ctx, f)
	})
}

// backfill is one "funnels backfill" run.
type backfill struct {
	m       *Main
	c       *funnelCommand
	s       *postgres.FunnelStore
	out     io.Writer
	logger  *slog.Logger
	workers int
	rate    float64
}

func (b *backfill) run(ctx context.Context, f *tapline.Funnel) error {
	out := b.out
	switch f.Status {
	case tapline.FunnelCancelled:
		nf, err := b.s.RestartFunnel(ctx, f.ID)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(out, "Version %d (id %d) of funnel %d was cancelled: restarted as version %d (id %d).\n",
			f.Version, f.VersionID, f.ID, nf.Version, nf.VersionID)
		f = nf
	case tapline.FunnelLive, tapline.FunnelSuperseded:
		fmt.Fprintf(out, "Version %d (id %d) of funnel %d %q is live already: there is nothing to backfill.\n", f.Version, f.VersionID, f.ID, f.Name)
		if *b.c.asJSON {
			return b.m.printJSON(f)
		}
		return nil
	}
	fmt.Fprintf(out, "Funnel %d %q, version %d (id %d): %s.\n", f.ID, f.Name, f.Version, f.VersionID, versionStatus(f))
	every := b.m.progressEvery()
	poll := min(time.Second, every)
	view := newProgressView(out, every)
	vid := f.VersionID

	// The matchers fix the handoff; nothing needs the raw store until then
	// (and a running tapline must be able to open it).
	if f.Status == tapline.FunnelPending {
		fmt.Fprintln(out, "Waiting for the matchers to fix its handoff: every running matcher switches the version on within seconds.")
		if b.c.cfg.CassandraHosts == "" && lockHolder(filepath.Join(b.c.cfg.DataDir, "raw")) == 0 {
			fmt.Fprintf(out, "No tapline process holds %s: start \"tapline run\" on it, whose matcher fixes the handoff.\n", filepath.Join(b.c.cfg.DataDir, "raw"))
		}
		p := watch(ctx, b.s, vid, view, poll, func(p progress) bool { return p.f.Status != tapline.FunnelPending })
		if ctx.Err() != nil {
			return fmt.Errorf("%w: nothing was backfilled yet; \"tapline funnels backfill %d\" waits again", errInterrupted, f.ID)
		}
		switch p.f.Status {
		case tapline.FunnelCancelled:
			view.finish(p)
			return describe(tapline.Errorf(tapline.ECONFLICT, "Funnel version %d was cancelled.", vid))
		case tapline.FunnelLive, tapline.FunnelSuperseded:
			view.finish(p)
			return b.done(p.f)
		}
		view.show(p)
	}

	raw, err := openRaw(ctx, b.c.cfg, b.logger)
	var locked *rawLockedError
	if errors.As(err, &locked) {
		return b.follow(ctx, f, locked, view, poll)
	} else if err != nil {
		return describe(err)
	}
	defer raw.Close()

	funnels.TuneGC()
	run := funnels.Backfill{Raw: raw, Store: b.s, Workers: b.workers, Rate: b.rate, Logger: b.logger}
	start := time.Now()
	var st funnels.Stats
	var runErr error
	rctx, stopWatch := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer stopWatch()
		st, runErr = run.Run(ctx, vid)
	}()
	watch(rctx, b.s, vid, view, poll, func(progress) bool { return false })
	<-finished
	last, err := b.final(ctx, vid)
	if err != nil {
		return err
	}
	view.finish(last)
	fmt.Fprintf(out, "This process scanned %s rows of %s installations in %s.\n", thousands(st.Rows), thousands(st.Installations),
		time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return fmt.Errorf("%w: the ranges committed so far stay; \"tapline funnels backfill %d\" resumes", errInterrupted, f.ID)
	}
	if runErr != nil {
		return describe(runErr)
	}
	return b.done(last.f)
}

// final reads the progress once more, even after a signal.
func (b *backfill) final(ctx context.Context, vid int64) (progress, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	p, err := readProgress(ctx, b.s, vid)
	if err != nil {
		return p, describe(err)
	}
	return p, nil
}

// follow shows the progress of a backfill the running tapline does
// in-process, until the version is live or cancelled.
func (b *backfill) follow(ctx context.Context, f *tapline.Funnel, locked *rawLockedError, view progressView, poll time.Duration) error {
	fmt.Fprintf(b.out, "The embedded raw store %s is held by %s, which backfills the version in-process.\nFollowing its progress in PostgreSQL (Ctrl-C stops following, not the backfill).\n",
		locked.dir, locked.holder())
	end := func(p progress) bool {
		switch p.f.Status {
		case tapline.FunnelLive, tapline.FunnelSuperseded, tapline.FunnelCancelled:
			return true
		}
		return false
	}
	p := watch(ctx, b.s, f.VersionID, view, poll, end)
	if ctx.Err() != nil {
		if p.f != nil {
			view.finish(p)
		}
		fmt.Fprintln(b.out, "Stopped following; the running tapline keeps backfilling.")
		return nil
	}
	view.finish(p)
	if p.f.Status == tapline.FunnelCancelled {
		return describe(tapline.Errorf(tapline.ECONFLICT, "Funnel version %d was cancelled.", f.VersionID))
	}
	return b.done(p.f)
}

// done reports a version that is live.
func (b *backfill) done(f *tapline.Funnel) error {
	if *b.c.asJSON {
		return b.m.printJSON(f)
	}
	fmt.Fprintf(b.out, "Version %d (id %d) of funnel %d is live: %s rows counted. \"tapline funnels show %d\" shows the results.\n",
		f.Version, f.VersionID, f.ID, thousands(f.RowsScanned), f.ID)
	return nil
}

// dryRun counts the version as its backfill would and prints the results,
// writing nothing.
func (m *Main) dryRun(ctx context.Context, c *funnelCommand, s *postgres.FunnelStore, f *tapline.Funnel, workers int, out io.Writer, logger *slog.Logger) error {
	v, err := s.FunnelVersion(ctx, f.VersionID)
	if err != nil {
		return describe(err)
	}
	raw, err := openRaw(ctx, c.cfg, logger)
	var locked *rawLockedError
	if errors.As(err, &locked) {
		return fmt.Errorf("a dry run reads the raw store itself, and %v: stop it for the dry run, or run a real backfill (it follows the running process's)", locked)
	} else if err != nil {
		return describe(err)
	}
	defer raw.Close()
	var h funnels.Handoff
	var asOf string
	switch v.Status {
	case tapline.FunnelBackfilling, tapline.FunnelLive, tapline.FunnelSuperseded:
		h = funnels.Handoff(v.Handoff)
		asOf = fmt.Sprintf("as of its handoff (%d partitions), as the backfill counts", len(v.Handoff))
	default:
		asOf = fmt.Sprintf("as of now: it is %s, so its handoff is not complete", v.Status)
	}
	fmt.Fprintf(out, "Dry run of funnel %d %q, version %d (id %d), %s. Nothing is written.\n", v.ID, v.Name, v.Version, v.VersionID, asOf)
	start := time.Now()
	run := funnels.Backfill{Raw: raw, Workers: workers, Logger: logger}
	batch, st, err := run.Count(ctx, v, h)
	if ctx.Err() != nil {
		return fmt.Errorf("%w: nothing was written", errInterrupted)
	} else if err != nil {
		return describe(err)
	}
	res := funnels.Results(v, funnelRows(batch), nil)
	if *c.asJSON {
		return m.printJSON(res)
	}
	fmt.Fprintf(out, "Scanned %s rows of %s installations in %s.\n\n", thousands(st.Rows), thousands(st.Installations), time.Since(start).Round(time.Millisecond))
	writeResults(out, res)
	return nil
}

// funnelRows turns a backfill's deltas into result rows, by UTC entry day.
func funnelRows(b facts.Batch) []tapline.FunnelRow {
	var rows []tapline.FunnelRow
	for k, v := range b {
		if k.Table != tapline.FactFunnelSteps {
			continue
		}
		rows = append(rows, tapline.FunnelRow{
			Day: time.Unix(k.Hour, 0).UTC().Format(time.DateOnly), Breakdown: k.Breakdown,
			Step: k.Step, Bucket: k.Bucket, Count: v.Count, Sum: v.Sum,
		})
	}
	return rows
}
