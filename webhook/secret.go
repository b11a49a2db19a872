package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"tapline"
)

// Secret sizes and serialization, per the specification's recommendation.
const (
	// SecretPrefix starts the serialized form of a secret.
	SecretPrefix = "whsec_"
	// MinSecretBytes and MaxSecretBytes bound the length of a secret's key.
	MinSecretBytes = 24
	MaxSecretBytes = 64
	// NewSecretBytes is the length of the keys NewSecret makes.
	NewSecretBytes = 32
)

// Secret is an endpoint's HMAC key. The zero Secret holds no key and
// signs nothing. A Secret never shows its key: String, Format and LogValue
// all render it redacted, and inside a struct printed by fmt its only field
// appears as a pointer. Keep the serialized form NewSecret returned (or the
// one the customer supplied) to store or show it.
type Secret struct {
	key *[]byte
}

// NewSecret returns a new random secret in its serialized form: "whsec_"
// followed by the standard base64 of NewSecretBytes random bytes. Parse it
// with ParseSecret to sign with it.
func NewSecret() string {
	b := make([]byte, NewSecretBytes)
	rand.Read(b) // crypto/rand.Read never fails; it crashes the program instead.
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSecret parses a secret serialized as "whsec_<base64>", or as the
// bare base64 without the prefix, in standard padded base64 of
// MinSecretBytes to MaxSecretBytes bytes. Its errors are tapline.EINVALID
// and never quote the input.
func ParseSecret(s string) (Secret, error) {
	enc := strings.TrimPrefix(s, SecretPrefix)
	b, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil || len(b) == 0 {
		return Secret{}, fmt.Errorf("parse webhook secret: %w",
			tapline.Errorf(tapline.EINVALID, "A webhook secret must be %s followed by standard base64.", SecretPrefix))
	}
	if len(b) < MinSecretBytes || len(b) > MaxSecretBytes {
		return Secret{}, fmt.Errorf("parse webhook secret: %w",
			tapline.Errorf(tapline.EINVALID, "A webhook secret must hold %d to %d bytes, this one holds %d.", MinSecretBytes, MaxSecretBytes, len(b)))
	}
	return Secret{key: &b}, nil
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return s.key == nil }

// String returns a redacted form: "whsec_[redacted]", or "whsec_[unset]"
// for the zero Secret.
func (s Secret) String() string {
	if s.IsZero() {
		return SecretPrefix + "[unset]"
	}
	return SecretPrefix + "[redacted]"
}

// Format implements fmt.Formatter so that every verb (%v, %#v, %x, %d, ...)
// prints the redacted String.
func (s Secret) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, s.String())
}

// LogValue implements slog.LogValuer with the redacted String.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.String())
}
