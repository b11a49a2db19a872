package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"tapline"
)

// limitBodies bounds the body of every request to maxBody bytes, the
// largest any route accepts; routes that take less (the what-if request,
// 16 KiB) bound theirs further. A request that declares a longer body
// (Content-Length) is answered 413 before any handler runs; one that sends
// a longer body without declaring it fails when the handler reads past the
// bound, which answers 413 too (parseForm, bodyError, decodeJSON), and the
// server closes the connection after the answer.
func (d *Dashboard) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			err := tooLarge(maxBody)
			if isAPIPath(r.URL.Path) {
				d.writeJSONError(w, r, err)
			} else {
				d.writeError(w, r, err)
			}
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// isAPIPath reports whether path is under the JSON or the admin API, which
// answer errors as JSON; the pages answer them as HTML.
func isAPIPath(path string) bool {
	return strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/admin/")
}

// tooLarge is the error of a body over limit bytes.
func tooLarge(limit int64) error {
	return tapline.Errorf(tapline.ETOOLARGE, "The body is over %d KiB.", limit>>10)
}

// parseForm reads r's form, bounded by maxBody: ETOOLARGE when the body is
// longer, EINVALID when it cannot be read.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		if e, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(e.Limit)
		}
		return tapline.Errorf(tapline.EINVALID, "The form could not be read.")
	}
	return nil
}

// bodyError is the error of a JSON body that failed to decode from a
// reader bounded by limit bytes: ETOOLARGE when the body is longer, else
// EINVALID with format (one %v, the decoder's error).
func bodyError(err error, limit int64, format string) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(limit)
	}
	return tapline.Errorf(tapline.EINVALID, format, fmt.Sprint(err))
}
