package tapline_test

import (
	"strings"
	"testing"
	"time"

	"tapline"
)

func TestInviteUsable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	tests := []struct {
		name string
		inv  tapline.Invite
		msg  string // "" when usable
	}{
		{"pending", tapline.Invite{ExpiresAt: now.Add(time.Second)}, ""},
		{"expires now", tapline.Invite{ExpiresAt: now}, "expired on 2026-03-01 12:00 UTC"},
		{"accepted", tapline.Invite{ExpiresAt: now.Add(time.Hour), AcceptedAt: &past}, "used already"},
		{"revoked", tapline.Invite{ExpiresAt: now.Add(time.Hour), RevokedAt: &past}, "revoked"},
		{"accepted before it expired", tapline.Invite{ExpiresAt: past, AcceptedAt: &past}, "used already"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.inv.Usable(now)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Usable = %v, want nil", err)
				}
				return
			}
			if tapline.ErrorCode(err) != tapline.EGONE || !strings.Contains(tapline.ErrorMessage(err), tt.msg) {
				t.Errorf("Usable = %v, want gone with %q", err, tt.msg)
			}
		})
	}
}
