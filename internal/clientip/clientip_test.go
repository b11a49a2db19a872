package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"},                          // untrusted peer: its header is ignored
		{"10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},                        // behind a trusted proxy
		{"10.0.0.2:5000", []string{"203.0.113.5, 198.51.100.1, 10.0.0.3"}, "198.51.100.1"}, // rightmost untrusted; a forged left entry is not taken
		{"10.0.0.2:5000", []string{"203.0.113.5", "10.0.0.9"}, "203.0.113.5"},              // several headers
		{"10.0.0.2:5000", []string{"junk"}, "10.0.0.2"},                                    // garbage stops the walk at the last good hop
		{"[::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"[::ffff:192.0.2.9]:80", nil, "192.0.2.9"}, // IPv4 in IPv6, unmapped
		{"not-an-address", nil, "invalid IP"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := Of(r, trusted).String(); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
