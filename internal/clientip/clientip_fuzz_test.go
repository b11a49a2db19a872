package clientip

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzOf checks the X-Forwarded-For walk: the answer has no zone and no
// IPv4-in-IPv6 form, an untrusted peer is the answer itself whatever the
// header says, and an answer other than the peer is an address the header
// names, with every hop after it (to its right) a trusted proxy.
func FuzzOf(f *testing.F) {
	f.Add("10.0.0.7:4711", "203.0.113.9, 10.0.0.3", "")
	f.Add("10.0.0.7:4711", "198.51.100.1, 203.0.113.9", "10.1.2.3")
	f.Add("[::ffff:10.0.0.7]:80", "::ffff:203.0.113.9", "")
	f.Add("10.0.0.7:1", "fe80::1%eth0, unknown", "")
	f.Add("192.0.2.1:1", "203.0.113.9", "")
	f.Add("10.0.0.7", "[2001:db8::1]:443,10.9.9.9", "_gateway")
	f.Add("@", ",,,", " ")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		got := Of(r, trusted)
		peer := Parse(remote)
		if !got.IsValid() {
			if peer.IsValid() {
				t.Fatalf("Of(%q, %q, %q) is no address though the peer is %v", remote, xff1, xff2, peer)
			}
			return
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Of(%q, ...) = %v, with a zone or mapped", remote, got)
		}
		if !contains(trusted, peer) {
			if got != peer {
				t.Fatalf("untrusted peer %q: Of = %v, want the peer %v", remote, got, peer)
			}
			return
		}
		if got == peer {
			return
		}
		// got must be a header entry, and the entries after it trusted.
		var hops []string
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				hops = append(hops, strings.Split(v, ",")...)
			}
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a := Parse(strings.TrimSpace(hops[i]))
			if a == got {
				return
			}
			if !a.IsValid() || !contains(trusted, a) {
				t.Fatalf("Of(%q, %q, %q) = %v, past the untrusted or bad hop %q", remote, xff1, xff2, got, hops[i])
			}
		}
		t.Fatalf("Of(%q, %q, %q) = %v, which the header does not name", remote, xff1, xff2, got)
	})
}

// FuzzParse checks that an address Parse accepts prints and parses back to
// itself, without zone or IPv4 mapping.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "203.0.113.9:80", "[2001:db8::1]:443", "::ffff:1.2.3.4", "fe80::1%eth0", "[fe80::1%25eth0]:1", "1.2.3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := Parse(s)
		if !a.IsValid() {
			return
		}
		if a.Zone() != "" || a.Is4In6() {
			t.Fatalf("Parse(%q) = %v, with a zone or mapped", s, a)
		}
		if b := Parse(a.String()); b != a {
			t.Fatalf("Parse(%q) = %v, which reads back as %v", s, a, b)
		}
		if b := Parse(netip.AddrPortFrom(a, 443).String()); b != a {
			t.Fatalf("Parse(%q) = %v, which with a port reads back as %v", s, a, b)
		}
	})
}
