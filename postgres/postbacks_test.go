package postgres_test

import (
	"context"
	"fmt"
	"slices"
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
	all, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 1000})
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
		ds, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 1000})
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
	if ds, _ := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryDelivered, Limit: 10}); len(ds) != 2 {
		t.Errorf("a stale claim's 2xx did not stand: %d delivered, want 2", len(ds))
	}
	log, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryDelivered, Limit: 10})
	if d := byID(ok.ID); err != nil || len(log) != 2 || d.LastCode != 200 || d.DeliveredAt == nil || d.Attempts != 1 || d.Status != tapline.DeliveryDelivered {
		t.Errorf("delivered: %d, %+v, %v", len(log), d, err)
	}
	log, err = s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryDead, Limit: 10})
	if err != nil || len(log) != 1 || log[0].LastCode != 400 || log[0].LastBody != "bad  click\uFFFD" {
		t.Errorf("dead = %+v, %v", log, err)
	}
	page, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Before: all[9].ID, Limit: 5})
	if err != nil || len(page) != 5 || page[0].ID != all[10].ID {
		t.Errorf("page before %d = %d rows starting %v, %v", all[9].ID, len(page), page, err)
	}
}

// finishDeliveries claims the outbox's due deliveries and records the outcome
// status gives each by its key; the others are given back.
func finishDeliveries(t *testing.T, s *postgres.PostbackService, status map[string]tapline.DeliveryStatus) {
	t.Helper()
	ctx := context.Background()
	due, err := s.ClaimDeliveries(ctx, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		st, ok := status[d.Key]
		if !ok {
			if err := s.ReleaseDelivery(ctx, d.ID, d.Claim); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := s.RecordAttempt(ctx, d.ID, d.Claim, st, time.Now(), tapline.DeliveryResult{Code: 200}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExpireDeliveries: delivered and dead deliveries made before the
// cut-off are deleted, of every app, in batches of the limit, oldest
// first; pending ones however old, and younger ones, stay.
func TestExpireDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	a := newAccount(t, accts, "expire")
	app, other := newApp(t, accts, a.ID, "expire-app"), newApp(t, accts, a.ID, "expire-other")
	s, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	pb := &tapline.Postback{AppID: app.ID, Network: "nw", Events: []string{"install"}, URL: "https://nw.example/pb"}
	opb := &tapline.Postback{AppID: other.ID, Network: "nw", Events: []string{"install"}, URL: "https://nw.example/pb"}
	for _, p := range []*tapline.Postback{pb, opb} {
		if err := s.CreatePostback(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	cutoff := now.Add(-30 * 24 * time.Hour)
	type row struct {
		app    *tapline.App
		pb     *tapline.Postback
		days   int
		status tapline.DeliveryStatus
	}
	rows := []row{
		{app, pb, 90, tapline.DeliveryDelivered},
		{app, pb, 60, tapline.DeliveryDead},
		{app, pb, 45, tapline.DeliveryDelivered},
		{other, opb, 40, tapline.DeliveryDead},
		{app, pb, 31, tapline.DeliveryDelivered},
		{app, pb, 80, tapline.DeliveryPending}, // never sent: kept
		{app, pb, 35, tapline.DeliveryPending},
		{app, pb, 29, tapline.DeliveryDelivered}, // young: kept
		{app, pb, 1, tapline.DeliveryDead},
		{other, opb, 0, tapline.DeliveryPending},
	}
	var ds []*tapline.Delivery
	status := map[string]tapline.DeliveryStatus{}
	for i, r := range rows {
		d := testDelivery(r.app, r.pb, i, now.Add(-time.Duration(r.days)*24*time.Hour))
		ds = append(ds, d)
		if r.status != tapline.DeliveryPending {
			status[d.Key] = r.status
		}
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	finishDeliveries(t, s, status)

	keys := func() []string {
		t.Helper()
		var out []string
		for _, ap := range []*tapline.App{app, other} {
			got, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: ap.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range got {
				out = append(out, d.Key)
			}
		}
		slices.Sort(out)
		return out
	}
	// Five are due, two a statement, oldest first.
	var deleted []int
	for range 4 {
		n, err := s.ExpireDeliveries(ctx, cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		deleted = append(deleted, n)
	}
	if !slices.Equal(deleted, []int{2, 2, 1, 0}) {
		t.Errorf("deleted %v a statement, want [2 2 1 0]", deleted)
	}
	if got, want := keys(), []string{"key-5", "key-6", "key-7", "key-8", "key-9"}; !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v (the pending and the young)", got, want)
	}
	// Oldest first: with a limit of one, the 45-day-old delivered goes
	// before the 31-day-old.
	ds = ds[:0]
	status = map[string]tapline.DeliveryStatus{}
	for i, days := range map[int]int{20: 31, 21: 45} {
		d := testDelivery(app, pb, i, now.Add(-time.Duration(days)*24*time.Hour))
		ds = append(ds, d)
		status[d.Key] = tapline.DeliveryDelivered
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	finishDeliveries(t, s, status)
	if n, err := s.ExpireDeliveries(ctx, cutoff, 1); err != nil || n != 1 {
		t.Fatalf("expire one: %d, %v", n, err)
	}
	if got := keys(); !slices.Contains(got, "key-20") || slices.Contains(got, "key-21") {
		t.Errorf("after expiring one of two: %v, want key-20 kept and key-21 gone", got)
	}
	if _, err := s.ExpireDeliveries(ctx, cutoff, 0); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("limit 0: %v, want invalid", err)
	}
}

// TestDeliveriesByNetwork: the delivery log filters by network, alone and
// with a status, and pages within the filter.
func TestDeliveriesByNetwork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	accts, db := newService(t)
	app := newApp(t, accts, newAccount(t, accts, "bynetwork").ID, "bynetwork-app")
	s, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	var ds []*tapline.Delivery
	status := map[string]tapline.DeliveryStatus{}
	for i := range 12 {
		pb := &tapline.Postback{ID: int64(i%3 + 1), Network: []string{"meta", "tiktok", "webhook"}[i%3]}
		d := testDelivery(app, pb, i, time.Now().Add(-time.Minute))
		d.Key = fmt.Sprintf("key-%02d", i) // stored in key order
		ds = append(ds, d)
		if i%2 == 0 {
			status[d.Key] = tapline.DeliveryDelivered
		}
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	finishDeliveries(t, s, status)
	list := func(q tapline.DeliveryQuery) []string {
		t.Helper()
		q.AppID = app.ID
		got, err := s.Deliveries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range got {
			out = append(out, d.Key)
		}
		return out
	}
	if got := list(tapline.DeliveryQuery{Network: "tiktok"}); !slices.Equal(got, []string{"key-10", "key-07", "key-04", "key-01"}) {
		t.Errorf("tiktok: %v", got)
	}
	if got := list(tapline.DeliveryQuery{Network: "meta", Status: tapline.DeliveryDelivered}); !slices.Equal(got, []string{"key-06", "key-00"}) {
		t.Errorf("meta, delivered: %v", got)
	}
	page := list(tapline.DeliveryQuery{Network: "webhook", Limit: 2})
	if !slices.Equal(page, []string{"key-11", "key-08"}) {
		t.Fatalf("webhook, the first page: %v", page)
	}
	all, _ := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Network: "webhook", Limit: 2})
	if got := list(tapline.DeliveryQuery{Network: "webhook", Before: all[1].ID}); !slices.Equal(got, []string{"key-05", "key-02"}) {
		t.Errorf("webhook, the next page: %v", got)
	}
	if got := list(tapline.DeliveryQuery{Network: "Meta"}); len(got) != 0 {
		t.Errorf("another network's name: %v", got)
	}
	if _, err := s.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: tapline.MaxDeliveryPage + 1}); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("a page too big: %v", err)
	}
}
