package funnels

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"tapline"
	"tapline/facts"
)

// Source is what a backfill reads of the raw store.
type Source interface {
	ScanInstallations(ctx context.Context, appID int64, r tapline.ScanRange, fn func(key int64, inst *tapline.Installation) error) error
	HitAt(ctx context.Context, appID int64, id string, at time.Time) (*tapline.Hit, error)
}

// Backfill defaults.
const (
	DefaultRanges      = 64
	DefaultLease       = 30 * time.Second
	DefaultCommitEvery = 2 * time.Second
	DefaultCommitSize  = 5000
)

// Backfill counts a funnel version over the raw rows before its handoff.
// The version's installation key ring is split into ranges stored in the
// FunnelStore; workers (in this process and in any other running a
// Backfill of the same version) claim ranges, scan them in key order and
// commit their deltas together with the range's cursor, so a killed
// backfill resumes where its last commit left off and no range is counted
// twice. A worker holds one installation's rows and the deltas of at most
// CommitSize installations: memory does not grow with the data.
type Backfill struct {
	Raw   Source
	Store tapline.FunnelStore

	// Workers scan ranges in parallel; 0 means the number of CPUs.
	Workers int
	// Rate bounds the raw rows (events) read per second, over all
	// workers of this process; 0 means no bound.
	Rate float64
	// Ranges is how many ranges a new backfill is split into.
	Ranges int
	// Owner names this process in range claims; "" makes one up.
	Owner string
	// Lease is how long a claim lasts without a commit; a range whose
	// worker died is taken over after it.
	Lease time.Duration
	// CommitEvery and CommitSize bound the time and the installations
	// between two commits of a range.
	CommitEvery time.Duration
	CommitSize  int
	// Poll is how often to look for the handoff and for ranges held by
	// others; 0 means 500 ms.
	Poll time.Duration

	Logger *slog.Logger
	// Progress, when set, is called after each commit with what this
	// process scanned so far.
	Progress func(Stats)
}

// Stats counts what a backfill scanned.
type Stats struct {
	Rows          int64 // events read
	Installations int64
	Commits       int64
	Ranges        int64 // ranges this process finished
}

func (b *Backfill) setDefaults() {
	b.Workers = cmp.Or(b.Workers, runtime.NumCPU())
	b.Ranges = cmp.Or(b.Ranges, DefaultRanges)
	b.Lease = cmp.Or(b.Lease, DefaultLease)
	b.CommitEvery = cmp.Or(b.CommitEvery, DefaultCommitEvery)
	b.CommitSize = cmp.Or(b.CommitSize, DefaultCommitSize)
	b.Poll = cmp.Or(b.Poll, 500*time.Millisecond)
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	if b.Owner == "" {
		host, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:])
		b.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
}

func (b *Backfill) validate() error {
	switch {
	case b.Raw == nil || b.Store == nil:
		return fmt.Errorf("backfill: Raw and Store are required")
	case b.Workers < 0 || b.Ranges < 0 || b.Rate < 0 || b.CommitSize < 0:
		return tapline.Errorf(tapline.EINVALID, "backfill: workers, ranges, rate and commit size must not be negative")
	}
	return nil
}

// Run backfills version versionID until every range is done (by this
// process or another), then returns what this process scanned. It waits
// for a pending version's handoff first. A version already live returns at
// once; a cancelled one is ECONFLICT.
func (b *Backfill) Run(ctx context.Context, versionID int64) (Stats, error) {
	if err := b.validate(); err != nil {
		return Stats{}, err
	}
	b.setDefaults()
	f, err := b.awaitHandoff(ctx, versionID)
	if err != nil || f == nil {
		return Stats{}, err
	}
	if err := b.Store.CreateRanges(ctx, versionID, b.Ranges); err != nil {
		return Stats{}, fmt.Errorf("backfill %d: %w", versionID, err)
	}
	job := &job{b: b, f: f, c: Compile(f), handoff: Handoff(f.Handoff)}
	if b.Rate > 0 {
		job.limit = rate.NewLimiter(rate.Limit(b.Rate), max(int(b.Rate/10), 1000))
	}
	var wg sync.WaitGroup
	errs := make([]error, b.Workers)
	for i := range b.Workers {
		wg.Go(func() { errs[i] = job.worker(ctx) })
	}
	wg.Wait()
	return job.stats(), errors.Join(errs...)
}

// awaitHandoff returns the version once its handoff is complete, nil when
// it is live already.
func (b *Backfill) awaitHandoff(ctx context.Context, versionID int64) (*tapline.Funnel, error) {
	logged := false
	for {
		f, err := b.Store.FunnelVersion(ctx, versionID)
		if err != nil {
			return nil, fmt.Errorf("backfill %d: %w", versionID, err)
		}
		switch f.Status {
		case tapline.FunnelBackfilling:
			return f, nil
		case tapline.FunnelLive, tapline.FunnelSuperseded:
			return nil, nil
		case tapline.FunnelCancelled:
			return nil, tapline.Errorf(tapline.ECONFLICT, "Funnel version %d was cancelled.", versionID)
		}
		if !logged {
			b.Logger.Info("waiting for the matchers to fix the funnel's handoff", "version", versionID)
			logged = true
		}
		if err := sleepCtx(ctx, b.Poll); err != nil {
			return nil, err
		}
	}
}

// job is one Run's shared state.
type job struct {
	b       *Backfill
	f       *tapline.Funnel
	c       *Compiled
	handoff Handoff
	limit   *rate.Limiter

	rows, installs, commits, ranges atomic.Int64
}

func (j *job) stats() Stats {
	return Stats{Rows: j.rows.Load(), Installations: j.installs.Load(), Commits: j.commits.Load(), Ranges: j.ranges.Load()}
}

// errLost stops the scan of a range another worker took over.
var errLost = errors.New("range lost")

// worker claims and scans ranges until none is left.
func (j *job) worker(ctx context.Context) error {
	vid := j.f.VersionID
	for {
		r, err := j.b.Store.ClaimRange(ctx, vid, j.b.Owner, j.b.Lease)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			done, err := j.finished(ctx)
			if err != nil || done {
				return err
			}
			if err := sleepCtx(ctx, j.b.Poll); err != nil {
				return err
			}
			continue
		} else if err != nil {
			return fmt.Errorf("backfill %d: %w", vid, err)
		}
		err = j.scan(ctx, r)
		switch {
		case errors.Is(err, errLost):
			j.b.Logger.Warn("backfill range taken over by another worker", "version", vid, "range", r.Range)
		case err != nil:
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = j.b.Store.ReleaseRange(rctx, vid, r.Range, j.b.Owner)
			cancel()
			return fmt.Errorf("backfill %d range %d: %w", vid, r.Range, err)
		default:
			j.ranges.Add(1)
		}
	}
}

// finished reports whether every range is done, or the version stopped
// backfilling.
func (j *job) finished(ctx context.Context) (bool, error) {
	f, err := j.b.Store.FunnelVersion(ctx, j.f.VersionID)
	if err != nil {
		return false, fmt.Errorf("backfill %d: %w", j.f.VersionID, err)
	}
	switch f.Status {
	case tapline.FunnelBackfilling:
	case tapline.FunnelCancelled:
		return true, tapline.Errorf(tapline.ECONFLICT, "Funnel version %d was cancelled.", f.VersionID)
	default:
		return true, nil
	}
	rs, err := j.b.Store.Ranges(ctx, j.f.VersionID)
	if err != nil {
		return false, fmt.Errorf("backfill %d: %w", j.f.VersionID, err)
	}
	for _, r := range rs {
		if !r.Done {
			return false, nil
		}
	}
	return true, nil
}

// scan counts the installations of a claimed range from its cursor,
// committing as it goes.
func (j *job) scan(ctx context.Context, r *tapline.BackfillRange) error {
	var ev Evaluator
	batch := facts.Batch{}
	cursor, last := r.Cursor, r.Cursor
	var rows, installs int64
	lastCommit := time.Now()
	commit := func(to int64, done bool) error {
		c := &tapline.BackfillCommit{VersionID: j.f.VersionID, Range: r.Range, Owner: j.b.Owner,
			From: cursor, To: to, Done: done, Rows: rows, Installations: installs, Deltas: batch}
		err := j.b.Store.CommitBackfill(ctx, c, j.b.Lease)
		if tapline.ErrorCode(err) == tapline.ECONFLICT {
			return errLost
		} else if err != nil {
			return err
		}
		j.rows.Add(rows)
		j.installs.Add(installs)
		j.commits.Add(1)
		cursor, rows, installs, batch, lastCommit = to, 0, 0, facts.Batch{}, time.Now()
		if j.b.Progress != nil {
			j.b.Progress(j.stats())
		}
		return nil
	}
	err := j.b.Raw.ScanInstallations(ctx, j.f.AppID, tapline.ScanRange{Start: r.Cursor, End: r.End},
		func(key int64, inst *tapline.Installation) error {
			// Commit only between keys: installations sharing a key
			// must land in one commit, as a resume starts after it.
			if key != last && (installs >= int64(j.b.CommitSize) || time.Since(lastCommit) >= j.b.CommitEvery) {
				if err := commit(last, false); err != nil {
					return err
				}
			}
			if j.limit != nil {
				if err := j.limit.WaitN(ctx, min(max(len(inst.Events), 1), j.limit.Burst())); err != nil {
					return err
				}
			}
			o, err := j.evaluate(ctx, &ev, inst)
			if err != nil {
				return err
			}
			batch.FunnelOutcome(j.f.AppID, j.f.VersionID, &o, 1)
			rows += int64(len(inst.Events))
			installs++
			last = key
			return nil
		})
	if err != nil {
		return err
	}
	return commit(r.End, true)
}

// evaluate returns the outcome of one installation as of the handoff.
func (j *job) evaluate(ctx context.Context, ev *Evaluator, inst *tapline.Installation) (tapline.FunnelOutcome, error) {
	return EvaluateInstallation(ctx, j.b.Raw, ev, j.c, j.handoff, inst)
}

// EvaluateInstallation evaluates a scanned installation in funnel c as of h
// (nil: as now), looking up the attributed hit's parameters when c needs
// them.
func EvaluateInstallation(ctx context.Context, raw Source, ev *Evaluator, c *Compiled, h Handoff, inst *tapline.Installation) (tapline.FunnelOutcome, error) {
	p := NewPath(inst.Events, inst.Conversion, h)
	if c.NeedsHitParams() && p.Tapped() {
		hit, err := raw.HitAt(ctx, inst.AppID, p.Attribution.HitID, p.Attribution.HitTime)
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
		case err != nil:
			return tapline.FunnelOutcome{}, fmt.Errorf("hit %s: %w", p.Attribution.HitID, err)
		default:
			p.HitParams = hit.Params
		}
	}
	return ev.Evaluate(c, &p), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Count evaluates funnel f over every installation of its app as of h (nil:
// as now) and returns the deltas it would commit, writing nothing: the dry
// run of a backfill. It scans Ranges ranges with Workers workers.
func (b *Backfill) Count(ctx context.Context, f *tapline.Funnel, h Handoff) (facts.Batch, Stats, error) {
	if b.Raw == nil {
		return nil, Stats{}, fmt.Errorf("backfill: Raw is required")
	}
	b.setDefaults()
	c := Compile(f)
	ranges := make(chan tapline.ScanRange)
	var mu sync.Mutex
	total := facts.Batch{}
	var stats Stats
	var wg sync.WaitGroup
	errs := make([]error, b.Workers)
	for i := range b.Workers {
		wg.Go(func() {
			var ev Evaluator
			for r := range ranges {
				batch := facts.Batch{}
				var st Stats
				err := b.Raw.ScanInstallations(ctx, f.AppID, r, func(_ int64, inst *tapline.Installation) error {
					o, err := EvaluateInstallation(ctx, b.Raw, &ev, c, h, inst)
					if err != nil {
						return err
					}
					batch.FunnelOutcome(f.AppID, f.VersionID, &o, 1)
					st.Rows += int64(len(inst.Events))
					st.Installations++
					return nil
				})
				if err != nil {
					errs[i] = err
					for range ranges { // drain
					}
					return
				}
				mu.Lock()
				total.Merge(batch)
				stats.Rows += st.Rows
				stats.Installations += st.Installations
				stats.Ranges++
				mu.Unlock()
			}
		})
	}
	for _, r := range tapline.SplitRing(b.Ranges) {
		select {
		case ranges <- r:
		case <-ctx.Done():
		}
	}
	close(ranges)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, stats, err
	}
	return total, stats, ctx.Err()
}
