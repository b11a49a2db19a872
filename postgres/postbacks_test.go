package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

func testDelivery(app *tapline.App, pb *tapline.Postback, n int, created time.Time) *tapline.Delivery {
	return &tapline.Delivery{Key: fmt.Sprintf("key-%d", n), AppID: app.ID, PostbackID: pb.ID, Network: pb.Network, Trigger: "install",
		ConversionID: fmt.Sprintf("cv-e%d", n), EventID: fmt.Sprintf("e%d", n), Method: "GET",
		URL: fmt.Sprintf("https://nw.example/pb?n=%d&gaid=38400000-8cf0-11bd-b23e-10b96e40000d", n), Status: tapline.DeliveryPending,
		NextAttempt: created, CreatedAt: created, Timeout: 3 * time.Second, MaxConcurrent: 2, MaxPerSecond: 5}
}

// TestPostbacksCRUD checks templates are stored, validated, scoped to their
// app and its links.
func TestPostbacksCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	a := newAccount(t, accts, "pb-crud")
	app, other := newApp(t, accts, a.ID, "pb-app"), newApp(t, accts, a.ID, "pb-other")
	link := &tapline.Link{AppID: app.ID, Slug: "pb-spring", Name: "Spring"}
	otherLink := &tapline.Link{AppID: other.ID, Slug: "pb-elsewhere", Name: "Elsewhere"}
	for _, l := range []*tapline.Link{link, otherLink} {
		if err := accts.CreateLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	s := postgres.NewPostbackService(db)
	p := &tapline.Postback{AppID: app.ID, Network: "meta", Source: "facebook", LinkIDs: []int64{link.ID}, Events: []string{"install", "purchase"},
		Method: "POST", URL: "https://nw.example/pb?c={click_id}", Body: `{"r":"{revenue}"}`, Fields: []string{"gaid"},
		OnReattribution: tapline.ReattributionSend, MaxConcurrent: 3, MaxPerSecond: 7.5, Timeout: 2 * time.Second}
	if err := s.CreatePostback(ctx, p); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Postbacks(ctx, app.ID)
	if err != nil || len(ps) != 1 {
		t.Fatalf("postbacks = %v, %v", ps, err)
	}
	got := ps[0]
	if got.ID != p.ID || got.Network != "meta" || got.Source != "facebook" || len(got.LinkIDs) != 1 || got.LinkIDs[0] != link.ID ||
		got.ContentType != "application/json" || got.Body != p.Body || got.Fields[0] != "gaid" || got.Timeout != 2*time.Second ||
		got.MaxPerSecond != 7.5 || got.MaxConcurrent != 3 || got.OnReattribution != tapline.ReattributionSend || got.CreatedAt.IsZero() {
		t.Errorf("stored %+v, want %+v", got, p)
	}
	if ps, _ := s.Postbacks(ctx, other.ID); len(ps) != 0 {
		t.Errorf("other app's postbacks = %v, want none", ps)
	}
	bad := *p
	bad.ID, bad.LinkIDs = 0, []int64{otherLink.ID}
	wantCode(t, "another app's link", s.CreatePostback(ctx, &bad), tapline.EINVALID)
	bad = *p
	bad.URL = "https://nw.example/\x00"
	wantCode(t, "NUL", s.CreatePostback(ctx, &bad), tapline.EINVALID)
	bad = *p
	bad.AppID = 1 << 40
	bad.LinkIDs = nil
	wantCode(t, "missing app", s.CreatePostback(ctx, &bad), tapline.ENOTFOUND)

	p.Disabled, p.Events = true, []string{"install"}
	if err := s.UpdatePostback(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Postbacks(ctx, app.ID); !ps[0].Disabled || len(ps[0].Events) != 1 {
		t.Errorf("after update: %+v", ps[0])
	}
	moved := *p
	moved.AppID = other.ID
	moved.LinkIDs = nil
	wantCode(t, "update under another app", s.UpdatePostback(ctx, &moved), tapline.ENOTFOUND)
	wantCode(t, "delete under another app", s.DeletePostback(ctx, other.ID, p.ID), tapline.ENOTFOUND)
	if err := s.DeletePostback(ctx, app.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Postbacks(ctx, app.ID); len(ps) != 0 {
		t.Errorf("after delete: %v", ps)
	}
}

// TestOutbox checks the flush writes each delivery once by key (a replayed
// flush adds nothing), that claims hand a delivery to one sender at a time
// and again after its lease, and that attempts are recorded.
func TestOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	a := newAccount(t, accts, "outbox")
	app := newApp(t, accts, a.ID, "outbox-app")
	s, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	pb := &tapline.Postback{AppID: app.ID, Network: "nw", Events: []string{"install"}, URL: "https://nw.example/pb"}
	if err := s.CreatePostback(ctx, pb); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	var ds []*tapline.Delivery
	for i := range 30 {
		ds = append(ds, testDelivery(app, pb, i, created))
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds[:20]}); err != nil {
		t.Fatal(err)
	}
	// A replay of the same records, and more.
	replay := testDelivery(app, pb, 3, created)
	replay.URL = "https://nw.example/changed"
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: append([]*tapline.Delivery{replay}, ds[10:]...)}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Deliveries(ctx, app.ID, "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 30 {
		t.Fatalf("deliveries = %d, want 30", len(all))
	}
	for _, d := range all {
		if d.Key == "key-3" && d.URL == replay.URL {
			t.Error("a replayed delivery replaced the first one")
		}
		if d.Status != tapline.DeliveryPending || d.Timeout != 3*time.Second || d.MaxPerSecond != 5 || !d.CreatedAt.Equal(created) {
			t.Errorf("stored %+v", d)
		}
	}
	if all[0].ID < all[1].ID {
		t.Error("deliveries not newest first")
	}

	// Concurrent claims share the due deliveries without overlap.
	var mu sync.Mutex
	claimed := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := s.ClaimDeliveries(ctx, 10, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range got {
				claimed[d.ID]++
			}
		})
	}
	wg.Wait()
	if len(claimed) != 30 {
		t.Errorf("claimed %d distinct deliveries, want 30", len(claimed))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %d claimed %d times", id, n)
		}
	}
	if more, _ := s.ClaimDeliveries(ctx, 10, time.Hour); len(more) != 0 {
		t.Errorf("claimed %d leased deliveries again", len(more))
	}

	// Outcomes.
	ok, retry, dead := all[0], all[1], all[2]
	next := time.Now().Add(-time.Second) // due again at once
	if err := s.RecordAttempt(ctx, ok.ID, 1, tapline.DeliveryDelivered, next, tapline.DeliveryResult{Code: 200, Body: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, retry.ID, 1, tapline.DeliveryPending, next, tapline.DeliveryResult{Error: "no answer within 3s"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, dead.ID, 1, tapline.DeliveryDead, next, tapline.DeliveryResult{Code: 400, Body: "bad \x00 click\xff"}); err != nil {
		t.Fatal(err)
	}
	// A late record for a delivered one changes nothing.
	if err := s.RecordAttempt(ctx, ok.ID, 1, tapline.DeliveryPending, next, tapline.DeliveryResult{Code: 500}); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimDeliveries(ctx, 10, time.Hour)
	if err != nil || len(again) != 1 || again[0].ID != retry.ID || again[0].Attempts != 1 || again[0].LastError != "no answer within 3s" || again[0].Claim != 2 {
		t.Fatalf("claim after a retry = %+v, %v; want only the retried delivery, attempt 1, its second claim", again, err)
	}
	// The first claim's sender, which outlived its lease, records late: a
	// failure of its changes nothing, a 2xx stands.
	if err := s.RecordAttempt(ctx, retry.ID, 1, tapline.DeliveryDead, next, tapline.DeliveryResult{Code: 400}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseDelivery(ctx, retry.ID, 1); err != nil {
		t.Fatal(err)
	}
	byID := func(id int64) *tapline.Delivery {
		t.Helper()
		ds, err := s.Deliveries(ctx, app.ID, "", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.ID == id {
				return d
			}
		}
		t.Fatalf("no delivery %d", id)
		return nil
	}
	if d := byID(retry.ID); d.Status != tapline.DeliveryPending || d.Attempts != 1 || !d.NextAttempt.After(time.Now().Add(30*time.Minute)) {
		t.Errorf("a stale claim's record or release changed the delivery: %+v", d)
	}
	if err := s.ReleaseDelivery(ctx, retry.ID, 2); err != nil {
		t.Fatal(err)
	}
	if back, _ := s.ClaimDeliveries(ctx, 10, time.Hour); len(back) != 1 || back[0].ID != retry.ID || back[0].Attempts != 1 || back[0].Claim != 3 {
		t.Errorf("a released delivery is not due again at once, uncounted: %+v", back)
	}
	if err := s.RecordAttempt(ctx, retry.ID, 2, tapline.DeliveryDelivered, next, tapline.DeliveryResult{Code: 200}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Deliveries(ctx, app.ID, tapline.DeliveryDelivered, 0, 10); len(ds) != 2 {
		t.Errorf("a stale claim's 2xx did not stand: %d delivered, want 2", len(ds))
	}
	log, err := s.Deliveries(ctx, app.ID, tapline.DeliveryDelivered, 0, 10)
	if d := byID(ok.ID); err != nil || len(log) != 2 || d.LastCode != 200 || d.DeliveredAt == nil || d.Attempts != 1 || d.Status != tapline.DeliveryDelivered {
		t.Errorf("delivered: %d, %+v, %v", len(log), d, err)
	}
	log, err = s.Deliveries(ctx, app.ID, tapline.DeliveryDead, 0, 10)
	if err != nil || len(log) != 1 || log[0].LastCode != 400 || log[0].LastBody != "bad  click\uFFFD" {
		t.Errorf("dead = %+v, %v", log, err)
	}
	page, err := s.Deliveries(ctx, app.ID, "", all[9].ID, 5)
	if err != nil || len(page) != 5 || page[0].ID != all[10].ID {
		t.Errorf("page before %d = %d rows starting %v, %v", all[9].ID, len(page), page, err)
	}
}
