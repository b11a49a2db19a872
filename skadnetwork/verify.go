package skadnetwork

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"tapline"
)

// Verifier checks Apple's signature on postbacks with the keys it holds.
// Tests put their own keys in its maps.
type Verifier struct {
	// Keys holds the SKAdNetwork key of each postback version ("2.0" to
	// "4.0"). A key is a P-256 key or, as for Apple's 2.0 key, a P-192 key
	// from ParsePublicKey.
	Keys map[string]*ecdsa.PublicKey
	// JWSKeys holds the AdAttributionKit keys by JWS key identifier (kid).
	JWSKeys map[string]*ecdsa.PublicKey
}

// DefaultVerifier returns a Verifier with Apple's published keys: the P-192
// key for 2.0, the P-256 key for 2.1 to 4.0, and only the production
// AdAttributionKit key, apple-cas-identifier/0. Apple asks that production
// flows trust nothing else; add DevelopmentKeys to JWSKeys to accept
// development postbacks too.
func DefaultVerifier() *Verifier {
	p256 := mustKey(AppleP256Key)
	v := &Verifier{
		Keys:    map[string]*ecdsa.PublicKey{"2.0": mustKey(AppleP192Key)},
		JWSKeys: map[string]*ecdsa.PublicKey{KeyIDProduction: p256},
	}
	for _, version := range Versions[1:] {
		v.Keys[version] = p256
	}
	return v
}

// DevelopmentKeys returns Apple's AdAttributionKit development keys by key
// identifier: apple-development-identifier/0 for end-to-end test flows and
// apple-development-identifier/1 for postbacks made in developer settings.
func DevelopmentKeys() map[string]*ecdsa.PublicKey {
	return map[string]*ecdsa.PublicKey{
		KeyIDDevelopment:       mustKey(AppleAAKDevelopmentKey),
		KeyIDDeveloperSettings: mustKey(AppleAAKDeveloperSettingsKey),
	}
}

var defaultVerifier = sync.OnceValue(DefaultVerifier)

// Verify checks p's signature with Apple's production keys
// (DefaultVerifier).
func Verify(p *Postback) error { return defaultVerifier().Verify(p) }

// Verify checks that Apple signed p: for SKAdNetwork, attribution-signature
// over the fields of the version in Apple's order; for AdAttributionKit, the
// ES256 signature of the JWS. It returns a *tapline.Error with code
// EUNAUTHORIZED when the signature does not match or the key is not one v
// holds. The unsigned fields (conversion-value, coarse-conversion-value and,
// for AdAttributionKit, ad-interaction-type and country-code) are not
// covered by any signature.
func (v *Verifier) Verify(p *Postback) error {
	if p.Kind == KindAdAttributionKit {
		return v.verifyJWS(p)
	}
	key := v.Keys[p.Version]
	if key == nil {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "skadnetwork: no key for version %q.", p.Version)
	}
	msg, err := message(p)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil {
		return tapline.Errorf(tapline.EINVALID, "skadnetwork: attribution-signature is not base64.")
	}
	hash := sha256.Sum256([]byte(msg))
	if key.Curve == p192 {
		x, y := p192Point(key)
		err = verifyGeneric(p192, x, y, hash[:], sig)
	} else if !ecdsa.VerifyASN1(key, hash[:], sig) {
		err = errSignature
	}
	if err != nil {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "skadnetwork: version %s postback %s: %v.", p.Version, p.TransactionID, err)
	}
	return nil
}

func (v *Verifier) verifyJWS(p *Postback) error {
	key := v.JWSKeys[p.KeyID]
	if key == nil {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "adattributionkit: postback %s is signed with key %q, which is not trusted.", p.TransactionID, p.KeyID)
	}
	_, _, sig, err := splitJWS(p.JWS)
	if err != nil {
		return err
	}
	// The signing input is the first two segments as sent (RFC 7515 §5.2).
	hash := sha256.Sum256([]byte(p.JWS[:strings.LastIndexByte(p.JWS, '.')]))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key, hash[:], r, s) {
		return tapline.Errorf(tapline.EUNAUTHORIZED, "adattributionkit: postback %s: the signature does not match.", p.TransactionID)
	}
	return nil
}

// message returns the string Apple signs for an SKAdNetwork postback: the
// version's fields joined by U+2063, as listed in "Verifying an
// install-validation postback" (4.0), "Combining parameters for
// SKAdNetwork 3 postbacks" (3.0) and "Combining parameters for previous
// SKAdNetwork postback versions" (2.2, and 2.0 and 2.1 which share an
// order). Booleans are "true" or "false"; numbers are decimal. The
// conversion values are never part of it.
//
//	2.0, 2.1  version ad-network-id campaign-id app-id transaction-id redownload [source-app-id]
//	2.2       the same, then fidelity-type
//	3.0       the same as 2.2, then did-win
//	4.0       version ad-network-id source-identifier app-id transaction-id redownload
//	          [source-app-id | source-domain] fidelity-type did-win postback-sequence-index
func message(p *Postback) (string, error) {
	v, ok := versions[p.Version]
	if !ok {
		return "", tapline.Errorf(tapline.EINVALID, "skadnetwork: version %q is not supported.", p.Version)
	}
	f := []string{
		p.Version,
		p.AdNetworkID,
		p.SourceIdentifier, // campaign-id before 4.0
		strconv.FormatInt(p.AppID, 10),
		p.TransactionID,
		strconv.FormatBool(p.Redownload),
	}
	if p.SourceAppID != nil {
		f = append(f, strconv.FormatInt(*p.SourceAppID, 10))
	} else if p.SourceDomain != "" {
		f = append(f, p.SourceDomain)
	}
	if v.fidelity {
		f = append(f, strconv.Itoa(p.FidelityType))
	}
	if v.didWin {
		if p.DidWin == nil {
			return "", fmt.Errorf("skadnetwork: version %s postback without did-win", p.Version)
		}
		f = append(f, strconv.FormatBool(*p.DidWin))
	}
	if v.v4 {
		f = append(f, strconv.Itoa(p.SequenceIndex))
	}
	return strings.Join(f, separator), nil
}

func mustKey(s string) *ecdsa.PublicKey {
	k, err := ParsePublicKey(s)
	if err != nil {
		panic("skadnetwork: embedded key: " + err.Error())
	}
	return k
}
