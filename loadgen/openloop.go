package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// OpenLoop offers requests at a fixed rate whatever the server's pace, as
// a crowd of independent clients would: a request falls due every 1/Rate
// seconds and is started then, however many earlier ones are still
// waiting for their answer. Only the client's own bound, MaxInFlight,
// holds one back: a request due while MaxInFlight are in flight is not
// started at all and is counted as not sent, so that the result says how
// much of the offer the client itself could not make.
type OpenLoop struct {
	Rate        float64       // requests per second offered
	Duration    time.Duration // how long requests fall due
	MaxInFlight int           // requests in flight at most; 0 means 4096
}

// OpenLoopResult is what an OpenLoop run offered and got.
type OpenLoopResult struct {
	Attempted int64 // requests that fell due: Sent + NotSent
	Sent      int64 // requests started
	NotSent   int64 // requests due while MaxInFlight were in flight
	Answered  int64 // requests the server answered, whatever the status
	OK        int64 // answers the caller's send judged successful
	// Offered is the time over which the Attempted requests fell due (at
	// most Duration); the rates are per second of it. Elapsed is how long
	// the run took, the last answers included.
	Offered time.Duration
	Elapsed time.Duration
	P50     time.Duration // latency of the successful answers
	P99     time.Duration
	Max     time.Duration
}

// String formats r for a log line.
func (r OpenLoopResult) String() string {
	s := max(r.Offered.Seconds(), 1e-9)
	return fmt.Sprintf("attempted %.0f/s, sent %.0f/s, answered %.0f/s, ok %.0f/s (%d attempted, %d sent, %d not sent, %d answered, %d ok); p99 %s",
		float64(r.Attempted)/s, float64(r.Sent)/s, float64(r.Answered)/s, float64(r.OK)/s,
		r.Attempted, r.Sent, r.NotSent, r.Answered, r.OK, r.P99.Round(time.Millisecond))
}

// Run offers requests for Duration, or until ctx ends, and waits for the
// ones started to finish. send makes one request and reports whether the
// server answered it and whether the answer was a success; it must honour
// ctx.
func (o *OpenLoop) Run(ctx context.Context, send func(ctx context.Context) (answered, ok bool)) OpenLoopResult {
	limit := o.MaxInFlight
	if limit <= 0 {
		limit = 4096
	}
	var res OpenLoopResult
	if o.Rate <= 0 || o.Duration <= 0 {
		return res
	}
	sem := make(chan struct{}, limit)
	var answered, ok atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		if elapsed >= o.Duration {
			break
		}
		// What fell due so far, whatever ticks a busy machine dropped.
		due := int64(o.Rate*elapsed.Seconds()) - res.Attempted
		res.Offered = elapsed
		for ; due > 0; due-- {
			res.Attempted++
			select {
			case sem <- struct{}{}:
			default:
				res.NotSent++
				continue
			}
			res.Sent++
			wg.Go(func() {
				defer func() { <-sem }()
				t0 := time.Now()
				a, good := send(ctx)
				d := time.Since(t0)
				if a {
					answered.Add(1)
				}
				if good {
					ok.Add(1)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Answered, res.OK = answered.Load(), ok.Load()
	slices.Sort(lat)
	res.P50, res.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res
}
