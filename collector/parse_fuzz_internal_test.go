package collector

import (
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"tapline"
)

// FuzzDecimalMicros checks the money reader of the JSON batch: an accepted
// amount is exactly the decimal the text says, times a million, within a
// trillion units, and the amount printed back reads as the same micros.
func FuzzDecimalMicros(f *testing.F) {
	for _, s := range []string{"9.99", "0.000001", "-1.5", "1e3", "1.5e-6", "1e-7", " 12 ", "1/3", "0x10", "1e999999", "999999999999.999999", "1000000000000.000001", "+.5", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := decimalMicros(s)
		if !ok {
			if m != 0 {
				t.Fatalf("decimalMicros(%q) refused but returned %d", s, m)
			}
			return
		}
		if m > 1e18 || m < -1e18 {
			t.Fatalf("decimalMicros(%q) = %d, beyond a trillion units", s, m)
		}
		r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
		if !ok || r.Cmp(new(big.Rat).SetFrac64(m, 1_000_000)) != 0 {
			t.Fatalf("decimalMicros(%q) = %d, not the amount %v", s, m, r)
		}
		printed := strconv.FormatInt(m/1_000_000, 10) + "." + strings.TrimPrefix(strconv.FormatInt(1_000_000+abs(m%1_000_000), 10), "1")
		if m < 0 && m > -1_000_000 {
			printed = "-" + printed
		}
		if back, ok := decimalMicros(printed); !ok || back != m {
			t.Fatalf("decimalMicros(%q) = %d, printed %q reads back as %d, %v", s, m, printed, back, ok)
		}
	})
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// FuzzWithPlayReferrer checks the Play destination rewrite: on a Play
// Store destination the install referrer the app will report names the hit
// (tapline.Event.ReferrerHitID finds it) and keeps the destination's own
// referrer parameters and the link's utm_ parameters; any other
// destination is returned unchanged.
func FuzzWithPlayReferrer(f *testing.F) {
	f.Add("https://play.google.com/store/apps/details?id=com.example.demo", "utm_source", "news", "0cj2bqf4s5o3k9o7e5u1hfl0l8")
	f.Add("market://details?id=com.example&referrer=utm_source%3Dads%26utm_campaign%3Dx", "utm_campaign", "y", "h")
	f.Add("https://PLAY.google.com:443/store/apps/details?id=a&referrer=tapline_hit%3Dold", "utm_medium", "a&b=c", "new")
	f.Add("https://apps.apple.com/app/id1?pt=1", "utm_source", "x", "h")
	f.Add("market://details?id=a&referrer=%zz", "utm_term", "%", "h")
	f.Fuzz(func(t *testing.T, dest, key, value, hitID string) {
		if hitID == "" {
			return // the collector always has one
		}
		params := map[string]string{key: value}
		got := withPlayReferrer(dest, hitID, params)
		u, err := url.Parse(dest)
		play := err == nil && (u.Scheme == "market" || strings.EqualFold(u.Hostname(), "play.google.com"))
		if !play {
			if got != dest {
				t.Fatalf("withPlayReferrer(%q) = %q, want it unchanged", dest, got)
			}
			return
		}
		gu, err := url.Parse(got)
		if err != nil || gu.Scheme != u.Scheme || gu.Host != u.Host || gu.Path != u.Path {
			t.Fatalf("withPlayReferrer(%q) = %q, another destination (%v)", dest, got, err)
		}
		ref := gu.Query().Get("referrer")
		if id := (&tapline.Event{Referrer: ref}).ReferrerHitID(); id != hitID {
			t.Fatalf("withPlayReferrer(%q): referrer %q names hit %q, want %q", dest, ref, id, hitID)
		}
		rq, err := url.ParseQuery(ref)
		if err != nil {
			t.Fatalf("withPlayReferrer(%q): referrer %q is no query: %v", dest, ref, err)
		}
		old, oldErr := url.ParseQuery(u.Query().Get("referrer"))
		if strings.HasPrefix(key, "utm_") && key != tapline.ReferrerHitParam && (oldErr != nil || old.Get(key) == "") && rq.Get(key) != value {
			t.Fatalf("withPlayReferrer(%q): referrer %q lost the link's %s=%q", dest, ref, key, value)
		}
		if oldErr == nil {
			for k, vs := range old {
				if k != tapline.ReferrerHitParam && vs[0] != "" && rq.Get(k) != vs[0] {
					t.Fatalf("withPlayReferrer(%q): referrer %q lost %s=%q", dest, ref, k, vs[0])
				}
			}
		}
	})
}

// FuzzNormalizeAdID checks the advertising id read from a tap's query: what
// it keeps is a lower-case hyphenated UUID other than the all-zero one,
// normalizing it again changes nothing, and the hit records it only under
// an advertising-id parameter.
func FuzzNormalizeAdID(f *testing.F) {
	for _, s := range []string{"6D92078A-8246-4BA4-AE5B-76104861E7DC", "38400000-8cf0-11bd-b23e-10b96e40000d", "6d92078a82464ba4ae5b76104861e7dc",
		"{6d92078a-8246-4ba4-ae5b-76104861e7dc}", "urn:uuid:6d92078a-8246-4ba4-ae5b-76104861e7dc", "00000000-0000-0000-0000-000000000000",
		"%%IDFA%%", "{idfa}", " 6d92078a-8246-4ba4-ae5b-76104861e7dc "} {
		f.Add("idfa", s)
	}
	f.Fuzz(func(t *testing.T, key, v string) {
		n := normalizeAdID(v)
		if n != "" {
			if len(n) != 36 || n != strings.ToLower(n) || n == "00000000-0000-0000-0000-000000000000" || normalizeAdID(n) != n {
				t.Fatalf("normalizeAdID(%q) = %q", v, n)
			}
		}
		h := &tapline.Hit{}
		addParam(h, key, v)
		if h.AdID != "" && (!tapline.IsAdIDParam(key) || h.AdID != n) {
			t.Fatalf("addParam(%q, %q) recorded ad id %q", key, v, h.AdID)
		}
		if len(h.Params) > 0 && (key == "" || len(key) > maxHitParamKey || len(h.Params[key]) > len(v)) {
			t.Fatalf("addParam(%q, %q) kept %q", key, v, h.Params)
		}
	})
}
