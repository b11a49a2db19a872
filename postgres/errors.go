package postgres

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"tapline"
)

// PostgreSQL error codes this package reacts to.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
	codeInvalidParameter    = "22023"
	codeTooManyConnections  = "53300"
	codeSerialization       = "40001"
	codeDeadlock            = "40P01"
	codeAdminShutdown       = "57P01"
	codeCrashShutdown       = "57P02"
	codeCannotConnectNow    = "57P03"
	codeUndefinedTable      = "42P01"
)

// pgCode returns the SQLSTATE of a server error in err's chain, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// transient reports whether err means the server is unreachable, restarting
// or overloaded, so the same request may succeed later.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch code := pgCode(err); {
	case code == "":
	case len(code) == 5 && code[:2] == "08": // connection exception
		return true
	case code == codeTooManyConnections, code == codeSerialization, code == codeDeadlock,
		code == codeAdminShutdown, code == codeCrashShutdown, code == codeCannotConnectNow:
		return true
	default:
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var opErr *net.OpError
	return errors.As(err, &connectErr) ||
		errors.As(err, &opErr) ||
		(errors.As(err, &netErr) && netErr.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err)
}

// translate turns an error that is a transient failure into EUNAVAILABLE,
// keeping the original in the message of the wrapper; other errors come back
// unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if tapline.ErrorCode(err) != tapline.EINTERNAL {
		return err
	}
	if transient(err) {
		return &unavailableError{err: err}
	}
	return err
}

// unavailableError is an EUNAVAILABLE *tapline.Error that still unwraps to
// the driver error behind it, for logs.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "postgres unavailable: " + e.err.Error() }

func (e *unavailableError) Unwrap() []error {
	return []error{tapline.Errorf(tapline.EUNAVAILABLE, "The database is unavailable; retry later."), e.err}
}
