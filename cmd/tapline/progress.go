package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"tapline"
)

// progress is one look at a version's backfill as PostgreSQL has it: the
// commits of every process working on it.
type progress struct {
	f          *tapline.Funnel
	rangesDone int
	ranges     int
	at         time.Time
}

// rateMeter estimates rows per second from the looks of the last
// rateWindow with the same status.
type rateMeter struct{ samples []progress }

const rateWindow = 30 * time.Second

func (r *rateMeter) add(p progress) {
	if n := len(r.samples); n > 0 && r.samples[n-1].f.Status != p.f.Status {
		r.samples = r.samples[:0]
	}
	r.samples = append(r.samples, p)
	for len(r.samples) > 2 && p.at.Sub(r.samples[0].at) > rateWindow {
		r.samples = r.samples[1:]
	}
}

// rate returns rows per second, 0 while unknown.
func (r *rateMeter) rate() float64 {
	if len(r.samples) < 2 {
		return 0
	}
	a, b := r.samples[0], r.samples[len(r.samples)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt < 0.5 || b.f.RowsScanned < a.f.RowsScanned {
		return 0
	}
	return float64(b.f.RowsScanned-a.f.RowsScanned) / dt
}

// approx rounds an estimate to three significant digits.
func approx(n int64) int64 {
	if n < 1000 {
		return n
	}
	p := int64(math.Pow10(int(math.Floor(math.Log10(float64(n)))) - 2))
	return (n + p/2) / p * p
}

// progressText says how far the backfill is: "41% 1,204,331 of
// ~2,930,000 rows, 48,210 rows/s, eta 35s".
func progressText(p progress, rate float64) string {
	return strings.TrimSpace(progressPct(p) + " " + progressRows(p, rate))
}

// progressPct is the part of the key space covered, "41%", or "" while
// there is nothing to measure.
func progressPct(p progress) string {
	switch {
	case p.f.Status == tapline.FunnelLive || p.f.Status == tapline.FunnelSuperseded:
		return "100%"
	case p.f.Status != tapline.FunnelBackfilling || (p.f.RowsEstimated == 0 && p.ranges == 0):
		return ""
	}
	return fmt.Sprintf("%d%%", int(math.Floor(p.f.Progress*100)))
}

// progressRows is the rest of progressText.
func progressRows(p progress, rate float64) string {
	f := p.f
	switch f.Status {
	case tapline.FunnelPending:
		return fmt.Sprintf("pending: waiting for the matchers to fix its handoff (%d partitions so far)", len(f.Handoff))
	case tapline.FunnelLive, tapline.FunnelSuperseded:
		return fmt.Sprintf("%s rows, %s", thousands(f.RowsScanned), f.Status)
	case tapline.FunnelCancelled:
		return "cancelled"
	}
	if f.RowsEstimated == 0 {
		if p.ranges == 0 {
			return "starting: no range scanned yet"
		}
		return fmt.Sprintf("%s rows, %d of %d ranges", thousands(f.RowsScanned), p.rangesDone, p.ranges)
	}
	left := "unknown"
	if rate > 0 {
		left = eta(float64(max(f.RowsEstimated-f.RowsScanned, 0)) / rate)
	}
	return fmt.Sprintf("%s of ~%s rows, %s rows/s, eta %s", thousands(f.RowsScanned),
		thousands(approx(f.RowsEstimated)), thousands(int64(math.Round(rate))), left)
}

// progressView shows progress as it changes.
type progressView interface {
	show(p progress)
	// finish shows the last state and ends the display.
	finish(p progress)
}

// newProgressView returns a live bar when w is a terminal, else a log
// line every `every`.
func newProgressView(w io.Writer, every time.Duration) progressView {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barView{w: w}
	}
	return &logView{w: w, every: every}
}

// logView writes "backfill version 12: …" every `every`, on each change
// of status, and at the end.
type logView struct {
	w      io.Writer
	every  time.Duration
	meter  rateMeter
	last   time.Time
	status tapline.FunnelStatus
}

func (v *logView) line(p progress) {
	fmt.Fprintf(v.w, "backfill version %d: %s\n", p.f.VersionID, progressText(p, v.meter.rate()))
	v.last, v.status = p.at, p.f.Status
}

func (v *logView) show(p progress) {
	v.meter.add(p)
	if p.f.Status != v.status || p.at.Sub(v.last) >= v.every {
		v.line(p)
	}
}

func (v *logView) finish(p progress) {
	v.meter.add(p)
	v.line(p)
}

// barView draws a progress bar of rows scanned of estimated, with the
// rate and the time left; until there is an estimate it writes what it
// waits for.
type barView struct {
	w      io.Writer
	bar    *progressbar.ProgressBar
	meter  rateMeter
	status tapline.FunnelStatus
}

func (v *barView) show(p progress) {
	v.meter.add(p)
	f := p.f
	if f.Status != tapline.FunnelBackfilling || f.RowsEstimated == 0 {
		if v.bar == nil && f.Status != v.status {
			fmt.Fprintf(v.w, "backfill version %d: %s\n", f.VersionID, progressText(p, 0))
		}
		v.status = f.Status
		return
	}
	v.status = f.Status
	total := max(f.RowsEstimated, f.RowsScanned, 1)
	if v.bar == nil {
		v.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetTheme(progressbar.ThemeASCII),
		)
	}
	v.bar.ChangeMax64(total)
	_ = v.bar.Set64(min(f.RowsScanned, total))
	v.bar.Describe(fmt.Sprintf("version %d: %s", f.VersionID, progressRows(p, v.meter.rate())))
}

func (v *barView) finish(p progress) {
	v.meter.add(p)
	if v.bar != nil {
		v.bar.Describe(fmt.Sprintf("version %d: %s", p.f.VersionID, progressRows(p, v.meter.rate())))
		if p.f.Status == tapline.FunnelLive || p.f.Status == tapline.FunnelSuperseded {
			_ = v.bar.Finish()
		}
		fmt.Fprintln(v.w)
		return
	}
	fmt.Fprintf(v.w, "backfill version %d: %s\n", p.f.VersionID, progressText(p, v.meter.rate()))
}

// progressSource reads a version's progress.
type progressSource interface {
	FunnelVersion(ctx context.Context, versionID int64) (*tapline.Funnel, error)
	Ranges(ctx context.Context, versionID int64) ([]*tapline.BackfillRange, error)
}

// readProgress looks at a version's progress once.
func readProgress(ctx context.Context, s progressSource, versionID int64) (progress, error) {
	f, err := s.FunnelVersion(ctx, versionID)
	if err != nil {
		return progress{}, err
	}
	p := progress{f: f, at: time.Now()}
	if f.Status == tapline.FunnelBackfilling || f.Status == tapline.FunnelLive {
		rs, err := s.Ranges(ctx, versionID)
		if err != nil {
			return progress{}, err
		}
		p.ranges = len(rs)
		for _, r := range rs {
			if r.Done {
				p.rangesDone++
			}
		}
	}
	return p, nil
}

// watch shows a version's progress every poll until ctx ends or until
// stop returns true for a look, and returns the last look (zero when
// there was none). Errors reading the progress are shown, not fatal.
func watch(ctx context.Context, s progressSource, versionID int64, view progressView, poll time.Duration, stop func(progress) bool) progress {
	t := time.NewTicker(poll)
	defer t.Stop()
	var last progress
	for {
		p, err := readProgress(ctx, s, versionID)
		if err == nil {
			last = p
			if stop(p) {
				return p
			}
			view.show(p)
		}
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}
