package collector

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRedirectLocation(t *testing.T) {
	for _, tc := range []struct{ dest, want string }{
		{"https://apps.apple.com/app/id1?pt=1&ct=a%20b", "https://apps.apple.com/app/id1?pt=1&ct=a%20b"},
		{"market://details?id=com.example", "market://details?id=com.example"},
		{"myapp://open/item?x=1", "myapp://open/item?x=1"},
		{"/welcome?from=tap", "/welcome?from=tap"},
		{"welcome", "/l/welcome"}, // relative to /l/demo, as http.Redirect resolves it
	} {
		rec := httptest.NewRecorder()
		redirect(rec, httptest.NewRequest(http.MethodGet, "/l/demo", nil), tc.dest)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != tc.want {
			t.Errorf("redirect to %q: %d, Location %q; want 302 to %q", tc.dest, rec.Code, rec.Header().Get("Location"), tc.want)
		}
	}
}
