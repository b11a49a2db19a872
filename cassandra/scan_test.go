package cassandra

import (
	"fmt"
	"math"
	"math/big"
	"testing"
)

func TestSplitTokenRing(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 7, 256} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rs := SplitTokenRing(n)
			if len(rs) != n {
				t.Fatalf("got %d ranges, want %d", len(rs), n)
			}
			if rs[0].Start != math.MinInt64 {
				t.Errorf("first range starts at %d, want %d", rs[0].Start, int64(math.MinInt64))
			}
			if rs[n-1].End != math.MaxInt64 {
				t.Errorf("last range ends at %d, want %d", rs[n-1].End, int64(math.MaxInt64))
			}
			total := new(big.Int)
			minW, maxW := new(big.Int), new(big.Int)
			for i, r := range rs {
				if r.Start >= r.End {
					t.Errorf("range %d = (%d, %d] is empty", i, r.Start, r.End)
				}
				if i > 0 && r.Start != rs[i-1].End {
					t.Errorf("range %d starts at %d, want the previous end %d (no gap, no overlap)", i, r.Start, rs[i-1].End)
				}
				w := new(big.Int).Sub(big.NewInt(r.End), big.NewInt(r.Start))
				total.Add(total, w)
				if i == 0 || w.Cmp(minW) < 0 {
					minW.Set(w)
				}
				if i == 0 || w.Cmp(maxW) > 0 {
					maxW.Set(w)
				}
			}
			// (min, max] holds 2^64 - 1 tokens.
			want := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
			if total.Cmp(want) != 0 {
				t.Errorf("ranges cover %s tokens, want %s", total, want)
			}
			if d := new(big.Int).Sub(maxW, minW); d.Cmp(big.NewInt(1)) > 0 {
				t.Errorf("range widths differ by %s (min %s, max %s), want at most 1", d, minW, maxW)
			}
		})
	}
	if got := SplitTokenRing(0); len(got) != 1 || got[0] != (TokenRange{math.MinInt64, math.MaxInt64}) {
		t.Errorf("SplitTokenRing(0) = %v, want the whole ring", got)
	}
}

func TestScanEventsArguments(t *testing.T) {
	t.Parallel()
	s := NewRawStore(Config{Hosts: []string{"127.0.0.1"}})
	for _, tc := range []struct{ ranges, workers int }{{0, 1}, {1, 0}, {-1, -1}} {
		err := s.ScanEvents(t.Context(), 0, tc.ranges, tc.workers, nil)
		if got := codeOf(err); got != "invalid" {
			t.Errorf("ScanEvents(ranges %d, workers %d) error code = %q (%v), want invalid", tc.ranges, tc.workers, got, err)
		}
	}
}
