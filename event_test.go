package tapline

import (
	"testing"
	"time"
)

func TestClampDeviceClock(t *testing.T) {
	recv := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		kind     EventKind
		device   time.Time
		wantTime time.Time
		wantSkew time.Duration
	}{
		{"install 5h behind", KindInstall, recv.Add(-5 * time.Hour), recv, 5 * time.Hour},
		{"install 3h ahead", KindInstall, recv.Add(3 * time.Hour), recv, -3 * time.Hour},
		{"open 2h behind", KindOpen, recv.Add(-2 * time.Hour), recv, 2 * time.Hour},
		{"install within the bound", KindInstall, recv.Add(-59 * time.Minute), recv.Add(-59 * time.Minute), 0},
		{"purchase queued offline keeps its time", KindPurchase, recv.Add(-5 * time.Hour), recv.Add(-5 * time.Hour), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &Event{Kind: tc.kind, Time: tc.device, ReceivedAt: recv}
			skew := e.ClampDeviceClock(time.Hour)
			if !e.Time.Equal(tc.wantTime) || skew != tc.wantSkew {
				t.Fatalf("time %s skew %s, want %s %s", e.Time, skew, tc.wantTime, tc.wantSkew)
			}
		})
	}
}
