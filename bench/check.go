package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"tapline"
	"tapline/collector"
	"tapline/internal/node"
	"tapline/loadgen"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/whatif"
)

// The accuracy check replays the accuracy populations the same way on
// every run and compares what tapline attributes with the numbers
// recorded in the baseline file: speed work must not change a single
// attribution. The paced replay of the main scenario cannot serve: its
// taps get the time they reach the collector, and its partitions are
// matched in parallel, so its counts move by a few installs between runs.
//
// Here the bench drives the collector's own handler in process, one
// request after another, on a virtual clock that stands at each action's
// place in the timeline (the same one the paced replay follows), onto an
// embedded bus of one partition per topic. tapline then matches that bus
// in receive order (Config.StartReplay) and its attributions are scored.

// AccuracyCheck is the result of the accuracy check.
type AccuracyCheck struct {
	Populations map[string]loadgen.Accuracy `json:"populations"`
	// Answers is, per population, the SHA-256 of every install's answer
	// (tap, method, best fingerprint candidate and its score) in install
	// order: equal scores from different attributions differ here.
	Answers  map[string]string `json:"answers"`
	Messages int               `json:"messages"`
	Seconds  float64           `json:"seconds"` // tapline's time to match the bus
	// Baseline says how the numbers compare with the baseline file:
	// "same", "CHANGED", "recorded" (no baseline yet, or AcceptAccuracy),
	// or "not compared" (the baseline is of other sizes).
	Baseline string   `json:"baseline"`
	Changes  []string `json:"changes,omitempty"`
	// WhatIf is a what-if on the "acc" population's stored matching
	// (package whatif): precision and recall under today's rules and the
	// tried ones, each replay scored against the truth.
	WhatIf *WhatIfRow `json:"whatif,omitempty"`
}

// WhatIfRow is the bench's what-if: the rules tried, the result's
// figures, and each replay's accuracy.
type WhatIfRow struct {
	Population   string           `json:"population"`
	Tried        string           `json:"tried"`
	Installs     int              `json:"installs"`
	Moved        int              `json:"moved"`
	StoredSame   int              `json:"stored_same"`
	Stored       int              `json:"stored_compared"`
	Seconds      float64          `json:"seconds"`
	Today        loadgen.Accuracy `json:"today"`
	Hypothetical loadgen.Accuracy `json:"hypothetical"`
}

// accuracyBaseline is the baseline file: the sizes it was taken at and
// the accuracy of each population.
type accuracyBaseline struct {
	Seed        uint64                      `json:"seed"`
	Devices     int                         `json:"accuracy_devices"`
	Compression float64                     `json:"compression"`
	Period      time.Duration               `json:"period_ns"`
	Populations map[string]loadgen.Accuracy `json:"populations"`
	Answers     map[string]string           `json:"answers"`
}

// checkRun runs the accuracy check.
func (r *Runner) checkRun(ctx context.Context) error {
	c := &r.Config
	if c.StartReplay == nil {
		return fmt.Errorf("no StartReplay to run the accuracy check with")
	}
	pops, ws, specs, err := r.accuracyPops()
	if err != nil {
		return err
	}
	s, err := r.seed(ctx, "check", specs...)
	if err != nil {
		return err
	}
	defer s.db.Close()
	dataDir := filepath.Join(c.WorkDir, "tapline-check")
	n, err := r.recordReplay(ctx, s, filepath.Join(dataDir, "bus"), pops, ws)
	if err != nil {
		return err
	}
	p, err := c.StartReplay(ctx, s.url, dataDir)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop()
		}
	}()
	start := time.Now()
	if err := waitOffsets(ctx, s.url, n); err != nil {
		return err
	}
	check := &AccuracyCheck{Messages: n, Seconds: time.Since(start).Seconds(), Populations: map[string]loadgen.Accuracy{}, Answers: map[string]string{}}
	stopped = true
	if err := p.Stop(); err != nil {
		return err
	}
	apps := make([]*tapline.App, len(pops))
	for i, pop := range pops {
		apps[i] = s.apps[pop.name]
	}
	attributions, err := readAttributions(ctx, dataDir, apps, ws)
	if err != nil {
		return err
	}
	for i, pop := range pops {
		check.Populations[pop.name] = loadgen.Score(ws[i], attributions[i])
		check.Answers[pop.name] = answersDigest(attributions[i])
	}
	r.res.AccuracyCheck = check
	if err := r.compareBaseline(check); err != nil {
		return err
	}
	if check.WhatIf, err = r.whatIf(ctx, dataDir, apps[0], ws[0], pops[0].name); err != nil {
		return fmt.Errorf("what-if: %w", err)
	}
	return nil
}

// whatIf runs a what-if over the population's matching in dataDir's raw
// store, halving the app's fingerprint window, and scores both replays
// against the population's truth.
func (r *Runner) whatIf(ctx context.Context, dataDir string, app *tapline.App, w *loadgen.Workload, name string) (*WhatIfRow, error) {
	raw := pebble.NewRawStore(filepath.Join(dataDir, "raw"))
	if err := raw.Open(); err != nil {
		return nil, fmt.Errorf("open raw store: %w", err)
	}
	defer raw.Close()
	a := *app
	a.SetDefaults()
	// The check's clock starts at yesterday's midnight and runs
	// compressed: every install lies in these days.
	from := time.Now().UTC().Truncate(24 * time.Hour).Add(-48 * time.Hour)
	to := from.Add(96 * time.Hour)
	row := &WhatIfRow{Population: name, Tried: fmt.Sprintf("fingerprint window %s instead of %s", a.FingerprintWindow/2, a.FingerprintWindow)}
	scores := map[string]*loadgen.Accuracy{"today": &row.Today, "hypothetical": &row.Hypothetical}
	start := time.Now()
	res, err := whatif.Run(ctx, raw, &a, nil, whatif.Request{AppID: a.ID, From: from, To: to, Rules: whatif.Rules{FingerprintWindow: a.FingerprintWindow / 2}},
		node.WhatIfScratch(filepath.Join(r.Config.WorkDir, "whatif")), node.WhatIfReplay(&node.Config{MatcherClockSkew: scaledSkew(r.Config.Compression)}, slog.New(slog.DiscardHandler)),
		func(replay string, scratch tapline.RawStore) error {
			got, err := loadgen.Attributions(ctx, scratch, a.ID, w)
			if err != nil {
				return err
			}
			*scores[replay] = loadgen.Score(w, got)
			return nil
		})
	if err != nil {
		return nil, err
	}
	row.Installs, row.Moved, row.StoredSame, row.Stored = res.Installs, res.Moved, res.StoredSame, res.StoredCompared
	row.Seconds = time.Since(start).Seconds()
	return row, nil
}

// compareBaseline compares check with the baseline file, recording it
// when there is none or AcceptAccuracy is set; it returns an error when
// the numbers changed.
func (r *Runner) compareBaseline(check *AccuracyCheck) error {
	c := &r.Config
	if c.AccuracyBaseline == "" {
		check.Baseline = "not compared"
		return nil
	}
	cur := accuracyBaseline{Seed: c.Seed, Devices: c.Accuracy, Compression: c.Compression, Period: c.Period,
		Populations: check.Populations, Answers: check.Answers}
	b, err := os.ReadFile(c.AccuracyBaseline)
	if errors.Is(err, os.ErrNotExist) || c.AcceptAccuracy {
		js, err := json.MarshalIndent(cur, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.AccuracyBaseline, append(js, '\n'), 0o644); err != nil {
			return fmt.Errorf("write the accuracy baseline: %w", err)
		}
		check.Baseline = "recorded"
		return nil
	} else if err != nil {
		return fmt.Errorf("read the accuracy baseline: %w", err)
	}
	var base accuracyBaseline
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&base); err != nil {
		return fmt.Errorf("read the accuracy baseline %s: %w", c.AccuracyBaseline, err)
	}
	if base.Seed != cur.Seed || base.Devices != cur.Devices || base.Compression != cur.Compression || base.Period != cur.Period {
		check.Baseline = "not compared"
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(cur.Populations)) {
		wj, err1 := json.Marshal(base.Populations[name])
		nj, err2 := json.Marshal(cur.Populations[name])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if !bytes.Equal(wj, nj) {
			check.Changes = append(check.Changes, fmt.Sprintf("%s: was %s, now %s", name, wj, nj))
		} else if base.Answers[name] != cur.Answers[name] {
			check.Changes = append(check.Changes, fmt.Sprintf("%s: the same scores from other answers (digest %s, was %s)", name, cur.Answers[name], base.Answers[name]))
		}
	}
	if len(check.Changes) == 0 {
		check.Baseline = "same"
		return nil
	}
	check.Baseline = "CHANGED"
	return fmt.Errorf("the attributions of the accuracy check changed from the baseline %s (rerun with -accept-accuracy when that is intended): %v",
		c.AccuracyBaseline, check.Changes)
}

// recordReplay replays the populations through an in-process collector on
// a virtual clock onto a fresh embedded bus of one partition per topic at
// dir, and returns how many messages it holds.
func (r *Runner) recordReplay(ctx context.Context, s *seeded, dir string, pops []accuracyPop, ws []*loadgen.Workload) (int, error) {
	c := &r.Config
	bus := pebble.NewBus(dir)
	bus.NumPartitions = 1
	bus.Logger = slog.New(slog.DiscardHandler)
	if err := bus.Open(); err != nil {
		return 0, fmt.Errorf("open bus: %w", err)
	}
	defer bus.Close()
	counted := &countingBus{Bus: bus}
	// Yesterday's midnight: the clock's hours (the click-flooding counts)
	// fall alike on every run, and every time is past.
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var now atomic.Int64
	now.Store(base.UnixNano())
	ccfg := collector.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		TapRate:        collector.DefaultTapRate * max(c.Compression, 1),
		TapBurst:       int(float64(collector.DefaultTapBurst) * max(c.Compression, 1)),
		// A held Chromium tap waits for its retry on the wall clock: the
		// retry comes next, however slow the machine.
		HintRetryWait: time.Hour,
	}
	coll := collector.New(ccfg, postgres.NewAccountService(s.db), counted)
	coll.Logger = slog.New(slog.DiscardHandler)
	coll.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	if err := coll.Open(ctx); err != nil {
		return 0, fmt.Errorf("open collector: %w", err)
	}
	client := &http.Client{
		Transport:     handlerTransport{coll.Handler()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// The populations one after the other on the clock, so that receive
	// times only grow on each topic, as the ordered matcher needs.
	var start time.Time
	clock := func(at time.Duration) time.Time {
		t := start.Add(time.Duration(float64(at) / max(c.Compression, 1)))
		now.Store(t.UnixNano())
		return t
	}
	start = base
	for i, pop := range pops {
		if i > 0 {
			start = start.Add(time.Duration(float64(ws[i-1].Span())/max(c.Compression, 1)) + time.Minute)
		}
		player := &loadgen.Player{Target: target("http://tapline.invalid", s.apps[pop.name]), Workload: ws[i], Workers: 1, Client: client, Clock: clock}
		res, err := player.Run(ctx)
		if err != nil {
			coll.Close()
			return 0, fmt.Errorf("replay %s: %w", pop.name, err)
		}
		if failed := res.Taps.Errors + res.Installs.Errors + res.Events.Errors; failed > 0 {
			coll.Close()
			return 0, fmt.Errorf("replay %s: %d requests failed", pop.name, failed)
		}
	}
	if err := coll.Close(); err != nil { // publishes the queued hits
		return 0, fmt.Errorf("close collector: %w", err)
	}
	queued, published, dropped := counter(coll.Registry, "tapline_collector_hits_queued_total"),
		counter(coll.Registry, "tapline_collector_hits_published_total"), counter(coll.Registry, "tapline_collector_hits_dropped_total")
	if dropped > 0 || published != queued {
		return 0, fmt.Errorf("the collector queued %v hits, published %v and dropped %v: the replay would differ", queued, published, dropped)
	}
	return int(counted.n.Load()), nil
}

// counter returns the sum of a counter's series in reg, 0 when absent.
func counter(reg prometheus.Gatherer, name string) float64 {
	fams, err := reg.Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// answersDigest is the SHA-256 of the answers in install order.
func answersDigest(got map[int]loadgen.Answer) string {
	h := sha256.New()
	for _, n := range slices.Sorted(maps.Keys(got)) {
		a := got[n]
		fmt.Fprintf(h, "%d %d %s %d %.6f\n", n, a.Tap, a.Method, a.Best, a.Score)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// countingBus counts the messages published through it.
type countingBus struct {
	tapline.Bus
	n atomic.Int64
}

func (b *countingBus) Publish(ctx context.Context, msgs ...tapline.Message) error {
	err := b.Bus.Publish(ctx, msgs...)
	if err == nil {
		b.n.Add(int64(len(msgs)))
	}
	return err
}

// handlerTransport sends requests straight to a handler, from 127.0.0.1.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RemoteAddr = "127.0.0.1:40000"
	in.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	return rec.Result(), nil
}

// waitOffsets waits until the matcher's stored offsets cover n messages.
func waitOffsets(ctx context.Context, dbURL string, n int) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	for {
		var done int64
		if err := pool.QueryRow(ctx, "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets").Scan(&done); err != nil {
			return err
		}
		if done >= int64(n) {
			return nil
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("matcher took %d of %d messages in 10 minutes", done, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
