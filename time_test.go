package tapline_test

import (
	"math"
	"testing"
	"time"

	"tapline"
)

func TestUnixNanos(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"zero time clamps low", time.Time{}, math.MinInt64},
		{"far future clamps high", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
		{"epoch", time.Unix(0, 0), 0},
		{"ordinary", time.Unix(1700000000, 5), 1700000000_000000005},
	}
	for _, tt := range tests {
		if got := tapline.UnixNanos(tt.t); got != tt.want {
			t.Errorf("%s: UnixNanos = %d, want %d", tt.name, got, tt.want)
		}
	}
}
