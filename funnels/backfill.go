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
	"runtime/debug"
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
	DefaultCommitEvery = 5 * time.Second
	DefaultCommitSize  = 1_000_000
	DefaultCommitRows  = 50_000
)

// Backfill counts a funnel version over the raw rows before its handoff.
// The version's installation key ring is split into ranges stored in the
// FunnelStore; workers (in this process and in any other running a
// Backfill of the same version) claim ranges, scan them in key order and
// commit their deltas together with the ranges' cursors, so a killed
// backfill resumes where its last commit left off and no range is counted
// twice. A worker holds one installation's rows and the deltas of the
// installations it scanned since it last passed them on (2,000 at most);
// the process, the pending commit and the one being written, each of at
// most about twice CommitRows fact rows (a fact row per entry hour,
// breakdown value, step and bucket, whatever the number of
// installations): memory does not grow with the data.
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
	// between two commits of a worker; CommitEvery must stay well below
	// Lease.
	CommitEvery time.Duration
	CommitSize  int
	// CommitRows bounds the fact rows of a commit, and with them the
	// memory of the pending deltas (a few hundred bytes a row, twice over
	// while one commit is written and the next one filled).
	CommitRows int
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
	b.CommitRows = cmp.Or(b.CommitRows, DefaultCommitRows)
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
	case b.Workers < 0 || b.Ranges < 0 || b.Rate < 0 || b.CommitSize < 0 || b.CommitRows < 0:
		return tapline.Errorf(tapline.EINVALID, "backfill: workers, ranges, rate and commit sizes must not be negative")
	case b.Lease > 0 && cmp.Or(b.CommitEvery, DefaultCommitEvery) >= b.Lease:
		return tapline.Errorf(tapline.EINVALID, "backfill: commits every %s would let a lease of %s run out", cmp.Or(b.CommitEvery, DefaultCommitEvery), b.Lease)
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
	rs, err := b.Store.Ranges(ctx, versionID)
	if err != nil {
		return Stats{}, fmt.Errorf("backfill %d: %w", versionID, err)
	}
	job := &job{b: b, f: f, c: Compile(f), handoff: Handoff(f.Handoff), nranges: len(rs), shared: newPending(),
		flush: make(chan struct{}, 1), ended: make(chan struct{}, b.Workers)}
	if b.Rate > 0 {
		job.limit = rate.NewLimiter(rate.Limit(b.Rate), max(int(b.Rate/10), 1000))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	committed := make(chan error, 1)
	job.room = sync.NewCond(&job.mu)
	go func() {
		err := job.committer(ctx, stop)
		job.mu.Lock()
		job.stopped = true
		job.room.Broadcast()
		job.mu.Unlock()
		if err != nil {
			cancel(err)
		}
		committed <- err
	}()
	var wg sync.WaitGroup
	errs := make([]error, b.Workers+1)
	for i := range b.Workers {
		wg.Go(func() { errs[i] = job.worker(ctx) })
	}
	wg.Wait()
	close(stop)
	errs[b.Workers] = <-committed
	if err := context.Cause(ctx); err != nil && errs[b.Workers] != nil {
		// The committer's error cancelled the workers: report it alone.
		return job.stats(), errs[b.Workers]
	}
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
	nranges int // of the version, which may have been split by another process

	// The workers of a process pass what they scan to one pending commit,
	// which the committer commits every CommitEvery (or CommitSize
	// installations, or CommitRows fact rows): every commit writes nearly every fact row of the
	// version (a range is a sample of all installations, entering on
	// every day), so one commit for the process writes each row once
	// where a commit per worker, or per range, would write it once each.
	mu      sync.Mutex
	room    *sync.Cond // on mu: the shared pending commit was taken
	stopped bool       // the committer stopped: nobody waits for room
	shared  *pending
	// epoch counts refused commits. A refused commit loses its steps and
	// those that followed them, so a worker whose range began in an
	// earlier epoch gives it up (errLost).
	epoch int64
	// flush asks the committer to commit now.
	flush chan struct{}
	// ended wakes the workers waiting for ranges held by others when a
	// commit of this process ends a range, so the last range's end is
	// seen at once rather than at the next poll.
	ended chan struct{}

	rows, installs, commits, ranges atomic.Int64
}

func (j *job) stats() Stats {
	return Stats{Rows: j.rows.Load(), Installations: j.installs.Load(), Commits: j.commits.Load(), Ranges: j.ranges.Load()}
}

// errLost stops the scan of a range whose earlier steps were refused.
var errLost = errors.New("range lost")

// pending is work scanned and not committed: deltas, and how far each
// range got.
type pending struct {
	batch    facts.Batch
	steps    []tapline.BackfillStep
	index    map[int]int // range → its step
	installs int64
}

func newPending() *pending { return &pending{batch: facts.Batch{}, index: map[int]int{}} }

// add adds a range's next step and its deltas.
func (p *pending) add(st tapline.BackfillStep, deltas facts.Batch) {
	if i, ok := p.index[st.Range]; ok {
		prev := &p.steps[i]
		prev.To, prev.Done = st.To, st.Done
		prev.Rows += st.Rows
		prev.Installations += st.Installations
	} else {
		p.index[st.Range] = len(p.steps)
		p.steps = append(p.steps, st)
	}
	p.batch.Merge(deltas)
	p.installs += st.Installations
}

// pass hands a worker's step and deltas to the shared pending commit,
// unless a refused commit since epoch lost the step's start.
func (j *job) pass(epoch int64, st tapline.BackfillStep, deltas facts.Batch) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	// While a commit is written, the next one fills up to twice
	// CommitRows; then the workers wait for the committer.
	for len(j.shared.batch) >= 2*j.b.CommitRows && !j.stopped {
		j.room.Wait()
	}
	if j.epoch != epoch {
		return errLost
	}
	j.shared.add(st, deltas)
	if j.shared.installs >= int64(j.b.CommitSize) || len(j.shared.batch) >= j.b.CommitRows {
		j.requestFlush()
	}
	return nil
}

func (j *job) requestFlush() {
	select {
	case j.flush <- struct{}{}:
	default:
	}
}

// committer commits the shared pending work every CommitEvery and when
// asked, and once more when stop closes. It returns the first error that
// is not a refusal; the pending work then stays uncommitted.
func (j *job) committer(ctx context.Context, stop <-chan struct{}) error {
	t := time.NewTicker(j.b.CommitEvery)
	defer t.Stop()
	for {
		last := false
		select {
		case <-ctx.Done():
			j.mu.Lock()
			p := j.shared
			j.shared = newPending()
			j.room.Broadcast()
			j.mu.Unlock()
			j.release(ctx, p)
			return nil
		case <-stop:
			if ctx.Err() != nil {
				continue // the next round releases the pending work
			}
			last = true
		case <-t.C:
		case <-j.flush:
		}
		if err := j.commit(ctx); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// commit commits the shared pending work, if any.
func (j *job) commit(ctx context.Context) error {
	j.mu.Lock()
	p := j.shared
	j.shared = newPending()
	j.room.Broadcast()
	j.mu.Unlock()
	if len(p.steps) == 0 {
		return nil
	}
	c := &tapline.BackfillCommit{VersionID: j.f.VersionID, Owner: j.b.Owner, Steps: p.steps, Deltas: p.batch}
	err := j.b.Store.CommitBackfill(ctx, c, j.b.Lease)
	switch {
	case tapline.ErrorCode(err) == tapline.ECONFLICT:
		// A range was taken over (this process stalled past a lease) or
		// the version ended: the steps are lost, and so are those passed
		// since, which continue them. Give their ranges up; they resume
		// from their stored cursors.
		j.mu.Lock()
		j.epoch++
		since := j.shared
		j.shared = newPending()
		j.room.Broadcast()
		j.mu.Unlock()
		j.b.Logger.Warn("backfill commit refused: a range was taken over or the version ended", "version", j.f.VersionID,
			"ranges", len(p.steps)+len(since.steps))
		j.release(ctx, p)
		j.release(ctx, since)
		j.wake()
		return nil
	case err != nil:
		j.release(ctx, p)
		return fmt.Errorf("backfill %d: %w", j.f.VersionID, err)
	}
	ended := false
	for _, st := range p.steps {
		j.rows.Add(st.Rows)
		j.installs.Add(st.Installations)
		if st.Done {
			j.ranges.Add(1)
			ended = true
		}
	}
	j.commits.Add(1)
	if ended {
		j.wake()
	}
	if j.b.Progress != nil {
		j.b.Progress(j.stats())
	}
	return nil
}

// wake wakes the workers waiting for ranges.
func (j *job) wake() {
	for range cap(j.ended) {
		select {
		case j.ended <- struct{}{}:
		default:
		}
	}
}

// release gives up the claims on p's ranges.
func (j *job) release(ctx context.Context, p *pending) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, st := range p.steps {
		_ = j.b.Store.ReleaseRange(rctx, j.f.VersionID, st.Range, j.b.Owner)
	}
}

// worker claims and scans ranges until none is left.
func (j *job) worker(ctx context.Context) error {
	vid := j.f.VersionID
	for {
		j.mu.Lock()
		epoch := j.epoch
		j.mu.Unlock()
		r, err := j.b.Store.ClaimRange(ctx, vid, j.b.Owner, j.b.Lease)
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			// The ranges left are held, some perhaps by this process
			// and passed but not committed: commit them, then wait.
			j.requestFlush()
			done, err := j.finished(ctx)
			if err != nil || done {
				return err
			}
			t := time.NewTimer(j.b.Poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			case <-j.ended:
				t.Stop()
			}
			continue
		} else if err != nil {
			return fmt.Errorf("backfill %d: %w", vid, err)
		}
		if r.Range >= j.nranges-j.b.Workers {
			// One of the last ranges (they are claimed in order): commit
			// what is pending while the last ranges are scanned, so the
			// final commit, which nothing overlaps, carries little.
			j.requestFlush()
		}
		// On an error the claim stays until its lease runs out: steps of
		// the range may still be in the pending commit, which a release
		// would make the database refuse.
		switch err := j.scan(ctx, epoch, r); {
		case errors.Is(err, errLost):
			j.b.Logger.Warn("backfill range given up after a refused commit", "version", vid, "range", r.Range)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = j.b.Store.ReleaseRange(rctx, vid, r.Range, j.b.Owner)
			cancel()
		case err != nil:
			return fmt.Errorf("backfill %d range %d: %w", vid, r.Range, err)
		}
	}
}

// finished reports whether the version stopped backfilling: the commit
// that finishes its last range makes it live, an edit or a delete cancels
// it (ECONFLICT).
func (j *job) finished(ctx context.Context) (bool, error) {
	f, err := j.b.Store.FunnelVersion(ctx, j.f.VersionID)
	if err != nil {
		return false, fmt.Errorf("backfill %d: %w", j.f.VersionID, err)
	}
	switch f.Status {
	case tapline.FunnelBackfilling:
		return false, nil
	case tapline.FunnelCancelled:
		return true, tapline.Errorf(tapline.ECONFLICT, "Funnel version %d was cancelled.", f.VersionID)
	default:
		return true, nil
	}
}

// passEvery is how many installations (or CommitSize, if fewer), or how
// long, a worker scans before it passes its range's step on to the pending
// commit.
const (
	passEvery     = 2000
	passEveryTime = time.Second
)

// scan counts the installations of a claimed range from its cursor,
// passing its steps on as it goes (between keys: installations sharing a
// key must land in one commit, as a resume starts after it) and at the
// range's end.
func (j *job) scan(ctx context.Context, epoch int64, r *tapline.BackfillRange) error {
	var ev Evaluator
	deltas := facts.Batch{}
	st := tapline.BackfillStep{Range: r.Range, From: r.Cursor, To: r.Cursor}
	passed := time.Now()
	err := j.b.Raw.ScanInstallations(ctx, j.f.AppID, tapline.ScanRange{Start: r.Cursor, End: r.End},
		func(key int64, inst *tapline.Installation) error {
			if key != st.To && (st.Installations >= int64(min(passEvery, j.b.CommitSize)) || time.Since(passed) >= passEveryTime) {
				if err := j.pass(epoch, st, deltas); err != nil {
					return err
				}
				st = tapline.BackfillStep{Range: r.Range, From: st.To, To: st.To}
				clear(deltas) // passed on by copy: the map is reused
				passed = time.Now()
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
			deltas.FunnelOutcome(j.f.AppID, j.f.VersionID, &o, 1)
			st.Rows += int64(len(inst.Events))
			st.Installations++
			st.To = key
			return nil
		})
	if err != nil {
		return err
	}
	st.To, st.Done = r.End, true
	return j.pass(epoch, st, deltas)
}

// evaluate returns the outcome of one installation as of the handoff.
func (j *job) evaluate(ctx context.Context, ev *Evaluator, inst *tapline.Installation) (tapline.FunnelOutcome, error) {
	return EvaluateInstallation(ctx, j.b.Raw, ev, j.c, j.handoff, inst)
}

// EvaluateInstallation evaluates a scanned installation in funnel c as of h
// (nil: as now), reading the attributed hit's parameters when c needs them
// and the conversion does not carry them.
func EvaluateInstallation(ctx context.Context, raw Source, ev *Evaluator, c *Compiled, h Handoff, inst *tapline.Installation) (tapline.FunnelOutcome, error) {
	p := NewPath(inst.Events, inst.Conversion, h)
	if c.NeedsHitParams() && p.Tapped() && p.HitParams == nil {
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

// BackfillMemoryLimit is the Go heap's budget in a process that only
// backfills (see TuneGC).
const BackfillMemoryLimit = 160 << 20

// TuneGC makes BackfillMemoryLimit the Go runtime's soft memory limit and
// turns the proportional collector off, unless GOMEMLIMIT or GOGC say
// otherwise, for a process whose work is a backfill. A backfill allocates
// for every row it reads while its live heap stays small and bounded (an
// installation per worker, and the pending commit: at most 2×CommitRows
// fact rows), so the collector runs only when the heap reaches the budget.
// Peak memory is then the same at every data size (the budget, plus the
// raw store's block cache, which pebble keeps outside the Go heap) and the
// collector runs far less often than at GOGC's 2x. Without a finite limit
// (GOMEMLIMIT=off or a huge one) the collector runs at 5x the live heap.
func TuneGC() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(BackfillMemoryLimit)
	}
	if os.Getenv("GOGC") != "" {
		return
	}
	if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < 1<<40 {
		debug.SetGCPercent(-1)
	} else {
		debug.SetGCPercent(400)
	}
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
