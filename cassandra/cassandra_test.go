package cassandra

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"tapline"
	"tapline/rawstoretest"
)

// testHosts returns the hosts of TAPLINE_CASSANDRA_HOSTS, or skips the
// test.
func testHosts(t *testing.T) []string {
	t.Helper()
	v := os.Getenv("TAPLINE_CASSANDRA_HOSTS")
	if v == "" {
		t.Skip("TAPLINE_CASSANDRA_HOSTS not set: skipping the raw store conformance suite against Cassandra")
	}
	var hosts []string
	for h := range strings.SplitSeq(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// mustKeyspace migrates a fresh keyspace, tapline_test_<random>, and drops
// it when the test ends. It returns the configuration to open stores with.
func mustKeyspace(t *testing.T) Config {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg := NewRawStore(Config{
		Hosts:    testHosts(t),
		Keyspace: "tapline_test_" + hex.EncodeToString(b),
		Timeout:  20 * time.Second,
	}).Config
	s := NewRawStore(cfg)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	// Twice: the second run has nothing to do.
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	t.Cleanup(func() {
		cl := cfg.cluster("", nil)
		sess, err := cl.CreateSession()
		if err != nil {
			t.Errorf("drop keyspace %s: %v", cfg.Keyspace, err)
			return
		}
		defer sess.Close()
		if err := sess.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Consistency(gocql.All).Exec(); err != nil {
			t.Errorf("drop keyspace %s: %v", cfg.Keyspace, err)
		}
	})
	return cfg
}

// mustOpen opens a store on cfg, closed when the test ends.
func mustOpen(t *testing.T, cfg Config) *RawStore {
	t.Helper()
	s := NewRawStore(cfg)
	if err := s.Open(t.Context()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCassandraConformance(t *testing.T) {
	cfg := mustKeyspace(t)
	rawstoretest.Run(t, func(t *testing.T) tapline.RawStore { return mustOpen(t, cfg) })
}

func TestCassandraScanEvents(t *testing.T) {
	cfg := mustKeyspace(t)
	s := mustOpen(t, cfg)
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Millisecond)
	base := time.Now().UnixNano() % (1 << 40)
	apps := []int64{base + 1, base + 2}
	want := map[int64][]string{}
	for _, app := range apps {
		for i := range 40 {
			e := &tapline.Event{ID: fmt.Sprintf("e%d", i), AppID: app, Kind: tapline.KindOpen, Time: now.Add(-time.Duration(i) * time.Hour)}
			if _, err := s.PutEvent(ctx, e); err != nil {
				t.Fatalf("PutEvent: %v", err)
			}
			if i < 30 || app == apps[1] {
				want[app] = append(want[app], e.ID)
			}
		}
	}
	// Events 30..39 of the first app fall before its cut-off.
	if err := s.DeleteBefore(ctx, apps[0], now.Add(-29*time.Hour-time.Minute)); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	tests := []struct {
		name            string
		app             int64
		ranges, workers int
		wantApps        []int64
	}{
		{"OneRange", apps[0], 1, 1, apps[:1]},
		{"ManyRanges", apps[1], 7, 3, apps[1:]},
		{"AllApps", 0, 256, 8, apps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[int64][]string{}
			err := s.ScanEvents(ctx, tt.app, tt.ranges, tt.workers, func(e *tapline.Event) error {
				mu.Lock()
				defer mu.Unlock()
				got[e.AppID] = append(got[e.AppID], e.ID)
				return nil
			})
			if err != nil {
				t.Fatalf("ScanEvents: %v", err)
			}
			for _, app := range apps {
				var w []string
				if slices.Contains(tt.wantApps, app) {
					w = slices.Sorted(slices.Values(want[app]))
				}
				g := slices.Sorted(slices.Values(got[app]))
				if !slices.Equal(g, w) {
					t.Errorf("app %d: scanned %q, want %q", app, g, w)
				}
			}
		})
	}
	stop := errors.New("stop")
	calls := 0
	err := s.ScanEvents(ctx, 0, 4, 2, func(*tapline.Event) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ScanEvents with a failing fn = %v after %d calls, want the error after 1", err, calls)
	}
}
