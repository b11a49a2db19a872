package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/golang-migrate/migrate/v4"
	migratecassandra "github.com/golang-migrate/migrate/v4/database/cassandra"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"tapline/migrations"
)

// Migrate creates the keyspace when it is absent (SimpleStrategy with
// ReplicationFactor, or NetworkTopologyStrategy with ReplicationFactor in
// LocalDC when that is set) and applies migrations/cassandra with
// golang-migrate. It is idempotent; it does not need Open. golang-migrate's
// Cassandra lock only works within one process, so run it from one process
// at a time (the migrations use IF NOT EXISTS, so a race is harmless but
// may leave the version table behind).
func (s *RawStore) Migrate(ctx context.Context) error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	sess, err := createSession(ctx, s.Config.cluster("", s.Logger))
	if err != nil {
		return fmt.Errorf("migrate cassandra: %w", err)
	}
	err = sess.Query(createKeyspace(&s.Config)).WithContext(ctx).Exec()
	sess.Close()
	if err != nil {
		return fmt.Errorf("migrate cassandra: create keyspace: %w", translate(err))
	}

	sess, err = createSession(ctx, s.Config.cluster(s.Config.Keyspace, s.Logger))
	if err != nil {
		return fmt.Errorf("migrate cassandra: %w", err)
	}
	drv, err := migratecassandra.WithInstance(sess, &migratecassandra.Config{
		KeyspaceName:          s.Config.Keyspace,
		MultiStatementEnabled: true,
	})
	if err != nil {
		sess.Close()
		return fmt.Errorf("migrate cassandra: %w", translate(err))
	}
	src, err := iofs.New(migrations.Cassandra, "cassandra")
	if err != nil {
		drv.Close()
		return fmt.Errorf("migrate cassandra: open migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "cassandra", drv)
	if err != nil {
		drv.Close()
		return fmt.Errorf("migrate cassandra: %w", err)
	}
	defer m.Close() // closes the session too
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
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate cassandra: %w", translate(err))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate cassandra: %w", err)
	}
	return nil
}

// createKeyspace returns the CREATE KEYSPACE statement of cfg, which
// Validate has checked (the keyspace and data center names cannot break
// out of their places).
func createKeyspace(cfg *Config) string {
	replication := fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", cfg.ReplicationFactor)
	if cfg.LocalDC != "" {
		replication = fmt.Sprintf("{'class': 'NetworkTopologyStrategy', '%s': %d}", cfg.LocalDC, cfg.ReplicationFactor)
	}
	return fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s AND durable_writes = true", cfg.Keyspace, replication)
}
