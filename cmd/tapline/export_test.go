package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/internal/node"
)

// cutProxy forwards TCP connections to target; the answer of each new
// connection is cut after the next number of bytes of its plan (-1: never,
// 0: at once); connections past the plan pass whole.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	plan   []int
	conns  int
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

// cut sets the plan of the next connections.
func (p *cutProxy) cut(plan ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan = plan
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		limit := -1
		if len(p.plan) > 0 {
			limit, p.plan = p.plan[0], p.plan[1:]
		}
		p.conns++
		p.mu.Unlock()
		go p.forward(c, limit)
	}
}

func (p *cutProxy) forward(c net.Conn, limit int) {
	defer c.Close()
	if limit == 0 {
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(s, c) }()
	if limit < 0 {
		_, _ = io.Copy(c, s)
		return
	}
	_, _ = io.CopyN(c, s, int64(limit))
}

// TestExport runs `tapline export` against the all-in-one through a proxy
// that cuts its connections mid-answer, and checks that the file holds
// exactly the export, no row twice and none missing, in both formats; then
// that a run that gave up is resumed by the next.
func TestExport(t *testing.T) {
	m, _ := runMain(t)
	n := m.Node
	ctx := context.Background()
	demo, err := node.SeedDemo(ctx, n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	const hits = 3000
	for i := range hits {
		h := &tapline.Hit{ID: fmt.Sprintf("h-%05d", i), AppID: demo.App.ID, LinkID: demo.Link.ID, Time: now.Add(-time.Duration(i) * 17 * time.Minute),
			IP: "203.0.113.9", Platform: tapline.PlatformIOS, OSVersion: "17.4", Model: "iPhone15,2", AcceptLanguage: "en-US",
			AdID: "6D9C5B8E-1F2A-4C3B-9D8E-7F6A5B4C3D2E", Fingerprint: "203.0.113.9|ios",
			Params: map[string]string{"utm_source": "newsletter", "utm_campaign": "spring-" + strconv.Itoa(i%7)}}
		if _, err := n.Raw.PutHit(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	_, token, err := n.Accounts.CreateAPIToken(ctx, demo.Account.ID, "export")
	if err != nil {
		t.Fatal(err)
	}
	direct := func(format string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/apps/%d/export/hits?format=%s", n.DashboardURL, demo.App.ID, format), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("direct export: %d, %v", resp.StatusCode, err)
		}
		return string(b)
	}
	u, _ := url.Parse(n.DashboardURL)
	proxy := newCutProxy(t, u.Host)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cli := &Main{Stdout: &out, Stderr: &out}
		err := cli.Run(ctx, append([]string{"export", "-app", strconv.FormatInt(demo.App.ID, 10), "-kind", "hits",
			"-url", proxy.url(), "-token", token, "-retry-wait", "1ms"}, args...))
		return out.String(), err
	}
	dir := t.TempDir()

	for _, format := range []string{"ndjson", "csv"} {
		t.Run(format, func(t *testing.T) {
			want := direct(format)
			if format == "ndjson" {
				want = want[:strings.LastIndex(want[:len(want)-1], "\n")+1] // the file holds the rows, not the trailer
			}
			file := filepath.Join(dir, "hits."+format)
			proxy.cut(50_000, 120_001, 7)
			out, err := run("-o", file, "-format", format)
			if err != nil {
				t.Fatalf("export: %v\n%s", err, out)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Fatalf("the file (%d bytes, %d lines) differs from the export (%d bytes, %d lines)\n%s",
					len(got), bytes.Count(got, []byte("\n")), len(want), strings.Count(want, "\n"), out)
			}
			if strings.Contains(string(got), "6D9C5B8E") {
				t.Errorf("the file holds the advertising id")
			}
			if c := strings.Count(out, "resuming after"); c != 3 || !strings.Contains(out, "3,000 hits rows to") {
				t.Errorf("the export resumed %d times, want 3:\n%s", c, out)
			}
			if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
				t.Errorf("%s.part is left: %v", file, err)
			}
		})
	}

	t.Run("rerun", func(t *testing.T) {
		want := direct("csv")
		file := filepath.Join(dir, "rerun.csv")
		// The first connection is cut, every later one refused: the
		// export gives up.
		proxy.cut(60_000, 0, 0, 0, 0, 0)
		out, err := run("-o", file, "-retries", "2")
		if err == nil || !strings.Contains(err.Error(), "rerun the same command") {
			t.Fatalf("an export refused after a cut: %v, want it to stop and say how to resume\n%s", err, out)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Fatalf("%s exists before the export is complete: %v", file, err)
		}
		// Rows written after the state was recorded, a row cut in two:
		// the rerun drops them and fetches them again.
		f, err := os.OpenFile(file+".part", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("h-99999,2026-01-01T00:00:00Z,1,ios\nh-999")
		f.Close()
		proxy.cut()
		out, err = run("-o", file)
		if err != nil {
			t.Fatalf("rerun: %v\n%s", err, out)
		}
		if !strings.Contains(out, "export: resuming "+file+" after ") {
			t.Errorf("the rerun did not resume:\n%s", out)
		}
		got, _ := os.ReadFile(file)
		if string(got) != want {
			t.Fatalf("the resumed file (%d lines) differs from the export (%d lines)", bytes.Count(got, []byte("\n")), strings.Count(want, "\n"))
		}
		for _, left := range []string{file + ".part", file + ".part.json"} {
			if _, err := os.Stat(left); !os.IsNotExist(err) {
				t.Errorf("%s is left: %v", left, err)
			}
		}
	})

	// The all-in-one wires the dashboard's download to the same export:
	// the demo owner, logged in, downloads the same bytes.
	t.Run("from the dashboard", func(t *testing.T) {
		want := direct("csv")
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.PostForm(n.DashboardURL+"/login", url.Values{"login": {node.DemoEmail}, "password": {node.DemoPassword}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		from, to := now.AddDate(0, 0, -40).Format("2006-01-02"), now.Format("2006-01-02")
		resp, err = c.Get(fmt.Sprintf("%s/apps/%d/export?kind=hits&format=csv&from=%s&to=%s", n.DashboardURL, demo.App.ID, from, to))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || string(got) != want {
			t.Fatalf("the dashboard's download: %d, %v, %d bytes; want the token's %d bytes\n%.300s", resp.StatusCode, err, len(got), len(want), got)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != fmt.Sprintf(`attachment; filename="demo-app-hits-%s-%s.csv"`, from, to) {
			t.Errorf("Content-Disposition %q", cd)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-o", filepath.Join(dir, "x.csv"), "-token", "tl_wrong"}, "401"},
			{[]string{"-o", filepath.Join(dir, "x.csv"), "-from", "yesterday"}, "from:"},
			{[]string{"-o", filepath.Join(dir, "x.csv"), "-kind", "clicks"}, "-kind"},
			{[]string{"-kind", "hits"}, "-o: required"},
		} {
			out, err := run(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("export %q: %v, want an error with %q\n%s", tc.args, err, tc.want, out)
			}
		}
	})
}
