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

// postbackLimit is the per-address limit on SKAdNetwork postbacks that
// are not Apple's: each request from an address whose postback does not
// verify, or that is refused (not a postback, no such app, a wrong SDK
// key), spends one of the address's tokens, which come back at rate a
// second up to burst. A request whose postback does not verify and finds
// none left is answered 429 before anything else is done with it: no
// lookup, no database. A postback whose signature checks out is never
// refused by it, whatever its address shares with a flood (a carrier
// NAT, a proxy whose X-Forwarded-For is not trusted). Apple's devices send
// the postbacks from their own addresses, so the real ones are spread
// over as many addresses as there are installs. The limit is per
// collector process.
type postbackLimit struct {
	rate  rate.Limit
	burst int

	mu       sync.Mutex
	limiters *lru.Cache // address → *rate.Limiter
}

func newPostbackLimit(perSecond float64, burst, addresses int) *postbackLimit {
	c, _ := lru.New(max(addresses, 1)) // an error only for a size below 1
	return &postbackLimit{rate: rate.Limit(perSecond), burst: burst, limiters: c}
}

// take spends one token of ip at now. When none is left it returns false
// and how long until one is. Addresses are taken as the tap limit takes
// them (an IPv6 address by its /64); one that is no address is not
// limited.
func (l *postbackLimit) take(ip string, now time.Time) (bool, time.Duration) {
	key := fingerprint.Network(ip)
	if key == "" {
		return true, 0
	}
	l.mu.Lock()
	v, ok := l.limiters.Get(key)
	if !ok {
		v = rate.NewLimiter(l.rate, l.burst)
		l.limiters.Add(key, v)
	}
	l.mu.Unlock()
	lim := v.(*rate.Limiter)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.rate) * float64(time.Second))
}
