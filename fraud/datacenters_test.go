package fraud_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"tapline/fraud"
)

func mustRanges(t *testing.T, list string) *fraud.Ranges {
	t.Helper()
	rs, err := fraud.ReadList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	return fraud.NewRanges(rs)
}

// TestRangesLookup checks the edges of IPv4 and IPv6 ranges, nested and
// adjacent ones, IPv4-mapped addresses, and that private and
// documentation blocks are never datacenter ranges.
func TestRangesLookup(t *testing.T) {
	r := mustRanges(t, `# a comment
20.0.0.0/8 wide
20.1.0.0/16 nested
21.0.0.0/24 adjacent
21.0.1.0/24 next
45.67.8.9/32 single
10.0.0.0/8 private
198.51.100.0/24 documentation
2001:db8::/32 documentation6

2a00:db8::/32 v6
2a00:db8:1::/48 nested6
2a00:db9:ffff:ffff::/64 last64
`)
	if r.Len() != 6 {
		t.Errorf("Len = %d, want 6 after folding the nested ranges", r.Len())
	}
	for _, tc := range []struct {
		ip, provider, prefix string
	}{
		{"19.255.255.255", "", ""},
		{"20.0.0.0", "wide", "20.0.0.0/8"},
		{"20.1.2.3", "wide", "20.0.0.0/8"}, // a nested range answers with the wider one
		{"20.255.255.255", "wide", "20.0.0.0/8"},
		{"21.0.0.0", "adjacent", "21.0.0.0/24"},
		{"21.0.0.255", "adjacent", "21.0.0.0/24"},
		{"21.0.1.0", "next", "21.0.1.0/24"},
		{"21.0.2.0", "", ""},
		{"10.1.1.1", "", ""},     // a private block is never a datacenter
		{"198.51.100.1", "", ""}, // nor a documentation one
		{"2001:db8::1", "", ""},
		{"45.67.8.8", "", ""},
		{"45.67.8.9", "single", "45.67.8.9/32"},
		{"45.67.8.10", "", ""},
		{"::ffff:20.9.9.9", "wide", "20.0.0.0/8"},
		{"2a00:db7:ffff:ffff:ffff:ffff:ffff:ffff", "", ""},
		{"2a00:db8::", "v6", "2a00:db8::/32"},
		{"2a00:db8:1::1", "v6", "2a00:db8::/32"},
		{"2a00:db8:ffff:ffff:ffff:ffff:ffff:ffff", "v6", "2a00:db8::/32"},
		{"2a00:db9::", "", ""},
		{"2a00:db9:ffff:ffff::", "last64", "2a00:db9:ffff:ffff::/64"},
		{"2a00:db9:ffff:ffff:ffff:ffff:ffff:ffff", "last64", "2a00:db9:ffff:ffff::/64"},
		{"2a00:dba::", "", ""},
		{"::1400:1", "", ""}, // not IPv4-mapped: an IPv6 address
	} {
		got, ok := r.Lookup(netip.MustParseAddr(tc.ip))
		if tc.provider == "" {
			if ok {
				t.Errorf("Lookup(%s) = %v, want none", tc.ip, got)
			}
			continue
		}
		if !ok || got.Provider != tc.provider || got.Prefix.String() != tc.prefix {
			t.Errorf("Lookup(%s) = %v %v, want %s %s", tc.ip, got, ok, tc.provider, tc.prefix)
		}
	}
	if got, ok := r.LookupString("20.0.0.1:443"); !ok || got.Provider != "wide" {
		t.Errorf("LookupString with a port = %v %v", got, ok)
	}
	if _, ok := r.LookupString("not an address"); ok {
		t.Errorf("LookupString of garbage found a range")
	}
	if _, ok := (*fraud.Ranges)(nil).LookupString("20.0.0.1"); ok {
		t.Errorf("a nil lookup found a range")
	}
}

// TestReadListErrors checks that a bad line is refused with its number.
func TestReadListErrors(t *testing.T) {
	_, err := fraud.ReadList(strings.NewReader("10.0.0.0/8 a\n10.0.0/8 b\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadList of a bad prefix: %v, want an error naming line 2", err)
	}
}

// TestWriteListRoundTrip checks that a written list reads back the same,
// sorted (IPv4 first) and without duplicates.
func TestWriteListRoundTrip(t *testing.T) {
	in := []fraud.Range{
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), Provider: "b"},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Provider: "a"},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Provider: "a"},
		{Prefix: netip.MustParsePrefix("9.0.0.0/8"), Provider: "a"},
	}
	var buf bytes.Buffer
	if err := fraud.WriteList(&buf, []string{"Source: test"}, in); err != nil {
		t.Fatal(err)
	}
	want := "# Source: test\n9.0.0.0/8 a\n10.0.0.0/8 a\n2001:db8::/32 b\n"
	if buf.String() != want {
		t.Errorf("WriteList wrote\n%s\nwant\n%s", buf.String(), want)
	}
	back, err := fraud.ReadList(&buf)
	if err != nil || len(back) != 3 {
		t.Errorf("read back %v (%v)", back, err)
	}
}

// TestShippedRanges checks that the shipped list parses and knows a few
// addresses of the providers it was built from, and not a home address.
func TestShippedRanges(t *testing.T) {
	r := fraud.Shipped()
	if r.Len() < 1000 {
		t.Errorf("the shipped list has %d ranges", r.Len())
	}
	for ip, provider := range map[string]string{
		"1.178.1.7":               "aws",
		"2600:1f00:1000::1":       "aws",
		"5.101.96.1":              "digitalocean",
		"2600:3c00::1":            "linode",
		"192.168.1.10":            "",
		"2a02:8108:1dc0:0:1::abc": "",
	} {
		got, ok := r.LookupString(ip)
		if provider == "" {
			if ok {
				t.Errorf("%s is in %v", ip, got)
			}
		} else if !ok || got.Provider != provider {
			t.Errorf("%s: %v %v, want %s", ip, got, ok, provider)
		}
	}
}

// BenchmarkShippedLookup looks up addresses in the shipped list.
func BenchmarkShippedLookup(b *testing.B) {
	r := fraud.Shipped()
	addrs := []netip.Addr{netip.MustParseAddr("1.178.1.7"), netip.MustParseAddr("81.2.69.142"),
		netip.MustParseAddr("2600:1f00:1000::1"), netip.MustParseAddr("2a02:8108:1dc0::1")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Lookup(addrs[i%len(addrs)])
	}
}
