package loadgen_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"tapline/loadgen"
)

// TestOpenLoopNotSent holds every answer back until the offer is over: the
// client may start MaxInFlight requests only, and every later one that
// fell due is counted as not sent, not silently skipped.
func TestOpenLoopNotSent(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	time.AfterFunc(900*time.Millisecond, func() { close(release) })
	client := loadgen.NewClient(64)
	o := &loadgen.OpenLoop{Rate: 2000, Duration: 500 * time.Millisecond, MaxInFlight: 50}
	res := o.Run(context.Background(), func(ctx context.Context) (bool, bool) {
		return get(ctx, client, srv.URL+"/ok")
	})
	want := o.Rate * o.Duration.Seconds()
	if res.Sent != 50 || arrived.Load() != 50 {
		t.Errorf("sent %d, server saw %d; want 50 (MaxInFlight) each", res.Sent, arrived.Load())
	}
	if res.Attempted != res.Sent+res.NotSent {
		t.Errorf("attempted %d != sent %d + not sent %d", res.Attempted, res.Sent, res.NotSent)
	}
	// A loaded machine may end the last tick early; never more than due.
	if float64(res.Attempted) > want || float64(res.Attempted) < 0.7*want {
		t.Errorf("attempted %d, want about %.0f (rate x duration)", res.Attempted, want)
	}
	if res.Answered != 50 || res.OK != 50 {
		t.Errorf("answered %d, ok %d; want 50 each", res.Answered, res.OK)
	}
	if res.P99 < 300*time.Millisecond {
		t.Errorf("p99 %s, want the answers' wait (at least 300 ms)", res.P99)
	}
}

// TestOpenLoopAnswers offers to a server that keeps up: everything due is
// sent and answered, and only the answers send judges good count as OK.
func TestOpenLoopAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	client := loadgen.NewClient(64)
	var n atomic.Int64
	o := &loadgen.OpenLoop{Rate: 400, Duration: 500 * time.Millisecond, MaxInFlight: 10_000}
	res := o.Run(context.Background(), func(ctx context.Context) (bool, bool) {
		path := "/ok"
		if n.Add(1)%2 == 0 {
			path = "/bad"
		}
		return get(ctx, client, srv.URL+path)
	})
	if res.NotSent != 0 || res.Sent != res.Attempted || res.Answered != res.Sent {
		t.Errorf("attempted %d, sent %d, not sent %d, answered %d; want all sent and answered", res.Attempted, res.Sent, res.NotSent, res.Answered)
	}
	if res.Attempted < 100 {
		t.Errorf("attempted %d, want about 200", res.Attempted)
	}
	if good := (res.Sent + 1) / 2; res.OK != good {
		t.Errorf("ok %d of %d, want %d (every other request answered 503)", res.OK, res.Sent, good)
	}
}

func get(ctx context.Context, client *http.Client, url string) (answered, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true, resp.StatusCode == http.StatusFound
}
