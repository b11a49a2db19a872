package fingerprint

import (
	"net/netip"
	"strconv"
	"strings"

	"tapline"
)

// Key returns the fingerprint of a client IP and a platform:
// "203.0.113.7|ios" for IPv4, "2001:db8:1:2::/64|android" for IPv6 (its
// /64 network). It returns "" when ip is not an IP address (an address
// with a port is accepted) or the platform is not ios, android or web.
func Key(ip string, platform tapline.Platform) string {
	switch platform {
	case tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb:
	default:
		return ""
	}
	n := Network(ip)
	if n == "" {
		return ""
	}
	return n + "|" + string(platform)
}

// Network returns the part of a client IP that goes into a fingerprint:
// an IPv4 address as it is (IPv4-mapped IPv6 addresses included), an IPv6
// address reduced to its /64 network, or "" when ip is not an address.
func Network(ip string) string {
	ip = strings.TrimSpace(ip)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		ap, err := netip.ParseAddrPort(ip)
		if err != nil {
			return ""
		}
		a = ap.Addr()
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ""
	}
	return p.String()
}

// BusKey returns the bus partition key for an app's fingerprint,
// "42|203.0.113.7|ios", so that a hit and the install it caused land in the
// same partition. An empty fingerprint gives the app's key "42|".
func BusKey(appID int64, fingerprint string) []byte {
	b := make([]byte, 0, 21+len(fingerprint))
	b = strconv.AppendInt(b, appID, 10)
	b = append(b, '|')
	return append(b, fingerprint...)
}
