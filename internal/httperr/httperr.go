// Package httperr maps tapline error codes to HTTP status codes and writes
// error responses, so every HTTP surface answers errors the same way.
package httperr

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"tapline"
)

var statuses = map[string]int{
	tapline.EINVALID:      http.StatusBadRequest,
	tapline.ENOTFOUND:     http.StatusNotFound,
	tapline.ECONFLICT:     http.StatusConflict,
	tapline.EUNAUTHORIZED: http.StatusUnauthorized,
	tapline.EFORBIDDEN:    http.StatusForbidden,
	tapline.EGONE:         http.StatusGone,
	tapline.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	tapline.ERATELIMITED:  http.StatusTooManyRequests,
	tapline.EUNAVAILABLE:  http.StatusServiceUnavailable,
	tapline.EINTERNAL:     http.StatusInternalServerError,
}

// Status returns the HTTP status for a tapline error code; unknown codes
// are internal errors.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Body is the JSON shape of every error response.
type Body struct {
	Error   string `json:"error"`   // the tapline error code
	Message string `json:"message"` // safe to show
}

// Write answers err as JSON with the status its code maps to. Internal
// errors are logged with the request and shown only as a generic message;
// unavailable ones carry Retry-After, and so do rate-limited ones (the
// caller's own Retry-After when it set one, else a second).
func Write(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := tapline.ErrorCode(err)
	if code == tapline.EINTERNAL {
		logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	switch {
	case code == tapline.EUNAVAILABLE:
		w.Header().Set("Retry-After", "5")
	case code == tapline.ERATELIMITED && w.Header().Get("Retry-After") == "":
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(Status(code))
	_ = json.NewEncoder(w).Encode(Body{Error: code, Message: tapline.ErrorMessage(err)})
}
