// Package webhook signs the webhooks tapline sends to customers, and
// verifies them, per the Standard Webhooks specification
// (https://www.standardwebhooks.com, spec/standard-webhooks.md).
//
// Every delivery is a POST whose body is signed together with two headers:
//
//	webhook-id:        the message id, the same on every retry of the message
//	webhook-timestamp: the attempt's time in whole seconds since the Unix epoch
//	webhook-signature: v1,<base64 of HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
// The key is the endpoint's secret, shown to the customer as whsec_
// followed by the base64 of 24 to 64 random bytes (NewSecret makes one of
// 32). The signature header is a space-separated list, so that a Signer
// holding several Secrets signs every message with each of them: to rotate,
// the endpoint signs with the old and the new secret until the customer has
// switched, and a receiver that knows either one accepts the message.
// Entries of other versions (v1a, the specification's asymmetric scheme)
// are ignored.
//
// Verify is the receiver's side: some v1 entry must match some secret
// (compared in constant time), and the timestamp must lie within a
// tolerance of the receiver's clock (DefaultTolerance, five minutes), which
// bounds replays; receivers should also drop repeated webhook-ids. Its
// errors are ErrMissingHeader, ErrMalformedHeader, ErrSignatureMismatch and
// ErrTimestampOutsideTolerance, the last only for a correctly signed
// message.
//
// Message ids must not contain "." (it would make the signed content
// ambiguous) and are printable ASCII without spaces; Signer and Verify both
// enforce it.
package webhook
