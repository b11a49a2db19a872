package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tapline/internal/browsertest"
	"tapline/internal/node"
)

// TestTapToExplainedConversionBrowser is a marketer's day one in a real
// browser against the whole product: log in, create a link in the UI, a
// phone taps it and installs the app, and the conversions explorer shows
// the install credited to that link, with why.
func TestTapToExplainedConversionBrowser(t *testing.T) {
	m, _ := runMain(t)
	n := m.Node
	demo, err := node.SeedDemo(context.Background(), n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	app := fmt.Sprintf("%s/apps/%d", n.DashboardURL, demo.App.ID)
	b.LogIn(app+"/links/new", node.DemoEmail, node.DemoPassword, "#f-slug")
	b.Do("create a link",
		chromedp.SendKeys(chromedp.ID("f-slug"), "spring-fb"),
		chromedp.SendKeys(chromedp.ID("f-name"), "Spring on Facebook"),
		chromedp.SendKeys(chromedp.ID("f-params"), "utm_source=facebook\nutm_campaign=spring"),
		chromedp.Click(chromedp.ID("save-link")),
		chromedp.WaitVisible(chromedp.ID("tracking-url")),
	)
	trackingURL := b.Text("#tracking-url")
	if want := n.CollectorURL + "/l/spring-fb"; trackingURL != want {
		t.Fatalf("the link page shows %q, want %q", trackingURL, want)
	}

	const phoneIP, installID = "198.51.100.23", "5B1E7C2A-90D4-4E3F-A1B2-C3D4E5F60718"
	tap(t, n, "spring-fb", phoneIP)
	postInstall(t, n, phoneIP, installID)

	// The install reaches the explorer within seconds: reload until it
	// does, as a person would.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.Do("the explorer", chromedp.Navigate(app+"/conversions?q="+installID), chromedp.WaitVisible(chromedp.ID("conversion-search")))
		if browsertest.Eval[bool](b, `!!document.querySelector('#conversions tbody tr')`) {
			break
		}
		if time.Now().After(deadline) {
			b.Screenshot("failed")
			t.Fatal("the install is not in the conversions explorer after 20 s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The hit and the install travel on different topics: the install may
	// be matched first and claimed by the tap a moment later. Either way
	// the explanation names the fingerprint window.
	row := b.Text("#conversions tbody tr")
	for _, want := range []string{installID, "fingerprint", "Spring on Facebook", "facebook / spring", "within the 1d"} {
		if !strings.Contains(row, want) {
			t.Errorf("the explorer's row %q lacks %q", row, want)
		}
	}
	b.Screenshot("conversions")
	b.Do("open the conversion", chromedp.Click(chromedp.CSS(`#conversions tbody tr a`)), chromedp.WaitVisible(chromedp.ID("decision")))
	if got := b.Text("#reason"); !strings.Contains(got, "fingerprint") || !strings.Contains(got, "1d") {
		t.Errorf("the reason is %q", got)
	}
	signals := b.Text("#signals")
	for _, want := range []string{"network", "198.51.100.0/24", "platform", "agree"} { // the address masked: a decision is kept forever
		if !strings.Contains(signals, want) {
			t.Errorf("the signals %q lack %q", signals, want)
		}
	}
	if got := b.Text("#candidates tr.chosen"); !strings.Contains(got, "Spring on Facebook") || !strings.Contains(got, "chosen") {
		t.Errorf("the chosen candidate reads %q", got)
	}
	b.Screenshot("conversion")
	for _, width := range []int64{390, 1400} {
		b.Do("resize", chromedp.EmulateViewport(width, 900), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("decision")))
		if over := browsertest.Eval[float64](b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			b.Screenshot(fmt.Sprintf("conversion-%d", width))
			t.Errorf("%d px: the conversion page is %.0f px wider than the window", width, over)
		}
	}
}
