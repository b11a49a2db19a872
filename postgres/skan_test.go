package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

var skanDay = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// skanPostback is a verified 4.0 postback of app for transaction tx.
func skanPostback(app *tapline.App, tx string, window int, value string) *tapline.SKANPostback {
	p := &tapline.SKANPostback{AppID: app.ID, Kind: tapline.SKANKindSKAdNetwork, Version: "4.0", Via: tapline.SKANViaDeveloper,
		AdNetworkID: "example123.skadnetwork", SourceIdentifier: "5239", AppStoreID: app.AppStoreID, TransactionID: tx, Window: window,
		FidelityType: 1, Status: tapline.SKANVerified, Key: fmt.Sprintf("skadnetwork:%s:%d", tx, window), ReceivedAt: skanDay,
		Raw: fmt.Appendf(nil, `{"transaction-id":%q,"postback-sequence-index":%d}`, tx, window)}
	if err := (&tapline.ConversionSchema{}).SetLabel(value, "x"); value != "" && err == nil {
		var fine int
		if _, err := fmt.Sscan(value, &fine); err == nil {
			p.ConversionValue = &fine
		} else {
			p.CoarseValue = value
		}
	}
	return p
}

func TestAppStoreID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, _ := newService(t)
	a := newAccount(t, accts, "skan-ids")
	app := &tapline.App{AccountID: a.ID, Name: "Game", AppStoreID: 525463029}
	app.ConversionSchema.Fine[20], app.ConversionSchema.Coarse[2] = " purchase ", "paying"
	if err := accts.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	got, err := accts.AppByAppStoreID(ctx, 525463029)
	if err != nil || got.ID != app.ID || got.ConversionSchema.Fine[20] != "purchase" || got.ConversionSchema.Coarse[2] != "paying" {
		t.Fatalf("AppByAppStoreID = %+v, %v", got, err)
	}
	for _, id := range []int64{0, -1, 1} {
		_, err := accts.AppByAppStoreID(ctx, id)
		wantCode(t, fmt.Sprintf("AppByAppStoreID(%d)", id), err, tapline.ENOTFOUND)
	}
	// No second app takes the id, in this account or another.
	other := newApp(t, accts, newAccount(t, accts, "skan-other").ID, "Other")
	other.AppStoreID = 525463029
	err = accts.UpdateApp(ctx, other)
	wantCode(t, "a taken App Store id", err, tapline.ECONFLICT)
	if !strings.Contains(tapline.ErrorMessage(err), "App Store id") {
		t.Errorf("conflict message %q", tapline.ErrorMessage(err))
	}
	wantCode(t, "create with a taken id", accts.CreateApp(ctx, &tapline.App{AccountID: a.ID, Name: "Copy", AppStoreID: 525463029}), tapline.ECONFLICT)
	// Apps without one are many.
	third := newApp(t, accts, a.ID, "Third")
	if got, _ := accts.App(ctx, other.ID); third.AppStoreID != 0 || got.AppStoreID != 0 {
		t.Errorf("apps without an App Store id: %d, %d", third.AppStoreID, got.AppStoreID)
	}
	// Cleared, the id is free again; the schema is replaced whole.
	app.AppStoreID = 0
	app.ConversionSchema = tapline.ConversionSchema{}
	app.ConversionSchema.Fine[1] = "open"
	if err := accts.UpdateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	other.AppStoreID = 525463029
	if err := accts.UpdateApp(ctx, other); err != nil {
		t.Fatalf("the freed id: %v", err)
	}
	if got, _ := accts.App(ctx, app.ID); got.AppStoreID != 0 || got.ConversionSchema.Values()[0] != "1" || len(got.ConversionSchema.Values()) != 1 {
		t.Errorf("after the update: %+v", got)
	}
	for name, bad := range map[string]func(a *tapline.App){
		"negative id":          func(a *tapline.App) { a.AppStoreID = -5 },
		"long label":           func(a *tapline.App) { a.ConversionSchema.Fine[3] = strings.Repeat("x", 101) },
		"label with a newline": func(a *tapline.App) { a.ConversionSchema.Coarse[0] = "a\nb" },
	} {
		b := *third
		bad(&b)
		wantCode(t, name, accts.UpdateApp(ctx, &b), tapline.EINVALID)
	}
}

// TestRecordSKANPostback checks that a postback counts once by its key,
// whatever comes again, and that the counts add up per outcome.
func TestRecordSKANPostback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	a := newAccount(t, accts, "skan-rec")
	app := &tapline.App{AccountID: a.ID, Name: "Game", AppStoreID: 42}
	if err := accts.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	s := postgres.NewSKANStore(db)
	record := func(p *tapline.SKANPostback) *tapline.SKANPostback {
		t.Helper()
		if err := s.RecordSKANPostback(ctx, p); err != nil {
			t.Fatalf("record %s: %v", p.Key, err)
		}
		return p
	}

	first := record(skanPostback(app, "t1", 0, "20"))
	if first.ID == 0 || first.Status != tapline.SKANVerified || first.Received != 1 {
		t.Fatalf("first = %+v", first)
	}
	// Apple's retry: the same body.
	again := record(skanPostback(app, "t1", 0, "20"))
	if again.ID != first.ID || again.Status != tapline.SKANVerified || again.Received != 2 {
		t.Errorf("the same body again = %+v, want row %d received twice", again, first.ID)
	}
	// A network's forward of it: another body, the same key.
	fwd := skanPostback(app, "t1", 0, "20")
	fwd.Via, fwd.Raw = tapline.SKANViaNetwork, []byte(`{"transaction-id":"t1","network-extra":1}`)
	record(fwd)
	if fwd.ID == first.ID || fwd.Status != tapline.SKANDuplicate || !strings.Contains(fwd.Reason, fmt.Sprint(first.ID)) {
		t.Errorf("forward = %+v, want a duplicate naming %d", fwd, first.ID)
	}
	// A forged one with the same key is rejected and blocks nothing.
	forged := skanPostback(app, "t2", 0, "63")
	forged.Status, forged.Reason, forged.Raw = tapline.SKANRejected, "the signature does not match", []byte(`{"forged":true}`)
	record(forged)
	real := record(skanPostback(app, "t2", 0, "63"))
	if forged.Status != tapline.SKANRejected || real.Status != tapline.SKANVerified {
		t.Errorf("forged %s, real %s; want rejected, verified", forged.Status, real.Status)
	}
	// Later windows and a network that did not win.
	record(skanPostback(app, "t2", 1, "high"))
	lost := skanPostback(app, "t3", 0, "")
	no := false
	lost.DidWin, lost.Redownload, lost.ReceivedAt = &no, true, skanDay.Add(24*time.Hour)
	record(lost)

	counts, err := s.SKANCounts(ctx, app.ID, skanDay.Truncate(24*time.Hour), skanDay.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range counts {
		got = append(got, fmt.Sprintf("%s/%s/w%d/%q/%s=%d,%d", c.AdNetwork, c.SourceIdentifier, c.Window, c.Value, c.Outcome, c.Postbacks, c.Redownloads))
	}
	want := []string{
		`//w0/""/rejected=1,0`,
		`example123.skadnetwork/5239/w0/""/not_won=1,1`,
		`example123.skadnetwork/5239/w0/"20"/duplicate=1,0`,
		`example123.skadnetwork/5239/w0/"20"/won=1,0`,
		`example123.skadnetwork/5239/w0/"63"/won=1,0`,
		`example123.skadnetwork/5239/w1/"high"/won=1,0`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("counts:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The first day alone leaves out the postback of the second.
	if counts, _ := s.SKANCounts(ctx, app.ID, skanDay.Truncate(24*time.Hour), skanDay.Add(12*time.Hour)); len(counts) != len(want)-1 {
		t.Errorf("one day: %d rows, want %d", len(counts), len(want)-1)
	}

	list, err := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID})
	if err != nil || len(list) != 6 || list[0].ID != lost.ID || list[5].ID != first.ID {
		t.Fatalf("listing: %d postbacks, %v", len(list), err)
	}
	if l := list[0]; l.DidWin == nil || *l.DidWin || !l.Redownload || l.ConversionValue != nil || l.Window != 0 || string(l.Raw) != string(lost.Raw) || !l.ReceivedAt.Equal(lost.ReceivedAt) {
		t.Errorf("listed %+v, want %+v", l, lost)
	}
	page, _ := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID, Before: list[1].ID, Limit: 2})
	if len(page) != 2 || page[0].ID != list[2].ID {
		t.Errorf("the page after %d: %d postbacks", list[1].ID, len(page))
	}
	rejected, _ := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID, Status: tapline.SKANRejected})
	if len(rejected) != 1 || rejected[0].Reason != "the signature does not match" {
		t.Errorf("rejected: %+v", rejected)
	}
	if _, err := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID, Limit: tapline.MaxSKANPage + 1}); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("a page too big: %v", err)
	}
	if other, _ := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID + 1000}); len(other) != 0 {
		t.Errorf("another app's listing: %d", len(other))
	}
	wantCode(t, "an invalid postback", s.RecordSKANPostback(ctx, &tapline.SKANPostback{AppID: app.ID}), tapline.EINVALID)
}

// TestRecordSKANPostbackConcurrently posts one key's postbacks at once, in
// different bodies and the same: one counts.
func TestRecordSKANPostbackConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	app := newApp(t, accts, newAccount(t, accts, "skan-conc").ID, "Game")
	s := postgres.NewSKANStore(db)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			p := skanPostback(app, "race", 0, "7")
			p.Raw = fmt.Appendf(nil, `{"n":%d}`, i%4)
			errs <- s.RecordSKANPostback(ctx, p)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	by := skanOutcomes(t, s, app.ID, skanDay)
	if by[tapline.SKANWon] != 1 || by[tapline.SKANDuplicateOutcome] != 3 || len(by) != 2 {
		t.Errorf("counted %v; want 1 won and 3 duplicates (four bodies, each three times)", by)
	}
	list, _ := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID})
	received := 0
	for _, p := range list {
		received += p.Received
	}
	if len(list) != 4 || received != 12 {
		t.Errorf("%d rows received %d times, want 4 and 12", len(list), received)
	}
}

// forgedPostback is a rejected postback of app with body n.
func forgedPostback(app *tapline.App, n int, at time.Time) *tapline.SKANPostback {
	p := skanPostback(app, fmt.Sprintf("forged-%d", n), 0, "20")
	p.Status, p.Reason, p.Raw, p.ReceivedAt = tapline.SKANRejected, "the signature does not match", fmt.Appendf(nil, `{"forged":%d}`, n), at
	return p
}

// TestSKANRejectedBound floods an app with distinct forged postbacks at
// once: it keeps MaxRejected of them a UTC day, the others are refused
// with ErrSKANRejectedFull and counted nowhere, while a resend of a kept
// one, verified postbacks and the next day's rejected ones are stored as
// ever.
func TestSKANRejectedBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	app := newApp(t, accts, newAccount(t, accts, "skan-bound").ID, "Game")
	other := newApp(t, accts, newAccount(t, accts, "skan-bound-other").ID, "Other")
	s := postgres.NewSKANStore(db)
	if s.MaxRejected != tapline.DefaultSKANMaxRejected {
		t.Errorf("MaxRejected = %d, want the default %d", s.MaxRejected, tapline.DefaultSKANMaxRejected)
	}
	s.MaxRejected = 5

	const flood = 40
	var wg sync.WaitGroup
	errs := make(chan error, flood)
	for i := range flood {
		wg.Go(func() { errs <- s.RecordSKANPostback(ctx, forgedPostback(app, i, skanDay)) })
	}
	wg.Wait()
	close(errs)
	var stored, full int
	for err := range errs {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, tapline.ErrSKANRejectedFull):
			full++
		default:
			t.Fatalf("record a forged postback: %v", err)
		}
	}
	if stored != 5 || full != flood-5 {
		t.Errorf("%d stored, %d refused as over the bound; want 5 and %d", stored, full, flood-5)
	}
	kept, err := s.SKANPostbacks(ctx, tapline.SKANQuery{AppID: app.ID, Status: tapline.SKANRejected})
	if err != nil || len(kept) != 5 {
		t.Fatalf("rejected postbacks kept: %d, %v; want 5", len(kept), err)
	}

	// A kept body sent again is the row it was: received twice, no error.
	var n int
	if _, err := fmt.Sscanf(string(kept[0].Raw), `{"forged":%d}`, &n); err != nil {
		t.Fatal(err)
	}
	again := forgedPostback(app, n, skanDay.Add(time.Hour))
	if err := s.RecordSKANPostback(ctx, again); err != nil || again.ID != kept[0].ID || again.Received != 2 {
		t.Errorf("a kept forgery resent: %+v, %v; want row %d received twice", again, err, kept[0].ID)
	}
	// Verified postbacks are not bounded.
	for i := range 7 {
		p := skanPostback(app, fmt.Sprintf("real-%d", i), 0, "20")
		if err := s.RecordSKANPostback(ctx, p); err != nil || p.Status != tapline.SKANVerified {
			t.Fatalf("a verified postback at the bound: %s, %v", p.Status, err)
		}
	}
	// Another app, and the app's next UTC day, have bounds of their own.
	if err := s.RecordSKANPostback(ctx, forgedPostback(other, 1, skanDay)); err != nil {
		t.Errorf("another app's forgery: %v", err)
	}
	if err := s.RecordSKANPostback(ctx, forgedPostback(app, flood+1, skanDay.Add(24*time.Hour))); err != nil {
		t.Errorf("the next day's forgery: %v", err)
	}

	by := skanOutcomes(t, s, app.ID, skanDay)
	if by[tapline.SKANRejectedOutcome] != 5 || by[tapline.SKANWon] != 7 {
		t.Errorf("the first day counted %v; want 5 rejected and 7 won", by)
	}

	// Without a bound every one is kept.
	s.MaxRejected = 0
	if err := s.RecordSKANPostback(ctx, forgedPostback(app, flood+2, skanDay)); err != nil {
		t.Errorf("without a bound: %v", err)
	}
}

// skanOutcomes sums an app's postbacks counted on day by outcome.
func skanOutcomes(t *testing.T, s *postgres.SKANStore, appID int64, day time.Time) map[tapline.SKANOutcome]int64 {
	t.Helper()
	counts, err := s.SKANCounts(context.Background(), appID, day.Truncate(24*time.Hour), day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	by := map[tapline.SKANOutcome]int64{}
	for _, c := range counts {
		by[c.Outcome] += c.Postbacks
	}
	return by
}
