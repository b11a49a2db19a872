package cassandra

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sync"

	"golang.org/x/sync/errgroup"

	"tapline"
)

// TokenRange is the range (Start, End] of the Murmur3 token ring.
type TokenRange struct {
	Start, End int64
}

// SplitTokenRing splits the Murmur3 token ring [-2^63, 2^63-1] into n
// contiguous ranges of nearly equal width, in token order: the first
// starts (exclusively) at -2^63, which Murmur3 never assigns to a key, and
// the last ends (inclusively) at 2^63-1. n below 1 counts as 1.
func SplitTokenRing(n int) []TokenRange {
	n = max(n, 1)
	width := new(big.Int).Lsh(big.NewInt(1), 64) // 2^64 tokens
	minTok := big.NewInt(math.MinInt64)
	bound := func(i int) int64 {
		// -2^63 + floor(i * 2^64 / n)
		b := new(big.Int).Mul(width, big.NewInt(int64(i)))
		b.Quo(b, big.NewInt(int64(n)))
		return b.Add(b, minTok).Int64()
	}
	out := make([]TokenRange, n)
	for i := range n {
		out[i] = TokenRange{Start: bound(i), End: math.MaxInt64}
		if i > 0 {
			out[i-1].End = out[i].Start
		}
	}
	return out
}

// ScanEvents calls fn with every visible event of the app, or of every app
// when appID is 0, in no particular order. It splits the token ring into
// ranges (at least 1) and reads up to parallelism (at least 1) of them at
// once, a page at a time; fn is never called concurrently, nor again
// once it has returned an error. The scan stops
// at the first error, from fn or from the cluster. Several times more
// ranges than parallelism, and more ranges than nodes, keep every node
// busy.
func (s *RawStore) ScanEvents(ctx context.Context, appID int64, ranges, parallelism int, fn func(*tapline.Event) error) error {
	if ranges < 1 || parallelism < 1 {
		return tapline.Errorf(tapline.EINVALID, "A scan needs at least one range and one worker, not %d and %d.", ranges, parallelism)
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	var (
		fnMu   sync.Mutex
		failed bool // fn returned an error: call it no more
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for _, r := range SplitTokenRing(ranges) {
		g.Go(func() error {
			return s.scanRange(gctx, r, appID, func(e *tapline.Event) error {
				fnMu.Lock()
				defer fnMu.Unlock()
				if failed {
					return context.Canceled
				}
				err := fn(e)
				failed = err != nil
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	return nil
}

// scanRange reads the events of one token range.
func (s *RawStore) scanRange(ctx context.Context, r TokenRange, appID int64, fn func(*tapline.Event) error) error {
	iter := s.query(ctx, s.stmt.scanEvents, true, r.Start, r.End).Iter()
	var (
		app, t int64
		v      []byte
		err    error
	)
	for iter.Scan(&app, &t, &v) {
		if appID != 0 && app != appID {
			continue
		}
		var cut int64
		if cut, err = s.cutoff(ctx, app); err != nil {
			break
		}
		if t < cut {
			continue
		}
		var e tapline.Event
		if err = json.Unmarshal(v, &e); err != nil {
			err = fmt.Errorf("decode event: %w", err)
			break
		}
		if err = fn(&e); err != nil {
			break
		}
	}
	if cerr := iter.Close(); err == nil && cerr != nil {
		err = translate(cerr)
	}
	return err
}
