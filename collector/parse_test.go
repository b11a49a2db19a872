package collector_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/collector"
)

var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestParseTapstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		event    string
		body     string
		wantErr  string // substring of the EINVALID message, "" for success
		wantKind tapline.EventKind
		check    func(t *testing.T, e *tapline.Event)
	}{
		{"install", "ios-demo-install", "secret=s&uuid=U&platform=iOS&os=iOS%2017.4.1&model=iPhone15%2C2&created-ms=1714564800000", "", tapline.KindInstall,
			func(t *testing.T, e *tapline.Event) {
				if e.Device.OSVersion != "17.4.1" || e.Device.Model != "iPhone15,2" || e.Device.Platform != tapline.PlatformIOS {
					t.Errorf("device = %+v, want iOS 17.4.1 iPhone15,2", e.Device)
				}
				if want := time.UnixMilli(1714564800000).UTC(); !e.Time.Equal(want) {
					t.Errorf("time = %v, want %v", e.Time, want)
				}
			}},
		{"old iphone os", "ios-demo-open", "uuid=U&os=iPhone+OS+6.1", "", tapline.KindOpen,
			func(t *testing.T, e *tapline.Event) {
				if e.Device.OSVersion != "6.1" {
					t.Errorf("os version = %q, want 6.1", e.Device.OSVersion)
				}
			}},
		{"future time clamped", "x", "uuid=U&created-ms=4102444800000", "", tapline.KindCustom,
			func(t *testing.T, e *tapline.Event) {
				if !e.Time.Equal(testNow) {
					t.Errorf("time = %v, want receive time %v", e.Time, testNow)
				}
			}},
		{"zero idfa is limited tracking", "ios-a-install", "uuid=U&hardware-ios-idfa=00000000-0000-0000-0000-000000000000", "", tapline.KindInstall,
			func(t *testing.T, e *tapline.Event) {
				if e.Device.IDFA != "" || !e.Device.LimitAdTracking {
					t.Errorf("idfa = %q lat = %v, want empty and true", e.Device.IDFA, e.Device.LimitAdTracking)
				}
			}},
		{"purchase cents times quantity", "ios-a-purchase-sku", "uuid=U&purchase-transaction-id=T&purchase-product-id=sku&purchase-quantity=3&purchase-price=199&purchase-currency=usd", "", tapline.KindPurchase,
			func(t *testing.T, e *tapline.Event) {
				if e.Revenue == nil || e.Revenue.Micros != 5_970_000 || e.Revenue.Currency != "USD" {
					t.Errorf("revenue = %+v, want 5970000 USD", e.Revenue)
				}
			}},
		{"custom params stripped", "Level.Up", "uuid=U&custom-level=3&custom-=x", "", tapline.KindCustom,
			func(t *testing.T, e *tapline.Event) {
				if e.Name != "level_up" || e.Params["level"] != "3" || len(e.Params) != 1 {
					t.Errorf("name = %q params = %v, want level_up {level:3}", e.Name, e.Params)
				}
			}},
		{"missing uuid", "x", "secret=s", "uuid", "", nil},
		{"bad created-ms", "x", "uuid=U&created-ms=soon", "created-ms", "", nil},
		{"bad price", "x", "uuid=U&purchase-price=1.99&purchase-currency=USD", "purchase-price", "", nil},
		{"bad currency", "x", "uuid=U&purchase-price=199&purchase-currency=dollars", "purchase-currency", "", nil},
		{"bad escape", "x", "uuid=%zz", "form-encoded", "", nil},
		// 10^9 cents times 10^6 is 10^19 micros, past int64: it must not wrap negative.
		{"revenue overflow", "x", "uuid=U&purchase-price=1000000000&purchase-quantity=1000000&purchase-currency=USD", "purchase", "", nil},
		{"empty name", " ", "uuid=U", "event name", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, _, err := collector.ParseTapstream(tt.event, []byte(tt.body), testNow)
			if tt.wantErr != "" {
				if tapline.ErrorCode(err) != tapline.EINVALID || !strings.Contains(tapline.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("err = %v, want EINVALID mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if e.Kind != tt.wantKind {
				t.Errorf("kind = %q, want %q", e.Kind, tt.wantKind)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

func TestParseTapstreamIDStable(t *testing.T) {
	t.Parallel()
	body := []byte("uuid=U&created-ms=1714564800000")
	a, _, err := collector.ParseTapstream("ios-a-open", body, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := collector.ParseTapstream("ios-a-open", body, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := collector.ParseTapstream("ios-a-open", []byte("uuid=U&created-ms=1714564800001"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Errorf("retry id = %q, want %q", b.ID, a.ID)
	}
	if a.ID == c.ID {
		t.Errorf("distinct events share id %q", a.ID)
	}
	// Without created-ms nothing tells two opens apart: they must not merge.
	d, _, err := collector.ParseTapstream("ios-a-open", []byte("uuid=U"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := collector.ParseTapstream("ios-a-open", []byte("uuid=U"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == e.ID {
		t.Errorf("two events without created-ms share id %q", d.ID)
	}
}

func TestWithPlayReferrer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dest string
		params     map[string]string
		wantRef    url.Values // decoded referrer; nil: dest unchanged
	}{
		{"play store", "https://play.google.com/store/apps/details?id=com.x", map[string]string{"utm_source": "news", "other": "y"},
			url.Values{"utm_source": {"news"}, tapline.ReferrerHitParam: {"HIT"}}},
		{"keeps existing referrer", "https://play.google.com/store/apps/details?id=com.x&referrer=utm_source%3Dads%26gclid%3D1", map[string]string{"utm_source": "news", "utm_medium": "cpc"},
			url.Values{"utm_source": {"ads"}, "gclid": {"1"}, "utm_medium": {"cpc"}, tapline.ReferrerHitParam: {"HIT"}}},
		{"market scheme", "market://details?id=com.x", nil, url.Values{tapline.ReferrerHitParam: {"HIT"}}},
		{"web fallback untouched", "https://example.com/app?id=1", map[string]string{"utm_source": "news"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := collector.WithPlayReferrer(tt.dest, "HIT", tt.params)
			if tt.wantRef == nil {
				if got != tt.dest {
					t.Fatalf("got %q, want unchanged %q", got, tt.dest)
				}
				return
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if u.Query().Get("id") != "com.x" {
				t.Errorf("id lost: %q", got)
			}
			ref, err := url.ParseQuery(u.Query().Get("referrer"))
			if err != nil || ref.Encode() != tt.wantRef.Encode() {
				t.Errorf("referrer = %q (%v), want %q", ref.Encode(), err, tt.wantRef.Encode())
			}
			e := tapline.Event{Referrer: u.Query().Get("referrer")}
			if e.ReferrerHitID() != "HIT" {
				t.Errorf("ReferrerHitID = %q, want HIT", e.ReferrerHitID())
			}
		})
	}
}

func TestNormalizeAdID(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"6D92078A-8246-4BA4-AE5B-76104861E7DC", "6d92078a-8246-4ba4-ae5b-76104861e7dc"},
		{"6d92078a82464ba4ae5b76104861e7dc", "6d92078a-8246-4ba4-ae5b-76104861e7dc"},
		{"{idfa}", ""},
		{"%%IDFA%%", ""},
		{"${GAID}", ""},
		{"00000000-0000-0000-0000-000000000000", ""},
		{"urn:uuid:6d92078a-8246-4ba4-ae5b-76104861e7dc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := collector.NormalizeAdID(tt.in); got != tt.want {
			t.Errorf("NormalizeAdID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecimalMicros(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"9.99", 9_990_000, true}, {"0", 0, true}, {"1e2", 100_000_000, true}, {"-5.5", -5_500_000, true},
		{"0.0000001", 0, false}, {"abc", 0, false}, {"1/3", 0, false}, {"1e30", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, ok := collector.DecimalMicros(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("DecimalMicros(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	t.Parallel()
	body := `{"events":[
		{"id":"a","name":"install","time":"2024-05-01T11:00:00Z","install_id":"I","device":{"platform":"iOS","idfa":"6D92078A-8246-4BA4-AE5B-76104861E7DC"},"unknown":1},
		{"id":"b","name":"buy","install_id":"I","device":{"platform":"android"},"revenue":{"amount":"9.99","currency":"eur"},"params":{"sku":"x"}},
		{"id":"c","name":"buy","install_id":"I","device":{"platform":"android"},"revenue":{"amount":12.5,"currency":"USD"}},
		{"id":"d","name":"x","install_id":"I","device":{"platform":"windows"}},
		{"id":"e","name":"x","device":{"platform":"ios"}},
		{"id":"f","name":"x","install_id":"I","time":"yesterday","device":{"platform":"ios"}},
		{"id":7},
		"nope"
	]}`
	events, results, err := collector.DecodeBatch([]byte(body), testNow, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []string{"accepted", "accepted", "accepted", "rejected", "rejected", "rejected", "rejected", "rejected"}
	if len(results) != len(wantStatus) {
		t.Fatalf("results = %d, want %d", len(results), len(wantStatus))
	}
	for i, r := range results {
		if r.Status != wantStatus[i] || r.Index != i {
			t.Errorf("result %d = %+v, want status %s", i, r, wantStatus[i])
		}
		if r.Status == "rejected" && (r.Error == nil || r.Error.Error != tapline.EINVALID || r.Error.Message == "") {
			t.Errorf("result %d error = %+v, want invalid with a message", i, r.Error)
		}
	}
	if len(events) != 3 {
		t.Fatalf("events = %d, want 3", len(events))
	}
	if e := events[0]; e.Kind != tapline.KindInstall || e.Device.Platform != tapline.PlatformIOS ||
		e.Device.IDFA != "6d92078a-8246-4ba4-ae5b-76104861e7dc" || !e.Time.Equal(testNow.Add(-time.Hour)) || e.Protocol != "v1" {
		t.Errorf("event a = %+v", e)
	}
	if e := events[1]; e.Kind != tapline.KindCustom || e.Revenue == nil || *e.Revenue != (tapline.Revenue{Micros: 9_990_000, Currency: "EUR"}) || e.Params["sku"] != "x" {
		t.Errorf("event b = %+v revenue %+v", e, e.Revenue)
	}
	if e := events[2]; e.Revenue == nil || e.Revenue.Micros != 12_500_000 {
		t.Errorf("event c revenue = %+v, want 12500000", e.Revenue)
	}
}

// TestDecodeBatchAmounts: money is input too. A negative amount would
// lower an app's revenue, an absurd one swamp it: both are refused, with
// the bound set per currency.
func TestDecodeBatchAmounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amount, currency string
		ok               bool
	}{
		{`"-5000.00"`, "USD", false},
		{`-0.01`, "EUR", false},
		{`"0"`, "USD", true},
		{`"10000000"`, "USD", true},
		{`"10000000.01"`, "USD", false},
		{`"5000000000"`, "JPY", true},
		{`"10000000001"`, "JPY", false},
	} {
		body := `{"events":[{"id":"p","name":"purchase","install_id":"I","device":{"platform":"ios"},"revenue":{"amount":` + tc.amount + `,"currency":"` + tc.currency + `"}}]}`
		events, results, err := collector.DecodeBatch([]byte(body), testNow, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := results[0].Status == "accepted"; got != tc.ok || (got && len(events) != 1) {
			t.Errorf("%s %s: %+v, want accepted %v", tc.amount, tc.currency, results[0], tc.ok)
		} else if !got && !strings.Contains(results[0].Error.Message, "revenue.amount") {
			t.Errorf("%s %s: %q, want a message naming revenue.amount", tc.amount, tc.currency, results[0].Error.Message)
		}
	}
}

func TestDecodeBatchWhole(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body string }{
		{"malformed", `{"events":[`},
		{"not an object", `[1,2]`},
		{"no events", `{}`},
		{"empty events", `{"events":[]}`},
		{"too many", `{"events":[{},{},{}]}`},
		{"trailing data", `{"events":[{}]} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := collector.DecodeBatch([]byte(tt.body), testNow, 2)
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("err = %v, want EINVALID", err)
			}
		})
	}
}

func FuzzParseTapstream(f *testing.F) {
	files, _ := filepath.Glob("testdata/tapstream/*.http")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if _, body, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
			f.Add("ios-demo-install", []byte(body))
		}
	}
	f.Add("x", []byte("uuid=U&purchase-price=1&purchase-currency=USD&purchase-quantity=9"))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		e, _, err := collector.ParseTapstream(name, body, testNow)
		if err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("err code = %q, want invalid", tapline.ErrorCode(err))
			}
			return
		}
		if e.InstallID == "" || e.Name == "" || e.ID == "" || e.Protocol != "tapstream" {
			t.Fatalf("accepted event missing fields: %+v", e)
		}
		if e.Time.After(testNow.Add(collector.DefaultMaxClockSkew)) {
			t.Fatalf("time %v beyond skew", e.Time)
		}
		if e.Revenue != nil && (e.Revenue.Micros < 0 || len(e.Revenue.Currency) != 3) {
			t.Fatalf("bad revenue %+v", e.Revenue)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"events":[{"id":"a","name":"install","install_id":"I","device":{"platform":"ios"},"revenue":{"amount":"1.5","currency":"USD"}}]}`))
	f.Add([]byte(`{"events":[{"id":"a"},{"id":"b","time":"2024-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"events":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, results, err := collector.DecodeBatch(body, testNow, 10)
		if err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("err code = %q, want invalid", tapline.ErrorCode(err))
			}
			return
		}
		accepted := 0
		for _, r := range results {
			if r.Status == collector.StatusAccepted {
				accepted++
			} else if r.Error == nil {
				t.Fatalf("rejected result without error: %+v", r)
			}
		}
		if accepted != len(events) || len(results) == 0 || len(results) > 10 {
			t.Fatalf("accepted %d, events %d, results %d", accepted, len(events), len(results))
		}
		for _, e := range events {
			if e.ID == "" || e.InstallID == "" || e.Kind == "" || e.Device.Platform == "" {
				t.Fatalf("accepted event missing fields: %+v", e)
			}
		}
	})
}
