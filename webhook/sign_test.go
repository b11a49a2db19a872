package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/webhook"
)

// The reference vector every Standard Webhooks library tests its signing
// against (github.com/standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go TestWebhookSign and
// libraries/python/tests/test_webhooks.py test_sign_function).
const (
	refSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	refID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	refTimestamp = 1614265330
	refBody      = `{"test": 2432232314}`
	refSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// TestSignReferenceVector reproduces the specification's expected
// signature with Sign and with a Signer of the one secret.
func TestSignReferenceVector(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	ts := time.Unix(refTimestamp, 0)
	if got := webhook.Sign(sec, refID, ts, []byte(refBody)); got != refSignature {
		t.Errorf("Sign = %s, want %s", got, refSignature)
	}
	// Sub-second precision is dropped: the header carries whole seconds.
	if got := webhook.Sign(sec, refID, ts.Add(999*time.Millisecond), []byte(refBody)); got != refSignature {
		t.Errorf("Sign 0.999s later = %s, want %s", got, refSignature)
	}
	h, err := webhook.Signer{Secrets: []webhook.Secret{sec}}.Headers(refID, ts, []byte(refBody))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"webhook-id": refID, "webhook-timestamp": "1614265330", "webhook-signature": refSignature}
	if len(h) != len(want) {
		t.Errorf("Headers returned %d headers, want %d: %v", len(h), len(want), h)
	}
	for name, v := range want {
		if got := h.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want [%q]", name, got, v)
		}
	}
}

// TestReferenceVectorByHand computes the reference signature without the
// package: crypto/hmac over the concatenated bytes, and again as RFC 2104
// spells HMAC out over bare SHA-256. Both must give the published value,
// so the expectation above does not rest on the package alone.
func TestReferenceVectorByHand(t *testing.T) {
	t.Parallel()
	key, err := base64.StdEncoding.DecodeString(refSecret[len("whsec_"):])
	if err != nil {
		t.Fatal(err)
	}
	content := []byte(refID + "." + strconv.Itoa(refTimestamp) + "." + refBody)
	if want := "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}"; string(content) != want {
		t.Fatalf("signed content %q, want %q", content, want)
	}

	m := hmac.New(sha256.New, key)
	m.Write(content)
	if got := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); got != refSignature {
		t.Errorf("crypto/hmac gives %s, want %s", got, refSignature)
	}

	// HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), K zero-padded to
	// SHA-256's 64-byte block.
	var ipad, opad [64]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	inner := sha256.Sum256(append(ipad[:], content...))
	outer := sha256.Sum256(append(opad[:], inner[:]...))
	if got := "v1," + base64.StdEncoding.EncodeToString(outer[:]); got != refSignature {
		t.Errorf("RFC 2104 by hand gives %s, want %s", got, refSignature)
	}
}

// TestSignerSignsWithEverySecret: two secrets give two space-separated v1
// signatures, in the order of Secrets, each Sign's for its secret.
func TestSignerSignsWithEverySecret(t *testing.T) {
	t.Parallel()
	old, cur := mustParse(t, refSecret), mustParse(t, webhook.NewSecret())
	ts := time.Unix(refTimestamp, 0)
	got, err := webhook.Signer{Secrets: []webhook.Secret{cur, old}}.Sign(refID, ts, []byte(refBody))
	if err != nil {
		t.Fatal(err)
	}
	want := webhook.Sign(cur, refID, ts, []byte(refBody)) + " " + refSignature
	if got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

// TestSignerRejects: a Signer without secrets or with a zero one, an
// invalid message id and a time before 1970 fail with tapline.EINVALID.
func TestSignerRejects(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	ts := time.Unix(refTimestamp, 0)
	tests := []struct {
		name   string
		signer webhook.Signer
		id     string
		ts     time.Time
	}{
		{"no secrets", webhook.Signer{}, refID, ts},
		{"zero secret", webhook.Signer{Secrets: []webhook.Secret{sec, {}}}, refID, ts},
		{"empty id", webhook.Signer{Secrets: []webhook.Secret{sec}}, "", ts},
		{"id with a dot", webhook.Signer{Secrets: []webhook.Secret{sec}}, "msg.1", ts},
		{"id with a space", webhook.Signer{Secrets: []webhook.Secret{sec}}, "msg 1", ts},
		{"id with a newline", webhook.Signer{Secrets: []webhook.Secret{sec}}, "msg\r\nx-evil: 1", ts},
		{"id over MaxIDLen", webhook.Signer{Secrets: []webhook.Secret{sec}}, strings.Repeat("m", webhook.MaxIDLen+1), ts},
		{"before 1970", webhook.Signer{Secrets: []webhook.Secret{sec}}, refID, time.Unix(-1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := tt.signer.Sign(tt.id, tt.ts, []byte(refBody))
			if err == nil {
				t.Fatalf("Sign succeeded with %q, want an error", sig)
			}
			if got := tapline.ErrorCode(err); got != tapline.EINVALID {
				t.Errorf("error code %q, want %q (%v)", got, tapline.EINVALID, err)
			}
			if h, err := tt.signer.Headers(tt.id, tt.ts, []byte(refBody)); err == nil || h != nil {
				t.Errorf("Headers = %v, %v; want nil and an error", h, err)
			}
		})
	}
	if _, err := (webhook.Signer{Secrets: []webhook.Secret{sec}}).Sign(strings.Repeat("m", webhook.MaxIDLen), ts, nil); err != nil {
		t.Errorf("an id of MaxIDLen bytes: %v", err)
	}
}

// TestSignZeroSecretPanics: Sign with the zero Secret would sign with an
// empty key, which anyone can forge; it panics instead.
func TestSignZeroSecretPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Errorf("Sign with the zero Secret did not panic")
		}
	}()
	webhook.Sign(webhook.Secret{}, refID, time.Unix(refTimestamp, 0), nil)
}

// TestSignerValidate names the problem.
func TestSignerValidate(t *testing.T) {
	t.Parallel()
	err := webhook.Signer{Secrets: []webhook.Secret{mustParse(t, refSecret), {}}}.Validate()
	var te *tapline.Error
	if !errors.As(err, &te) || !strings.Contains(te.Message, "Secrets[1]") {
		t.Errorf("Validate() = %v, want an error naming Secrets[1]", err)
	}
	if err := (webhook.Signer{Secrets: []webhook.Secret{mustParse(t, refSecret)}}).Validate(); err != nil {
		t.Errorf("Validate() of a valid Signer = %v", err)
	}
}
