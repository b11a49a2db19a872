package collector_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"tapline"
	"tapline/collector"
	"tapline/internal/browsertest"
)

// TestClientHintsBrowser taps a link in headless Chromium posing as Chrome
// on a Pixel 7 (its User-Agent reduced to "Android 10; K", the model and OS
// version only in client hints, as Chrome sends them): the redirect's
// Critical-CH makes the browser retry with the hints, and the tap is one
// hit carrying the real model and OS version.
func TestClientHintsBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{HintRetryWait: time.Second})
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	b := browsertest.New(t)
	const reduced = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	params := emulation.SetUserAgentOverrideParams{UserAgent: reduced, Platform: "Linux armv8l", UserAgentMetadata: &emulation.UserAgentMetadata{
		Brands:          []*emulation.UserAgentBrandVersion{{Brand: "Chromium", Version: "131"}, {Brand: "Google Chrome", Version: "131"}},
		FullVersionList: []*emulation.UserAgentBrandVersion{{Brand: "Chromium", Version: "131.0.6778.81"}, {Brand: "Google Chrome", Version: "131.0.6778.81"}},
		Platform:        "Android",
		PlatformVersion: "14.0.0",
		Model:           "Pixel 7",
		Mobile:          true,
	}}
	override := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetUserAgentOverride, params)
		return err
	})
	ctx, cancel := context.WithTimeout(b.Ctx(), 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, override); err != nil {
		t.Fatalf("emulate a Pixel 7: %v", err)
	}
	// The redirect leads to the Play Store, which this machine cannot
	// reach: the navigation's own error does not matter, the requests do.
	nav, navCancel := context.WithTimeout(b.Ctx(), 10*time.Second)
	_, _ = chromedp.Run(nav, chromedp.Navigate(srv.URL+"/l/demo?case=browser"))
	navCancel()

	hits(t, e.bus, 1)
	time.Sleep(1500 * time.Millisecond) // past the wait: a replaced first request must not come
	got := hits(t, e.bus, 1)
	if len(got) != 1 {
		t.Fatalf("%d hits for one tap, want 1: %+v", len(got), got)
	}
	h := got[0]
	if h.Platform != tapline.PlatformAndroid || h.Model != "Pixel 7" || h.OSVersion != "14.0.0" || h.Bot != "" {
		t.Errorf("hit platform %q model %q os %q bot %q; want android, Pixel 7, 14.0.0 from the client hints", h.Platform, h.Model, h.OSVersion, h.Bot)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "tapline_collector_hint_retries_total 1") {
		t.Errorf("the browser did not retry for the critical hints")
	}
}
