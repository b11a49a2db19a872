package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"tapline"
	"tapline/migrations"
)

// DefaultMaxConns is the pool size of a DB whose MaxConns is zero.
const DefaultMaxConns = 10

// Defaults of the connection attempts a DB makes in the background while
// the server is unreachable: the first wait, doubled after each failure up
// to the second.
const (
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
)

// DB is a pool of connections to one PostgreSQL database.
type DB struct {
	// URL is the connection string, e.g.
	// postgres://tapline@127.0.0.1:5432/tapline?sslmode=disable.
	URL string
	// MaxConns bounds the pool; zero means DefaultMaxConns.
	MaxConns int32
	// Logger receives the migration progress; nil means slog.Default().
	Logger *slog.Logger
	// StartUnreachable makes Open succeed when the server cannot be
	// reached, and keep connecting in the background (see Open); without
	// it Open fails with EUNAVAILABLE, as a command-line tool wants.
	StartUnreachable bool
	// RetryMin and RetryMax bound the backoff of the background connection
	// attempts while the server is unreachable; zero means DefaultRetryMin
	// and DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	pool      *pgxpool.Pool
	closeOnce sync.Once
	ready     chan struct{} // closed once the server answered and the schema checked
	stop      context.CancelFunc
	waiting   sync.WaitGroup
	gaveUp    chan struct{} // closed when the background attempts met a permanent error
	waitErr   error         // that error, set before gaveUp closes

	keyMu   sync.Mutex
	adIDKey *hasher // loaded once (hasher)
}

// NewDB returns a DB for url with default settings; call Open to connect.
func NewDB(url string) *DB {
	return &DB{URL: url, MaxConns: DefaultMaxConns}
}

// Open creates the pool and pings the server. It does not migrate.
//
// A server that cannot be reached (refused, reset, timed out, starting up
// or shutting down) fails Open with EUNAVAILABLE; with StartUnreachable it
// is an outage, not an error: Open logs a warning and returns nil, and
// keeps trying in the background with capped exponential backoff until
// the server answers; Ready is closed then. Until then every query fails
// with EUNAVAILABLE. An invalid URL, a refused login, a missing database
// or a schema newer than this binary's migrations fail Open at once.
func (db *DB) Open(ctx context.Context) error {
	if db.URL == "" {
		return tapline.Errorf(tapline.EINVALID, "postgres: URL is required")
	}
	if db.Logger == nil {
		db.Logger = slog.Default()
	}
	if db.RetryMin <= 0 {
		db.RetryMin = DefaultRetryMin
	}
	if db.RetryMax < db.RetryMin {
		db.RetryMax = max(DefaultRetryMax, db.RetryMin)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return tapline.Errorf(tapline.EINVALID, "postgres: invalid URL: %v", err)
	}
	cfg.MaxConns = db.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open postgres pool: %w", err)
	}
	db.ready, db.gaveUp = make(chan struct{}), make(chan struct{})
	err = db.connect(ctx, pool)
	if err == nil {
		db.pool = pool
		close(db.ready)
		return nil
	}
	if !db.StartUnreachable || !Unavailable(err) || ctx.Err() != nil {
		pool.Close()
		return err
	}
	db.pool = pool
	db.Logger.Warn("postgres unreachable: starting without it and retrying in the background", "err", err)
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	db.stop = stop
	db.waiting.Go(func() { db.retry(wctx) })
	return nil
}

// connect pings the server through pool and checks that its schema is not
// newer than this binary's migrations.
func (db *DB) connect(ctx context.Context, pool *pgxpool.Pool) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		if transient(err) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("ping postgres: %w", &unavailableError{err: err})
		}
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	return checkSchema(pctx, pool)
}

// retry pings the server with capped exponential backoff until it answers
// (closing ready), a permanent error stops it (logged, and kept for
// WaitReady), or ctx ends.
func (db *DB) retry(ctx context.Context) {
	wait := db.RetryMin
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := db.connect(ctx, db.pool)
		switch {
		case err == nil:
			db.Logger.Info("postgres reachable again", "attempts", attempt)
			close(db.ready)
			return
		case ctx.Err() != nil:
			return
		case !Unavailable(err):
			db.Logger.Error("postgres answered but cannot be used; not retrying", "err", err)
			db.waitErr = err
			close(db.gaveUp)
			return
		}
		db.Logger.Debug("postgres still unreachable", "attempt", attempt, "retry_in", wait, "err", err)
		wait = min(wait*2, db.RetryMax)
	}
}

// Unavailable reports whether err means the server could not be reached
// (or is starting, stopping or overloaded): an outage that may end.
func Unavailable(err error) bool {
	return err != nil && tapline.ErrorCode(err) == tapline.EUNAVAILABLE
}

// Ready is closed once the server has answered (at Open, or later in the
// background); it is nil before Open.
func (db *DB) Ready() <-chan struct{} { return db.ready }

// WaitReady waits until the server has answered, ctx ends, or the
// background attempts met a permanent error (a refused login, a newer
// schema), which it returns.
func (db *DB) WaitReady(ctx context.Context) error {
	select {
	case <-db.ready:
		return nil
	case <-db.gaveUp:
		return db.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkSchema fails with EINVALID when the database's migration version is
// newer than the newest migration this binary embeds: a newer binary
// migrated it, and this one would misread it. A database never migrated
// passes.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var version int64
	err := pool.QueryRow(ctx, `SELECT version FROM schema_migrations LIMIT 1`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows), pgCode(err) == codeUndefinedTable:
		return nil
	case err != nil:
		return fmt.Errorf("read schema version: %w", translate(err))
	}
	newest, err := NewestMigration()
	if err != nil {
		return err
	}
	if version > newest {
		return tapline.Errorf(tapline.EINVALID, "postgres: the database schema is at version %d, newer than this binary's %d: run a newer tapline", version, newest)
	}
	return nil
}

// NewestMigration returns the version of the newest embedded migration.
func NewestMigration() (int64, error) {
	entries, err := fs.ReadDir(migrations.Postgres, "postgres")
	if err != nil {
		return 0, fmt.Errorf("read embedded migrations: %w", err)
	}
	var newest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			newest = max(newest, v)
		}
	}
	return newest, nil
}

// migrator returns golang-migrate over the embedded migrations and the
// pool, and what closes it.
func (db *DB) migrator() (*migrate.Migrate, func(), error) {
	if db.pool == nil {
		return nil, nil, errors.New("migrate postgres: database not open")
	}
	src, err := iofs.New(migrations.Postgres, "postgres")
	if err != nil {
		return nil, nil, fmt.Errorf("migrate postgres: open migrations: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migrate postgres: %w", translate(err))
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return m, func() { m.Close(); sqlDB.Close() }, nil
}

// Migrate applies every up migration not applied yet. It is idempotent, and
// safe when several processes migrate the same database at once:
// golang-migrate serialises them with an advisory lock.
func (db *DB) Migrate(ctx context.Context) error {
	m, closeFn, err := db.migrator()
	if err != nil {
		return err
	}
	defer closeFn()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case m.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()
	err = m.Up()
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	v, dirty, verr := m.Version()
	if verr == nil {
		db.Logger.Debug("postgres migrated", "version", v, "dirty", dirty)
	}
	// Migration 18 leaves the rehashing of advertising id hashes to Go.
	return db.rekeyConversions(ctx)
}

// Close closes the pool. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if db.stop != nil {
			db.stop()
		}
		db.waiting.Wait()
		if db.pool != nil {
			db.pool.Close()
		}
	})
	return nil
}
