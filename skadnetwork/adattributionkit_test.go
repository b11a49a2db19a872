package skadnetwork

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"tapline"
)

func TestParseAdAttributionKitSample(t *testing.T) {
	body := readFile(t, "testdata/apple/aak-developer-settings.json")
	p, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := &Postback{
		Kind:             KindAdAttributionKit,
		AdNetworkID:      "development.adattributionkit",
		SourceIdentifier: "1234",
		TransactionID:    "85546EB7-FD39-44BC-8990-C98A4AC36A49",
		AppID:            10738027756,
		SourceAppID:      ptr(int64(0)),
		FidelityType:     1,
		ConversionValue:  ptr(24),
		DidWin:           ptr(true),
		JWS:              p.JWS,
		KeyID:            KeyIDDeveloperSettings,
		MarketplaceID:    "com.apple.AppStore",
		ConversionType:   ConversionReengagement,
		ImpressionType:   "app-impression",
		InteractionType:  "click",
		CountryCode:      "US",
		Raw:              body,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	if !strings.HasPrefix(p.JWS, "eyJraWQiOiJhcHBsZS1kZXZlbG9wbWVudC1pZGVudGlmaWVyXC8xIiwiYWxnIjoiRVMyNTYifQ.") {
		t.Errorf("jws %q", p.JWS)
	}
	if got, want := p.Key(), "adattributionkit:85546EB7-FD39-44BC-8990-C98A4AC36A49:0"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
}

// TestAdAttributionKitAppleKeys: Apple's sample is signed with the key of
// developer settings, which only a verifier given DevelopmentKeys trusts.
func TestAdAttributionKitAppleKeys(t *testing.T) {
	p, err := Parse(readFile(t, "testdata/apple/aak-developer-settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := devVerifier().Verify(p); err != nil {
		t.Fatalf("with the development keys: %v", err)
	}
	err = Verify(p)
	assertUnauthorized(t, err)
	if !strings.Contains(tapline.ErrorMessage(err), "not trusted") {
		t.Errorf("message %q", tapline.ErrorMessage(err))
	}
	wrong := &Verifier{JWSKeys: map[string]*ecdsa.PublicKey{KeyIDDeveloperSettings: mustKey(AppleAAKDevelopmentKey)}}
	assertUnauthorized(t, wrong.Verify(p))

	// The conversion value and the rest outside the JWS are not signed.
	q, err := Parse([]byte(`{"jws-string":"` + p.JWS + `","coarse-conversion-value":"low","country-code":"FR"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := devVerifier().Verify(q); err != nil {
		t.Errorf("other unsigned values: %v", err)
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jws signs header and payload (JSON text) with ES256 under priv.
func jws(tb testing.TB, priv *ecdsa.PrivateKey, header, payload string) string {
	tb.Helper()
	input := b64url(header) + "." + b64url(payload)
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const (
	testHeader  = `{"kid":"test/0","alg":"ES256"}`
	testPayload = `{"postback-identifier":"6A4DA0B4-0A67-4F45-A8F4-8F0F2D4F1C11","publisher-item-identifier":1234567891,` +
		`"impression-type":"app-impression","ad-network-identifier":"example123.adattributionkit","did-win":true,` +
		`"postback-sequence-index":1,"conversion-type":"redownload","source-identifier":"5239","advertised-item-identifier":525463029}`
)

func TestAdAttributionKitTestKey(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{JWSKeys: map[string]*ecdsa.PublicKey{"test/0": &priv.PublicKey, "test/1": &other.PublicKey}}
	body := func(jws string) []byte {
		return []byte(`{"jws-string":"` + jws + `","conversion-value":7,"ad-interaction-type":"view"}`)
	}

	good := jws(t, priv, testHeader, testPayload)
	p, err := Parse(body(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(p); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	if !p.Redownload || p.ConversionType != ConversionRedownload || p.SourceAppID == nil || *p.SourceAppID != 1234567891 ||
		p.Window() != 1 || p.FidelityType != 0 || p.MarketplaceID != "" || *p.ConversionValue != 7 {
		t.Errorf("parsed %+v", p)
	}
	assertRoundTrip(t, p)

	parts := strings.Split(good, ".")
	for name, tampered := range map[string]string{
		"payload did-win": parts[0] + "." + b64url(strings.Replace(testPayload, `"did-win":true`, `"did-win":false`, 1)) + "." + parts[2],
		"payload source":  parts[0] + "." + b64url(strings.Replace(testPayload, `"5239"`, `"5238"`, 1)) + "." + parts[2],
		"kid of another":  b64url(`{"kid":"test/1","alg":"ES256"}`) + "." + parts[1] + "." + parts[2],
		"signed by other": jws(t, other, testHeader, testPayload),
	} {
		t.Run(name, func(t *testing.T) {
			q, err := Parse(body(tampered))
			if err != nil {
				t.Fatal(err)
			}
			assertUnauthorized(t, v.Verify(q))
		})
	}
	if err := Verify(p); err == nil {
		t.Error("a test key's JWS verified with Apple's keys")
	}
}

func TestAdAttributionKitParseErrors(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signedBody := func(header, payload, rest string) []byte {
		return []byte(`{"jws-string":"` + jws(t, priv, header, payload) + `"` + rest + `}`)
	}
	payload := func(old, new string) []byte {
		if !strings.Contains(testPayload, old) {
			t.Fatalf("%q is not in the test payload", old)
		}
		return signedBody(testHeader, strings.Replace(testPayload, old, new, 1), "")
	}
	good := jws(t, priv, testHeader, testPayload)
	parts := strings.Split(good, ".")
	raw := func(jws string) []byte { return []byte(`{"jws-string":"` + jws + `"}`) }
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"jws-string not a string", []byte(`{"jws-string":42}`), "jws-string is not a string"},
		{"jws-string empty", []byte(`{"jws-string":""}`), "jws-string is empty"},
		{"two parts", raw(parts[0] + "." + parts[1]), "jws-string has 2 parts, not 3"},
		{"four parts", raw(good + ".x"), "jws-string has 4 parts, not 3"},
		{"header not base64url", raw("eyJ+." + parts[1] + "." + parts[2]), "the jws header is not base64url"},
		{"header padded", raw(parts[0] + "=." + parts[1] + "." + parts[2]), "the jws header is not base64url"},
		{"empty payload", raw(parts[0] + ".." + parts[2]), "the jws payload is not base64url"},
		{"short signature", raw(parts[0] + "." + parts[1] + "." + parts[2][:84]), "the jws signature has 63 bytes"},
		{"header not JSON", raw(b64url("kid") + "." + parts[1] + "." + parts[2]), "jws header is not a JSON object"},
		{"alg none", signedBody(`{"kid":"test/0","alg":"none"}`, testPayload, ""), `alg "none" is not ES256`},
		{"alg HS256", signedBody(`{"kid":"test/0","alg":"HS256"}`, testPayload, ""), `alg "HS256" is not ES256`},
		{"no alg", signedBody(`{"kid":"test/0"}`, testPayload, ""), "jws header: alg is missing"},
		{"no kid", signedBody(`{"alg":"ES256"}`, testPayload, ""), "jws header: kid is missing"},
		{"crit", signedBody(`{"kid":"test/0","alg":"ES256","crit":["exp"]}`, testPayload, ""), "crit is not supported"},
		{"payload not JSON", signedBody(testHeader, "[1]", ""), "jws payload is not a JSON object"},
		{"no postback-identifier", payload(`"postback-identifier":"6A4DA0B4-0A67-4F45-A8F4-8F0F2D4F1C11",`, ""), "jws payload: postback-identifier is missing"},
		{"no ad-network-identifier", payload(`"ad-network-identifier":"example123.adattributionkit",`, ""), "ad-network-identifier is missing"},
		{"no did-win", payload(`"did-win":true,`, ""), "did-win is missing"},
		{"no advertised-item-identifier", payload(`,"advertised-item-identifier":525463029`, ""), "advertised-item-identifier is missing"},
		{"no impression-type", payload(`"impression-type":"app-impression",`, ""), "impression-type is missing"},
		{"conversion-type install", payload(`"redownload"`, `"install"`), `conversion-type "install" is not download, redownload or re-engagement`},
		{"source-identifier of one digit", payload(`"5239"`, `"5"`), `source-identifier "5" is not two to four digits`},
		{"sequence index 5", payload(`"postback-sequence-index":1`, `"postback-sequence-index":5`), "postback-sequence-index 5 is not 0, 1 or 2"},
		{"advertised item as string", payload(`525463029`, `"525463029"`), "advertised-item-identifier is not an integer"},
		{"publisher item negative", payload(`1234567891`, `-1`), "publisher-item-identifier -1 is negative"},
		{"ad-interaction-type tap", signedBody(testHeader, testPayload, `,"ad-interaction-type":"tap"`), `ad-interaction-type "tap" is neither view nor click`},
		{"country-code of three letters", signedBody(testHeader, testPayload, `,"country-code":"USA"`), `country-code "USA" is not two capital letters`},
		{"country-code lower case", signedBody(testHeader, testPayload, `,"country-code":"us"`), "is not two capital letters"},
		{"conversion-value 64", signedBody(testHeader, testPayload, `,"conversion-value":64`), "conversion-value 64 is over 63"},
		{"both conversion values", signedBody(testHeader, testPayload, `,"conversion-value":1,"coarse-conversion-value":"low"`), "both present"},
		{"coarse value unknown", signedBody(testHeader, testPayload, `,"coarse-conversion-value":"none"`), "is not low, medium or high"},
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
