package pebble

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

// TestScanInstallationsCollidingKeys stores install index rows of three
// installations under one key, over two weeks, and checks that each comes
// once, whole, one after the other in install id order.
func TestScanInstallationsCollidingKeys(t *testing.T) {
	t.Parallel()
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Millisecond)
	s := mustOpenRawStore(t, t.TempDir())
	const app = 7
	key := installKey("b")
	put := func(install, id string, at time.Time, forced bool) {
		t.Helper()
		e := &tapline.Event{ID: id, AppID: app, Kind: tapline.KindOpen, Time: at, InstallID: install}
		if !forced {
			if _, err := s.PutEvent(ctx, e); err != nil {
				t.Fatalf("PutEvent: %v", err)
			}
			return
		}
		v, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.Set(installIndexKey(app, tapline.UnixNanos(at), key, install, id), v, pdb.Sync); err != nil {
			t.Fatalf("set: %v", err)
		}
	}
	week := 7 * 24 * time.Hour
	put("b", "b2", now, false)
	put("b", "b1", now.Add(-2*week), false)
	put("c", "c2", now, true)
	put("a", "a1", now.Add(-2*week), true)
	put("c", "c1", now.Add(-2*week), true)
	put("a", "a2", now.Add(-time.Hour), true)
	put("other", "o1", now, false)

	type got struct {
		key    int64
		id     string
		events string
	}
	var gots []got
	err := s.ScanInstallations(ctx, app, tapline.ScanRange{Start: math.MinInt64, End: math.MaxInt64}, func(k int64, inst *tapline.Installation) error {
		var ids []string
		for _, e := range inst.Events {
			ids = append(ids, e.ID)
		}
		gots = append(gots, got{k, inst.ID, fmt.Sprint(ids)})
		return nil
	})
	if err != nil {
		t.Fatalf("ScanInstallations: %v", err)
	}
	i := slices.IndexFunc(gots, func(g got) bool { return g.key == key })
	if i < 0 || len(gots) != 4 {
		t.Fatalf("scanned %v, want a, b, c under key %d and other", gots, key)
	}
	want := []got{{key, "a", "[a1 a2]"}, {key, "b", "[b1 b2]"}, {key, "c", "[c1 c2]"}}
	if i+3 > len(gots) || !slices.Equal(gots[i:i+3], want) {
		t.Errorf("scanned %v, want %v together", gots, want)
	}
}

// TestScanInstallationsClose closes the store from inside a scan's fn: the
// store's operations fail instead of waiting for the scan, the scan ends
// with EUNAVAILABLE and Close returns once its iterators are closed.
func TestScanInstallationsClose(t *testing.T) {
	t.Parallel()
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Millisecond)
	s := mustOpenRawStore(t, t.TempDir())
	for i := range 3 {
		e := &tapline.Event{ID: fmt.Sprint("e", i), AppID: 1, Kind: tapline.KindOpen, Time: now, InstallID: fmt.Sprint("i", i)}
		if _, err := s.PutEvent(ctx, e); err != nil {
			t.Fatalf("PutEvent: %v", err)
		}
	}
	closed := make(chan error, 1)
	calls := 0
	err := s.ScanInstallations(ctx, 1, tapline.SplitRing(1)[0], func(_ int64, inst *tapline.Installation) error {
		calls++
		if calls > 1 {
			return nil
		}
		go func() { closed <- s.Close() }()
		for {
			_, err := s.EventsByInstall(ctx, 1, inst.ID)
			if tapline.ErrorCode(err) == tapline.EUNAVAILABLE {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	})
	if tapline.ErrorCode(err) != tapline.EUNAVAILABLE || calls != 1 {
		t.Errorf("ScanInstallations closed during fn = %v after %d calls, want %s after 1", err, calls, tapline.EUNAVAILABLE)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the scan ended")
	}
}

// TestInstallKey pins installKey: keys are stored in the install index, so
// a change would strand every stored row.
func TestInstallKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want int64
	}{
		{"", -1166397803181037274},
		{"a", -9033471704281723301},
		{"6f1c2e7a-1d0b-4c8e-9a4e-2f3b5c6d7e8f", -5919998365068443128},
	}
	for _, tt := range tests {
		if got := installKey(tt.id); got != tt.want {
			t.Errorf("installKey(%q) = %d, want %d", tt.id, got, tt.want)
		}
	}
}
