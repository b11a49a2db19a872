// Package health answers the readiness probes of tapline's processes: a
// Checker runs named checks, each bounded by a timeout, keeps the result
// for a short while so that a storm of probes cannot load what it checks,
// and serves it as JSON: 200 when every check passed, 503 when one failed.
package health

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"tapline"
)

// Defaults of a Checker's zero fields.
const (
	DefaultTimeout = time.Second
	DefaultTTL     = time.Second
)

// Check is one thing a Checker looks at.
type Check struct {
	// Name names the check in the JSON answer, e.g. "postgres".
	Name string
	// Run looks and returns what it found, briefly ("3ms", "120
	// messages"), and an error when the check fails. The error's message
	// is shown when it is a *tapline.Error other than EINTERNAL, else
	// "Internal error."; the whole error is logged.
	Run func(ctx context.Context) (string, error)
}

// Result is the outcome of one check.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// Report is the outcome of every check, the body of a probe's answer.
type Report struct {
	Status    string    `json:"status"` // "ok" or "failing"
	CheckedAt time.Time `json:"checked_at"`
	Checks    []Result  `json:"checks"`
}

// OK reports whether every check passed.
func (r *Report) OK() bool { return r.Status == "ok" }

// Checker runs its checks at most once per TTL, all at once, each within
// Timeout. Set the fields before the first Check and leave them.
type Checker struct {
	Checks  []Check
	Timeout time.Duration // per check; DefaultTimeout when 0
	TTL     time.Duration // how long a report is reused; DefaultTTL when 0
	Logger  *slog.Logger  // receives failed checks' errors; slog.Default() when nil
	Now     func() time.Time

	mu   sync.Mutex
	last *Report
}

// Check returns the last report when it is younger than TTL, else runs the
// checks and returns a new one. Callers that arrive while the checks run
// wait for them and share their report. The checks run on a context that
// ctx's cancellation does not reach (the report is shared), bounded by
// Timeout. A Checker without checks reports failing: it would otherwise
// say ok about nothing.
func (c *Checker) Check(ctx context.Context) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.last != nil && now.Sub(c.last.CheckedAt) < cmp.Or(c.TTL, DefaultTTL) && !now.Before(c.last.CheckedAt) {
		return c.last
	}
	rep := &Report{Status: "ok", CheckedAt: now, Checks: make([]Result, len(c.Checks))}
	if len(c.Checks) == 0 {
		rep.Status = "failing"
		rep.Checks = []Result{{Name: "checks", Error: "No health checks are configured."}}
		c.last = rep
		return rep
	}
	timeout := cmp.Or(c.Timeout, DefaultTimeout)
	var wg sync.WaitGroup
	for i, ch := range c.Checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			v, err := ch.Run(cctx)
			res := Result{Name: ch.Name, OK: err == nil, Value: v}
			if err != nil {
				res.Error = message(err, timeout)
				c.logger().WarnContext(ctx, "health check failed", "check", ch.Name, "err", err)
			}
			rep.Checks[i] = res
		})
	}
	wg.Wait()
	for _, r := range rep.Checks {
		if !r.OK {
			rep.Status = "failing"
		}
	}
	c.last = rep
	return rep
}

// message is what a probe's answer says about err.
func message(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("No answer within %s.", timeout)
	}
	return tapline.ErrorMessage(err)
}

// ServeHTTP answers the report as JSON, 200 when every check passed and 503
// when one failed. It is the readiness probe.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := c.Check(r.Context())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if !rep.OK() {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}

// Live is the liveness probe: it answers 200 "ok" whenever the process
// serves HTTP at all, and checks nothing else, so that an orchestrator
// restarts a process that hangs, not one whose database is down.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Ping is a check that calls ping and reports its round trip, for a
// database or another server.
func Ping(name string, ping func(context.Context) error) Check {
	return Check{Name: name, Run: func(ctx context.Context) (string, error) {
		start := time.Now()
		if err := ping(ctx); err != nil {
			return "", err
		}
		return time.Since(start).Round(time.Microsecond).String(), nil
	}}
}
