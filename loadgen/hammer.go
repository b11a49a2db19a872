package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Summary describes a set of requests: how many, how fast, how long they
// took.
type Summary struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Rate     float64       `json:"per_second"` // successful requests per second
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
}

// String formats s for a log line.
func (s Summary) String() string {
	return fmt.Sprintf("%d req (%d err) in %s: %.0f/s p50 %s p99 %s", s.Requests, s.Errors, s.Elapsed.Round(time.Millisecond),
		s.Rate, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
}

// Summarize computes a Summary from latency samples of the successful
// requests (sorted in place), the error count and the elapsed time.
func Summarize(samples []time.Duration, errors int, elapsed time.Duration) Summary {
	slices.Sort(samples)
	s := Summary{Requests: len(samples) + errors, Errors: errors, Elapsed: elapsed}
	if elapsed > 0 {
		s.Rate = float64(len(samples)) / elapsed.Seconds()
	}
	if n := len(samples); n > 0 {
		s.P50 = Percentile(samples, 0.50)
		s.P99 = Percentile(samples, 0.99)
		s.Max = samples[n-1]
	}
	return s
}

// Percentile returns the q-quantile (0..1) of sorted samples, nearest rank.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Hammer is a closed-loop load generator: Workers goroutines each send one
// request after another, over keep-alive connections, for Duration.
type Hammer struct {
	Workers  int
	Duration time.Duration
	Client   *http.Client // NewClient(Workers) when nil
}

// Run sends the requests next builds (worker is 0..Workers-1, seq counts
// that worker's requests) until Duration has passed or ctx is done. ok
// decides whether a response succeeded; its body is read and closed by
// Run. Only successful requests' latencies are kept.
func (h *Hammer) Run(ctx context.Context, next func(worker, seq int) *http.Request, ok func(*http.Response) bool) Summary {
	client := h.Client
	if client == nil {
		client = NewClient(h.Workers)
	}
	ctx, cancel := context.WithTimeout(ctx, h.Duration)
	defer cancel()
	var (
		mu      sync.Mutex
		samples []time.Duration
		errs    int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := range h.Workers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			var localErrs int
			for seq := 0; ctx.Err() == nil; seq++ {
				req := next(w, seq).WithContext(ctx)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						localErrs++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if ok(resp) {
					local = append(local, time.Since(t0))
				} else {
					localErrs++
				}
			}
			mu.Lock()
			samples = append(samples, local...)
			errs += localErrs
			mu.Unlock()
		})
	}
	wg.Wait()
	return Summarize(samples, errs, time.Since(start))
}
