package matcher

import (
	"context"
	"fmt"
	"time"

	"tapline"
)

// ErasureLease is how long a matcher holds an erasure request it performs;
// should it die meanwhile, another takes the request over after it.
const ErasureLease = 10 * time.Minute

// erasureLoop performs the pending erasure requests every ErasurePoll.
func (m *Matcher) erasureLoop(ctx context.Context) {
	t := time.NewTicker(m.Config.ErasurePoll)
	defer t.Stop()
	for {
		if _, err := m.PerformErasures(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Error("perform erasure requests", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PerformErasures performs every pending erasure request (tapline.
// ErasureService) and returns how many it completed. For each, under the
// app's lock, so that no install or hit of the app is matched meanwhile,
// it erases the device's raw rows (tapline.RawStore.EraseDevice); then it
// flushes, so that conversions consumed before the erasure are in the
// conversions table, and has the table's rows of the device stripped and
// the request marked done. A failure leaves the request pending for the
// next round (erasing is idempotent).
func (m *Matcher) PerformErasures(ctx context.Context) (int, error) {
	if m.Erasures == nil {
		return 0, fmt.Errorf("matcher: no Erasures to perform")
	}
	done := 0
	for {
		r, err := m.Erasures.ClaimErasure(ctx, ErasureLease)
		if err != nil || r == nil {
			return done, err
		}
		if err := m.performErasure(ctx, r); err != nil {
			return done, fmt.Errorf("erasure request %d: %w", r.ID, err)
		}
		done++
	}
}

func (m *Matcher) performErasure(ctx context.Context, r *tapline.ErasureRequest) error {
	ids, err := m.Erasures.ErasureConversions(ctx, r)
	if err != nil {
		return err
	}
	e := &tapline.Erasure{AppID: r.AppID, ConversionIDs: ids}
	switch r.Kind {
	case tapline.ErasureAdID:
		e.AdIDs = []string{r.Key}
	case tapline.ErasureInstallID:
		e.InstallIDs = []string{r.Key}
	default:
		return fmt.Errorf("unknown erasure kind %q", r.Kind)
	}
	unlock := m.lockApp(r.AppID)
	n, err := m.Raw.EraseDevice(ctx, e)
	unlock()
	if err != nil {
		return fmt.Errorf("erase raw rows: %w", err)
	}
	if err := m.Flush(ctx); err != nil {
		return fmt.Errorf("flush before the conversions table: %w", err)
	}
	if err := m.Erasures.FinishErasure(ctx, r, e.FoundConversions, n); err != nil {
		return err
	}
	m.Logger.Info("erasure request performed", "id", r.ID, "app", r.AppID, "kind", r.Kind,
		"hits", r.Counts.Hits, "events", r.Counts.Events, "hits_stripped", r.Counts.HitsStripped,
		"conversions", r.Counts.Conversions, "conversion_rows", r.Counts.Rows)
	return nil
}
