// Package skadnetwork reads and verifies the install postbacks of Apple's
// privacy-preserving attribution: SKAdNetwork (versions 2.0, 2.1, 2.2, 3.0
// and 4.0) and AdAttributionKit. Ad networks receive them, and developers
// who opt in receive copies at /.well-known/skadnetwork/report-attribution/
// and /.well-known/appattribution/report-attribution/; this package is the
// domain logic only, with no HTTP.
//
// Parse decodes a body into a Postback and checks its shape: the fields
// its version requires, their types and ranges (conversion-value 0–63,
// coarse-conversion-value low, medium or high, postback-sequence-index 0–2,
// a source-identifier of two to four digits, campaign-id 1–100). Verify
// then checks Apple's signature; Key gives the deduplication key.
//
// # What is verified
//
//   - SKAdNetwork 2.1 to 4.0: the ECDSA P-256 / SHA-256 attribution-signature
//     over the fields Apple lists for the version, joined by U+2063, with
//     Apple's published P-256 key. Apple's own sample postbacks for 4.0, 3.0
//     and 2.2 verify in the tests.
//   - SKAdNetwork 2.0: the same over the 2.0 fields with Apple's P-192 key.
//     The standard library has no P-192, so this package carries a small
//     math/big implementation of the curve (curve.go), used for nothing
//     else. Apple's documentation has no 2.0 sample that verifies, so the
//     tests check it with a production 2.0 postback signed by Apple, against
//     crypto/ecdsa on P-256, and with signatures of a test P-192 key.
//   - AdAttributionKit: the ES256 signature of the compact JWS in
//     jws-string, with the key its header's kid names. DefaultVerifier
//     trusts only the production key; DevelopmentKeys adds Apple's two
//     development keys.
//
// # What is not
//
//   - conversion-value and coarse-conversion-value (and, for
//     AdAttributionKit, ad-interaction-type and country-code) are outside
//     every signature: Apple does not sign them, so nothing can vouch for
//     them.
//   - SKAdNetwork 1.0 postbacks (no version field) are refused by Parse.
//   - Members Apple does not define are ignored and not kept, except in Raw.
//   - Whether a postback was seen before: Key gives the key, the caller
//     keeps the set.
package skadnetwork
