package collector

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRedirectLocation: every destination is answered 302 to the Location
// http.Redirect would send; an absolute ASCII URL is written directly,
// without the hypertext note http.Redirect adds to a GET.
func TestRedirectLocation(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, tc := range []struct {
			dest, want string
			direct     bool
		}{
			{"https://apps.apple.com/app/id1?pt=1&ct=a%20b", "https://apps.apple.com/app/id1?pt=1&ct=a%20b", true},
			{"market://details?id=com.example", "market://details?id=com.example", true},
			{"myapp://open/item?x=1", "myapp://open/item?x=1", true},
			{"/welcome?from=tap", "/welcome?from=tap", false},
			{"welcome", "/l/welcome", false}, // relative to /l/demo, as http.Redirect resolves it
			{"https://example.com/café?q=ü", "https://example.com/caf%c3%a9?q=%c3%bc", false},
			{"myapp://öffnen", "myapp://%c3%b6ffnen", false},
		} {
			rec := httptest.NewRecorder()
			redirect(rec, httptest.NewRequest(method, "/l/demo", nil), tc.dest)
			if rec.Code != http.StatusFound || rec.Header().Get("Location") != tc.want {
				t.Errorf("%s redirect to %q: %d, Location %q; want 302 to %q", method, tc.dest, rec.Code, rec.Header().Get("Location"), tc.want)
			}
			if note := rec.Body.Len() > 0; method == http.MethodGet && note == tc.direct {
				t.Errorf("GET redirect to %q: a hypertext note %v, want %v (written directly: %v)", tc.dest, note, !tc.direct, tc.direct)
			}
		}
	}
}
