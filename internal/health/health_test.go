package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
)

// TestChecker checks the answers, the cache and the timeout of a Checker
// whose checks are counted, on a clock the test moves.
func TestChecker(t *testing.T) {
	now := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	fail := atomic.Bool{}
	c := &Checker{
		Checks: []Check{
			{Name: "a", Run: func(context.Context) (string, error) { calls.Add(1); return "fine", nil }},
			{Name: "b", Run: func(context.Context) (string, error) {
				if fail.Load() {
					return "7 messages", tapline.Errorf(tapline.EUNAVAILABLE, "Too far behind.")
				}
				return "0 messages", nil
			}},
			{Name: "slow", Run: func(ctx context.Context) (string, error) {
				if fail.Load() {
					<-ctx.Done()
					return "", fmt.Errorf("wait: %w", ctx.Err())
				}
				return "quick", nil
			}},
		},
		Timeout: 50 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:     func() time.Time { return now },
	}
	get := func() (int, Report) {
		t.Helper()
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var rep Report
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		return rec.Code, rep
	}
	code, rep := get()
	if code != http.StatusOK || rep.Status != "ok" || len(rep.Checks) != 3 || rep.Checks[0].Value != "fine" || !rep.Checks[1].OK {
		t.Fatalf("healthy: %d %+v, want 200 ok with 3 passed checks", code, rep)
	}
	fail.Store(true)
	now = now.Add(999 * time.Millisecond)
	if code, _ := get(); code != http.StatusOK || calls.Load() != 1 {
		t.Errorf("within the TTL: %d after %d runs, want the cached 200 after 1", code, calls.Load())
	}
	now = now.Add(time.Millisecond)
	code, rep = get()
	if calls.Load() != 2 {
		t.Errorf("after the TTL the checks ran %d times in all, want 2", calls.Load())
	}
	want := []Result{
		{Name: "a", OK: true, Value: "fine"},
		{Name: "b", Value: "7 messages", Error: "Too far behind."},
		{Name: "slow", Error: "No answer within 50ms."},
	}
	if code != http.StatusServiceUnavailable || rep.Status != "failing" || fmt.Sprint(rep.Checks) != fmt.Sprint(want) {
		t.Errorf("failing: %d %+v, want 503 failing with %+v", code, rep, want)
	}
}

// TestCheckerHidesInternalErrors checks that an error that is not a
// tapline error is not shown, and that no checks at all is a failure.
func TestCheckerHidesInternalErrors(t *testing.T) {
	c := &Checker{Checks: []Check{{Name: "db", Run: func(context.Context) (string, error) {
		return "", errors.New("dial tcp 10.1.2.3:5432: connection refused")
	}}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rep := c.Check(context.Background())
	if rep.OK() || rep.Checks[0].Error != "Internal error." {
		t.Errorf("report %+v, want failing with the error hidden", rep)
	}
	empty := &Checker{}
	if rep := empty.Check(context.Background()); rep.OK() {
		t.Errorf("a checker without checks reports %+v, want failing", rep)
	}
}
