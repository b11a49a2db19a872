package collector

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru"
	"golang.org/x/time/rate"

	"tapline/fingerprint"
)

// tapLimit is the per-address rate at which taps are counted as taps. A
// person taps a few links a minute, and an address shared by many people
// (a carrier NAT) some a second; an address tapping far faster is a
// script or a click farm. Over the rate a request still gets its redirect
// and its hit is published marked "rate-limited" (counted apart, credited
// only when the install referrer names it); over ten times the rate the
// hit is dropped and counted in tapline_collector_hits_rate_limited_total,
// so that a flood cannot fill the bus either. The limit is per collector
// process.
type tapLimit struct {
	rate  rate.Limit
	burst int

	mu       sync.Mutex
	limiters *lru.Cache // address → *addrLimit
}

// addrLimit is the two buckets of one address.
type addrLimit struct {
	mark, drop *rate.Limiter
}

// Verdicts of tapLimit.check.
const (
	tapAllowed = iota
	tapMarked
	tapDropped
)

func newTapLimit(perSecond float64, burst, addresses int) *tapLimit {
	c, _ := lru.New(max(addresses, 1)) // an error only for a size below 1
	return &tapLimit{rate: rate.Limit(perSecond), burst: burst, limiters: c}
}

// check counts one request of ip at now and returns its verdict. Addresses
// are taken as fingerprints take them (an IPv6 address by its /64), and the
// least recently seen ones are forgotten past the cache's size.
func (l *tapLimit) check(ip string, now time.Time) int {
	key := fingerprint.Network(ip)
	if key == "" {
		return tapAllowed
	}
	l.mu.Lock()
	v, ok := l.limiters.Get(key)
	if !ok {
		v = &addrLimit{mark: rate.NewLimiter(l.rate, l.burst), drop: rate.NewLimiter(10*l.rate, 10*l.burst)}
		l.limiters.Add(key, v)
	}
	l.mu.Unlock()
	a := v.(*addrLimit)
	switch {
	case !a.drop.AllowN(now, 1):
		return tapDropped
	case !a.mark.AllowN(now, 1):
		return tapMarked
	}
	return tapAllowed
}
