package cassandra

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/gocql/gocql"

	"tapline"
)

// translate turns a gocql error into a tapline error: ErrNotFound into
// ENOTFOUND, an unreachable, overloaded or timing-out cluster into
// EUNAVAILABLE (which still unwraps to the driver error, for logs). Context
// errors, tapline errors and anything else come back unchanged.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case tapline.ErrorCode(err) != tapline.EINTERNAL:
		return err
	case errors.Is(err, gocql.ErrNotFound):
		return tapline.Errorf(tapline.ENOTFOUND, "Not found.")
	case unavailable(err):
		return &unavailableError{err: err}
	}
	return err
}

// unavailable reports whether err means the cluster is unreachable, short
// of replicas, overloaded or too slow, so the same request may succeed
// later.
func unavailable(err error) bool {
	var (
		unavail  *gocql.RequestErrUnavailable
		writeTO  *gocql.RequestErrWriteTimeout
		readTO   *gocql.RequestErrReadTimeout
		casUnk   *gocql.RequestErrCASWriteUnknown
		reqErr   gocql.RequestError
		netErr   net.Error
		opErr    *net.OpError
		sentinel = []error{
			gocql.ErrNoConnections, gocql.ErrNoConnectionsStarted, gocql.ErrSessionClosed,
			gocql.ErrTimeoutNoResponse, gocql.ErrConnectionClosed, gocql.ErrTooManyTimeouts,
			gocql.ErrNoStreams, gocql.ErrUnavailable, gocql.ErrHostQueryFailed,
			syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
		}
	)
	for _, s := range sentinel {
		if errors.Is(err, s) {
			return true
		}
	}
	if errors.As(err, &unavail) || errors.As(err, &writeTO) || errors.As(err, &readTO) || errors.As(err, &casUnk) {
		return true
	}
	if errors.As(err, &reqErr) {
		switch reqErr.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeCASWriteUnknown:
			return true
		}
		return false
	}
	return errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout())
}

// unavailableError is an EUNAVAILABLE *tapline.Error that still unwraps to
// the driver error behind it.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "cassandra unavailable: " + e.err.Error() }

func (e *unavailableError) Unwrap() []error {
	return []error{tapline.Errorf(tapline.EUNAVAILABLE, "The raw store is unavailable; retry later."), e.err}
}
