package fraud_test

import (
	"strings"
	"testing"

	"tapline/fraud"
)

// Samples in the providers' published formats, cut to a few entries.
const (
	awsSample = `{
  "syncToken": "1753388594",
  "createDate": "2025-07-24-20-23-14",
  "prefixes": [
    {"ip_prefix": "3.4.12.4/32", "region": "eu-west-1", "service": "AMAZON", "network_border_group": "eu-west-1"},
    {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"}
  ],
  "ipv6_prefixes": [
    {"ipv6_prefix": "2600:1f69:7400::/40", "region": "mx-central-1", "service": "AMAZON", "network_border_group": "mx-central-1"}
  ]
}`
	gcpSample = `{
  "syncToken": "1753409788780",
  "creationTime": "2025-07-24T19:16:28.780563",
  "prefixes": [{
    "ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"
  }, {
    "ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "us-east1"
  }]
}`
	oracleSample = `{
    "last_updated_timestamp": "2025-07-21T07:13:25.457838",
    "regions": [
        {"region": "us-ashburn-1", "cidrs": [{"cidr": "129.80.0.0/16", "tags": ["OCI"]}, {"cidr": "129.145.16.0/21", "tags": ["OSN"]}]},
        {"region": "eu-frankfurt-1", "cidrs": [{"cidr": "130.61.0.0/16", "tags": ["OCI"]}]}
    ]
}`
	geofeedSample = `# This file contains a self-published geofeed as defined in https://datatracker.ietf.org/doc/html/rfc8805
# ip_prefix, alpha2code, region, city, postal_code
2600:3c00::/32,US,US-TX,Richardson,
5.101.96.0/21,NL,NL-NH,Amsterdam,1098 XH
45.67.8.9,US,,,
198.51.100.0/24,US,,,
`
)

// TestSourceParse reads each published format.
func TestSourceParse(t *testing.T) {
	for _, tc := range []struct {
		format, body string
		want         []string
	}{
		{fraud.FormatAWS, awsSample, []string{"3.4.12.4/32", "3.5.140.0/22", "2600:1f69:7400::/40"}},
		{fraud.FormatGCP, gcpSample, []string{"34.1.208.0/20", "2600:1900:8000::/44"}},
		{fraud.FormatOracle, oracleSample, []string{"129.80.0.0/16", "129.145.16.0/21", "130.61.0.0/16"}},
		{fraud.FormatText, geofeedSample, []string{"2600:3c00::/32", "5.101.96.0/21", "45.67.8.9/32"}},
		{fraud.FormatText, "20.0.0.0/8\n\n2a00:db8::/32\n", []string{"20.0.0.0/8", "2a00:db8::/32"}},
	} {
		rs, err := fraud.Source{Provider: "p", Format: tc.format}.Parse(strings.NewReader(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.format, err)
			continue
		}
		var got []string
		for _, r := range rs {
			if r.Provider != "p" {
				t.Errorf("%s: provider %q", tc.format, r.Provider)
			}
			got = append(got, r.Prefix.String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v, want %v", tc.format, got, tc.want)
		}
	}
}

// TestSourceParseErrors checks that an error page, an empty file and a
// bad prefix are refused.
func TestSourceParseErrors(t *testing.T) {
	for _, tc := range []struct{ format, body, want string }{
		{fraud.FormatAWS, "<html>Service Unavailable</html>", "decode"},
		{fraud.FormatGCP, `{"prefixes": []}`, "no ranges"},
		{fraud.FormatText, "# only a comment\n", "no ranges"},
		{fraud.FormatText, "10.0.0.0/33\n", "not an address prefix"},
		{"csv", "10.0.0.0/8", "unknown format"},
	} {
		_, err := fraud.Source{Provider: "p", Format: tc.format}.Parse(strings.NewReader(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want an error with %q", tc.format, tc.body, err, tc.want)
		}
	}
}
