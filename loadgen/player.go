package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"tapline"
)

// Player replays a workload's timeline against a target.
type Player struct {
	Target   Target
	Workload *Workload
	// Compression is simulated seconds per real second (3600: an hour a
	// second); 0 sends as fast as the target answers.
	Compression float64
	// Workers send concurrently; a device's actions always go through the
	// same worker, in order, so an install follows its taps.
	Workers int
	Client  *http.Client // NewClient(Workers) when nil
	// Retries is how often a 5xx or network error is retried, as the SDKs
	// do (taps are not retried: a person does not tap twice).
	Retries int
	// Clock, when set, replays in virtual time: the actions go one after
	// another (Workers must be 1) as fast as the target answers, Clock is
	// told each action's place in the timeline first and returns the time
	// the action happens at, which events carry. With a target that reads
	// the same clock (an in-process collector) the replay is the same on
	// every run.
	Clock func(at time.Duration) time.Time
}

// PlayResult is what a replay did.
type PlayResult struct {
	Start    time.Time     `json:"start"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Taps     Summary       `json:"taps"`
	Installs Summary       `json:"installs"`
	Events   Summary       `json:"events"`
	// Actions is the number of actions replayed; Lag the furthest an
	// action was sent behind its schedule.
	Actions int           `json:"actions"`
	Lag     time.Duration `json:"max_lag_ns"`
}

// Requests returns the number of requests answered successfully.
func (r *PlayResult) Requests() int {
	return r.Taps.Requests - r.Taps.Errors + r.Installs.Requests - r.Installs.Errors + r.Events.Requests - r.Events.Errors
}

type kindStats struct {
	lat  [3][]time.Duration
	errs [3]int
	lag  time.Duration
}

// Run replays the timeline and returns once every action was sent.
func (p *Player) Run(ctx context.Context) (*PlayResult, error) {
	if p.Workers < 1 {
		return nil, fmt.Errorf("loadgen: Workers must be at least 1")
	}
	if p.Clock != nil && p.Workers != 1 {
		return nil, fmt.Errorf("loadgen: a replay in virtual time (Clock) has one worker")
	}
	w := p.Workload
	client := p.Client
	if client == nil {
		client = NewClient(p.Workers)
	}
	queues := make([]chan Action, p.Workers)
	stats := make([]kindStats, p.Workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range queues {
		queues[i] = make(chan Action, 1024)
		wg.Go(func() {
			referrers := map[int]string{} // device -> Play referrer of its last tap
			for a := range queues[i] {
				if ctx.Err() != nil {
					continue
				}
				at := time.Now()
				if p.Clock != nil {
					at = p.Clock(a.At)
				} else if p.Compression > 0 {
					if lag := time.Since(start.Add(time.Duration(float64(a.At) / p.Compression))); lag > stats[i].lag {
						stats[i].lag = lag
					}
				}
				t0 := time.Now()
				ok := p.do(ctx, client, a, referrers, at)
				if ok {
					stats[i].lat[a.Kind] = append(stats[i].lat[a.Kind], time.Since(t0))
				} else {
					stats[i].errs[a.Kind]++
				}
			}
		})
	}
	for _, a := range w.Timeline {
		if p.Compression > 0 && p.Clock == nil {
			due := start.Add(time.Duration(float64(a.At) / p.Compression))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		queues[a.Dev%p.Workers] <- a
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &PlayResult{Start: start, Elapsed: elapsed, Actions: len(w.Timeline)}
	var lat [3][]time.Duration
	var errs [3]int
	for _, s := range stats {
		for k := range 3 {
			lat[k] = append(lat[k], s.lat[k]...)
			errs[k] += s.errs[k]
		}
		res.Lag = max(res.Lag, s.lag)
	}
	res.Taps = Summarize(lat[ActTap], errs[ActTap], elapsed)
	res.Installs = Summarize(lat[ActInstall], errs[ActInstall], elapsed)
	res.Events = Summarize(lat[ActEvent], errs[ActEvent], elapsed)
	return res, ctx.Err()
}

// do sends one action and reports whether it succeeded.
func (p *Player) do(ctx context.Context, client *http.Client, a Action, referrers map[int]string, at time.Time) bool {
	w := p.Workload
	d := w.Devices[a.Dev]
	switch a.Kind {
	case ActTap:
		tap := &w.Taps[a.Index]
		resp, err := client.Do(p.Target.TapRequest(tap, d, false).WithContext(ctx))
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if tap.Hints != nil && resp.Header.Get("Critical-CH") != "" {
			// Chromium drops an answer that asks for critical hints it
			// did not send and repeats the request with them.
			resp, err = client.Do(p.Target.TapRequest(tap, d, true).WithContext(ctx))
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if ref := PlayReferrer(resp.Header.Get("Location")); ref != "" {
			referrers[d.ID] = ref
		}
		return resp.StatusCode == http.StatusFound
	case ActInstall:
		in := &w.Installs[a.Index]
		e := &SDKEvent{ID: fmt.Sprintf("lg-%d-i%d", w.Config.Seed, in.N), Kind: tapline.KindInstall, IP: in.IP}
		if d.Platform == tapline.PlatformAndroid {
			if in.Referrer && referrers[d.ID] != "" {
				e.Referrer = referrers[d.ID]
			} else if in.Truth == Organic {
				e.Referrer = "utm_source=google-play&utm_medium=organic"
			}
		}
		return p.send(ctx, client, d, e, at)
	default:
		ev := &w.Events[a.Index]
		e := &SDKEvent{
			ID: fmt.Sprintf("lg-%d-e%d", w.Config.Seed, ev.N), Kind: ev.Kind, IP: ev.IP,
			PriceCents: ev.PriceCents, Currency: ev.Currency, Product: ev.Product, Transaction: ev.Transaction,
		}
		return p.send(ctx, client, d, e, at)
	}
}

// send posts an SDK event in the device's protocol, retrying 5xx and
// network errors; the event time is at, the first send's.
func (p *Player) send(ctx context.Context, client *http.Client, d *Device, e *SDKEvent, at time.Time) bool {
	e.Time = at
	for attempt := 0; ; attempt++ {
		var req *http.Request
		if d.JSON {
			req = p.Target.JSONRequest(d, e)
		} else {
			req = p.Target.TapstreamRequest(d, e)
		}
		resp, err := client.Do(req.WithContext(ctx))
		status := 0
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status == http.StatusOK {
			return true
		}
		if (status != 0 && status < 500) || attempt >= p.Retries || ctx.Err() != nil {
			return false
		}
		select {
		case <-time.After(50 * time.Millisecond << attempt):
		case <-ctx.Done():
			return false
		}
	}
}
