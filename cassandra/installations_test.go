package cassandra

import (
	"testing"
	"time"

	"tapline"
)

func TestInstallationsUnopened(t *testing.T) {
	t.Parallel()
	s := NewRawStore(Config{Hosts: []string{"127.0.0.1"}})
	ctx := t.Context()
	fs := &tapline.FunnelState{AppID: 1, InstallID: "i1"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"PutFunnelStateNil", s.PutFunnelState(ctx, nil), tapline.EINVALID},
		{"PutFunnelStateNoInstall", s.PutFunnelState(ctx, &tapline.FunnelState{AppID: 1}), tapline.EINVALID},
		{"PutFunnelState", s.PutFunnelState(ctx, fs), tapline.EUNAVAILABLE},
		{"FunnelState", func() error { _, err := s.FunnelState(ctx, 1, "i1"); return err }(), tapline.EUNAVAILABLE},
		{"EventsByInstall", func() error { _, err := s.EventsByInstall(ctx, 1, "i1"); return err }(), tapline.EUNAVAILABLE},
		{"ScanInstallations", s.ScanInstallations(ctx, 1, tapline.SplitRing(1)[0], nil), tapline.EUNAVAILABLE},
	} {
		if got := codeOf(tc.err); got != tc.want {
			t.Errorf("%s on an unopened store: %v, want %s", tc.name, tc.err, tc.want)
		}
	}
}

// TestCassandraFunnelStateTTL checks that every write of a funnel state
// restarts its 60 days, and that the install index expires like raw rows.
func TestCassandraFunnelStateTTL(t *testing.T) {
	cfg := mustKeyspace(t)
	s := mustOpen(t, cfg)
	ctx, now := t.Context(), time.Now().UTC()
	const day = 86400
	ttl := func(table, col string) int {
		t.Helper()
		stmt := "SELECT TTL(" + col + ") FROM " + cfg.Keyspace + "." + table + " WHERE app_id = ? AND install_id = ?"
		var v int
		if err := s.session.Query(stmt, int64(1), "i1").WithContext(ctx).Scan(&v); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		return v
	}
	fs := &tapline.FunnelState{AppID: 1, InstallID: "i1", UpdatedAt: now,
		History: []tapline.FunnelChange{{By: "events/0/1"}}}
	for i := range 2 {
		if err := s.PutFunnelState(ctx, fs); err != nil {
			t.Fatalf("PutFunnelState %d: %v", i, err)
		}
		data, n := ttl("funnel_states", "data"), ttl("funnel_states", "history_len")
		if data < 60*day-60 || data > 60*day || n < 60*day-60 {
			t.Errorf("write %d: TTL(data), TTL(history_len) = %d, %d; want about %d", i, data, n, 60*day)
		}
		fs.History = append(fs.History, tapline.FunnelChange{By: "events/0/2"})
	}
	e := &tapline.Event{ID: "e1", AppID: 1, Kind: tapline.KindOpen, Time: now, InstallID: "i1"}
	if _, err := s.PutEvent(ctx, e); err != nil {
		t.Fatalf("PutEvent: %v", err)
	}
	if data := ttl("events_by_install", "data"); data < 60*day-60 || data > 60*day {
		t.Errorf("events_by_install TTL(data) = %d, want about %d", data, 60*day)
	}
}
