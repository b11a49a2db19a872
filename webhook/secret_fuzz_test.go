package webhook

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"tapline"
)

// FuzzParseSecret checks the secret parser: an accepted secret holds
// MinSecretBytes to MaxSecretBytes bytes, is the decoding of the text, and
// (line breaks aside) parses the same from its canonical form with or without the prefix; a
// refusal is EINVALID and quotes no part of the input; no form of printing
// shows the key.
func FuzzParseSecret(f *testing.F) {
	f.Add(SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqr")
	f.Add(SecretPrefix + "c2hvcnQ=")
	f.Add(SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
	f.Add(SecretPrefix + SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		sec, err := ParseSecret(s)
		if err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("ParseSecret(%q) = %v, want EINVALID", s, err)
			}
			body := strings.TrimPrefix(s, SecretPrefix)
			if len(body) >= 8 && strings.Contains(err.Error(), body) {
				t.Fatalf("ParseSecret's error %q quotes the input", err)
			}
			if !sec.IsZero() {
				t.Fatalf("ParseSecret(%q) refused but returned a key", s)
			}
			return
		}
		key := *sec.key
		if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
			t.Fatalf("ParseSecret(%q) accepted a %d-byte key", s, len(key))
		}
		canon := base64.StdEncoding.EncodeToString(key)
		// base64 decoding skips line breaks, so a secret pasted with a
		// trailing newline is the same secret.
		if canon != strings.NewReplacer("\r", "", "\n", "").Replace(strings.TrimPrefix(s, SecretPrefix)) {
			t.Fatalf("ParseSecret(%q) = key %q, not the text's decoding", s, canon)
		}
		for _, form := range []string{canon, SecretPrefix + canon} {
			again, err := ParseSecret(form)
			if err != nil || !bytes.Equal(*again.key, key) {
				t.Fatalf("canonical form %q of %q does not parse back: %v", form, s, err)
			}
		}
		for _, out := range []string{sec.String(), fmt.Sprint(sec), fmt.Sprintf("%#v %x %s %q", sec, sec, sec, sec)} {
			if strings.Contains(out, canon) || strings.Contains(out, fmt.Sprintf("%x", key)) {
				t.Fatalf("printing the secret shows its key: %q", out)
			}
		}
	})
}
