package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"tapline"
)

func codeOf(err error) string { return tapline.ErrorCode(err) }

func TestDays(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	d0 := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC) // a day boundary
	n0 := int32(d0.Unix() / 86400)
	ns := func(t time.Time) int64 { return t.UnixNano() }
	tests := []struct {
		name     string
		from, to time.Time
		want     []int32
	}{
		{"OneInstant", d0.Add(time.Hour), d0.Add(time.Hour), []int32{n0}},
		{"WithinADay", d0, d0.Add(day - time.Nanosecond), []int32{n0}},
		{"EndsOnNextDay", d0, d0.Add(day), []int32{n0 + 1, n0}},
		{"StartsAtLastNanosecond", d0.Add(-time.Nanosecond), d0, []int32{n0, n0 - 1}},
		{"ThreeDaysNewestFirst", d0.Add(-day + time.Hour), d0.Add(day + time.Hour), []int32{n0 + 1, n0, n0 - 1}},
		{"Reversed", d0.Add(day), d0, nil},
		{"BeforeEpoch", time.Unix(0, 0).Add(-36 * time.Hour), time.Unix(0, 0).Add(-time.Nanosecond), []int32{-1, -2}},
		{"AroundEpoch", time.Unix(0, -1), time.Unix(0, 0), []int32{0, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := days(ns(tt.from), ns(tt.to))
			if !slices.Equal(got, tt.want) {
				t.Errorf("days(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

// TestDayOfMin checks the bucket of the clamped zero time (tapline.UnixNanos
// is tested in the root package).
func TestDayOfMin(t *testing.T) {
	t.Parallel()
	if d := dayOf(math.MinInt64); d >= 0 || int64(d) != math.MinInt64/int64(24*time.Hour)-1 {
		t.Errorf("dayOf(min) = %d", d)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"Nil", nil, ""},
		{"NotFound", gocql.ErrNotFound, tapline.ENOTFOUND},
		{"WrappedNotFound", fmt.Errorf("get: %w", gocql.ErrNotFound), tapline.ENOTFOUND},
		{"Unavailable", &gocql.RequestErrUnavailable{Required: 2, Alive: 1}, tapline.EUNAVAILABLE},
		{"WrappedUnavailable", fmt.Errorf("put: %w", &gocql.RequestErrUnavailable{}), tapline.EUNAVAILABLE},
		{"WriteTimeout", &gocql.RequestErrWriteTimeout{WriteType: "CAS"}, tapline.EUNAVAILABLE},
		{"ReadTimeout", &gocql.RequestErrReadTimeout{}, tapline.EUNAVAILABLE},
		{"CASWriteUnknown", &gocql.RequestErrCASWriteUnknown{}, tapline.EUNAVAILABLE},
		{"NoConnections", gocql.ErrNoConnections, tapline.EUNAVAILABLE},
		{"NoConnectionsStarted", gocql.ErrNoConnectionsStarted, tapline.EUNAVAILABLE},
		{"ClientTimeout", gocql.ErrTimeoutNoResponse, tapline.EUNAVAILABLE},
		{"ConnectionClosed", gocql.ErrConnectionClosed, tapline.EUNAVAILABLE},
		{"SessionClosed", gocql.ErrSessionClosed, tapline.EUNAVAILABLE},
		{"ConnectionRefused", refused, tapline.EUNAVAILABLE},
		{"AlreadyExists", &gocql.RequestErrAlreadyExists{Keyspace: "k"}, tapline.EINTERNAL},
		{"ReadFailure", &gocql.RequestErrReadFailure{}, tapline.EINTERNAL},
		{"Other", errors.New("boom"), tapline.EINTERNAL},
		{"Canceled", context.Canceled, tapline.EINTERNAL},
		{"TaplineErrorKept", tapline.Errorf(tapline.EINVALID, "bad"), tapline.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err)
			if code := codeOf(got); code != tt.want {
				t.Errorf("translate(%v) code = %q, want %q", tt.err, code, tt.want)
			}
			if tt.err != nil && tt.want != tapline.ENOTFOUND && !errors.Is(got, tt.err) {
				t.Errorf("translate(%v) = %v, which no longer wraps the original", tt.err, got)
			}
		})
	}
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return port
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	s := NewRawStore(Config{
		Hosts:          []string{fmt.Sprintf("127.0.0.1:%d", closedPort(t))},
		ConnectTimeout: 500 * time.Millisecond,
		Timeout:        500 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := s.Open(ctx)
	if got := codeOf(err); got != tapline.EUNAVAILABLE {
		t.Errorf("Open against a closed port: code %q (%v), want %q", got, err, tapline.EUNAVAILABLE)
	} else {
		t.Logf("Open: %v", err)
	}
	if err := s.Migrate(ctx); codeOf(err) != tapline.EUNAVAILABLE {
		t.Errorf("Migrate against a closed port: %v, want %s", err, tapline.EUNAVAILABLE)
	}
	// The store was never opened: operations say so, Close is harmless.
	if _, err := s.Hit(ctx, 1, "h"); codeOf(err) != tapline.EUNAVAILABLE {
		t.Errorf("Hit on an unopened store: %v, want %s", err, tapline.EUNAVAILABLE)
	}
	if _, err := s.PutHit(ctx, &tapline.Hit{ID: "h", AppID: 1}); codeOf(err) != tapline.EUNAVAILABLE {
		t.Errorf("PutHit on an unopened store: %v, want %s", err, tapline.EUNAVAILABLE)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close %d: %v", i+1, err)
		}
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	t.Parallel()
	s := NewRawStore(Config{Keyspace: "bad-name"})
	err := s.Open(t.Context())
	if err == nil {
		t.Fatal("Open with no hosts and a bad keyspace = nil, want a validation error")
	}
	if err := s.Migrate(t.Context()); err == nil {
		t.Error("Migrate with an invalid config = nil, want a validation error")
	}
}

func TestPutRejectsMissingID(t *testing.T) {
	t.Parallel()
	s := NewRawStore(Config{Hosts: []string{"127.0.0.1"}})
	ctx := t.Context()
	if _, err := s.PutHit(ctx, &tapline.Hit{AppID: 1}); codeOf(err) != tapline.EINVALID {
		t.Errorf("PutHit without id: %v, want %s", err, tapline.EINVALID)
	}
	if _, err := s.PutEvent(ctx, nil); codeOf(err) != tapline.EINVALID {
		t.Errorf("PutEvent(nil): %v, want %s", err, tapline.EINVALID)
	}
	if err := s.PutConversion(ctx, &tapline.Conversion{AppID: 1}); codeOf(err) != tapline.EINVALID {
		t.Errorf("PutConversion without id: %v, want %s", err, tapline.EINVALID)
	}
}

func TestCASUncertain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"WriteTimeout", fmt.Errorf("x: %w", &gocql.RequestErrWriteTimeout{WriteType: "CAS"}), true},
		{"ReadTimeout", &gocql.RequestErrReadTimeout{}, true},
		{"CASWriteUnknown", &gocql.RequestErrCASWriteUnknown{}, true},
		{"ClientTimeout", gocql.ErrTimeoutNoResponse, true},
		{"ConnectionClosed", gocql.ErrConnectionClosed, true},
		{"Unavailable", &gocql.RequestErrUnavailable{}, false},
		{"NoConnections", gocql.ErrNoConnections, false},
		{"Other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := casUncertain(tt.err); got != tt.want {
			t.Errorf("%s: casUncertain(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestCASExisting(t *testing.T) {
	t.Parallel()
	data := []byte(`{"id":"h1"}`)
	tests := []struct {
		name     string
		row      map[string]any
		wantData []byte
		wantTime int64
		wantOK   bool
	}{
		// What MapScanCAS leaves of a refused INSERT ... IF NOT EXISTS
		// on hits or events: every column of the existing row.
		{"ExistingRow", map[string]any{"app_id": int64(7), "id": "h1", "data": data, "time_ns": int64(42)}, data, 42, true},
		{"NegativeTime", map[string]any{"data": data, "time_ns": int64(-5)}, data, -5, true},
		{"NoColumns", map[string]any{}, nil, 0, false},
		{"NullData", map[string]any{"data": []byte(nil), "time_ns": int64(42)}, nil, 42, false},
		{"NoTime", map[string]any{"data": data}, data, 0, false},
		{"WrongTimeType", map[string]any{"data": data, "time_ns": 42}, data, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotData, gotTime, gotOK := casExisting(tt.row)
			if gotOK != tt.wantOK || gotTime != tt.wantTime || string(gotData) != string(tt.wantData) {
				t.Errorf("casExisting(%v) = %q, %d, %v; want %q, %d, %v",
					tt.row, gotData, gotTime, gotOK, tt.wantData, tt.wantTime, tt.wantOK)
			}
		})
	}
}

func TestTransientRetry(t *testing.T) {
	t.Parallel()
	r := &transientRetry{}
	var _ gocql.RetryPolicy = r
	tests := []struct {
		name string
		err  error
		want gocql.RetryType
	}{
		{"Unavailable", &gocql.RequestErrUnavailable{}, gocql.RetryNextHost},
		{"WriteTimeout", &gocql.RequestErrWriteTimeout{WriteType: "SIMPLE"}, gocql.RetryNextHost},
		{"ReadTimeout", &gocql.RequestErrReadTimeout{}, gocql.RetryNextHost},
		{"ClientTimeout", gocql.ErrTimeoutNoResponse, gocql.RetryNextHost},
		{"NoConnections", gocql.ErrNoConnections, gocql.RetryNextHost},
		{"ConnectionClosed", gocql.ErrConnectionClosed, gocql.RetryNextHost},
		{"Refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, gocql.RetryNextHost},
		{"InvalidStatement", errors.New("unconfigured table hits"), gocql.Rethrow},
		{"Canceled", context.Canceled, gocql.Rethrow},
	}
	for _, tt := range tests {
		if got := r.GetRetryType(tt.err); got != tt.want {
			t.Errorf("%s: GetRetryType(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
