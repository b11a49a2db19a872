package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"tapline/migrations"
	"tapline/postgres"
)

// templateLockKey is the advisory lock that serialises template creation on
// one server.
const templateLockKey = 0x7461706c696e65 // "tapline"

var (
	setupOnce sync.Once
	setupErr  error
	serverURL *url.URL      // the server's URL, any database
	admin     *pgxpool.Pool // connected to serverURL's database
	template  string        // the migrated template database
)

// URL returns the URL of a fresh, migrated database for this test, dropped
// at cleanup. It uses DATABASE_URL's server if set, else runs
// scripts/postgres.sh --test (found by walking up from the working directory to
// go.mod) once per process.
func URL(tb testing.TB) string {
	tb.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		tb.Fatalf("pgtest: %v", setupErr)
	}
	name := "test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *serverURL
	u.Path = "/" + name
	return u.String()
}

// Open returns an opened *postgres.DB on a fresh migrated database, closed
// at cleanup.
func Open(tb testing.TB) *postgres.DB {
	tb.Helper()
	db := postgres.NewDB(URL(tb))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Open(ctx); err != nil {
		tb.Fatalf("pgtest: open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("pgtest: close: %v", err)
		}
	})
	return db
}

// setup finds the server, connects to it and makes sure the template for
// the current migrations exists.
func setup() error {
	raw := os.Getenv("DATABASE_URL")
	if raw == "" {
		var err error
		if raw, err = runScript(); err != nil {
			return err
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("database URL %q is not a postgres:// URL", raw)
	}
	serverURL = u
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = 4
	if admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	version, err := migrationsHash()
	if err != nil {
		return err
	}
	template = "tapline_template_" + version
	return ensureTemplate(ctx)
}

// ensureTemplate creates and migrates the template database unless another
// process did; the advisory lock makes the others wait meanwhile.
func ensureTemplate(ctx context.Context) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("lock template: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return nil
	}
	// Migrate under a temporary name and rename at the end, so the
	// template's name never denotes a half-migrated database.
	tmp := "tapline_tmp_" + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{tmp}.Sanitize()); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	u := *serverURL
	u.Path = "/" + tmp
	db := postgres.NewDB(u.String())
	db.MaxConns = 2
	err = db.Open(ctx)
	if err == nil {
		err = db.Migrate(ctx)
	}
	db.Close()
	if err != nil {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{tmp}.Sanitize()+" WITH (FORCE)") //nolint:errcheck
		return fmt.Errorf("migrate template: %w", err)
	}
	for _, q := range []string{
		"ALTER DATABASE " + pgx.Identifier{tmp}.Sanitize() + " RENAME TO " + pgx.Identifier{template}.Sanitize(),
		"ALTER DATABASE " + pgx.Identifier{template}.Sanitize() + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("finish template: %w", err)
		}
	}
	return nil
}

// migrationsHash returns a short digest of the embedded migrations, so a
// schema change gets a template of its own.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.Postgres, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Postgres, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// runScript runs scripts/postgres.sh --test of the enclosing module and returns the
// URL it prints.
func runScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory; set DATABASE_URL")
		}
		dir = parent
	}
	script := filepath.Join(dir, "scripts", "postgres.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, "--test")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, stderr.String())
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if len(out) == 0 {
		return "", fmt.Errorf("%s printed no URL\n%s", script, stderr.String())
	}
	return string(out), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
