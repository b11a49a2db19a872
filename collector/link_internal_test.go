package collector

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRedirectLocation(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, tc := range []struct{ dest, want string }{
			{"https://apps.apple.com/app/id1?pt=1&ct=a%20b", "https://apps.apple.com/app/id1?pt=1&ct=a%20b"},
			{"market://details?id=com.example", "market://details?id=com.example"},
			{"myapp://open/item?x=1", "myapp://open/item?x=1"},
			{"/welcome?from=tap", "/welcome?from=tap"},
			{"welcome", "/l/welcome"}, // relative to /l/demo, as http.Redirect resolves it
			{"https://example.com/café?q=ü", "https://example.com/caf%c3%a9?q=%c3%bc"},
			{"myapp://öffnen", "myapp://%c3%b6ffnen"},
		} {
			rec := httptest.NewRecorder()
			redirect(rec, httptest.NewRequest(method, "/l/demo", nil), tc.dest)
			if rec.Code != http.StatusFound || rec.Header().Get("Location") != tc.want {
				t.Errorf("%s redirect to %q: %d, Location %q; want 302 to %q", method, tc.dest, rec.Code, rec.Header().Get("Location"), tc.want)
			}
		}
	}
}
