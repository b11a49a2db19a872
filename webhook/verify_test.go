package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/webhook"
)

// sentinels are Verify's errors; each failure must be exactly one of them.
var sentinels = []error{
	webhook.ErrMissingHeader,
	webhook.ErrMalformedHeader,
	webhook.ErrSignatureMismatch,
	webhook.ErrTimestampOutsideTolerance,
}

// checkErr fails unless err is want (nil for success) and no other sentinel.
func checkErr(tb testing.TB, err, want error) {
	tb.Helper()
	if want == nil {
		if err != nil {
			tb.Errorf("Verify = %v, want success", err)
		}
		return
	}
	if !errors.Is(err, want) {
		tb.Errorf("Verify = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			tb.Errorf("Verify = %v, is also %v", err, s)
		}
	}
}

// refHeaders are the reference vector's headers as a receiver gets them.
func refHeaders() http.Header {
	h := http.Header{}
	h.Set("webhook-id", refID)
	h.Set("webhook-timestamp", strconv.Itoa(refTimestamp))
	h.Set("webhook-signature", refSignature)
	return h
}

// TestVerifyReferenceVector: the reference vector verifies at its own
// time, also written with the lower-case names in a literal map, and not
// with another secret.
func TestVerifyReferenceVector(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	now := time.Unix(refTimestamp, 0)
	checkErr(t, webhook.Verify([]webhook.Secret{sec}, refHeaders(), []byte(refBody), now, 0), nil)
	lower := http.Header{"webhook-id": {refID}, "webhook-timestamp": {"1614265330"}, "webhook-signature": {refSignature}}
	checkErr(t, webhook.Verify([]webhook.Secret{sec}, lower, []byte(refBody), now, 0), nil)
	other := mustParse(t, webhook.NewSecret())
	checkErr(t, webhook.Verify([]webhook.Secret{other}, refHeaders(), []byte(refBody), now, 0), webhook.ErrSignatureMismatch)
}

// TestVerifyRotation: while an endpoint signs with its old and new
// secrets, a receiver holding either (or both, or one beside an unrelated
// one) verifies; once the old one is dropped, only the new one does.
func TestVerifyRotation(t *testing.T) {
	t.Parallel()
	old, cur, other := mustParse(t, webhook.NewSecret()), mustParse(t, webhook.NewSecret()), mustParse(t, webhook.NewSecret())
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"type":"install.attributed"}`)

	during, err := webhook.Signer{Secrets: []webhook.Secret{cur, old}}.Headers("msg_rot", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if sigs := strings.Split(during.Get("webhook-signature"), " "); len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("signature header %q, want two space-separated v1 signatures", during.Get("webhook-signature"))
	}
	after, err := webhook.Signer{Secrets: []webhook.Secret{cur}}.Headers("msg_rot", now, body)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		h        http.Header
		receiver []webhook.Secret
		want     error
	}{
		{"during, receiver has the old secret", during, []webhook.Secret{old}, nil},
		{"during, receiver has the new secret", during, []webhook.Secret{cur}, nil},
		{"during, receiver has both", during, []webhook.Secret{old, cur}, nil},
		{"during, receiver has an unrelated and the old", during, []webhook.Secret{other, old}, nil},
		{"during, receiver has only an unrelated secret", during, []webhook.Secret{other}, webhook.ErrSignatureMismatch},
		{"after, receiver still on the old secret", after, []webhook.Secret{old}, webhook.ErrSignatureMismatch},
		{"after, receiver on the new secret", after, []webhook.Secret{cur}, nil},
		{"after, receiver keeps both", after, []webhook.Secret{old, cur}, nil},
		{"zero secrets are skipped", after, []webhook.Secret{{}, cur}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, webhook.Verify(tt.receiver, tt.h, body, now, 0), tt.want)
		})
	}
}

// TestVerifyTamper: changing the body, the id, the timestamp (within the
// tolerance) or one bit of the signature breaks the signature.
func TestVerifyTamper(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	now := time.Unix(refTimestamp, 0)
	flipped, _ := base64.StdEncoding.DecodeString(refSignature[3:])
	flipped[0] ^= 1
	tests := []struct {
		name   string
		header func(http.Header)
		body   string
	}{
		{"body changed", nil, `{"test": 2432232315}`},
		{"body reformatted", nil, `{"test":2432232314}`},
		{"body extended", nil, refBody + "\n"},
		{"body empty", nil, ""},
		{"id changed", func(h http.Header) { h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJel") }, refBody},
		{"timestamp a second later", func(h http.Header) { h.Set("webhook-timestamp", "1614265331") }, refBody},
		{"timestamp with a leading zero", func(h http.Header) { h.Set("webhook-timestamp", "01614265330") }, refBody},
		{"signature bit flipped", func(h http.Header) {
			h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(flipped))
		}, refBody},
		// The spec libraries' "invalid signature" case: the last character changed.
		{"signature last character", func(h http.Header) {
			h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")
		}, refBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := refHeaders()
			if tt.header != nil {
				tt.header(h)
			}
			checkErr(t, webhook.Verify([]webhook.Secret{sec}, h, []byte(tt.body), now, 0), webhook.ErrSignatureMismatch)
		})
	}
}

// TestVerifyTolerance signs at a time around now and checks the bounds
// both ways, for the default and for a given tolerance; the timestamp
// error only comes for a correct signature.
func TestVerifyTolerance(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	signer := webhook.Signer{Secrets: []webhook.Secret{sec}}
	now := time.Unix(1_760_000_000, 0)
	body := []byte(refBody)
	tests := []struct {
		name      string
		sent      time.Time
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"same second", now, now, 0, nil},
		{"5 minutes old", now.Add(-5 * time.Minute), now, 0, nil},
		{"5 minutes 1 second old", now.Add(-5*time.Minute - time.Second), now, 0, webhook.ErrTimestampOutsideTolerance},
		{"5 minutes ahead", now.Add(5 * time.Minute), now, 0, nil},
		{"5 minutes 1 second ahead", now.Add(5*time.Minute + time.Second), now, 0, webhook.ErrTimestampOutsideTolerance},
		{"an hour old", now.Add(-time.Hour), now, 0, webhook.ErrTimestampOutsideTolerance},
		{"a day ahead", now.Add(24 * time.Hour), now, 0, webhook.ErrTimestampOutsideTolerance},
		{"negative tolerance means default", now.Add(-4 * time.Minute), now, -time.Second, nil},
		{"30s tolerance, 30s old", now.Add(-30 * time.Second), now, 30 * time.Second, nil},
		{"30s tolerance, 31s old", now.Add(-31 * time.Second), now, 30 * time.Second, webhook.ErrTimestampOutsideTolerance},
		{"30s tolerance, 31s ahead", now.Add(31 * time.Second), now, 30 * time.Second, webhook.ErrTimestampOutsideTolerance},
		{"1h tolerance, 59m old", now.Add(-59 * time.Minute), now, time.Hour, nil},
		// The header holds whole seconds: sent at now-5m, received half a
		// second after now, it is 5m0.5s old.
		{"5 minutes old, received half a second later", now.Add(-5 * time.Minute), now.Add(500 * time.Millisecond), 0, webhook.ErrTimestampOutsideTolerance},
		{"sent at the epoch", time.Unix(0, 0), now, 0, webhook.ErrTimestampOutsideTolerance},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := signer.Headers("msg_tol", tt.sent, body)
			if err != nil {
				t.Fatal(err)
			}
			checkErr(t, webhook.Verify(signer.Secrets, h, body, tt.now, tt.tolerance), tt.want)
			// With a wrong signature the answer is the mismatch, whatever the time.
			h.Set("webhook-signature", refSignature)
			checkErr(t, webhook.Verify(signer.Secrets, h, body, tt.now, tt.tolerance), webhook.ErrSignatureMismatch)
		})
	}
}

// TestVerifyHugeTimestamp: a correctly signed timestamp near the int64
// limit is out of tolerance, not wrapped around into it.
func TestVerifyHugeTimestamp(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	now := time.Unix(1_760_000_000, 0)
	for _, ts := range []string{"9223372036854775807", "9223372036854775000", "9223372034000000000", "99999999999"} {
		key, _ := base64.StdEncoding.DecodeString(refSecret[6:])
		m := hmac.New(sha256.New, key)
		m.Write([]byte("msg_big." + ts + "." + refBody))
		h := http.Header{}
		h.Set("webhook-id", "msg_big")
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		checkErr(t, webhook.Verify([]webhook.Secret{sec}, h, []byte(refBody), now, 0), webhook.ErrTimestampOutsideTolerance)
	}
}

// TestVerifyMultiSignature: the valid signature passes among entries of
// other versions, invalid v1 entries and extra whitespace (the spec
// libraries' multi-signature case).
func TestVerifyMultiSignature(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	now := time.Unix(refTimestamp, 0)
	for _, sigs := range []string{
		"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + refSignature + " v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
		"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " + refSignature,
		"  " + refSignature + "   junk v1,!!!",
		"v1,bm90IGEgc2lnbmF0dXJl\t" + refSignature,
	} {
		h := refHeaders()
		h.Set("webhook-signature", sigs)
		checkErr(t, webhook.Verify([]webhook.Secret{sec}, h, []byte(refBody), now, 0), nil)
	}
}

// TestVerifyMalformedHeaders: missing, repeated and malformed headers fail
// with ErrMissingHeader or ErrMalformedHeader; signature entries that are
// well-formed but cannot match fail with ErrSignatureMismatch.
func TestVerifyMalformedHeaders(t *testing.T) {
	t.Parallel()
	sec := mustParse(t, refSecret)
	now := time.Unix(refTimestamp, 0)
	set := func(name, v string) func(http.Header) { return func(h http.Header) { h.Set(name, v) } }
	del := func(name string) func(http.Header) { return func(h http.Header) { h.Del(name) } }
	add := func(name, v string) func(http.Header) { return func(h http.Header) { h.Add(name, v) } }
	tests := []struct {
		name   string
		modify func(http.Header)
		want   error
	}{
		{"no headers", func(h http.Header) { clear(h) }, webhook.ErrMissingHeader},
		{"no webhook-id", del("webhook-id"), webhook.ErrMissingHeader},
		{"no webhook-timestamp", del("webhook-timestamp"), webhook.ErrMissingHeader},
		{"no webhook-signature", del("webhook-signature"), webhook.ErrMissingHeader},
		{"empty webhook-id", set("webhook-id", ""), webhook.ErrMissingHeader},
		{"empty webhook-timestamp", set("webhook-timestamp", ""), webhook.ErrMissingHeader},
		{"blank webhook-signature", set("webhook-signature", "   "), webhook.ErrMissingHeader},
		{"svix- headers instead", func(h http.Header) {
			for _, n := range []string{"id", "timestamp", "signature"} {
				h.Set("svix-"+n, h.Get("webhook-"+n))
				h.Del("webhook-" + n)
			}
		}, webhook.ErrMissingHeader},
		{"webhook-id twice", add("webhook-id", refID), webhook.ErrMalformedHeader},
		{"webhook-timestamp twice", add("webhook-timestamp", "1614265330"), webhook.ErrMalformedHeader},
		{"webhook-signature twice", add("webhook-signature", refSignature), webhook.ErrMalformedHeader},
		{"id with a dot", set("webhook-id", "msg.p5jXN8AQM9LWM0D4loKWxJek"), webhook.ErrMalformedHeader},
		{"id with a space", set("webhook-id", "msg p5jX"), webhook.ErrMalformedHeader},
		{"id with a tab", set("webhook-id", "msg\tp5jX"), webhook.ErrMalformedHeader},
		{"id with non-ASCII", set("webhook-id", "msg_é"), webhook.ErrMalformedHeader},
		{"id over MaxIDLen", set("webhook-id", strings.Repeat("m", webhook.MaxIDLen+1)), webhook.ErrMalformedHeader},
		{"timestamp not a number", set("webhook-timestamp", "hello"), webhook.ErrMalformedHeader},
		{"timestamp with a plus sign", set("webhook-timestamp", "+1614265330"), webhook.ErrMalformedHeader},
		{"negative timestamp", set("webhook-timestamp", "-1614265330"), webhook.ErrMalformedHeader},
		{"timestamp with a fraction", set("webhook-timestamp", "1614265330.5"), webhook.ErrMalformedHeader},
		{"timestamp with a space", set("webhook-timestamp", " 1614265330"), webhook.ErrMalformedHeader},
		{"timestamp as a date", set("webhook-timestamp", "2021-02-25T15:02:10Z"), webhook.ErrMalformedHeader},
		{"timestamp over int64", set("webhook-timestamp", "9223372036854775808"), webhook.ErrMalformedHeader},
		{"timestamp of 40 digits", set("webhook-timestamp", strings.Repeat("9", 40)), webhook.ErrMalformedHeader},
		{"signature without version", set("webhook-signature", refSignature[3:]), webhook.ErrMalformedHeader},
		{"signature with empty version", set("webhook-signature", refSignature[2:]), webhook.ErrMalformedHeader},
		{"signature v1 with nothing after the comma", set("webhook-signature", "v1,"), webhook.ErrMalformedHeader},
		{"signature of junk words", set("webhook-signature", "not a signature"), webhook.ErrMalformedHeader},
		{"signature with = instead of ,", set("webhook-signature", "v1="+refSignature[3:]), webhook.ErrMalformedHeader},
		{"timestamp in milliseconds", set("webhook-timestamp", "1614265330000"), webhook.ErrSignatureMismatch},
		{"signature not base64", set("webhook-signature", "v1,@@@@"), webhook.ErrSignatureMismatch},
		{"signature truncated", set("webhook-signature", refSignature[:20]), webhook.ErrSignatureMismatch},
		{"signature unpadded", set("webhook-signature", strings.TrimSuffix(refSignature, "=")), webhook.ErrSignatureMismatch},
		{"signature in URL-safe base64", set("webhook-signature", strings.NewReplacer("+", "-", "/", "_").Replace(refSignature)), webhook.ErrSignatureMismatch},
		// Base64 of the right bytes with non-zero padding bits: only the
		// canonical encoding is accepted.
		{"signature with non-zero padding bits", set("webhook-signature", strings.TrimSuffix(refSignature, "E=")+"F="), webhook.ErrSignatureMismatch},
		{"signature as hex", set("webhook-signature", "v1,8348"+strings.Repeat("00", 30)), webhook.ErrSignatureMismatch},
		{"signature with upper-case version", set("webhook-signature", "V1"+refSignature[2:]), webhook.ErrSignatureMismatch},
		{"only asymmetric signatures", set("webhook-signature", "v1a"+refSignature[2:]), webhook.ErrSignatureMismatch},
		{"signatures joined by a comma", set("webhook-signature", "v1,AAAA,"+refSignature), webhook.ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := refHeaders()
			tt.modify(h)
			err := webhook.Verify([]webhook.Secret{sec}, h, []byte(refBody), now, 0)
			checkErr(t, err, tt.want)
			wantCode := tapline.EINVALID
			if tt.want == webhook.ErrSignatureMismatch {
				wantCode = tapline.EUNAUTHORIZED
			}
			if got := tapline.ErrorCode(err); got != wantCode {
				t.Errorf("error code %q, want %q", got, wantCode)
			}
		})
	}
}

// TestVerifyNoSecrets: a receiver without a key is a bug in its set-up, an
// internal error, not a verdict on the message.
func TestVerifyNoSecrets(t *testing.T) {
	t.Parallel()
	now := time.Unix(refTimestamp, 0)
	for _, secrets := range [][]webhook.Secret{nil, {{}}} {
		err := webhook.Verify(secrets, refHeaders(), []byte(refBody), now, 0)
		if err == nil {
			t.Fatalf("Verify with %d zero secrets passed", len(secrets))
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("Verify = %v, want none of the sentinels", err)
			}
		}
		if got := tapline.ErrorCode(err); got != tapline.EINTERNAL {
			t.Errorf("error code %q, want %q", got, tapline.EINTERNAL)
		}
	}
}

// TestVerifyErrorCodes: a receiver's HTTP layer answers a signed message
// outside the tolerance, like a wrong signature, as unauthorized.
func TestVerifyErrorCodes(t *testing.T) {
	t.Parallel()
	err := webhook.Verify([]webhook.Secret{mustParse(t, refSecret)}, refHeaders(), []byte(refBody), time.Unix(refTimestamp+301, 0), 0)
	checkErr(t, err, webhook.ErrTimestampOutsideTolerance)
	if got := tapline.ErrorCode(err); got != tapline.EUNAUTHORIZED {
		t.Errorf("error code %q, want %q", got, tapline.EUNAUTHORIZED)
	}
	if !strings.Contains(err.Error(), "5m1s before now") {
		t.Errorf("error %q does not say how old the message is", err)
	}
}

// fuzzIDRe and fuzzTimestampRe say, independently of the package, which
// ids and timestamps are valid.
var (
	fuzzIDRe        = regexp.MustCompile(`^[!-\-/-~]{1,256}$`)
	fuzzTimestampRe = regexp.MustCompile(`^[0-9]{1,19}$`)
)

// FuzzVerify feeds arbitrary header values and bodies to Verify, which
// must not panic; must pass only if the signature header holds the exact
// signature of one of its secrets, computed here with crypto/hmac; and must
// pass whenever it holds one and the id and timestamp are valid and on
// time. The seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	now := time.Unix(refTimestamp, 0)
	secrets := []webhook.Secret{mustParse(f, refSecret), mustParse(f, "whsec_"+b64(32))}
	keys := [][]byte{}
	for _, s := range []string{refSecret, "whsec_" + b64(32)} {
		k, _ := base64.StdEncoding.DecodeString(s[6:])
		keys = append(keys, k)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		err := webhook.Verify(secrets, h, body, now, 0)

		signed := false
		for _, k := range keys {
			m := hmac.New(sha256.New, k)
			m.Write([]byte(id + "." + ts + "." + string(body)))
			want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
			for _, entry := range strings.Fields(sig) {
				signed = signed || entry == want
			}
		}
		if err == nil && !signed {
			t.Fatalf("Verify passed id %q ts %q sig %q without a matching signature", id, ts, sig)
		}
		onTime := false
		if n, perr := strconv.ParseInt(ts, 10, 64); perr == nil && fuzzTimestampRe.MatchString(ts) {
			onTime = n >= refTimestamp-300 && n <= refTimestamp+300
		}
		if err != nil && signed && onTime && fuzzIDRe.MatchString(id) {
			t.Fatalf("Verify(id %q ts %q sig %q) = %v, want success", id, ts, sig, err)
		}
		if err != nil && tapline.ErrorCode(err) == tapline.EINTERNAL {
			t.Fatalf("Verify = %v, an internal error with secrets given", err)
		}
	})
}
