package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/webhook"
)

// mustParse parses a serialized secret or fails the test.
func mustParse(tb testing.TB, s string) webhook.Secret {
	tb.Helper()
	sec, err := webhook.ParseSecret(s)
	if err != nil {
		tb.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

// b64 is the standard padded base64 of n bytes counting up from 1.
func b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestParseSecret parses the whsec_ form and the bare base64 form, and
// rejects what is not standard padded base64 of 24 to 64 bytes without
// quoting the input in the error.
func TestParseSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"reference secret", refSecret, true},
		{"bare base64", strings.TrimPrefix(refSecret, "whsec_"), true},
		{"24 bytes", "whsec_" + b64(24), true},
		{"64 bytes", "whsec_" + b64(64), true},
		{"23 bytes", "whsec_" + b64(23), false},
		{"65 bytes", "whsec_" + b64(65), false},
		{"empty", "", false},
		{"prefix only", "whsec_", false},
		{"not base64", "whsec_" + strings.Repeat("!", 32), false},
		{"unpadded base64", "whsec_" + strings.TrimRight(b64(25), "="), false},
		{"url-safe alphabet", "whsec_" + strings.NewReplacer("+", "-", "/", "_").Replace(b64(48)) + "-_", false},
		{"asymmetric key prefix", "whsk_" + b64(32), false},
		{"prefix twice", "whsec_whsec_" + b64(32), false},
		{"upper-case prefix", "WHSEC_" + b64(32), false},
		{"trailing space", "whsec_" + b64(32) + " ", false},
		{"non-zero padding bits", "whsec_" + b64(25)[:32] + "AB==", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec, err := webhook.ParseSecret(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseSecret(%q) = %v, want no error", tt.in, err)
				}
				if sec.IsZero() {
					t.Fatalf("ParseSecret(%q) returned the zero Secret", tt.in)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseSecret(%q) succeeded, want an error", tt.in)
			}
			if got := tapline.ErrorCode(err); got != tapline.EINVALID {
				t.Errorf("error code %q, want %q (%v)", got, tapline.EINVALID, err)
			}
			if enc := strings.TrimPrefix(tt.in, "whsec_"); len(enc) > 4 && strings.Contains(err.Error(), enc) {
				t.Errorf("error %q quotes the secret", err)
			}
			if !sec.IsZero() {
				t.Errorf("a failed parse returned a non-zero Secret")
			}
		})
	}
}

// TestParseSecretForms: the whsec_ form and the bare base64 form are the
// same key.
func TestParseSecretForms(t *testing.T) {
	t.Parallel()
	prefixed := mustParse(t, refSecret)
	bare := mustParse(t, strings.TrimPrefix(refSecret, "whsec_"))
	ts := time.Unix(refTimestamp, 0)
	if a, b := webhook.Sign(prefixed, refID, ts, []byte(refBody)), webhook.Sign(bare, refID, ts, []byte(refBody)); a != b {
		t.Errorf("prefixed form signs %s, bare form %s", a, b)
	}
}

// TestNewSecret: a new secret is whsec_ and the base64 of 32 random bytes,
// parses, signs what Verify accepts, and differs from the next one.
func TestNewSecret(t *testing.T) {
	t.Parallel()
	s1, s2 := webhook.NewSecret(), webhook.NewSecret()
	if s1 == s2 {
		t.Fatalf("two calls returned the same secret")
	}
	for _, s := range []string{s1, s2} {
		enc, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("NewSecret() = %q, want the whsec_ prefix", s[:6])
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("NewSecret() is not standard base64: %v", err)
		}
		if len(key) != webhook.NewSecretBytes || len(key) < 24 || len(key) > 64 {
			t.Errorf("NewSecret() holds %d bytes, want %d (24 to 64)", len(key), webhook.NewSecretBytes)
		}
		if bytes.Count(key, []byte{0}) == len(key) {
			t.Errorf("NewSecret() is all zero bytes")
		}
	}
	sec := mustParse(t, s1)
	now := time.Unix(1_760_000_000, 0)
	h, err := webhook.Signer{Secrets: []webhook.Secret{sec}}.Headers("msg_new", now, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify([]webhook.Secret{sec}, h, []byte("{}"), now, 0); err != nil {
		t.Errorf("Verify with the new secret: %v", err)
	}
	if err := webhook.Verify([]webhook.Secret{mustParse(t, s2)}, h, []byte("{}"), now, 0); err == nil {
		t.Errorf("Verify with another new secret passed")
	}
}

// TestSecretRedacted prints a Secret every way a log line or an error
// might (fmt verbs, inside structs exported or not, slog's text and JSON
// handlers) and finds neither the base64, the hex nor the bytes of its key.
func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	enc := strings.TrimPrefix(refSecret, "whsec_")
	key, _ := base64.StdEncoding.DecodeString(enc)
	leaks := []string{enc, hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), strings.Trim(fmt.Sprint(key), "[]"), string(key)}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(out, l) {
				t.Errorf("%s = %q leaks the key as %q", what, out, l)
			}
		}
	}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%8.3v"} {
		out := fmt.Sprintf(verb, sec)
		check(t, verb, out)
		if out != "whsec_[redacted]" {
			t.Errorf("Sprintf(%s) = %q, want whsec_[redacted]", verb, out)
		}
	}
	if got := sec.String(); got != "whsec_[redacted]" {
		t.Errorf("String() = %q, want whsec_[redacted]", got)
	}
	if got := (webhook.Secret{}).String(); got != "whsec_[unset]" {
		t.Errorf("zero String() = %q, want whsec_[unset]", got)
	}

	type private struct{ s webhook.Secret }
	type public struct{ S webhook.Secret }
	signer := webhook.Signer{Secrets: []webhook.Secret{sec, sec}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%d"} {
		check(t, verb+" unexported field", fmt.Sprintf(verb, private{sec}))
		check(t, verb+" exported field", fmt.Sprintf(verb, public{sec}))
		check(t, verb+" Signer", fmt.Sprintf(verb, signer))
		check(t, verb+" pointer", fmt.Sprintf(verb, &sec))
	}
	if got := fmt.Sprintf("%+v", signer); got != "{Secrets:[whsec_[redacted] whsec_[redacted]]}" {
		t.Errorf("Sprintf(%%+v, signer) = %q", got)
	}

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		buf.Reset()
		slog.New(h).Info("rotating", "secret", sec, "signer", signer, "private", private{sec}, slog.Group("g", "s", &sec))
		out := buf.String()
		check(t, fmt.Sprintf("%T", h), out)
		if !strings.Contains(out, "whsec_[redacted]") {
			t.Errorf("%T wrote %q, want whsec_[redacted] in it", h, out)
		}
	}
	if v := sec.LogValue(); v.Kind() != slog.KindString || v.String() != "whsec_[redacted]" {
		t.Errorf("LogValue() = %v, want the string whsec_[redacted]", v)
	}
}
