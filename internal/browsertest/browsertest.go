// Package browsertest drives headless Chromium from tests with chromedp:
// the dashboard's pages and the whole product's tap-to-explorer flow.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is one headless Chromium tab of a test.
type Browser struct {
	t   *testing.T
	ctx context.Context // has run once: the browser is up
}

// chromium returns the path of a Chromium or Chrome binary, skipping the
// test when there is none.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found (scripts/chromium.sh installs it when run as root): skipping the browser test")
	return ""
}

// New starts headless Chromium with a fresh profile, skipping the test
// when there is no Chromium. Any uncaught JavaScript exception or
// console error fails the test.
func New(t *testing.T) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	start, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // starts the browser; no timeout on ctx itself
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-start.Done():
		t.Fatal("chromium did not start within a minute")
	}
	// Any uncaught JavaScript exception or console error fails the test.
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Errorf("JavaScript exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				t.Errorf("console.error: %s", strings.Join(args, " "))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return &Browser{t: t, ctx: ctx}
}

// Do runs actions with a timeout.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.Screenshot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression, waiting for it when it is a
// promise.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor waits until a page has loaded and a JavaScript expression is
// truthy on it, across page loads; on a timeout it reports the value of
// each explain expression.
func (b *Browser) WaitFor(what, expr string, explain ...string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("document.readyState === 'complete' && !!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.Screenshot("failed")
			for _, x := range explain {
				b.t.Logf("%s = %v", x, Eval[any](b, x))
			}
			b.t.Fatalf("wait for %s (%s): last error %v", what, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Text returns the text of the first element matching a CSS selector, once
// the page has loaded.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	expr := fmt.Sprintf(`document.querySelector(%q)`, sel)
	b.WaitFor(sel, expr)
	return strings.TrimSpace(Eval[string](b, expr+`.innerText`))
}

// Screenshot saves the whole page as a PNG under the system's temporary
// directory (or TAPLINE_SCREENSHOTS) and logs where. (In Chromium 156 a
// full screenshot of the builder scrolled to its end made the next click
// on Save miss; the test takes none right before a click.)
func (b *Browser) Screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("TAPLINE_SCREENSHOTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "tapline-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// SetSelect chooses a value of a select element as a person would.
func (b *Browser) SetSelect(sel, value string) {
	b.t.Helper()
	Eval[chromedp.Void](b, fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, sel, value))
}

// Ctx is the tab's context, for chromedp actions of a test's own.
func (b *Browser) Ctx() context.Context { return b.ctx }

// LogIn opens url, which sends a visitor to the dashboard's login form,
// logs in and waits until the page shows the element the CSS selector sel
// selects.
func (b *Browser) LogIn(url, login, password, sel string) {
	b.t.Helper()
	b.Do("log in",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=login]`), login),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(sel)),
	)
}
