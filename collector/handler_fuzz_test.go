package collector_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"tapline/collector"
)

// FuzzHandler sends garbage through the real collector handler (over a real
// PostgreSQL and pebble bus): whatever the method, path, query, headers and
// body, the collector never panics and never answers 5xx, a redirect has
// an absolute Location, and an error answer of the API is JSON.
func FuzzHandler(f *testing.F) {
	ios := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	f.Add(uint8(0), "/l/demo?utm_source=news&idfa=6D92078A-8246-4BA4-AE5B-76104861E7DC", "", ios, "203.0.113.9, 10.0.0.3", []byte(nil))
	f.Add(uint8(0), "/l/demo?%zz=1&a=%00", "", "", "unknown", []byte(nil))
	f.Add(uint8(0), "/l/nope", "", ios, "", []byte(nil))
	f.Add(uint8(1), "/demo/event/ios-demo-install/", "application/x-www-form-urlencoded", ios, "",
		[]byte("secret=demo-secret-0123456789&uuid=U1&created-ms=1714564800000&purchase-price=199&purchase-currency=USD"))
	f.Add(uint8(1), "/demo/event/ios-demo-purchase", "application/x-www-form-urlencoded", "", "", []byte("secret=demo-secret-0123456789&uuid=U&purchase-price=-1"))
	f.Add(uint8(1+4), "/v1/events", "application/json", "", "",
		[]byte(`{"events":[{"id":"e1","name":"install","install_id":"I1","device":{"platform":"ios"},"revenue":{"amount":"1.5","currency":"USD"}}]}`))
	f.Add(uint8(1+4), "/v1/events", "application/json", "", "", []byte(`{"events":[{"id":"e1","revenue":{"amount":"1e999999","currency":"usd"}}]`))
	f.Add(uint8(0+4), "/v1/timelines/lookup?install_id=I1&limit=-1", "", "", "", []byte(nil))
	f.Add(uint8(0), "/demo/hit/tracker.gif?url=javascript:alert(1)", "", ios, "", []byte(nil))
	f.Add(uint8(0), "/demo/deeplink_query?url=x", "", ios, "", []byte(nil))
	f.Add(uint8(2), "/metrics", "", "", "", []byte(nil))
	e := newEnv(f, collector.Config{})
	methods := []string{http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut}
	f.Fuzz(func(t *testing.T, flags uint8, target, contentType, ua, xff string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") || strings.HasPrefix(u.Path, "/metrics") || strings.Contains(u.Path, "report-attribution") {
			// No request line a client could send; /metrics is no parser;
			// this collector keeps no SKAdNetwork postbacks and says 503
			// (skadnetwork's FuzzParse covers their parser).
			return
		}
		req := httptest.NewRequest(methods[int(flags)%len(methods)], "/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, target
		for k, v := range map[string]string{"Content-Type": contentType, "User-Agent": ua, "X-Forwarded-For": xff} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		if flags&4 != 0 {
			req.Header.Set("Authorization", "Bearer "+demoKey)
		}
		if flags&8 != 0 {
			req.Header.Set("Sec-CH-UA", `"Chromium";v="124"`)
			req.Header.Set("Sec-CH-UA-Model", ua)
		}
		rec := e.do(req, "10.0.0.7:4711")
		if rec.Code >= 500 {
			t.Fatalf("%s %q answered %d: %s", req.Method, target, rec.Code, rec.Body.String())
		}
		if rec.Code >= 300 && rec.Code < 400 {
			loc, err := url.Parse(rec.Header().Get("Location"))
			if err != nil || !loc.IsAbs() {
				t.Fatalf("%s %q answered %d with Location %q", req.Method, target, rec.Code, rec.Header().Get("Location"))
			}
		}
		if rec.Code >= 400 && strings.HasPrefix(u.Path, "/v1/") && rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed &&
			req.Method != http.MethodHead && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q answered %d without JSON: %q", req.Method, target, rec.Code, rec.Body.String())
		}
	})
}
