package skadnetwork

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
)

// p192Signer is a P-192 private key for tests, signing with the same
// hand-written arithmetic: crypto/ecdsa cannot make P-192 keys.
type p192Signer struct {
	d   *big.Int
	pub *ecdsa.PublicKey
}

func newP192Signer(tb testing.TB) *p192Signer {
	tb.Helper()
	d, err := rand.Int(rand.Reader, new(big.Int).Sub(p192.N, big.NewInt(1)))
	if err != nil {
		tb.Fatal(err)
	}
	d.Add(d, big.NewInt(1))
	q := weierstrass{p192}.mul(point{p192.Gx, p192.Gy}, d)
	return &p192Signer{d: d, pub: newP192Key(q.x, q.y)}
}

// sign returns the DER ECDSA signature of SHA-256(msg), the hash cut to
// 192 bits.
func (s *p192Signer) sign(tb testing.TB, msg []byte) []byte {
	tb.Helper()
	c := weierstrass{p192}
	h := sha256.Sum256(msg)
	e := new(big.Int).SetBytes(h[:24])
	for {
		k, err := rand.Int(rand.Reader, c.N)
		if err != nil {
			tb.Fatal(err)
		}
		if k.Sign() == 0 {
			continue
		}
		r := c.mul(point{c.Gx, c.Gy}, k).x
		r.Mod(r, c.N)
		sig := new(big.Int).Mul(r, s.d)
		sig.Add(sig, e)
		sig.Mul(sig, new(big.Int).ModInverse(k, c.N))
		sig.Mod(sig, c.N)
		if r.Sign() == 0 || sig.Sign() == 0 {
			continue
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{r, sig})
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
}

func TestP192Constants(t *testing.T) {
	c := weierstrass{p192}
	g := point{c.Gx, c.Gy}
	if !c.onCurve(c.Gx, c.Gy) {
		t.Fatal("the P-192 base point is not on the curve")
	}
	if q := c.mul(g, c.N); q.x != nil {
		t.Errorf("n·G = (%x, %x), want the point at infinity", q.x, q.y)
	}
	minus := c.mul(g, new(big.Int).Sub(c.N, big.NewInt(1)))
	if minus.x.Cmp(c.Gx) != 0 || new(big.Int).Add(minus.y, c.Gy).Cmp(c.P) != 0 {
		t.Errorf("(n−1)·G = (%x, %x), want −G", minus.x, minus.y)
	}
	// 2G by doubling and by adding G to itself through mul agree, and 3G
	// by two routes too.
	two := c.double(g)
	if three, alt := c.add(two, g), c.mul(g, big.NewInt(3)); three.x.Cmp(alt.x) != 0 || three.y.Cmp(alt.y) != 0 {
		t.Errorf("2G+G = %x, 3·G = %x", three.x, alt.x)
	}
}

// TestWeierstrassAgainstCryptoECDSA runs the hand-written verifier on
// P-256, where crypto/ecdsa signs and verifies, so the two must agree.
func TestWeierstrassAgainstCryptoECDSA(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	x, y := new(big.Int).SetBytes(raw[1:33]), new(big.Int).SetBytes(raw[33:])
	for i := range 8 {
		h := sha256.Sum256([]byte{byte(i)})
		sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyGeneric(elliptic.P256().Params(), x, y, h[:], sig); err != nil {
			t.Errorf("signature %d by crypto/ecdsa: %v", i, err)
		}
		h[0] ^= 1
		if err := verifyGeneric(elliptic.P256().Params(), x, y, h[:], sig); err == nil {
			t.Errorf("signature %d verified over another hash", i)
		}
	}
}

func TestP192SignVerify(t *testing.T) {
	s := newP192Signer(t)
	x, y := p192Point(s.pub)
	msg := []byte("2.0\u2063com.example")
	sig := s.sign(t, msg)
	h := sha256.Sum256(msg)
	if err := verifyGeneric(p192, x, y, h[:], sig); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	other := newP192Signer(t)
	ox, oy := p192Point(other.pub)
	if err := verifyGeneric(p192, ox, oy, h[:], sig); err == nil {
		t.Error("verified with another key")
	}
	h2 := sha256.Sum256(append(msg, 'x'))
	if err := verifyGeneric(p192, x, y, h2[:], sig); err == nil {
		t.Error("verified over another message")
	}
	for name, bad := range map[string][]byte{
		"not DER":        []byte("nope"),
		"trailing bytes": append(append([]byte{}, sig...), 0),
		"r zero":         mustDER(t, big.NewInt(0), big.NewInt(1)),
		"s at n":         mustDER(t, big.NewInt(1), p192.N),
	} {
		if err := verifyGeneric(p192, x, y, h[:], bad); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := verifyGeneric(p192, x, new(big.Int).Add(y, big.NewInt(1)), h[:], sig); err == nil || !strings.Contains(err.Error(), "not on its curve") {
		t.Errorf("key off the curve: %v", err)
	}
}

func mustDER(tb testing.TB, r, s *big.Int) []byte {
	tb.Helper()
	b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParsePublicKey(t *testing.T) {
	k192, err := ParsePublicKey(AppleP192Key)
	if err != nil {
		t.Fatalf("Apple's P-192 key: %v", err)
	}
	if k192.Curve != p192 {
		t.Errorf("Apple's P-192 key is on %s", k192.Curve.Params().Name)
	}
	for _, s := range []string{AppleP256Key, AppleAAKDevelopmentKey, AppleAAKDeveloperSettingsKey} {
		k, err := ParsePublicKey(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if k.Curve != elliptic.P256() {
			t.Errorf("%s is on %s, want P-256", s, k.Curve.Params().Name)
		}
	}

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil || !k.Equal(&priv.PublicKey) {
		t.Errorf("PEM key: %v, equal %v", err, err == nil && k.Equal(&priv.PublicKey))
	}

	bad := []byte(AppleP192Key)
	raw, _ := base64.StdEncoding.DecodeString(AppleP192Key)
	raw[len(raw)-1] ^= 1 // the point leaves the curve
	for name, s := range map[string]string{
		"not base64":      "%%%",
		"not DER":         base64.StdEncoding.EncodeToString([]byte("hello")),
		"P-192 off curve": base64.StdEncoding.EncodeToString(raw),
		"truncated":       string(bad[:len(bad)-8]),
	} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
