package skadnetwork

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"tapline"
)

// fields returns a valid postback of version v as a map to edit: the
// fields v requires, source-app-id and a conversion value. Its signature
// is well-formed base64 but signs nothing.
func fields(v string) map[string]any {
	m := map[string]any{
		"version":               v,
		"ad-network-id":         "example123.skadnetwork",
		"app-id":                525463029,
		"transaction-id":        "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28",
		"redownload":            true,
		"source-app-id":         1234567891,
		"conversion-value":      20,
		"attribution-signature": "MEUCIQ==",
	}
	spec := versions[v]
	if spec.v4 {
		m["source-identifier"] = "5239"
		m["postback-sequence-index"] = 0
	} else {
		m["campaign-id"] = 42
	}
	if spec.fidelity {
		m["fidelity-type"] = 1
	}
	if spec.didWin {
		m["did-win"] = true
	}
	return m
}

// required lists the fields a postback of version v cannot do without.
func required(v string) []string {
	r := []string{"version", "ad-network-id", "app-id", "transaction-id", "redownload", "attribution-signature"}
	spec := versions[v]
	if spec.v4 {
		r = append(r, "source-identifier", "postback-sequence-index")
	} else {
		r = append(r, "campaign-id")
	}
	if spec.fidelity {
		r = append(r, "fidelity-type")
	}
	if spec.didWin {
		r = append(r, "did-win")
	}
	return r
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestParseAppleSample(t *testing.T) {
	body := readFile(t, "testdata/apple/skan-4.0-web-fine.json")
	got, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := &Postback{
		Kind:             KindSKAdNetwork,
		Version:          "4.0",
		AdNetworkID:      "com.example",
		SourceIdentifier: "5239",
		TransactionID:    "6aafb7a5-0170-41b5-bbe4-fe71dedf1e30",
		AppID:            525463029,
		SourceDomain:     "example.com",
		FidelityType:     1,
		ConversionValue:  ptr(63),
		DidWin:           ptr(true),
		Signature:        "MEUCIGRmSMrqedNu6uaHyhVcifs118R5z/AB6cvRaKrRRHWRAiEAv96ne3dKQ5kJpbsfk4eYiePmrZUU6sQmo+7zfP/1Bxo=",
		Raw:              body,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	got, err = Parse(readFile(t, "testdata/apple/skan-3.0-nonwinning.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.SourceIdentifier != "42" || got.SourceAppID != nil || got.ConversionValue != nil || got.DidWin == nil || *got.DidWin {
		t.Errorf("3.0 nonwinning: campaign %q, source app %v, conversion value %v, did-win %v; want 42, nil, nil, false",
			got.SourceIdentifier, got.SourceAppID, got.ConversionValue, got.DidWin)
	}
}

func TestParseVersions(t *testing.T) {
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			p, err := Parse(mustJSON(t, fields(v)))
			if err != nil {
				t.Fatal(err)
			}
			wantSource := "42"
			if v == "4.0" {
				wantSource = "5239"
			}
			if p.Version != v || p.SourceIdentifier != wantSource || p.SourceAppID == nil || *p.SourceAppID != 1234567891 || !p.Redownload {
				t.Errorf("got version %q source %q source app %v redownload %v", p.Version, p.SourceIdentifier, p.SourceAppID, p.Redownload)
			}
			if got, want := p.DidWin != nil, versions[v].didWin; got != want {
				t.Errorf("did-win present %v, want %v", got, want)
			}
			if p.FidelityType != 1 {
				t.Errorf("fidelity-type %d, want 1", p.FidelityType)
			}
		})
	}
}

func TestParseRequiredFields(t *testing.T) {
	for _, v := range Versions {
		for _, name := range required(v) {
			t.Run(v+"/"+name, func(t *testing.T) {
				m := fields(v)
				delete(m, name)
				_, err := Parse(mustJSON(t, m))
				want := name + " is missing"
				if name == "version" {
					want = "version is missing"
				}
				assertInvalid(t, err, want)
			})
		}
	}
}

func assertInvalid(tb testing.TB, err error, want string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("no error, want one saying %q", want)
	}
	if code := tapline.ErrorCode(err); code != tapline.EINVALID {
		tb.Errorf("code %q (%v), want %q", code, err, tapline.EINVALID)
	}
	if msg := tapline.ErrorMessage(err); !strings.Contains(msg, want) {
		tb.Errorf("message %q does not say %q", msg, want)
	}
}

func TestParseErrors(t *testing.T) {
	edit := func(v string, f func(m map[string]any)) []byte {
		m := fields(v)
		f(m)
		return mustJSON(t, m)
	}
	set := func(v, name string, value any) []byte {
		return edit(v, func(m map[string]any) { m[name] = value })
	}
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("version=4.0"), "not a JSON object"},
		{"JSON array", []byte(`[{"version":"4.0"}]`), "not a JSON object"},
		{"JSON null", []byte(`null`), "not a JSON object"},
		{"trailing data", append(mustJSON(t, fields("4.0")), " {}"...), "not a JSON object"},
		{"not UTF-8", []byte("{\"version\":\"4.0\xff\"}"), "not UTF-8"},
		{"unknown version", set("4.0", "version", "5.0"), `version "5.0" is not supported`},
		{"version 1.0", set("2.0", "version", "1.0"), `version "1.0" is not supported`},
		{"version as number", set("4.0", "version", 4.0), "version is not a string"},
		{"version 1.0 without version field", edit("2.0", func(m map[string]any) { delete(m, "version") }), "SKAdNetwork 1.0"},
		{"conversion-value 64", set("4.0", "conversion-value", 64), "conversion-value 64 is over 63"},
		{"conversion-value negative", set("3.0", "conversion-value", -1), "conversion-value -1 is negative"},
		{"conversion-value fraction", set("2.2", "conversion-value", 1.5), "conversion-value is not an integer"},
		{"conversion-value string", set("2.1", "conversion-value", "20"), "conversion-value is not an integer"},
		{"conversion-value exponent", []byte(strings.Replace(string(mustJSON(t, fields("4.0"))), `"conversion-value":20`, `"conversion-value":2e1`, 1)), "conversion-value is not an integer"},
		{"coarse value unknown", edit("4.0", func(m map[string]any) {
			delete(m, "conversion-value")
			m["coarse-conversion-value"] = "extreme"
		}), `coarse-conversion-value "extreme" is not low, medium or high`},
		{"coarse value upper case", edit("4.0", func(m map[string]any) {
			delete(m, "conversion-value")
			m["coarse-conversion-value"] = "HIGH"
		}), "is not low, medium or high"},
		{"both conversion values", set("4.0", "coarse-conversion-value", "low"), "conversion-value and coarse-conversion-value are both present"},
		{"coarse value before 4.0", set("3.0", "coarse-conversion-value", "low"), "coarse-conversion-value is not a field of version 3.0"},
		{"sequence index 3", set("4.0", "postback-sequence-index", 3), "postback-sequence-index 3 is not 0, 1 or 2"},
		{"sequence index negative", set("4.0", "postback-sequence-index", -1), "postback-sequence-index -1 is negative"},
		{"sequence index before 4.0", set("3.0", "postback-sequence-index", 0), "postback-sequence-index is not a field of version 3.0"},
		{"source identifier of one digit", set("4.0", "source-identifier", "5"), `source-identifier "5" is not two to four digits`},
		{"source identifier of five digits", set("4.0", "source-identifier", "12345"), "is not two to four digits"},
		{"source identifier with a letter", set("4.0", "source-identifier", "12a4"), "is not two to four digits"},
		{"source identifier as number", set("4.0", "source-identifier", 5239), "source-identifier is not a string"},
		{"source identifier before 4.0", set("3.0", "source-identifier", "5239"), "source-identifier is not a field of version 3.0"},
		{"campaign-id in 4.0", set("4.0", "campaign-id", 42), "campaign-id is not a field of version 4.0"},
		{"campaign-id 0", set("3.0", "campaign-id", 0), "campaign-id 0 is not between 1 and 100"},
		{"campaign-id 101", set("2.0", "campaign-id", 101), "campaign-id 101 is not between 1 and 100"},
		{"campaign-id string", set("2.2", "campaign-id", "42"), "campaign-id is not an integer"},
		{"fidelity-type 2", set("2.2", "fidelity-type", 2), "fidelity-type 2 is neither 0 nor 1"},
		{"fidelity-type before 2.2", set("2.1", "fidelity-type", 1), "fidelity-type is not a field of version 2.1"},
		{"did-win before 3.0", set("2.2", "did-win", true), "did-win is not a field of version 2.2"},
		{"did-win string", set("3.0", "did-win", "true"), "did-win is not true or false"},
		{"redownload number", set("2.0", "redownload", 1), "redownload is not true or false"},
		{"redownload null", set("4.0", "redownload", nil), "redownload is not true or false"},
		{"source-app-id and source-domain", set("4.0", "source-domain", "example.com"), "source-app-id and source-domain are both present"},
		{"source-domain before 4.0", set("3.0", "source-domain", "example.com"), "source-domain is not a field of version 3.0"},
		{"source-domain empty", edit("4.0", func(m map[string]any) {
			delete(m, "source-app-id")
			m["source-domain"] = ""
		}), "source-domain is empty"},
		{"app-id negative", set("4.0", "app-id", -5), "app-id -5 is negative"},
		{"app-id string", set("4.0", "app-id", "525463029"), "app-id is not an integer"},
		{"app-id over int64", []byte(strings.Replace(string(mustJSON(t, fields("4.0"))), "525463029", "99999999999999999999", 1)), "app-id is not an integer"},
		{"source-app-id null", set("3.0", "source-app-id", nil), "source-app-id is not an integer"},
		{"signature not base64", set("4.0", "attribution-signature", "not base64!"), "attribution-signature is not base64"},
		{"transaction-id empty", set("4.0", "transaction-id", ""), "transaction-id is empty"},
		{"transaction-id holds the separator", set("3.0", "transaction-id", "a\u2063true"), "transaction-id holds the separator U+2063"},
		{"ad-network-id holds the separator", set("4.0", "ad-network-id", "com.example\u20635239"), "ad-network-id holds the separator U+2063"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.body)
			if err == nil {
				t.Fatalf("parsed %+v, want an error saying %q", p, tt.want)
			}
			assertInvalid(t, err, tt.want)
		})
	}
}

func TestParseTolerates(t *testing.T) {
	m := fields("4.0")
	m["timestamp"] = 1613095729               // added by networks that forward postbacks
	m["ad-network-campaign-id"] = "x\u2063y"  // not Apple's, so not checked
	m["marketplace-identifier"] = []int{1, 2} // an AdAttributionKit name, meaningless here
	body := []byte("  \n" + string(mustJSON(t, m)) + "\n\t")
	p, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.MarketplaceID != "" || string(p.Raw) != string(body) {
		t.Errorf("marketplace %q, raw %q", p.MarketplaceID, p.Raw)
	}

	m = fields("4.0")
	delete(m, "source-app-id")
	delete(m, "conversion-value")
	p, err = Parse(mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if p.SourceAppID != nil || p.ConversionValue != nil || p.CoarseValue != "" || p.SourceDomain != "" {
		t.Errorf("absent fields read as %v %v %q %q", p.SourceAppID, p.ConversionValue, p.CoarseValue, p.SourceDomain)
	}

	m = fields("4.0")
	m["source-app-id"] = 0 // test postbacks carry 0
	if p, err = Parse(mustJSON(t, m)); err != nil || p.SourceAppID == nil || *p.SourceAppID != 0 {
		t.Errorf("source-app-id 0: %v, %v", err, p)
	}
}

func TestFidelityBefore22(t *testing.T) {
	for _, v := range []string{"2.0", "2.1"} {
		p, err := Parse(mustJSON(t, fields(v)))
		if err != nil {
			t.Fatal(err)
		}
		if p.FidelityType != 1 {
			t.Errorf("%s: fidelity %d, want 1 (StoreKit-rendered, the only kind then)", v, p.FidelityType)
		}
	}
	m := fields("2.2")
	m["fidelity-type"] = 0
	p, err := Parse(mustJSON(t, m))
	if err != nil || p.FidelityType != 0 {
		t.Errorf("2.2 view-through: %v, fidelity %v", err, p)
	}
}

func TestKeyAndWindow(t *testing.T) {
	m := fields("4.0")
	m["postback-sequence-index"] = 2
	p, err := Parse(mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if p.Window() != 2 {
		t.Errorf("window %d, want 2", p.Window())
	}
	if got, want := p.Key(), "skadnetwork:6aafb7a5-0170-41b5-bbe4-fe71dedf1e28:2"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	m["postback-sequence-index"] = 1
	q, err := Parse(mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if q.Key() == p.Key() {
		t.Errorf("windows 1 and 2 share the key %q", q.Key())
	}
	old, err := Parse(mustJSON(t, fields("3.0")))
	if err != nil {
		t.Fatal(err)
	}
	if old.Window() != 0 || old.Key() != "skadnetwork:6aafb7a5-0170-41b5-bbe4-fe71dedf1e28:0" {
		t.Errorf("3.0: window %d key %q", old.Window(), old.Key())
	}
}

// TestMarshalRoundTrip parses Apple's samples, writes them back and parses
// the result: the postback must come back whole, and so must its signature.
func TestMarshalRoundTrip(t *testing.T) {
	files := []string{
		"skan-4.0-web-fine.json", "skan-4.0-web-coarse.json", "skan-3.0-winning.json",
		"skan-3.0-nonwinning.json", "skan-2.2.json", "aak-developer-settings.json",
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			p, err := Parse(readFile(t, "testdata/apple/"+f))
			if err != nil {
				t.Fatal(err)
			}
			assertRoundTrip(t, p)
		})
	}
	for _, v := range Versions {
		t.Run(v, func(t *testing.T) {
			p, err := Parse(mustJSON(t, fields(v)))
			if err != nil {
				t.Fatal(err)
			}
			assertRoundTrip(t, p)
		})
	}
}

func assertRoundTrip(tb testing.TB, p *Postback) {
	tb.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	q, err := Parse(b)
	if err != nil {
		tb.Fatalf("parse of %s: %v", b, err)
	}
	a, c := *p, *q
	a.Raw, c.Raw = nil, nil
	if !reflect.DeepEqual(a, c) {
		tb.Fatalf("round trip through %s\ngot  %+v\nwant %+v", b, c, a)
	}
}
