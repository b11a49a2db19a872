package skadnetwork

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"errors"
	"math/big"
)

// p192 is NIST P-192 (secp192r1, FIPS 186-4 D.1.2.1), the curve of the key
// Apple signed SKAdNetwork 1.0 and 2.0 postbacks with. The standard library
// has no P-192, so verifyGeneric below does the arithmetic by hand. The
// value only carries the curve's constants: none of the deprecated
// elliptic.CurveParams methods is ever called on it.
var p192 = &elliptic.CurveParams{
	Name:    "P-192",
	BitSize: 192,
	P:       hexInt("fffffffffffffffffffffffffffffffeffffffffffffffff"),
	N:       hexInt("ffffffffffffffffffffffff99def836146bc9b1b4d22831"),
	B:       hexInt("64210519e59c80e70fa7e9ab72243049feb8deecc146b9b1"),
	Gx:      hexInt("188da80eb03090f67cbf20eb43a18800f4ff0afd82ff1012"),
	Gy:      hexInt("07192b95ffc8da78631011ed6b24cdd573f977a11e794811"),
}

func hexInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("skadnetwork: bad curve constant " + s)
	}
	return n
}

// point is an affine point; a nil x is the point at infinity.
type point struct{ x, y *big.Int }

// weierstrass does affine arithmetic on y² = x³ − 3x + b over GF(p), the
// form of every NIST prime curve. It is written for verification only: it
// handles public values, so it makes no attempt at constant time.
type weierstrass struct{ *elliptic.CurveParams }

func (c weierstrass) onCurve(x, y *big.Int) bool {
	if x.Sign() < 0 || x.Cmp(c.P) >= 0 || y.Sign() < 0 || y.Cmp(c.P) >= 0 {
		return false
	}
	// y² − (x³ − 3x + b) ≡ 0 (mod p)
	lhs := new(big.Int).Mul(y, y)
	rhs := new(big.Int).Mul(x, x)
	rhs.Mul(rhs, x)
	rhs.Sub(rhs, new(big.Int).Lsh(x, 1))
	rhs.Sub(rhs, x)
	rhs.Add(rhs, c.B)
	lhs.Sub(lhs, rhs)
	return lhs.Mod(lhs, c.P).Sign() == 0
}

func (c weierstrass) add(a, b point) point {
	switch {
	case a.x == nil:
		return b
	case b.x == nil:
		return a
	case a.x.Cmp(b.x) == 0:
		if a.y.Cmp(b.y) == 0 && a.y.Sign() != 0 {
			return c.double(a)
		}
		return point{} // a = −b
	}
	// λ = (y2 − y1) / (x2 − x1)
	num := new(big.Int).Sub(b.y, a.y)
	den := new(big.Int).Sub(b.x, a.x)
	den.Mod(den, c.P)
	return c.finish(a, b.x, num, den)
}

func (c weierstrass) double(a point) point {
	if a.x == nil || a.y.Sign() == 0 {
		return point{}
	}
	// λ = (3x² − 3) / 2y
	num := new(big.Int).Mul(a.x, a.x)
	num.Sub(num, big.NewInt(1))
	num.Mul(num, big.NewInt(3))
	den := new(big.Int).Lsh(a.y, 1)
	den.Mod(den, c.P)
	return c.finish(a, a.x, num, den)
}

// finish returns the sum of a and a point with x coordinate x2 on the line
// of slope num/den through a.
func (c weierstrass) finish(a point, x2, num, den *big.Int) point {
	l := new(big.Int).ModInverse(den, c.P)
	l.Mul(l, num)
	l.Mod(l, c.P)
	x := new(big.Int).Mul(l, l)
	x.Sub(x, a.x)
	x.Sub(x, x2)
	x.Mod(x, c.P)
	y := new(big.Int).Sub(a.x, x)
	y.Mul(y, l)
	y.Sub(y, a.y)
	y.Mod(y, c.P)
	return point{x, y}
}

// mul returns k·a by double-and-add from the most significant bit.
func (c weierstrass) mul(a point, k *big.Int) point {
	var r point
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = c.double(r)
		if k.Bit(i) == 1 {
			r = c.add(r, a)
		}
	}
	return r
}

// verifyGeneric checks an ASN.1 DER ECDSA signature (SEC 1 v2, 4.1.4) of
// hash by the public point (x, y), on any curve of the weierstrass form.
// The hash is cut to the bit length of the group order, as ECDSA
// prescribes.
func verifyGeneric(params *elliptic.CurveParams, x, y *big.Int, hash, sig []byte) error {
	c := weierstrass{params}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil {
		return errors.New("the signature is not an ASN.1 ECDSA signature")
	}
	if len(rest) > 0 {
		return errors.New("the signature has trailing bytes")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.Cmp(c.N) >= 0 || rs.S.Cmp(c.N) >= 0 {
		return errors.New("the signature's r or s is out of range")
	}
	if !c.onCurve(x, y) {
		return errors.New("the public key is not on its curve")
	}
	e := new(big.Int).SetBytes(hash)
	if excess := len(hash)*8 - c.N.BitLen(); excess > 0 {
		e.Rsh(e, uint(excess))
	}
	w := new(big.Int).ModInverse(rs.S, c.N)
	u1 := e.Mul(e, w)
	u1.Mod(u1, c.N)
	u2 := w.Mul(w, rs.R)
	u2.Mod(u2, c.N)
	q := c.add(c.mul(point{c.Gx, c.Gy}, u1), c.mul(point{x, y}, u2))
	if q.x == nil {
		return errSignature
	}
	if new(big.Int).Mod(q.x, c.N).Cmp(rs.R) != 0 {
		return errSignature
	}
	return nil
}

// newP192Key and p192Point are the only code that touches the X and Y of
// ecdsa.PublicKey, deprecated since Go 1.26: the type has no other way to
// hold a point of a curve crypto/ecdsa does not know, and Verifier keeps
// every key as an *ecdsa.PublicKey so that one map holds them all.
func newP192Key(x, y *big.Int) *ecdsa.PublicKey {
	//lint:ignore SA1019 a P-192 point has no other home; see above.
	return &ecdsa.PublicKey{Curve: p192, X: x, Y: y}
}

func p192Point(k *ecdsa.PublicKey) (x, y *big.Int) {
	//lint:ignore SA1019 a P-192 point has no other home; see above.
	return k.X, k.Y
}

var errSignature = errors.New("the signature does not match")
