package fraud

import (
	"bufio"
	"cmp"
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// datacentersTxt is the shipped range list; its header names its source,
// licence and date.
//
//go:embed datacenters.txt
var datacentersTxt string

// Range is one datacenter address range and its provider.
type Range struct {
	Prefix   netip.Prefix
	Provider string
}

// Ranges answers whether an address lies in a datacenter range: the
// ranges of each address family sorted by first address, nested ones
// folded into the range holding them, so a lookup is one binary search.
// It is safe for concurrent use once made.
type Ranges struct {
	v4, v6 []span
}

// span is one range as its first and last address.
type span struct {
	first, last u128
	prefix      netip.Prefix
	provider    string
}

// u128 is an address as a number, for quick comparisons: an IPv4 address
// as its IPv4-mapped IPv6 form (each family has its own spans).
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (x u128) compare(y u128) int {
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	return cmp.Compare(x.lo, y.lo)
}

// specialPrefixes are address blocks no provider's range may cover:
// private, shared (carrier-grade NAT), loopback, link-local,
// documentation, multicast and reserved ones. Providers' files have been
// seen to list documentation blocks; NewRanges drops any range meeting
// one.
var specialPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/3",
		"::/8", "64:ff9b::/96", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Special reports whether p meets a private, shared, loopback,
// link-local, documentation, multicast or reserved block.
func Special(p netip.Prefix) bool {
	for _, s := range specialPrefixes {
		if s.Overlaps(p) {
			return true
		}
	}
	return false
}

// NewRanges returns the lookup of rs, without the ranges that meet a
// Special block. Overlapping ranges are allowed: an address in two
// answers with the wider (the first of equal ones).
func NewRanges(rs []Range) *Ranges {
	var v4, v6 []span
	for _, r := range rs {
		p := r.Prefix.Masked()
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if Special(p) {
			continue
		}
		s := span{first: toU128(p.Addr()), last: toU128(lastAddr(p)), prefix: p, provider: r.Provider}
		if p.Addr().Is4() {
			v4 = append(v4, s)
		} else {
			v6 = append(v6, s)
		}
	}
	return &Ranges{v4: fold(v4), v6: fold(v6)}
}

// fold sorts spans by first address, wider first, and drops the spans
// inside another: CIDR ranges either nest or do not meet.
func fold(ss []span) []span {
	slices.SortStableFunc(ss, func(a, b span) int {
		if c := a.first.compare(b.first); c != 0 {
			return c
		}
		return a.prefix.Bits() - b.prefix.Bits()
	})
	out := ss[:0]
	for _, s := range ss {
		if n := len(out); n > 0 && s.last.compare(out[n-1].last) <= 0 {
			continue // inside the previous one
		}
		out = append(out, s)
	}
	return slices.Clip(out)
}

// lastAddr returns the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Len returns how many ranges the lookup holds after folding.
func (r *Ranges) Len() int { return len(r.v4) + len(r.v6) }

// Lookup returns the range holding addr (an IPv4-mapped IPv6 address
// counts as IPv4) and whether there is one.
func (r *Ranges) Lookup(addr netip.Addr) (Range, bool) {
	if r == nil || !addr.IsValid() {
		return Range{}, false
	}
	addr = addr.WithZone("").Unmap()
	ss := r.v6
	if addr.Is4() {
		ss = r.v4
	}
	// The last span starting at or before addr is the only one that can
	// hold it: spans do not overlap.
	k := toU128(addr)
	i, found := slices.BinarySearchFunc(ss, k, func(s span, k u128) int { return s.first.compare(k) })
	if !found {
		i--
	}
	if i < 0 || ss[i].last.compare(k) < 0 {
		return Range{}, false
	}
	return Range{Prefix: ss[i].prefix, Provider: ss[i].provider}, true
}

// LookupString is Lookup of a textual address ("203.0.113.7",
// "2001:db8::1", with or without a port); an unparsable one is in no range.
func (r *Ranges) LookupString(ip string) (Range, bool) {
	ip = strings.TrimSpace(ip)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		ap, err := netip.ParseAddrPort(ip)
		if err != nil {
			return Range{}, false
		}
		a = ap.Addr()
	}
	return r.Lookup(a)
}

// ReadList reads a range list: one "prefix provider" a line, blank lines
// and lines starting with '#' ignored. A line that is no prefix is an
// error naming it.
func ReadList(rd io.Reader) ([]Range, error) {
	var out []Range
	sc := bufio.NewScanner(rd)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cidr, provider, _ := strings.Cut(line, " ")
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("datacenter list line %d: %w", n, err)
		}
		out = append(out, Range{Prefix: p.Masked(), Provider: strings.TrimSpace(provider)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read datacenter list: %w", err)
	}
	return out, nil
}

// WriteList writes rs as a list ReadList reads, after the header lines
// (each written as a comment), sorted by family and address.
func WriteList(w io.Writer, header []string, rs []Range) error {
	bw := bufio.NewWriter(w)
	for _, h := range header {
		fmt.Fprintf(bw, "# %s\n", h)
	}
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b Range) int {
		if a.Prefix.Addr().Is4() != b.Prefix.Addr().Is4() {
			if a.Prefix.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	for i, r := range rs {
		if i > 0 && r == rs[i-1] {
			continue
		}
		fmt.Fprintf(bw, "%s %s\n", r.Prefix, r.Provider)
	}
	return bw.Flush()
}

var (
	shippedOnce sync.Once
	shipped     *Ranges
)

// Shipped returns the lookup of the range list shipped with tapline
// (datacenters.txt), parsed once.
func Shipped() *Ranges {
	shippedOnce.Do(func() {
		rs, err := ReadList(strings.NewReader(datacentersTxt))
		if err != nil {
			panic("fraud: the shipped datacenters.txt does not parse: " + err.Error())
		}
		shipped = NewRanges(rs)
	})
	return shipped
}
