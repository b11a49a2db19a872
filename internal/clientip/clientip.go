// Package clientip finds the client address of an HTTP request behind
// trusted reverse proxies.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Of returns the client address of r: the peer, or, when the peer is one of
// trusted, the rightmost X-Forwarded-For address that is not (a forged
// leftmost entry is never taken). It is the zero Addr when the peer is not
// an address.
func Of(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := Parse(r.RemoteAddr)
	if !peer.IsValid() || !contains(trusted, peer) {
		return peer
	}
	client := peer
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := Parse(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				return client
			}
			client = a
			if !contains(trusted, a) {
				return a
			}
		}
	}
	return client
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Parse parses "ip", "ip:port" or "[ip]:port", unmapping IPv4-in-IPv6.
func Parse(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
