package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tapline/fraud"
)

// A small sample in the format of AWS's ip-ranges.json and one of an RFC
// 8805 geofeed (DigitalOcean's, Linode's).
const (
	awsRangesSample = `{
  "syncToken": "1753388594",
  "createDate": "2025-07-24-20-23-14",
  "prefixes": [
    {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"},
    {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"}
  ],
  "ipv6_prefixes": [
    {"ipv6_prefix": "2600:1f69:7400::/40", "region": "mx-central-1", "service": "AMAZON", "network_border_group": "mx-central-1"}
  ]
}`
	geofeedSample = `# ip_prefix, alpha2code, region, city, postal_code
5.101.96.0/21,NL,NL-NH,Amsterdam,1098 XH
2a03:b0c0:1::/48,NL,NL-NH,Amsterdam,
`
)

// TestDatacentersRefresh runs "tapline datacenters -refresh" against a
// server publishing files in the providers' formats, checks the list it
// writes, and that a source failing leaves the list as it was.
func TestDatacentersRefresh(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ip-ranges.json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(awsRangesSample)) })
	mux.HandleFunc("/geo/google.csv", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(geofeedSample)) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	out := filepath.Join(t.TempDir(), "datacenters.txt")
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	args := []string{"datacenters", "-refresh", "-out", out,
		"-source", "aws,aws," + srv.URL + "/ip-ranges.json",
		"-source", "digitalocean,text," + srv.URL + "/geo/google.csv"}
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("refresh: %v\n%s", err, stderr.String())
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Fetched ", "aws (aws): " + srv.URL + "/ip-ranges.json", "\n3.5.140.0/22 aws\n", "\n2600:1f69:7400::/40 aws\n", "\n5.101.96.0/21 digitalocean\n"} {
		if !strings.Contains(string(written), want) {
			t.Errorf("the list lacks %q:\n%s", want, written)
		}
	}
	rs, err := fraud.ReadList(bytes.NewReader(written))
	if err != nil || len(rs) != 5 {
		t.Fatalf("the list reads back as %d ranges (%v), want 5", len(rs), err)
	}
	ranges := fraud.NewRanges(rs)
	for ip, provider := range map[string]string{"52.94.79.255": "aws", "2a03:b0c0:1::9": "digitalocean", "52.94.80.0": ""} {
		if got, ok := ranges.LookupString(ip); got.Provider != provider || ok != (provider != "") {
			t.Errorf("%s: %v %v, want %q", ip, got, ok, provider)
		}
	}

	// A source that fails leaves the list untouched.
	err = m.Run(context.Background(), []string{"datacenters", "-refresh", "-out", out,
		"-source", "aws,aws," + srv.URL + "/ip-ranges.json", "-source", "gcp,gcp," + srv.URL + "/down"})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a failing source: %v, want its status", err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, written) {
		t.Errorf("a failed refresh changed the list")
	}
	if err := m.Run(context.Background(), []string{"datacenters", "-refresh", "-source", "x,csv,http://x"}); err == nil {
		t.Errorf("an unknown format was accepted")
	}

	// The list describes itself, and the matcher loads it.
	stdout.Reset()
	if err := m.Run(context.Background(), []string{"datacenters", "-file", out}); err != nil || !strings.Contains(stdout.String(), "5 datacenter ranges") {
		t.Errorf("describe: %v %q", err, stdout.String())
	}
	main, _ := runMain(t, "-fraud-datacenters", out)
	if got := main.Node.Matcher.Datacenters; got == nil || got.Len() != 5 {
		t.Errorf("the matcher did not load the list given: %v", got)
	}
}
