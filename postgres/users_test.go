package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

// invite makes an invite of email with role to account a, expiring in a
// week from now, and returns it with its token.
func invite(t *testing.T, s *postgres.AccountService, a *tapline.Account, email string, role tapline.Role, now time.Time) (*tapline.Invite, string) {
	t.Helper()
	inv := &tapline.Invite{AccountID: a.ID, Email: email, Role: role, ExpiresAt: now.Add(tapline.InviteLifetime)}
	token, err := s.CreateInvite(context.Background(), inv)
	if err != nil {
		t.Fatalf("CreateInvite(%s): %v", email, err)
	}
	return inv, token
}

// join invites email to a with role and accepts the invite.
func join(t *testing.T, s *postgres.AccountService, a *tapline.Account, email string, role tapline.Role) *tapline.User {
	t.Helper()
	now := time.Now()
	_, token := invite(t, s, a, email, role, now)
	u, err := s.AcceptInvite(context.Background(), token, "password-of-"+email, now)
	if err != nil {
		t.Fatalf("AcceptInvite(%s): %v", email, err)
	}
	return u
}

// TestInvites makes, lists, replaces, revokes and accepts invites: each
// works once, until it expires, within its own account.
func TestInvites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	a, owner := newAccountOwner(t, s, "acme")
	other := newAccount(t, s, "other")
	now := time.Now().UTC().Truncate(time.Second)

	inv := &tapline.Invite{AccountID: a.ID, Email: " Viewer@Example.com ", Role: tapline.RoleViewer, ExpiresAt: now.Add(tapline.InviteLifetime), InvitedBy: owner.ID}
	token, err := s.CreateInvite(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	if inv.ID == 0 || inv.Email != "viewer@example.com" || len(token) < 40 {
		t.Fatalf("invite %+v with token %q: want an id, a lower-case email and a long token", inv, token)
	}
	for _, tc := range []struct {
		name string
		inv  tapline.Invite
		code string
	}{
		{"a user's email", tapline.Invite{AccountID: a.ID, Email: "ACME@example.com", Role: tapline.RoleViewer, ExpiresAt: inv.ExpiresAt}, tapline.ECONFLICT},
		{"another account's user", tapline.Invite{AccountID: a.ID, Email: "other@example.com", Role: tapline.RoleViewer, ExpiresAt: inv.ExpiresAt}, tapline.ECONFLICT},
		{"bad email", tapline.Invite{AccountID: a.ID, Email: "not an email", Role: tapline.RoleViewer, ExpiresAt: inv.ExpiresAt}, tapline.EINVALID},
		{"bad role", tapline.Invite{AccountID: a.ID, Email: "x@example.com", Role: "admin", ExpiresAt: inv.ExpiresAt}, tapline.EINVALID},
		{"no expiry", tapline.Invite{AccountID: a.ID, Email: "x@example.com", Role: tapline.RoleViewer}, tapline.EINVALID},
		{"unknown account", tapline.Invite{AccountID: 999999, Email: "x@example.com", Role: tapline.RoleViewer, ExpiresAt: inv.ExpiresAt}, tapline.ENOTFOUND},
	} {
		_, err := s.CreateInvite(ctx, &tc.inv)
		wantCode(t, "CreateInvite("+tc.name+")", err, tc.code)
	}

	got, acct, err := s.InviteByToken(ctx, token, now)
	if err != nil || got.ID != inv.ID || got.Role != tapline.RoleViewer || got.InvitedBy != owner.ID || acct.ID != a.ID {
		t.Fatalf("InviteByToken = %+v, %+v, %v; want invite %d of account %d", got, acct, err, inv.ID, a.ID)
	}
	_, _, err = s.InviteByToken(ctx, "made-up", now)
	wantCode(t, "InviteByToken(made up)", err, tapline.ENOTFOUND)
	_, _, err = s.InviteByToken(ctx, "", now)
	wantCode(t, "InviteByToken(empty)", err, tapline.ENOTFOUND)

	// Inviting the same email again replaces the pending invite.
	again, token2 := invite(t, s, a, "viewer@example.com", tapline.RoleOwner, now)
	_, _, err = s.InviteByToken(ctx, token, now)
	wantCode(t, "InviteByToken(replaced)", err, tapline.EGONE)
	pending, err := s.Invites(ctx, a.ID, now)
	if err != nil || len(pending) != 1 || pending[0].ID != again.ID || pending[0].Role != tapline.RoleOwner {
		t.Fatalf("Invites = %+v, %v; want only the new one", pending, err)
	}
	if theirs, _ := s.Invites(ctx, other.ID, now); len(theirs) != 0 {
		t.Errorf("another account lists %d invites", len(theirs))
	}

	// Accepting: a weak password is refused and leaves it usable; then it
	// makes the user, once.
	_, err = s.AcceptInvite(ctx, token2, "short", now)
	wantCode(t, "AcceptInvite(weak password)", err, tapline.EINVALID)
	u, err := s.AcceptInvite(ctx, token2, "a-long-password", now)
	if err != nil || u.AccountID != a.ID || u.Email != "viewer@example.com" || u.Role != tapline.RoleOwner {
		t.Fatalf("AcceptInvite = %+v, %v", u, err)
	}
	_, err = s.AcceptInvite(ctx, token2, "a-long-password", now)
	wantCode(t, "AcceptInvite(again)", err, tapline.EGONE)
	_, _, err = s.InviteByToken(ctx, token2, now)
	wantCode(t, "InviteByToken(used)", err, tapline.EGONE)
	if pending, _ := s.Invites(ctx, a.ID, now); len(pending) != 0 {
		t.Errorf("an accepted invite is still pending: %+v", pending)
	}
	if got, _, err := s.Authenticate(ctx, "VIEWER@example.com", "a-long-password"); err != nil || got.ID != u.ID {
		t.Errorf("the new user logs in: %+v, %v", got, err)
	}

	// Expiry.
	_, token3 := invite(t, s, a, "late@example.com", tapline.RoleViewer, now)
	later := now.Add(tapline.InviteLifetime)
	_, _, err = s.InviteByToken(ctx, token3, later)
	wantCode(t, "InviteByToken(expired)", err, tapline.EGONE)
	_, err = s.AcceptInvite(ctx, token3, "a-long-password", later)
	wantCode(t, "AcceptInvite(expired)", err, tapline.EGONE)
	if pending, _ := s.Invites(ctx, a.ID, later); len(pending) != 0 {
		t.Errorf("an expired invite is still pending: %+v", pending)
	}

	// Revoking: only the account's own, only once.
	rev, token4 := invite(t, s, a, "revoked@example.com", tapline.RoleViewer, now)
	wantCode(t, "RevokeInvite(another account's)", s.RevokeInvite(ctx, other.ID, rev.ID), tapline.ENOTFOUND)
	if err := s.RevokeInvite(ctx, a.ID, rev.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "RevokeInvite(again)", s.RevokeInvite(ctx, a.ID, rev.ID), tapline.ENOTFOUND)
	_, err = s.AcceptInvite(ctx, token4, "a-long-password", now)
	wantCode(t, "AcceptInvite(revoked)", err, tapline.EGONE)
}

// TestAcceptInviteConcurrent accepts one invite from many goroutines at
// once: exactly one makes the user, the others find it used.
func TestAcceptInviteConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	a := newAccount(t, s, "acme")
	now := time.Now()
	_, token := invite(t, s, a, "race@example.com", tapline.RoleViewer, now)
	const n = 6
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.AcceptInvite(ctx, token, "a-long-password", now)
			codes[i] = tapline.ErrorCode(err)
		})
	}
	wg.Wait()
	ok, gone := 0, 0
	for _, c := range codes {
		switch c {
		case "":
			ok++
		case tapline.EGONE:
			gone++
		}
	}
	if ok != 1 || gone != n-1 {
		t.Errorf("acceptances: %v; want one success and %d gone", codes, n-1)
	}
	if users, _ := s.Users(ctx, a.ID); len(users) != 2 {
		t.Errorf("the account has %d users, want the owner and one new", len(users))
	}
}

// TestTeamChanges changes roles and removes users: never the last owner,
// never another account's user; a removed user's sessions end.
func TestTeamChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	a, owner := newAccountOwner(t, s, "acme")
	other, theirOwner := newAccountOwner(t, s, "other")
	viewer := join(t, s, a, "viewer@example.com", tapline.RoleViewer)

	users, err := s.Users(ctx, a.ID)
	if err != nil || len(users) != 2 || users[0].ID != owner.ID || users[1].ID != viewer.ID || users[1].Role != tapline.RoleViewer {
		t.Fatalf("Users = %+v, %v; want the owner, then the viewer", users, err)
	}
	wantCode(t, "demote the last owner", s.SetUserRole(ctx, a.ID, owner.ID, tapline.RoleViewer), tapline.ECONFLICT)
	wantCode(t, "remove the last owner", s.RemoveUser(ctx, a.ID, owner.ID), tapline.ECONFLICT)
	wantCode(t, "bad role", s.SetUserRole(ctx, a.ID, viewer.ID, "admin"), tapline.EINVALID)
	wantCode(t, "another account's user's role", s.SetUserRole(ctx, other.ID, viewer.ID, tapline.RoleOwner), tapline.ENOTFOUND)
	wantCode(t, "remove another account's user", s.RemoveUser(ctx, a.ID, theirOwner.ID), tapline.ENOTFOUND)
	wantCode(t, "an unknown user", s.RemoveUser(ctx, a.ID, 999999), tapline.ENOTFOUND)

	// The account name logs its first owner in, never a viewer.
	if u, _, err := s.Authenticate(ctx, "acme", "password1"); err != nil || u.ID != owner.ID {
		t.Errorf("login by the account's name: %+v, %v; want its owner", u, err)
	}
	if _, _, err := s.Authenticate(ctx, "acme", "password-of-viewer@example.com"); tapline.ErrorCode(err) != tapline.EUNAUTHORIZED {
		t.Errorf("the account's name with the viewer's password: %v, want unauthorized", err)
	}

	// With two owners, one may step down; the invites they made pending
	// end with their ownership.
	if err := s.SetUserRole(ctx, a.ID, viewer.ID, tapline.RoleOwner); err != nil {
		t.Fatal(err)
	}
	invNow := time.Now()
	backdoor, err := s.CreateInvite(ctx, &tapline.Invite{AccountID: a.ID, Email: "owner-again@example.com", Role: tapline.RoleOwner,
		ExpiresAt: invNow.Add(tapline.InviteLifetime), InvitedBy: owner.ID})
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := s.CreateInvite(ctx, &tapline.Invite{AccountID: a.ID, Email: "colleague@example.com", Role: tapline.RoleViewer,
		ExpiresAt: invNow.Add(tapline.InviteLifetime), InvitedBy: viewer.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserRole(ctx, a.ID, owner.ID, tapline.RoleViewer); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.InviteByToken(ctx, backdoor, invNow)
	wantCode(t, "the invite of an owner made a viewer", err, tapline.EGONE)
	if _, _, err := s.InviteByToken(ctx, byOther, invNow); err != nil {
		t.Errorf("another owner's invite: %v, want it still usable", err)
	}
	wantCode(t, "demote the new last owner", s.SetUserRole(ctx, a.ID, viewer.ID, tapline.RoleViewer), tapline.ECONFLICT)
	if u, _, err := s.Authenticate(ctx, "acme", "password-of-viewer@example.com"); err != nil || u.ID != viewer.ID {
		t.Errorf("login by the account's name after the first owner stepped down: %+v, %v; want the owner", u, err)
	}

	// Removing ends the user's sessions, and only theirs.
	now := time.Now()
	sid, err := s.CreateSession(ctx, owner, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := s.CreateSession(ctx, theirOwner, now.Add(time.Hour))
	if err := s.RemoveUser(ctx, a.ID, owner.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.SessionUser(ctx, sid, now)
	wantCode(t, "a removed user's session", err, tapline.ENOTFOUND)
	if _, _, err := s.SessionUser(ctx, theirs, now); err != nil {
		t.Errorf("another account's session ended: %v", err)
	}
	_, _, err = s.Authenticate(ctx, "acme@example.com", "password1")
	wantCode(t, "a removed user's login", err, tapline.EUNAUTHORIZED)
}

// TestLastOwnerConcurrent has two owners demote each other at once: the
// account keeps one.
func TestLastOwnerConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	a, first := newAccountOwner(t, s, "acme")
	second := join(t, s, a, "second@example.com", tapline.RoleOwner)
	for range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = s.SetUserRole(ctx, a.ID, second.ID, tapline.RoleViewer) })
		wg.Go(func() { errs[1] = s.RemoveUser(ctx, a.ID, first.ID) })
		wg.Wait()
		users, err := s.Users(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		owners := 0
		for _, u := range users {
			if u.Role == tapline.RoleOwner {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("after demoting and removing the two owners at once (%v): %d owners, want 1", errs, owners)
		}
		// Back to two owners for the next round.
		if errs[0] == nil {
			if err := s.SetUserRole(ctx, a.ID, second.ID, tapline.RoleOwner); err != nil {
				t.Fatal(err)
			}
		} else {
			first = join(t, s, a, "first-"+time.Now().Format("150405.000000000")+"@example.com", tapline.RoleOwner)
		}
	}
}
