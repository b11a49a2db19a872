package httperr_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"tapline"
	"tapline/internal/httperr"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"invalid", tapline.Errorf(tapline.EINVALID, "bad %s", "name"), 400, tapline.EINVALID, "bad name"},
		{"wrapped not found", errorsJoin(tapline.Errorf(tapline.ENOTFOUND, "no app")), 404, tapline.ENOTFOUND, "no app"},
		{"too large", tapline.Errorf(tapline.ETOOLARGE, "body over 1 MiB"), 413, tapline.ETOOLARGE, "body over 1 MiB"},
		{"gone", tapline.Errorf(tapline.EGONE, "invite used"), 410, tapline.EGONE, "invite used"},
		{"unavailable", tapline.Errorf(tapline.EUNAVAILABLE, "try later"), 503, tapline.EUNAVAILABLE, "try later"},
		{"rate limited", tapline.Errorf(tapline.ERATELIMITED, "slow down"), 429, tapline.ERATELIMITED, "slow down"},
		{"internal hides details", errors.New("pq: password=secret"), 500, tapline.EINTERNAL, "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			httperr.Write(rec, req, slog.New(slog.NewTextHandler(io.Discard, nil)), tt.err)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var body httperr.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("decode %q: %v", rec.Body.String(), err)
			}
			if body.Error != tt.wantCode || body.Message != tt.wantMsg {
				t.Fatalf("body = %+v, want code %q message %q", body, tt.wantCode, tt.wantMsg)
			}
			if (tt.wantStatus == 503 || tt.wantStatus == 429) && rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%d without Retry-After", tt.wantStatus)
			}
		})
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }

// TestWriteKeepsRetryAfter: a rate-limited answer keeps the wait its
// handler worked out.
func TestWriteKeepsRetryAfter(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "42")
	httperr.Write(rec, httptest.NewRequest(http.MethodPost, "/x", nil), slog.New(slog.NewTextHandler(io.Discard, nil)),
		tapline.Errorf(tapline.ERATELIMITED, "slow down"))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "42" {
		t.Fatalf("%d with Retry-After %q, want 429 with 42", rec.Code, rec.Header().Get("Retry-After"))
	}
}
