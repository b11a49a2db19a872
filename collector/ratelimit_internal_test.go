package collector

import (
	"testing"
	"time"
)

// TestPostbackLimit: an address spends its burst, is refused with the
// wait for its next token, and gets a token back each 1/rate; an IPv6
// /64 is one address, other addresses have buckets of their own, the
// least recently seen are forgotten past the bound, and a request from no
// address is not limited.
func TestPostbackLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	l := newPostbackLimit(0.5, 3, 2) // a token every 2 s, 3 at once, 2 addresses remembered
	for i := range 3 {
		if ok, _ := l.take("203.0.113.7", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.take("203.0.113.7", t0)
	if ok || wait != 2*time.Second {
		t.Errorf("past the burst: ok %v, wait %s; want refused, 2s", ok, wait)
	}
	// Half a token later, the wait is what is left of it.
	if ok, wait := l.take("203.0.113.7", t0.Add(time.Second)); ok || wait != time.Second {
		t.Errorf("a second later: ok %v, wait %s; want refused, 1s", ok, wait)
	}
	if ok, _ := l.take("203.0.113.7", t0.Add(2*time.Second)); !ok {
		t.Error("refused once a token came back")
	}
	if ok, _ := l.take("203.0.113.7", t0.Add(2*time.Second)); ok {
		t.Error("two requests on one token")
	}

	// An IPv6 /64 is one address.
	for i := range 3 {
		if ok, _ := l.take("2001:db8:1:2::"+string(rune('a'+i)), t0); !ok {
			t.Fatalf("IPv6 request %d refused", i+1)
		}
	}
	if ok, _ := l.take("2001:db8:1:2:ffff::1", t0); ok {
		t.Error("another address of the same /64 has a bucket of its own")
	}
	if ok, _ := l.take("2001:db8:1:3::1", t0); !ok {
		t.Error("another /64 shares a bucket")
	}
	// Two addresses are remembered: 203.0.113.7 is forgotten, and comes
	// back with a full bucket.
	if ok, _ := l.take("203.0.113.7", t0.Add(2*time.Second)); !ok {
		t.Error("a forgotten address still refused")
	}
	for range 10 {
		if ok, _ := l.take("", t0); !ok {
			t.Fatal("a request from no address refused")
		}
	}
}
