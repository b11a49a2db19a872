package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"tapline"
	"tapline/migrations"
)

// DefaultMaxConns is the pool size of a DB whose MaxConns is zero.
const DefaultMaxConns = 10

// DB is a pool of connections to one PostgreSQL database.
type DB struct {
	// URL is the connection string, e.g.
	// postgres://tapline@127.0.0.1:5432/tapline?sslmode=disable.
	URL string
	// MaxConns bounds the pool; zero means DefaultMaxConns.
	MaxConns int32
	// Logger receives the migration progress; nil means slog.Default().
	Logger *slog.Logger

	pool      *pgxpool.Pool
	closeOnce sync.Once

	keyMu   sync.Mutex
	adIDKey *hasher // loaded once (hasher)
}

// NewDB returns a DB for url with default settings; call Open to connect.
func NewDB(url string) *DB {
	return &DB{URL: url, MaxConns: DefaultMaxConns}
}

// Open creates the pool and pings the server. It does not migrate.
func (db *DB) Open(ctx context.Context) error {
	if db.URL == "" {
		return tapline.Errorf(tapline.EINVALID, "postgres: URL is required")
	}
	if db.Logger == nil {
		db.Logger = slog.Default()
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
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	db.pool = pool
	return nil
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
		if db.pool != nil {
			db.pool.Close()
		}
	})
	return nil
}
