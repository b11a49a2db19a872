package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// DefaultTolerance is how far a message's webhook-timestamp may be from the
// receiver's clock, either way, when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Verify's errors, wrapped with what was wrong; test for them with
// errors.Is. Their tapline codes are EINVALID for a request that is not a
// signed webhook and EUNAUTHORIZED for one whose signature or time fails.
var (
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature
	// is absent or empty.
	ErrMissingHeader = &tapline.Error{Code: tapline.EINVALID, Message: "A webhook-id, webhook-timestamp or webhook-signature header is missing."}
	// ErrMalformedHeader: a header is repeated, the id is not a valid id,
	// the timestamp is not a decimal integer, or no entry of the signature
	// header has the form "<version>,<signature>".
	ErrMalformedHeader = &tapline.Error{Code: tapline.EINVALID, Message: "A webhook header is malformed."}
	// ErrSignatureMismatch: no v1 signature matches any of the secrets.
	ErrSignatureMismatch = &tapline.Error{Code: tapline.EUNAUTHORIZED, Message: "No webhook signature matches."}
	// ErrTimestampOutsideTolerance: the message is correctly signed but its
	// timestamp is further from now than the tolerance (a replay, a delayed
	// delivery or a skewed clock).
	ErrTimestampOutsideTolerance = &tapline.Error{Code: tapline.EUNAUTHORIZED, Message: "The webhook-timestamp is too far from the current time."}
)

// Verify checks a received webhook: its headers h (webhook-id,
// webhook-timestamp, webhook-signature, each exactly once; looked up under
// net/http's canonical names and, failing that, the lower-case names) and
// its raw body, exactly as received. It passes if some v1 entry of the
// signature header matches the HMAC of some secret (compared in constant
// time; zero Secrets are skipped) and the timestamp is within tolerance of
// now either way, bounds included; a tolerance of zero or less means
// DefaultTolerance.
//
// The signature is checked before the time, so ErrTimestampOutsideTolerance
// only reports a message the sender did sign. The other errors are
// ErrMissingHeader, ErrMalformedHeader and ErrSignatureMismatch, and an
// internal error if secrets holds no key.
func Verify(secrets []Secret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, err := header(h, HeaderID)
	if err != nil {
		return err
	}
	tsText, err := header(h, HeaderTimestamp)
	if err != nil {
		return err
	}
	sigs, err := header(h, HeaderSignature)
	if err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return fmt.Errorf("verify webhook: %s %w: %w", HeaderID, err, ErrMalformedHeader)
	}
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return fmt.Errorf("verify webhook: %s %w: %w", HeaderTimestamp, err, ErrMalformedHeader)
	}

	var want [][]byte
	for _, s := range secrets {
		if !s.IsZero() {
			want = append(want, mac(s, id, tsText, body))
		}
	}
	if len(want) == 0 {
		return errors.New("verify webhook: no secret to verify with")
	}
	if err := match(sigs, want); err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}

	switch age := since(now, ts); {
	case age > tolerance:
		return fmt.Errorf("verify webhook: timestamp %d is %s before now, over the tolerance of %s: %w", ts, age, tolerance, ErrTimestampOutsideTolerance)
	case age < -tolerance:
		return fmt.Errorf("verify webhook: timestamp %d is %s after now, over the tolerance of %s: %w", ts, -age, tolerance, ErrTimestampOutsideTolerance)
	}
	return nil
}

// header returns the single non-empty value of the header name.
func header(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	if len(vs) == 0 {
		vs = h[name] // a header map written by hand with the spec's lower-case names
	}
	switch {
	case len(vs) == 0 || len(vs) == 1 && strings.TrimSpace(vs[0]) == "":
		return "", fmt.Errorf("verify webhook: %s: %w", name, ErrMissingHeader)
	case len(vs) > 1:
		return "", fmt.Errorf("verify webhook: %s appears %d times: %w", name, len(vs), ErrMalformedHeader)
	}
	return vs[0], nil
}

// parseTimestamp parses a webhook-timestamp: decimal digits only, no sign.
func parseTimestamp(s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("is not a decimal integer")
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("is out of range")
	}
	return ts, nil
}

// match reports whether some "v1,<base64>" entry of the space-separated
// signature header sigs equals one of the MACs in want. Entries of other
// versions, and v1 entries that are not the canonical padded base64 of a
// SHA-256 sum, are skipped; a header with no "<version>,<signature>" entry
// at all is malformed.
func match(sigs string, want [][]byte) error {
	entries, v1 := 0, 0
	for entry := range strings.FieldsSeq(sigs) {
		ver, enc, ok := strings.Cut(entry, ",")
		if !ok || ver == "" || enc == "" {
			continue
		}
		entries++
		if ver != version {
			continue
		}
		v1++
		got, err := base64.StdEncoding.Strict().DecodeString(enc)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	if entries == 0 {
		return fmt.Errorf("%s holds no \"<version>,<signature>\" entry: %w", HeaderSignature, ErrMalformedHeader)
	}
	return fmt.Errorf("none of %d v1 signatures (of %d entries) matches the %d secrets: %w", v1, entries, len(want), ErrSignatureMismatch)
}

// since returns now minus the Unix time ts (in seconds, not negative),
// saturating at ±math.MaxInt64 instead of overflowing for absurd times.
func since(now time.Time, ts int64) time.Duration {
	const limit = int64(math.MaxInt64/time.Second) - 1
	sec := now.Unix()
	if sec < math.MinInt64+ts {
		return -math.MaxInt64
	}
	switch d := sec - ts; {
	case d > limit:
		return math.MaxInt64
	case d < -limit:
		return -math.MaxInt64
	default:
		return time.Duration(d)*time.Second + time.Duration(now.Nanosecond())
	}
}
