package tapline_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
)

// FuzzParseWindow checks the dashboard's and the CLI's window parser: an
// accepted window is at least a second and is exactly what the text says
// (no overflow into a different, still positive, duration), and a refusal
// is EINVALID naming the field.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"7d", "24h", "90m", " 30d ", "1s", "0d", "-1d", "1h30m", "999999999999d", "-999999999999d", "106751d", "106752d", "+7d", "1.5h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := tapline.ParseWindow("window", s)
		if err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID || !strings.Contains(err.Error(), "window") {
				t.Fatalf("ParseWindow(%q) = %v, want EINVALID naming the field", s, err)
			}
			return
		}
		if d < time.Second {
			t.Fatalf("ParseWindow(%q) = %v, below a second", s, d)
		}
		trimmed := strings.TrimSpace(s)
		if n, ok := strings.CutSuffix(trimmed, "d"); ok {
			days, ok := new(big.Int).SetString(n, 10)
			if !ok {
				t.Fatalf("ParseWindow(%q) accepted days that are no integer", s)
			}
			want := new(big.Int).Mul(days, big.NewInt(int64(24*time.Hour)))
			if !want.IsInt64() || want.Int64() != int64(d) {
				t.Fatalf("ParseWindow(%q) = %d ns, want %s ns", s, int64(d), want)
			}
		} else if want, err := time.ParseDuration(trimmed); err != nil || want != d {
			t.Fatalf("ParseWindow(%q) = %v, time.ParseDuration says %v, %v", s, d, want, err)
		}
		// What the dashboard shows back (d.String()) reads as the same window.
		if back, err := tapline.ParseWindow("window", d.String()); err != nil || back != d {
			t.Fatalf("ParseWindow(%q) = %v, which reads back as %v, %v", s, d, back, err)
		}
	})
}

// FuzzExpandMacros checks the postback template expander: a macro replaced
// by itself gives the template back, every macro name is made of macro
// bytes, and the prefix handed over is the template before the macro.
func FuzzExpandMacros(f *testing.F) {
	for _, s := range []string{
		"https://postback.example.com/install?click={click_id}&idfa={idfa}&rev={revenue}",
		`{"event":"{event_name}","amount":{revenue_micros},"nested":{"a":1}}`,
		"https://x.example/{}/{a b}/{ok}/{", "{{{x}}}", "}{", "{a}{b}{c.d-e_f}", "plain text", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		same := tapline.ExpandMacros(tmpl, func(name, prefix string) string {
			if name == "" {
				t.Fatalf("empty macro name in %q", tmpl)
			}
			for i := 0; i < len(name); i++ {
				c := name[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
					t.Fatalf("macro name %q of %q has byte %q", name, tmpl, c)
				}
			}
			if !strings.HasPrefix(tmpl, prefix) || !strings.HasPrefix(tmpl[len(prefix):], "{"+name+"}") {
				t.Fatalf("prefix %q of macro %q is not the template %q before it", prefix, name, tmpl)
			}
			return "{" + name + "}"
		})
		if same != tmpl {
			t.Fatalf("expanding each macro to itself changed %q into %q", tmpl, same)
		}
		// Removing every macro leaves no macro behind only if none was
		// formed by the removal's neighbours; but it never grows the text.
		gone := tapline.ExpandMacros(tmpl, func(string, string) string { return "" })
		if len(gone) > len(tmpl) {
			t.Fatalf("removing macros grew %q into %q", tmpl, gone)
		}
	})
}

// FuzzPostbackURL checks Validate's promise on a network postback's URL
// template: an accepted template is an absolute http(s) URL, and no macro
// value, escaped as the sender escapes it, moves it to another host.
func FuzzPostbackURL(f *testing.F) {
	f.Add("https://postback.example.com/install?click={click_id}&idfa={idfa}", "x@evil.example/")
	f.Add("https://{click_id}@postback.example.com/p/{event_name}", "a@b:c/../?#")
	f.Add("http://postback.example.com:8443/{event_name}/x?{revenue}", "%00\r\n")
	f.Add("https://postback.example.com{x}/", "evil.example")
	f.Add("https://[::1]:80/{a}", "]")
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		p := &tapline.Postback{Network: "net", URL: tmpl, Events: []string{"install"}}
		if err := p.Validate(); err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("Validate(%q) = %v, want EINVALID", tmpl, err)
			}
			return
		}
		fixed := expectHost(t, tapline.ExpandMacros(tmpl, func(string, string) string { return "m" }))
		got := tapline.ExpandMacros(tmpl, func(_, prefix string) string {
			if strings.Contains(prefix, "?") {
				return url.QueryEscape(value)
			}
			return url.PathEscape(value)
		})
		if h := expectHost(t, got); h != fixed {
			t.Fatalf("template %q with value %q goes to host %q, not %q", tmpl, value, h, fixed)
		}
	})
}

func expectHost(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("expanded URL %q is no absolute http(s) URL: %v", s, err)
	}
	return u.Host
}

// FuzzParseFunnelNumber checks the numeric filter parser: what it accepts
// is finite, never hexadecimal, and prints back to the same number.
func FuzzParseFunnelNumber(f *testing.F) {
	for _, s := range []string{"9.99", "-1", "1e3", "0x10", "1p4", "Inf", "NaN", "1e400", " 1", "1_000", ".5", "+0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, ok := tapline.ParseFunnelNumber(s)
		if !ok {
			if x != 0 {
				t.Fatalf("ParseFunnelNumber(%q) refused but returned %v", s, x)
			}
			return
		}
		if math.IsInf(x, 0) || math.IsNaN(x) || strings.ContainsAny(s, "xXpP") && !strings.ContainsAny(s, "eE") {
			t.Fatalf("ParseFunnelNumber(%q) = %v accepted", s, x)
		}
		if y, ok := tapline.ParseFunnelNumber(strconv.FormatFloat(x, 'g', -1, 64)); !ok || y != x {
			t.Fatalf("ParseFunnelNumber(%q) = %v, which reads back as %v, %v", s, x, y, ok)
		}
	})
}

// FuzzParseConversionCursor checks the conversion listing's cursor: a
// cursor it made reads back as the same time (to the microsecond) and id,
// and anything it accepts has an id and re-encodes to itself.
func FuzzParseConversionCursor(f *testing.F) {
	f.Add(tapline.ConversionCursor(time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC), "c-1"), int64(1714564800123456), "c|2")
	f.Add("MTcxNDU2NDgwMDEyMzQ1Nnxj", int64(-1), "")
	f.Add("not a cursor", int64(0), "x")
	f.Fuzz(func(t *testing.T, s string, micros int64, id string) {
		if ts, got, err := tapline.ParseConversionCursor(s); err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("ParseConversionCursor(%q) = %v, want EINVALID", s, err)
			}
		} else {
			if got == "" || ts.Location() != time.UTC {
				t.Fatalf("ParseConversionCursor(%q) = %v, %q", s, ts, got)
			}
			again, got2, err := tapline.ParseConversionCursor(tapline.ConversionCursor(ts, got))
			if err != nil || !again.Equal(ts) || got2 != got {
				t.Fatalf("cursor %q = %v %q re-encodes to %v %q, %v", s, ts, got, again, got2, err)
			}
		}
		if id == "" {
			return
		}
		want := time.UnixMicro(micros).UTC()
		ts, got, err := tapline.ParseConversionCursor(tapline.ConversionCursor(want, id))
		if err != nil || !ts.Equal(want) || got != id {
			t.Fatalf("cursor of %v %q reads back as %v %q, %v", want, id, ts, got, err)
		}
	})
}

// FuzzReferrerHitID checks the Play install referrer reader: the hit id
// the collector puts into a referrer comes back out whether the app
// reports the referrer decoded or still URL-encoded, and an id it finds is
// one the referrer holds.
func FuzzReferrerHitID(f *testing.F) {
	f.Add("utm_source=google-play&utm_medium=organic", "0cj2bqf4s5o3k9o7e5u1hfl0l8")
	f.Add("utm_source%3Dads%26tapline_hit%3Dh-1", "h 1&x=y")
	f.Add("tapline_hit=%zz&tapline_hit=a", "a")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, referrer, hitID string) {
		got := (&tapline.Event{Referrer: referrer}).ReferrerHitID()
		if got != "" {
			held := false
			for r := referrer; !held; {
				held = strings.Contains(r, got)
				u, err := url.QueryUnescape(r)
				if err != nil || u == r {
					break
				}
				r = u
			}
			if !held {
				t.Fatalf("ReferrerHitID(%q) = %q, which the referrer does not hold", referrer, got)
			}
		}
		if hitID == "" {
			return
		}
		q, err := url.ParseQuery(referrer)
		if err != nil {
			q = url.Values{}
		}
		q.Del(tapline.ReferrerHitParam)
		q.Set(tapline.ReferrerHitParam, hitID)
		ref := q.Encode()
		for _, r := range []string{ref, url.QueryEscape(ref)} {
			if got := (&tapline.Event{Referrer: r}).ReferrerHitID(); got != hitID {
				t.Fatalf("ReferrerHitID(%q) = %q, want %q", r, got, hitID)
			}
		}
	})
}

// FuzzFunnelDefinition checks a funnel definition as the API and the CLI
// receive it (JSON): a refusal is EINVALID; an accepted definition has a
// window of exactly its seconds, within the retention when there is one,
// a name and steps within bounds, and it survives a JSON round trip
// unchanged and still valid.
func FuzzFunnelDefinition(f *testing.F) {
	f.Add([]byte(`{"name":"Tap to purchase","steps":[{"kind":"tap","links":[1,2]},{"kind":"install"},{"kind":"event","event":"purchase","filters":[{"param":"price","op":"gte","value":"9.99"}]}],"window_seconds":604800,"order":"ordered","exclusions":[{"kind":"event","event":"refund","after":2,"before":3}],"breakdown":{"kind":"link_param","param":"utm_source"}}`), true)
	f.Add([]byte(`{"name":"x","steps":[{"kind":"install"},{"kind":"event","event":"open"}],"window_seconds":9223372036854775807}`), false)
	f.Add([]byte(`{"name":"x","steps":[{"kind":"install"},{"kind":"event","event":"open"}],"window_seconds":18446830474}`), false)
	f.Add([]byte(`{"name":" ","steps":[]}`), true)
	f.Add([]byte(`{"name":"a","steps":[{"kind":"tap","event":"x"},{"kind":"bogus"}],"order":"any","breakdown":{"kind":"platform","param":"p"}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, withRetention bool) {
		var d tapline.FunnelDefinition
		if json.Unmarshal(body, &d) != nil {
			return
		}
		var retention time.Duration
		if withRetention {
			retention = 90 * 24 * time.Hour
		}
		if err := d.Validate(retention, nil); err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("Validate(%s) = %v, want EINVALID", body, err)
			}
			return
		}
		d.SetDefaults()
		want := new(big.Int).Mul(big.NewInt(d.WindowSeconds), big.NewInt(int64(time.Second)))
		if !want.IsInt64() || int64(d.Window()) != want.Int64() || d.Window() < tapline.MinFunnelWindow {
			t.Fatalf("accepted window_seconds %d gives window %v", d.WindowSeconds, d.Window())
		}
		if retention > 0 && d.Window() > retention {
			t.Fatalf("accepted window %v beyond retention %v", d.Window(), retention)
		}
		if n := len(d.Steps); n < tapline.FunnelMinSteps || n > tapline.FunnelMaxSteps || strings.TrimSpace(d.Name) == "" {
			t.Fatalf("accepted %d steps, name %q", n, d.Name)
		}
		out, err := json.Marshal(&d)
		if err != nil {
			t.Fatalf("marshal accepted definition: %v", err)
		}
		var back tapline.FunnelDefinition
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", out, err)
		}
		if err := back.Validate(retention, nil); err != nil {
			t.Fatalf("round-tripped %s no longer valid: %v", out, err)
		}
		if again, _ := json.Marshal(&back); !bytes.Equal(again, out) {
			t.Fatalf("JSON round trip changed %s into %s", out, again)
		}
	})
}
