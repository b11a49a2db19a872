package fraud

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Formats of the providers' published range files.
const (
	FormatAWS    = "aws"    // ip-ranges.json: prefixes[].ip_prefix, ipv6_prefixes[].ipv6_prefix
	FormatGCP    = "gcp"    // cloud.json: prefixes[].ipv4Prefix or .ipv6Prefix
	FormatOracle = "oracle" // public_ip_ranges.json: regions[].cidrs[].cidr
	// FormatText is a text file whose lines start with a prefix, up to a
	// comma or a space: an RFC 8805 geofeed CSV, or one prefix a line;
	// lines starting with '#' are comments.
	FormatText = "text"
)

// Source is one published range file of a provider.
type Source struct {
	Provider string
	URL      string
	Format   string
}

// DefaultSources are the files "tapline datacenters -refresh" fetches:
// the cloud providers' own publications and, for Microsoft, whose file
// moves with every release, lord-alfred/ipranges' merged lists of it
// (CC0 1.0).
var DefaultSources = []Source{
	{"aws", "https://ip-ranges.amazonaws.com/ip-ranges.json", FormatAWS},
	{"gcp", "https://www.gstatic.com/ipranges/cloud.json", FormatGCP},
	{"oracle", "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json", FormatOracle},
	{"microsoft", "https://raw.githubusercontent.com/lord-alfred/ipranges/main/microsoft/ipv4_merged.txt", FormatText},
	{"microsoft", "https://raw.githubusercontent.com/lord-alfred/ipranges/main/microsoft/ipv6_merged.txt", FormatText},
	{"digitalocean", "https://www.digitalocean.com/geo/google.csv", FormatText},
	{"linode", "https://geoip.linode.com/", FormatText},
	{"vultr", "https://geofeed.constant.com/?text", FormatText},
}

// Parse reads a file of source s's format and returns its ranges under
// s.Provider, leaving out those meeting a Special block. A file with no range at all is an error: a provider's
// publication is never empty, an error page often is.
func (s Source) Parse(r io.Reader) ([]Range, error) {
	var cidrs []string
	switch s.Format {
	case FormatAWS:
		var f struct {
			Prefixes []struct {
				IPPrefix string `json:"ip_prefix"`
			} `json:"prefixes"`
			IPv6Prefixes []struct {
				IPv6Prefix string `json:"ipv6_prefix"`
			} `json:"ipv6_prefixes"`
		}
		if err := json.NewDecoder(r).Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: decode %s JSON: %w", s.Provider, s.Format, err)
		}
		for _, p := range f.Prefixes {
			cidrs = append(cidrs, p.IPPrefix)
		}
		for _, p := range f.IPv6Prefixes {
			cidrs = append(cidrs, p.IPv6Prefix)
		}
	case FormatGCP:
		var f struct {
			Prefixes []struct {
				IPv4Prefix string `json:"ipv4Prefix"`
				IPv6Prefix string `json:"ipv6Prefix"`
			} `json:"prefixes"`
		}
		if err := json.NewDecoder(r).Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: decode %s JSON: %w", s.Provider, s.Format, err)
		}
		for _, p := range f.Prefixes {
			cidrs = append(cidrs, p.IPv4Prefix+p.IPv6Prefix)
		}
	case FormatOracle:
		var f struct {
			Regions []struct {
				CIDRs []struct {
					CIDR string `json:"cidr"`
				} `json:"cidrs"`
			} `json:"regions"`
		}
		if err := json.NewDecoder(r).Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: decode %s JSON: %w", s.Provider, s.Format, err)
		}
		for _, reg := range f.Regions {
			for _, c := range reg.CIDRs {
				cidrs = append(cidrs, c.CIDR)
			}
		}
	case FormatText:
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if i := strings.IndexAny(line, ", \t"); i >= 0 {
				line = line[:i]
			}
			cidrs = append(cidrs, line)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.Provider, err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown format %q", s.Provider, s.Format)
	}
	out := make([]Range, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Provider, err)
		}
		if Special(p) {
			continue // a documentation block in a geofeed's examples
		}
		out = append(out, Range{Prefix: p, Provider: s.Provider})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no ranges in the %s file", s.Provider, s.Format)
	}
	return out, nil
}

// parsePrefix reads a CIDR prefix, or a single address as its /32 or
// /128 (geofeeds may list single hosts).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
