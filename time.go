package tapline

import (
	"math"
	"time"
)

// Bounds of the times UnixNanos can represent.
var (
	minUnixNanos = time.Unix(0, math.MinInt64)
	maxUnixNanos = time.Unix(0, math.MaxInt64)
)

// UnixNanos returns t as Unix nanoseconds, clamped to the int64 range (the
// zero time.Time becomes math.MinInt64), for stores that key rows by time.
func UnixNanos(t time.Time) int64 {
	switch {
	case t.Before(minUnixNanos):
		return math.MinInt64
	case t.After(maxUnixNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}
