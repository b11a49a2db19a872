package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is the harness's own throwaway PostgreSQL cluster: initdb into
// a fresh directory, the postmaster on a free loopback port as a child
// process (as the postgres user when the harness runs as root, since
// PostgreSQL refuses root), so that stopping or killing it touches no
// other test's database.
type pgCluster struct {
	binDir string
	dir    string // the cluster's directory: data/, run/, postgres.log
	port   int
	cred   *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// pgBinDir finds the directory of initdb and postgres.
func pgBinDir(given string) (string, error) {
	cands := []string{given}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(matches) - 1; i >= 0; i-- {
		cands = append(cands, matches[i])
	}
	for _, d := range cands {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL or pass -pg-bin")
}

// newPGCluster initialises a cluster in a new directory under parent.
func newPGCluster(ctx context.Context, binDir, parent string) (*pgCluster, error) {
	dir, err := os.MkdirTemp(parent, "chaos-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	c := &pgCluster{binDir: binDir, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user to run PostgreSQL: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The postgres user must reach the directory.
		for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 && d != dir {
				return nil, fmt.Errorf("the postgres user cannot enter %s: give -work-dir below a world-searchable directory such as /tmp", d)
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	init := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "tapline",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	init.Dir = dir
	init.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("free port for postgres: %w", err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return nil, err
	}
	if c.cred != nil {
		_ = os.Chown(filepath.Join(dir, "run"), int(c.cred.Uid), int(c.cred.Gid))
	}
	return c, nil
}

// URL returns the URL of database db.
func (c *pgCluster) URL(db string) string {
	return fmt.Sprintf("postgres://tapline@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// start runs the postmaster and waits until it accepts connections. After
// a SIGKILL the old backends may hold the shared memory a moment longer:
// start retries until the postmaster stays up.
func (c *pgCluster) start(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.startOnce(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *pgCluster) startOnce(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), "-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+filepath.Join(c.dir, "run"),
		"-c", "max_connections=200", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	for i := 0; ; i++ {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start (log %s)", filepath.Join(c.dir, "postgres.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if i > 300 {
			return fmt.Errorf("postgres did not accept connections within 30 s (log %s)", filepath.Join(c.dir, "postgres.log"))
		}
	}
}

// signal sends sig to the postmaster and waits for it to exit.
func (c *pgCluster) signal(sig syscall.Signal) error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(60 * time.Second):
		return errors.New("postgres did not exit within a minute")
	}
}

// stop shuts the cluster down (fast shutdown: SIGINT).
func (c *pgCluster) stop() error { return c.signal(syscall.SIGINT) }

// kill kills the postmaster with SIGKILL, as a crash would; its backends
// notice and exit on their own.
func (c *pgCluster) kill() error { return c.signal(syscall.SIGKILL) }
