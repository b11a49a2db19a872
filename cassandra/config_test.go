package cassandra

import (
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return NewRawStore(Config{Hosts: []string{"127.0.0.1"}}).Config
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := validConfig()
	if c.Keyspace != DefaultKeyspace || c.Consistency != DefaultConsistency || c.ReplicationFactor != 1 ||
		c.Timeout != DefaultTimeout || c.ConnectTimeout != DefaultConnectTimeout || c.NumConns != DefaultNumConns ||
		c.PageSize != DefaultPageSize {
		t.Errorf("NewRawStore defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of the defaults: %v, want nil", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string // substrings of the error; nil for valid
	}{
		{"Valid", func(c *Config) {}, nil},
		{"ValidQuorumWithDC", func(c *Config) { c.Consistency = "quorum"; c.LocalDC = "dc1"; c.ReplicationFactor = 3 }, nil},
		{"ValidAuth", func(c *Config) { c.Username, c.Password = "u", "p" }, nil},
		{"NoHosts", func(c *Config) { c.Hosts = nil }, []string{"Hosts is required"}},
		{"EmptyHost", func(c *Config) { c.Hosts = []string{"a", " "} }, []string{"Hosts[1]"}},
		{"EmptyKeyspace", func(c *Config) { c.Keyspace = "" }, []string{"Keyspace"}},
		{"KeyspaceInjection", func(c *Config) { c.Keyspace = "x; DROP KEYSPACE y" }, []string{"Keyspace"}},
		{"KeyspaceUpperCase", func(c *Config) { c.Keyspace = "Tapline" }, []string{"Keyspace"}},
		{"ValidKeyspace", func(c *Config) { c.Keyspace = "tapline_2" }, nil},
		{"KeyspaceDigitFirst", func(c *Config) { c.Keyspace = "1abc" }, []string{"Keyspace"}},
		{"KeyspaceTooLong", func(c *Config) { c.Keyspace = "k" + strings.Repeat("a", 48) }, []string{"Keyspace"}},
		{"BadConsistency", func(c *Config) { c.Consistency = "MOST" }, []string{"Consistency"}},
		{"AnyConsistency", func(c *Config) { c.Consistency = "ANY" }, []string{"Consistency"}},
		{"ZeroReplication", func(c *Config) { c.ReplicationFactor = 0 }, []string{"ReplicationFactor"}},
		{"NegativeTimeout", func(c *Config) { c.Timeout = -time.Second }, []string{"Timeout must"}},
		{"ZeroConnectTimeout", func(c *Config) { c.ConnectTimeout = 0 }, []string{"ConnectTimeout"}},
		{"ZeroNumConns", func(c *Config) { c.NumConns = 0 }, []string{"NumConns"}},
		{"ZeroPageSize", func(c *Config) { c.PageSize = 0 }, []string{"PageSize"}},
		{"UserWithoutPassword", func(c *Config) { c.Username = "u" }, []string{"Username and Password"}},
		{"QuoteInDC", func(c *Config) { c.LocalDC = "dc'1" }, []string{"LocalDC"}},
		{"Several", func(c *Config) { c.Hosts = nil; c.NumConns = -1; c.Consistency = "x" },
			[]string{"Hosts", "NumConns", "Consistency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

func TestCreateKeyspace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"Simple", func(c *Config) {},
			"CREATE KEYSPACE IF NOT EXISTS tapline WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = true"},
		{"NetworkTopology", func(c *Config) { c.Keyspace = "t2"; c.LocalDC = "eu-west"; c.ReplicationFactor = 3 },
			"CREATE KEYSPACE IF NOT EXISTS t2 WITH replication = {'class': 'NetworkTopologyStrategy', 'eu-west': 3} AND durable_writes = true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			if got := createKeyspace(&c); got != tt.want {
				t.Errorf("createKeyspace =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
