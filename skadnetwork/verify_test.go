package skadnetwork

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"tapline"
)

// devVerifier is DefaultVerifier with Apple's development keys added.
func devVerifier() *Verifier {
	v := DefaultVerifier()
	for kid, k := range DevelopmentKeys() {
		v.JWSKeys[kid] = k
	}
	return v
}

// TestAppleSamplesVerify checks postbacks signed by Apple against Apple's
// published keys. testdata/apple holds the samples of Apple's current
// documentation, copied verbatim; testdata/other says where its files come
// from.
func TestAppleSamplesVerify(t *testing.T) {
	for _, f := range []string{
		// https://developer.apple.com/documentation/storekit/verifying-an-install-validation-postback
		"apple/skan-4.0-web-fine.json",
		"apple/skan-4.0-web-coarse.json",
		// https://developer.apple.com/documentation/storekit/combining-parameters-for-skadnetwork-3-postbacks
		"apple/skan-3.0-winning.json",
		"apple/skan-3.0-nonwinning.json",
		// https://developer.apple.com/documentation/storekit/combining-parameters-for-previous-skadnetwork-postback-versions
		"apple/skan-2.2.json",
		// https://developer.apple.com/documentation/adattributionkit/identifying-the-parameters-in-a-postback
		"apple/aak-developer-settings.json",
		"other/skan-2.1-earlier-apple-doc.json",
		"other/skan-2.0-production.json", // P-192
	} {
		t.Run(f, func(t *testing.T) {
			p, err := Parse(readFile(t, "testdata/"+f))
			if err != nil {
				t.Fatal(err)
			}
			if err := devVerifier().Verify(p); err != nil {
				t.Fatalf("Apple's signature does not verify: %v", err)
			}
			if p.Kind == KindSKAdNetwork {
				if err := Verify(p); err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
		})
	}
}

// edit parses an Apple sample, applies f to its members and returns the
// postback it makes.
func edit(tb testing.TB, file string, f func(m map[string]any)) *Postback {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFile(tb, "testdata/apple/"+file)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	f(m)
	p, err := Parse(mustJSON(tb, m))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func assertUnauthorized(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		tb.Fatal("verified")
	}
	if code := tapline.ErrorCode(err); code != tapline.EUNAUTHORIZED {
		tb.Errorf("code %q (%v), want %q", code, err, tapline.EUNAUTHORIZED)
	}
}

// TestAppleSamplesTampered changes one signed field of Apple's samples at a
// time: each change must break the signature. Changing the conversion
// values must not, because Apple does not sign them.
func TestAppleSamplesTampered(t *testing.T) {
	type change struct {
		field string
		f     func(m map[string]any)
	}
	set := func(name string, v any) change { return change{name, func(m map[string]any) { m[name] = v }} }
	drop := func(name string) change { return change{"no " + name, func(m map[string]any) { delete(m, name) }} }
	common := []change{
		set("ad-network-id", "com.example2"),
		set("app-id", 525463030),
		set("transaction-id", "6aafb7a5-0170-41b5-bbe4-fe71dedf1e29"),
	}
	samples := map[string][]change{
		"skan-4.0-web-fine.json": {
			set("source-identifier", "5238"), set("redownload", true), set("source-domain", "example.org"),
			change{"source-app-id for source-domain", func(m map[string]any) { delete(m, "source-domain"); m["source-app-id"] = 1 }},
			drop("source-domain"), set("fidelity-type", 0), set("did-win", false), set("postback-sequence-index", 1),
		},
		"skan-4.0-web-coarse.json": {set("source-identifier", "390"), set("postback-sequence-index", 2)},
		"skan-3.0-winning.json": {
			set("campaign-id", 41), set("redownload", false), set("source-app-id", 1234567892), drop("source-app-id"),
			set("fidelity-type", 0), set("did-win", false),
		},
		"skan-3.0-nonwinning.json": {set("did-win", true), set("source-app-id", 0)},
		"skan-2.2.json": {
			set("campaign-id", 43), set("redownload", false), drop("source-app-id"), set("fidelity-type", 0),
		},
	}
	for file, changes := range samples {
		for _, c := range append(common, changes...) {
			t.Run(file+"/"+c.field, func(t *testing.T) {
				assertUnauthorized(t, Verify(edit(t, file, c.f)))
			})
		}
	}
	t.Run("unsigned conversion values", func(t *testing.T) {
		p := edit(t, "skan-4.0-web-fine.json", func(m map[string]any) { m["conversion-value"] = 1 })
		if err := Verify(p); err != nil {
			t.Errorf("conversion-value 1: %v", err)
		}
		p = edit(t, "skan-4.0-web-coarse.json", func(m map[string]any) { m["coarse-conversion-value"] = "low" })
		if err := Verify(p); err != nil {
			t.Errorf("coarse-conversion-value low: %v", err)
		}
	})
}

// TestMessage compares the signed strings with the orders Apple lists for
// each version, written out by hand.
func TestMessage(t *testing.T) {
	const s = "\u2063"
	tests := []struct {
		name string
		edit func(m map[string]any)
		v    string
		want string
	}{
		{"2.0 with source-app-id", nil, "2.0", "2.0" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "1234567891"},
		{"2.1 without source-app-id", func(m map[string]any) { delete(m, "source-app-id") }, "2.1", "2.1" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true"},
		{"2.2 with source-app-id", nil, "2.2", "2.2" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "1234567891" + s + "1"},
		{"2.2 without source-app-id", func(m map[string]any) { delete(m, "source-app-id"); m["fidelity-type"] = 0 }, "2.2", "2.2" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "0"},
		{"3.0 winning", nil, "3.0", "3.0" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "1234567891" + s + "1" + s + "true"},
		{"3.0 nonwinning", func(m map[string]any) { delete(m, "source-app-id"); m["did-win"] = false }, "3.0", "3.0" + s + "example123.skadnetwork" + s + "42" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "1" + s + "false"},
		{"4.0 app ad", func(m map[string]any) { m["redownload"] = false }, "4.0", "4.0" + s + "example123.skadnetwork" + s + "5239" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "false" + s + "1234567891" + s + "1" + s + "true" + s + "0"},
		{"4.0 web ad", func(m map[string]any) {
			delete(m, "source-app-id")
			m["source-domain"] = "example.com"
			m["postback-sequence-index"] = 1
		}, "4.0", "4.0" + s + "example123.skadnetwork" + s + "5239" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "example.com" + s + "1" + s + "true" + s + "1"},
		{"4.0 neither", func(m map[string]any) {
			delete(m, "source-app-id")
			m["did-win"] = false
			m["postback-sequence-index"] = 2
		}, "4.0", "4.0" + s + "example123.skadnetwork" + s + "5239" + s + "525463029" + s + "6aafb7a5-0170-41b5-bbe4-fe71dedf1e28" + s + "true" + s + "1" + s + "false" + s + "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fields(tt.v)
			if tt.edit != nil {
				tt.edit(m)
			}
			p, err := Parse(mustJSON(t, m))
			if err != nil {
				t.Fatal(err)
			}
			got, err := message(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("message\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// signer signs a postback's message for a test key of either curve.
type signer func(tb testing.TB, msg []byte) []byte

func p256Signer(tb testing.TB) (*ecdsa.PublicKey, signer) {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &priv.PublicKey, func(tb testing.TB, msg []byte) []byte {
		h := sha256.Sum256(msg)
		sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
}

// testKey makes a key pair on the curve Apple uses for version v.
func testKey(tb testing.TB, v string) (*ecdsa.PublicKey, signer) {
	if v == "2.0" {
		s := newP192Signer(tb)
		return s.pub, s.sign
	}
	return p256Signer(tb)
}

// signed returns m signed by sign: m's attribution-signature is replaced
// by the signature of the message m makes.
func signed(tb testing.TB, m map[string]any, sign signer) []byte {
	tb.Helper()
	p, err := Parse(mustJSON(tb, m))
	if err != nil {
		tb.Fatal(err)
	}
	msg, err := message(p)
	if err != nil {
		tb.Fatal(err)
	}
	m["attribution-signature"] = base64.StdEncoding.EncodeToString(sign(tb, []byte(msg)))
	return mustJSON(tb, m)
}

// TestTestKeys signs postbacks of every version and layout with test keys
// (P-192 for 2.0, as Apple did, P-256 after), then changes one signed field
// at a time, and tries the wrong version's key.
func TestTestKeys(t *testing.T) {
	layouts := map[string]func(m map[string]any){
		"source-app-id":    func(m map[string]any) {},
		"no source-app-id": func(m map[string]any) { delete(m, "source-app-id") },
	}
	signedFields := map[string]any{
		"ad-network-id":           "other.skadnetwork",
		"campaign-id":             43,
		"source-identifier":       "523",
		"app-id":                  1,
		"transaction-id":          "f9ac267a-a889-44ce-b5f7-0166d11461f0",
		"redownload":              false,
		"source-app-id":           7,
		"source-domain":           "example.org",
		"fidelity-type":           0,
		"did-win":                 false,
		"postback-sequence-index": 1,
	}
	keys := map[string]*ecdsa.PublicKey{}
	signers := map[string]signer{}
	for _, v := range Versions {
		keys[v], signers[v] = testKey(t, v)
	}
	v := &Verifier{Keys: keys}
	for _, version := range Versions {
		ls := layouts
		if version == "4.0" {
			ls = map[string]func(m map[string]any){
				"source-app-id":    layouts["source-app-id"],
				"no source-app-id": layouts["no source-app-id"],
				"source-domain":    func(m map[string]any) { delete(m, "source-app-id"); m["source-domain"] = "example.com" },
			}
		}
		for name, layout := range ls {
			m := fields(version)
			layout(m)
			body := signed(t, m, signers[version])
			t.Run(version+"/"+name, func(t *testing.T) {
				p, err := Parse(body)
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(p); err != nil {
					t.Fatalf("own signature: %v", err)
				}
				if err := Verify(p); err == nil {
					t.Error("a test key's signature verified with Apple's key")
				}
				for field, value := range signedFields {
					if _, ok := m[field]; !ok {
						continue
					}
					var t2 map[string]any
					if err := json.Unmarshal(body, &t2); err != nil {
						t.Fatal(err)
					}
					t2[field] = value
					q, err := Parse(mustJSON(t, t2))
					if err != nil {
						t.Fatalf("%s: %v", field, err)
					}
					if err := v.Verify(q); err == nil {
						t.Errorf("%s changed to %v: still verifies", field, value)
					}
				}
				// The key of another version (another key pair) fails.
				other := Versions[(indexOf(Versions, version)+1)%len(Versions)]
				swapped := &Verifier{Keys: map[string]*ecdsa.PublicKey{version: keys[other]}}
				assertUnauthorized(t, swapped.Verify(p))
				assertUnauthorized(t, (&Verifier{}).Verify(p))
			})
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	panic(fmt.Sprintf("%q not in %q", v, s))
}

func TestVerifyNoKey(t *testing.T) {
	p, err := Parse(readFile(t, "testdata/apple/skan-4.0-web-fine.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := DefaultVerifier()
	delete(v.Keys, "4.0")
	err = v.Verify(p)
	assertUnauthorized(t, err)
	if !strings.Contains(tapline.ErrorMessage(err), `no key for version "4.0"`) {
		t.Errorf("message %q", tapline.ErrorMessage(err))
	}
	// DefaultVerifier hands out its own maps: the deletion above must not
	// reach the package's Verify.
	if err := Verify(p); err != nil {
		t.Errorf("Verify after a DefaultVerifier was changed: %v", err)
	}
}
