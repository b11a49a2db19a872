package export_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
	"tapline/export"
)

// bufSink gathers a download as a file would: the header once, then the
// rows.
type bufSink struct {
	buf     bytes.Buffer
	header  bool
	rows    int
	cursors []string
}

func (s *bufSink) Header(line []byte) error {
	if !s.header {
		s.header = true
		s.buf.Write(line)
	}
	return nil
}

func (s *bufSink) Row(line []byte, cursor string) error {
	s.rows++
	s.cursors = append(s.cursors, cursor)
	s.buf.Write(line)
	return nil
}

// cutter passes on the first left bytes of a response, then a part of
// the next write (a row cut in two), and then cuts the connection.
type cutter struct {
	http.ResponseWriter
	left int
}

func (c *cutter) Write(p []byte) (int, error) {
	if len(p) <= c.left {
		c.left -= len(p)
		return c.ResponseWriter.Write(p)
	}
	_, _ = c.ResponseWriter.Write(p[:c.left+min(len(p)-c.left, 17)])
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}

func (c *cutter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// cutting cuts the first cuts responses of h after n bytes each.
func cutting(h http.Handler, cuts int32, n int) (http.Handler, *atomic.Int32) {
	var done atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if done.Add(1) <= cuts {
			w = &cutter{ResponseWriter: w, left: n}
		}
		h.ServeHTTP(w, r)
	}), &done
}

// TestClientResumes downloads every kind in both formats through
// responses cut mid-row, and gets exactly the uncut export.
func TestClientResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putHits(e.app, 900)
	e.putEvents(e.app, 900)
	e.putConversions(e.app, 900)
	for _, kind := range export.Kinds {
		for _, format := range []string{export.FormatNDJSON, export.FormatCSV} {
			t.Run(kind+"/"+format, func(t *testing.T) {
				t.Parallel()
				whole, _ := e.read(e.path(e.app, kind, "format="+format))
				if format == export.FormatNDJSON {
					whole = whole[:strings.LastIndex(whole[:len(whole)-1], "\n")+1] // without the trailer line
				}
				h, requests := cutting(e.api.Handler(), 4, 20000)
				srv := httptest.NewServer(h)
				defer srv.Close()
				var retries int
				c := &export.Client{BaseURL: srv.URL, Token: e.token, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
					OnRetry: func(error, time.Duration) { retries++ }}
				var sink bufSink
				cursor, err := c.Download(t.Context(), export.Request{AppID: e.app.ID, Kind: kind, Format: format}, &sink)
				if err != nil {
					t.Fatal(err)
				}
				if sink.buf.String() != whole {
					t.Fatalf("the download through cut responses (%d rows) differs from the export (%d bytes, got %d)",
						sink.rows, len(whole), sink.buf.Len())
				}
				if retries != 4 || requests.Load() != 5 || cursor != sink.cursors[len(sink.cursors)-1] {
					t.Errorf("%d retries in %d requests, cursor %q; want 4 in 5, the last row's", retries, requests.Load(), cursor)
				}
			})
		}
	}
}

// failingRaw fails its scans as planned: the first after plan[0] rows,
// the next after plan[1], and so on; the scans past the plan do not fail.
type failingRaw struct {
	export.RawRows
	mu      sync.Mutex
	plan    []int
	delay   time.Duration // between rows
	started chan struct{} // closed at the first row, when set
	release chan struct{} // the first row waits for it, when set
}

var errStoreDown = tapline.Errorf(tapline.EUNAVAILABLE, "The raw store is down.")

func (f *failingRaw) ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Hit) error) error {
	f.mu.Lock()
	failAt := -1
	if len(f.plan) > 0 {
		failAt, f.plan = f.plan[0], f.plan[1:]
	}
	f.mu.Unlock()
	n := 0
	return f.RawRows.ScanHitRows(ctx, appID, from, to, after, func(h *tapline.Hit) error {
		if n++; failAt >= 0 && n > failAt {
			return errStoreDown
		}
		if n == 1 && f.started != nil {
			close(f.started)
		}
		if n == 1 && f.release != nil {
			<-f.release
		}
		time.Sleep(f.delay)
		return fn(h)
	})
}

// TestStoreFailure checks that a store failing mid-export cuts the
// response short, without its trailer, that one failing before the first
// row is a JSON 503, and that a client resumes through both.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putHits(e.app, 1500)
	whole, _ := e.read(e.path(e.app, "hits", ""))
	raw := &failingRaw{RawRows: e.raw, plan: []int{1000, 0, 1000, 0}}
	api := export.New(e.accounts, e.reports)
	api.Raw = raw
	api.Logger = e.api.Logger
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+e.path(e.app, "hits", ""), nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(string(b), "next_cursor") || bytes.Count(b, []byte("\n")) < 1000 {
		t.Fatalf("a failure after 1000 rows: %d, %d lines, %v; want 200, 1000 rows or more and no end", resp.StatusCode, bytes.Count(b, []byte("\n")), err)
	}

	checkError(t, req.Clone(t.Context()), 503, tapline.EUNAVAILABLE, "raw store is down")

	// A client resumes after a failure at row 1000 and one at the first.
	var sink bufSink
	retries := 0
	c := &export.Client{BaseURL: srv.URL, Token: e.token, MinBackoff: time.Millisecond, OnRetry: func(error, time.Duration) { retries++ }}
	if _, err := c.Download(t.Context(), export.Request{AppID: e.app.ID, Kind: "hits"}, &sink); err != nil {
		t.Fatal(err)
	}
	if want := whole[:strings.LastIndex(whole[:len(whole)-1], "\n")+1]; sink.buf.String() != want || retries != 2 {
		t.Errorf("downloaded %d rows after %d retries, want the export's 1500 after 2", sink.rows, retries)
	}

	// A refusal ends a download at once.
	c.Token = "tl_nope"
	if _, err := c.Download(t.Context(), export.Request{AppID: e.app.ID, Kind: "hits"}, &bufSink{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a download with a wrong token: %v, want the 401", err)
	}
}

// TestSlowExportOutlastsTimeouts streams an export for longer than the
// server's write timeout (and its read timeout): it must neither be
// cancelled nor cut.
func TestSlowExportOutlastsTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putHits(e.app, 300)
	api := export.New(e.accounts, e.reports)
	api.Raw = &failingRaw{RawRows: e.raw, delay: 2 * time.Millisecond}
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c := &export.Client{BaseURL: srv.URL, Token: e.token, OnRetry: func(err error, _ time.Duration) { t.Errorf("retry: %v", err) }}
	var sink bufSink
	start := time.Now()
	if _, err := c.Download(t.Context(), export.Request{AppID: e.app.ID, Kind: "hits", Format: "csv"}, &sink); err != nil || sink.rows != 300 {
		t.Fatalf("%d rows, %v", sink.rows, err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("the export took %s, not past the timeouts", d)
	}
}

// TestCloseAndLimit checks that Close cuts running exports short and
// refuses new ones, and that exports past MaxRunning wait their turn.
func TestCloseAndLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putHits(e.app, 50)
	raw := &failingRaw{RawRows: e.raw, started: make(chan struct{}), release: make(chan struct{})}
	api := export.New(e.accounts, e.reports)
	api.Raw, api.MaxRunning, api.Logger = raw, 1, e.api.Logger
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	get := func() *http.Request {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+e.path(e.app, "hits", ""), nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		return req
	}
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(get())
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{b, err}
	}()
	<-raw.started
	checkError(t, get(), 503, tapline.EUNAVAILABLE, "at most 1 at once")
	if err := api.Close(); err != nil {
		t.Fatal(err)
	}
	close(raw.release)
	// Nothing of it was sent yet: it is answered the 503 a new one gets.
	if r := <-done; r.err != nil || !strings.Contains(string(r.body), "shutting down") {
		t.Errorf("an export running at Close ended with %v and %q, want a 503", r.err, r.body)
	}
	checkError(t, get(), 503, tapline.EUNAVAILABLE, "shutting down")
	if err := api.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// endlessRaw delivers made-up hits until fn or ctx stops it.
type endlessRaw struct{ export.RawRows }

func (endlessRaw) ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Hit) error) error {
	at := time.Now().UTC()
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &tapline.Hit{ID: fmt.Sprintf("h-%09d", i), AppID: appID, Time: at, Platform: tapline.PlatformWeb, Model: strings.Repeat("m", 200)}
		if err := fn(h); err != nil {
			return err
		}
	}
}

// TestCloseStalledClient checks that Close ends at once an export whose
// client stopped reading, blocked in a write.
func TestCloseStalledClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := export.New(e.accounts, e.reports)
	api.Raw, api.Logger = endlessRaw{}, e.api.Logger
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ended)
		api.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+e.path(e.app, "hits", ""), nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read nothing: the server fills the connection's buffers and
	// blocks in a write.
	time.Sleep(300 * time.Millisecond)
	select {
	case <-ended:
		t.Fatal("the endless export ended by itself")
	default:
	}
	start := time.Now()
	if err := api.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
		t.Logf("the export ended %s after Close", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the export still runs 5 s after Close")
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the cut export read to a clean end")
	}
}
