package cassandra

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// Defaults of Config.
const (
	DefaultKeyspace          = "tapline"
	DefaultConsistency       = "LOCAL_QUORUM"
	DefaultReplicationFactor = 1
	DefaultTimeout           = 5 * time.Second
	DefaultConnectTimeout    = 5 * time.Second
	DefaultNumConns          = 2
	DefaultPageSize          = 1000
)

// Config configures the Cassandra raw store. NewRawStore fills in the
// defaults.
type Config struct {
	// Hosts are the contact points, "host" or "host:port" (port 9042 by
	// default); the driver discovers the rest of the cluster from them.
	Hosts []string
	// Keyspace holds tapline's tables; Migrate creates it when absent. It
	// is a lower-case letter then lower-case letters, digits or
	// underscores.
	Keyspace string
	// Consistency is the consistency level of reads and writes, such as
	// LOCAL_QUORUM, QUORUM or ONE. Lightweight transactions use
	// LOCAL_SERIAL for LOCAL_* levels and SERIAL otherwise.
	Consistency string
	// LocalDC, when set, makes the driver prefer that datacenter's nodes
	// and Migrate create the keyspace with NetworkTopologyStrategy in it;
	// otherwise the keyspace uses SimpleStrategy.
	LocalDC string
	// ReplicationFactor is the keyspace's replication factor, used only
	// by Migrate when it creates the keyspace.
	ReplicationFactor int
	// Timeout bounds each request; ConnectTimeout bounds each connection
	// attempt.
	Timeout, ConnectTimeout time.Duration
	// Username and Password, when set, authenticate with the
	// PasswordAuthenticator.
	Username, Password string
	// NumConns is the number of connections per host.
	NumConns int
	// PageSize is the number of rows fetched per page by lookups and
	// scans.
	PageSize int
}

// keyspaceName is what Cassandra accepts as an unquoted keyspace name, in
// lower case: CQL folds an unquoted name to lower case (so CREATE KEYSPACE
// and the qualified statements would use "tapline" for "Tapline"), while
// gocql and golang-migrate switch to the session's keyspace with a quoted,
// case-sensitive USE "Tapline", which would then name no keyspace.
var keyspaceName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Validate returns an error naming every bad field, or nil.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("cassandra: Hosts is required"))
	}
	for i, h := range c.Hosts {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, fmt.Errorf("cassandra: Hosts[%d] is empty", i))
		}
	}
	if !keyspaceName.MatchString(c.Keyspace) {
		errs = append(errs, fmt.Errorf("cassandra: Keyspace %q must be a lower-case letter then up to 47 lower-case letters, digits or underscores", c.Keyspace))
	}
	if _, err := c.consistency(); err != nil {
		errs = append(errs, fmt.Errorf("cassandra: Consistency %q is not a consistency level", c.Consistency))
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("cassandra: ReplicationFactor must be at least 1, not %d", c.ReplicationFactor))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("cassandra: Timeout must be positive, not %v", c.Timeout))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("cassandra: ConnectTimeout must be positive, not %v", c.ConnectTimeout))
	}
	if c.NumConns < 1 {
		errs = append(errs, fmt.Errorf("cassandra: NumConns must be at least 1, not %d", c.NumConns))
	}
	if c.PageSize < 1 {
		errs = append(errs, fmt.Errorf("cassandra: PageSize must be at least 1, not %d", c.PageSize))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("cassandra: Username and Password go together"))
	}
	if strings.ContainsAny(c.LocalDC, "'\\") {
		errs = append(errs, fmt.Errorf("cassandra: LocalDC %q must not contain quotes or backslashes", c.LocalDC))
	}
	return errors.Join(errs...)
}

// consistency parses Consistency. ANY is refused: it is valid for writes
// only.
func (c *Config) consistency() (gocql.Consistency, error) {
	cons, err := gocql.ParseConsistencyWrapper(c.Consistency)
	if err != nil {
		return 0, err
	}
	if cons == gocql.Any {
		return 0, errors.New("ANY cannot read")
	}
	return cons, nil
}

// serial returns the serial consistency that goes with the configured
// level: LOCAL_SERIAL for LOCAL_ONE and LOCAL_QUORUM, SERIAL otherwise.
func serialFor(c gocql.Consistency) gocql.SerialConsistency {
	if c == gocql.LocalOne || c == gocql.LocalQuorum {
		return gocql.LocalSerial
	}
	return gocql.Serial
}

// cluster returns the gocql configuration; keyspace is "" for a session
// that qualifies table names itself. The driver logs to logger when it is
// not nil.
func (c *Config) cluster(keyspace string, logger *slog.Logger) *gocql.ClusterConfig {
	cons, _ := c.consistency()
	cl := gocql.NewCluster(c.Hosts...)
	cl.Keyspace = keyspace
	cl.Consistency = cons
	cl.SerialConsistency = serialFor(cons)
	cl.Timeout = c.Timeout
	cl.ConnectTimeout = c.ConnectTimeout
	cl.NumConns = c.NumConns
	cl.PageSize = c.PageSize
	cl.RetryPolicy = nil // per statement: only idempotent ones retry
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	if logger != nil {
		cl.Logger = driverLogger{logger}
	}
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	return cl
}

// driverLogger passes gocql's log lines (connection failures, host events)
// to slog at warning level.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprint(v...)), "component", "gocql")
}

func (d driverLogger) Printf(format string, v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "gocql")
}

func (d driverLogger) Println(v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprintln(v...)), "component", "gocql")
}
