package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// The headers of a signed webhook, in the lower case the specification
// writes them (net/http canonicalizes them to Webhook-Id and so on).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// MaxIDLen is the longest message id Signer signs and Verify accepts.
const MaxIDLen = 256

// version prefixes every symmetric (HMAC-SHA256) signature.
const version = "v1"

// Sign returns the webhook-signature value for one secret:
// "v1,<base64 of HMAC-SHA256 over msgID.timestamp.body>", the timestamp
// being ts in whole seconds since the Unix epoch. It does not check msgID or
// ts (Signer does) and panics on the zero Secret.
func Sign(secret Secret, msgID string, ts time.Time, body []byte) string {
	return version + "," + base64.StdEncoding.EncodeToString(mac(secret, msgID, formatTimestamp(ts), body))
}

// mac returns the HMAC-SHA256 of "msgID.ts.body" under secret.
func mac(secret Secret, msgID, ts string, body []byte) []byte {
	if secret.IsZero() {
		panic("webhook: signing with the zero Secret")
	}
	h := hmac.New(sha256.New, *secret.key)
	_, _ = io.WriteString(h, msgID)
	_, _ = io.WriteString(h, ".")
	_, _ = io.WriteString(h, ts)
	_, _ = io.WriteString(h, ".")
	_, _ = h.Write(body)
	return h.Sum(nil)
}

func formatTimestamp(ts time.Time) string {
	return strconv.FormatInt(ts.Unix(), 10)
}

// Signer signs an endpoint's messages with each of its active secrets.
type Signer struct {
	// Secrets are the endpoint's active secrets, at least one; each adds a
	// signature to every message. During a rotation they are the new secret
	// and the old one, until the customer verifies with the new one and the
	// old one is dropped.
	Secrets []Secret
}

// Validate reports a Signer without secrets or with a zero Secret, as
// tapline.EINVALID.
func (s Signer) Validate() error {
	if len(s.Secrets) == 0 {
		return tapline.Errorf(tapline.EINVALID, "webhook signer: Secrets is empty")
	}
	for i, sec := range s.Secrets {
		if sec.IsZero() {
			return tapline.Errorf(tapline.EINVALID, "webhook signer: Secrets[%d] is the zero Secret", i)
		}
	}
	return nil
}

// Sign returns the webhook-signature value: one "v1,<base64>" signature
// per secret, in the order of Secrets, separated by single spaces. It fails
// with tapline.EINVALID if the Signer is not valid, if msgID is not a valid
// id (see the package comment) or if ts is before the Unix epoch.
func (s Signer) Sign(msgID string, ts time.Time, body []byte) (string, error) {
	if err := s.Validate(); err != nil {
		return "", fmt.Errorf("sign webhook: %w", err)
	}
	if err := checkID(msgID); err != nil {
		return "", fmt.Errorf("sign webhook: %w", tapline.Errorf(tapline.EINVALID, "The message id %s.", err))
	}
	if ts.Unix() < 0 {
		return "", fmt.Errorf("sign webhook: %w", tapline.Errorf(tapline.EINVALID, "The timestamp %s is before the Unix epoch.", ts.UTC().Format(time.RFC3339)))
	}
	tsText := formatTimestamp(ts)
	var b strings.Builder
	for i, sec := range s.Secrets {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(version + ",")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(sec, msgID, tsText, body)))
	}
	return b.String(), nil
}

// Headers returns the three headers of a signed message: webhook-id,
// webhook-timestamp and webhook-signature (as Sign makes it). It fails as
// Sign does.
func (s Signer) Headers(msgID string, ts time.Time, body []byte) (http.Header, error) {
	sig, err := s.Sign(msgID, ts, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, formatTimestamp(ts))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// checkID returns why id is not a valid message id: 1 to MaxIDLen bytes of
// printable ASCII other than space and ".".
func checkID(id string) error {
	if id == "" {
		return errors.New("is empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("is %d bytes long, over %d", len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c == '.':
			return fmt.Errorf("holds a \".\" at byte %d", i)
		case c <= ' ' || c > '~':
			return fmt.Errorf("holds %#x at byte %d, not printable ASCII", c, i)
		}
	}
	return nil
}
