package skadnetwork

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Apple's public keys, as Apple prints them: base64 of a DER X.509
// SubjectPublicKeyInfo.
const (
	// AppleP192Key verifies SKAdNetwork 1.0 and 2.0 postbacks; it is a NIST
	// P-192 key. Published in "SKAdNetwork 2 release notes",
	// https://developer.apple.com/documentation/storekit/skadnetwork-2-release-notes
	AppleP192Key = "MEkwEwYHKoZIzj0CAQYIKoZIzj0DAQEDMgAEMyHD625uvsmGq4C43cQ9BnfN2xslVT5V1nOmAMP6qaRRUll3PB1JYmgSm+62sosG"

	// AppleP256Key verifies SKAdNetwork 2.1 and later postbacks, and is
	// also the AdAttributionKit production key, apple-cas-identifier/0.
	// Published in "Verifying an install-validation postback",
	// https://developer.apple.com/documentation/storekit/verifying-an-install-validation-postback
	// and in "Verifying a postback" (AdAttributionKit),
	// https://developer.apple.com/documentation/adattributionkit/verifying-a-postback
	AppleP256Key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWdp8GPcGqmhgzEFj9Z2nSpQVddayaPe4FMzqM9wib1+aHaaIzoHoLN9zW4K8y4SPykE3YVK3sVqW6Af0lfx3gg=="

	// AppleAAKDevelopmentKey verifies AdAttributionKit development
	// postbacks from end-to-end flows (kid apple-development-identifier/0),
	// from "Verifying a postback" (AdAttributionKit).
	AppleAAKDevelopmentKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELeEDzpJEP+/qRSE5hJVC1p1J0ssUnQGMzBBbvnACBok8OVGGLgxL0myrKiy6lvRtSlLRsWit87i+vftD8AEqeQ=="

	// AppleAAKDeveloperSettingsKey verifies AdAttributionKit development
	// postbacks made in a device's developer settings (kid
	// apple-development-identifier/1), from "Verifying a postback".
	AppleAAKDeveloperSettingsKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8YzdO7eM97s/IJ25kdW5CZ3A14USE5IJ5Ha/vhWaxI6UBI1ZxCEvjrKxVluVGe6qWwF1BDFq+QHqKfH5u+wxHQ=="
)

// The key identifiers of AdAttributionKit's JWS header.
const (
	KeyIDProduction        = "apple-cas-identifier/0"
	KeyIDDevelopment       = "apple-development-identifier/0"
	KeyIDDeveloperSettings = "apple-development-identifier/1"
)

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP192        = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 1}
)

// ParsePublicKey decodes an ECDSA public key given as Apple prints it
// (base64 of a DER SubjectPublicKeyInfo) or as a PEM "PUBLIC KEY" block.
// P-256 keys come from crypto/x509; P-192 keys, which crypto/x509 refuses,
// are decoded here onto this package's P-192 curve, usable only by Verifier.
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.TrimSpace(s)); err != nil {
			return nil, fmt.Errorf("decode public key: %w", err)
		}
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: a %T is not an ECDSA key", k)
		}
		return ek, nil
	}
	return parseP192(der)
}

func parseP192(der []byte) (*ecdsa.PublicKey, error) {
	var spki struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.ObjectIdentifier
		}
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil || len(rest) > 0 {
		return nil, errors.New("parse public key: not a DER SubjectPublicKeyInfo")
	}
	if !spki.Algorithm.Algorithm.Equal(oidECPublicKey) || !spki.Algorithm.Parameters.Equal(oidP192) {
		return nil, fmt.Errorf("parse public key: unsupported algorithm %v on curve %v", spki.Algorithm.Algorithm, spki.Algorithm.Parameters)
	}
	b := spki.PublicKey.RightAlign()
	size := (p192.BitSize + 7) / 8
	if len(b) != 1+2*size || b[0] != 4 {
		return nil, errors.New("parse public key: not an uncompressed P-192 point")
	}
	x := new(big.Int).SetBytes(b[1 : 1+size])
	y := new(big.Int).SetBytes(b[1+size:])
	if !(weierstrass{p192}).onCurve(x, y) {
		return nil, errors.New("parse public key: the point is not on P-192")
	}
	return newP192Key(x, y), nil
}
