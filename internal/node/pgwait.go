package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"tapline"
	"tapline/internal/httperr"
	"tapline/postgres"
)

// dbState tracks a node started while PostgreSQL was unreachable: what
// waits for the database, and the goroutine that starts it once the
// database answers and is migrated.
type dbState struct {
	mu      sync.Mutex
	up      bool                    // migrated and seeded: starts run at once
	ready   chan struct{}           // closed when up becomes true
	pending []func(context.Context) // starts waiting for the database
	stop    context.CancelFunc      // ends the waiting goroutine
	done    chan struct{}           // closed when it has exited
	once    sync.Once
}

// openDB opens PostgreSQL. When the server answers, the migrations (with
// -migrate) and the demo seed (with -demo) run at once and their errors
// fail Open. When it is unreachable, Open goes on without it: a goroutine
// waits for it, then migrates, seeds and runs what whenDB deferred, and
// until then the dashboard answers 503 (gateDB).
func (n *Node) openDB(ctx context.Context) error {
	n.db = &dbState{ready: make(chan struct{}), done: make(chan struct{})}
	n.DB = postgres.NewDB(n.Config.DatabaseURL)
	n.DB.Logger = n.Logger
	n.DB.StartUnreachable = true
	if err := n.DB.Open(ctx); err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	n.closers = append(n.closers, n.DB.Close)
	n.Accounts = postgres.NewAccountService(n.DB)
	n.Funnels = postgres.NewFunnelStore(n.DB)
	n.Postbacks = postgres.NewPostbackService(n.DB)
	n.SKAN = postgres.NewSKANStore(n.DB)
	if n.Config.SKANMaxRejected > 0 {
		n.SKAN.MaxRejected = n.Config.SKANMaxRejected
	}
	n.Reports = postgres.NewReports(n.DB)
	select {
	case <-n.DB.Ready():
		close(n.db.done)
		if err := n.setupDB(ctx); err != nil {
			return err
		}
		n.db.up = true
		close(n.db.ready)
		return nil
	default:
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n.db.stop = stop
	// Stopped before the database closes (closers run in reverse).
	n.closers = append(n.closers, func() error { n.stopDBWait(); return nil })
	go func() {
		defer close(n.db.done)
		n.awaitDB(wctx)
	}()
	return nil
}

// setupDB migrates (with -migrate) and seeds the demo (with -demo).
func (n *Node) setupDB(ctx context.Context) error {
	if n.Config.Migrate {
		if err := n.DB.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate postgres: %w", err)
		}
	}
	if n.Config.Demo {
		if _, err := SeedDemo(ctx, n.Accounts); err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
	}
	return nil
}

// awaitDB waits for the database, sets it up (retrying while it is
// unavailable again) and runs the deferred starts, in the order whenDB was
// called.
func (n *Node) awaitDB(ctx context.Context) {
	if err := n.DB.WaitReady(ctx); err != nil {
		if ctx.Err() == nil {
			n.fail(fmt.Errorf("postgres cannot be used: %w", err))
		}
		return
	}
	if !n.retryDB(ctx, "set up postgres", n.setupDB) {
		return
	}
	n.db.mu.Lock()
	n.db.up = true
	close(n.db.ready)
	pending := n.db.pending
	n.db.pending = nil
	n.db.mu.Unlock()
	n.Logger.Info("postgres ready: starting what waited for it", "deferred", len(pending))
	for _, start := range pending {
		start(ctx)
	}
}

// retryDB runs f until it succeeds, fails otherwise than with the
// database unavailable (logged), or ctx ends; it reports success.
func (n *Node) retryDB(ctx context.Context, what string, f func(context.Context) error) bool {
	wait := postgres.DefaultRetryMin
	for {
		err := f(ctx)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case !postgres.Unavailable(err):
			n.fail(fmt.Errorf("%s: %w", what, err))
			return false
		}
		n.Logger.Warn(what+": postgres unavailable, retrying", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(wait*2, postgres.DefaultRetryMax)
	}
}

// stopDBWait ends the goroutine waiting for the database and waits for it
// (and any start it is running) to return. Safe to call more than once.
func (n *Node) stopDBWait() {
	n.db.once.Do(func() {
		if n.db.stop != nil {
			n.db.stop()
		}
		<-n.db.done
	})
}

// whenDB runs start now when the database is up; otherwise it defers it
// until the database answers and is migrated, retrying it while the
// database is unavailable. The closers start adds run where whenDB was
// called in the closing order, after a deferred start has finished or
// been abandoned.
func (n *Node) whenDB(ctx context.Context, what string, start func(ctx context.Context, addCloser func(func() error)) error) error {
	n.db.mu.Lock()
	if n.db.up {
		n.db.mu.Unlock()
		return start(ctx, func(c func() error) { n.closers = append(n.closers, c) })
	}
	var (
		mu      sync.Mutex
		closers []func() error
	)
	n.db.pending = append(n.db.pending, func(ctx context.Context) {
		n.retryDB(ctx, what, func(ctx context.Context) error {
			return start(ctx, func(c func() error) {
				mu.Lock()
				closers = append(closers, c)
				mu.Unlock()
			})
		})
	})
	n.db.mu.Unlock()
	n.Logger.Warn(what+" waits for postgres", "database_url", redactURL(n.Config.DatabaseURL))
	n.closers = append(n.closers, func() error {
		n.stopDBWait()
		mu.Lock()
		defer mu.Unlock()
		var first error
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
	return nil
}

// gateDB answers 503 ("database unavailable, retrying"), as JSON or a
// plain page as the client accepts, until the database is up, then hands
// every request to h.
func (n *Node) gateDB(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/livez", "/healthz", "/metrics":
			// The probes and metrics say themselves what is down.
			h.ServeHTTP(w, r)
			return
		}
		select {
		case <-n.db.ready:
			h.ServeHTTP(w, r)
			return
		default:
		}
		const msg = "The database is unavailable; retrying. This page works again once it answers."
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Cache-Control", "no-store")
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "database unavailable, retrying\n\n"+msg)
			return
		}
		httperr.Write(w, r, n.Logger, tapline.Errorf(tapline.EUNAVAILABLE, "%s", msg))
	})
}

// redactURL drops the password from a database URL for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// fail reports a start deferred until PostgreSQL answered that then failed
// otherwise than with the database unavailable: the process would go on
// without the component, so Failed tells its main to exit (non-zero) and
// its supervisor to restart it.
func (n *Node) fail(err error) {
	n.Logger.Error("a component could not start", "err", err)
	select {
	case n.failed <- err:
	default: // the first failure is enough
	}
}

// Failed delivers the error of a component that could not start after
// Open returned (one waiting for PostgreSQL); the process should close
// the node and exit with an error.
func (n *Node) Failed() <-chan error { return n.failed }
