package tapline

import (
	"errors"
	"fmt"
)

// Error codes shared by every layer. Only the HTTP layer maps them to status
// codes; adapters translate driver errors into them.
const (
	EINVALID      = "invalid"      // the input is malformed or breaks a rule
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	ECONFLICT     = "conflict"     // the thing exists already
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	EFORBIDDEN    = "forbidden"    // credentials valid, access denied
	EGONE         = "gone"         // it existed but is used up, expired or revoked
	ETOOLARGE     = "too_large"    // the request body is over its limit
	ERATELIMITED  = "rate_limited" // the caller sent too much too fast; retry after Retry-After
	EUNAVAILABLE  = "unavailable"  // a backend is down or overloaded; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is a domain error carrying a code and a message safe to show to the
// caller. Internal errors are wrapped with fmt.Errorf instead and are logged,
// never shown.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("tapline error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for any other error so internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrStorageFull is the error, or in the chain of the error, of a store
// that refuses a write because the disk under it is full or below its
// reserve of free space: EUNAVAILABLE, since space may return. Nothing
// of the refused write is kept.
var ErrStorageFull = &Error{Code: EUNAVAILABLE, Message: "Storage is full; the event was not stored. Retry later."}
