package postbacks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapline"
	"tapline/postbacks"
	"tapline/postgres"
	"tapline/postgres/pgtest"
	"tapline/webhook"
)

// network is an ad network's postback endpoint on loopback that fails on
// a schedule: a key's first calls answer 500, 429, time out or drop the
// connection, by the key's number; it drops repeated keys as a network
// would, and counts every call.
type network struct {
	mu        sync.Mutex
	calls     map[string]int // calls per key
	processed map[string]string
	total     atomic.Int64
	stall     time.Duration
}

func newNetwork(stall time.Duration) *network {
	return &network{calls: map[string]int{}, processed: map[string]string{}, stall: stall}
}

func (n *network) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.total.Add(1)
	key := r.Header.Get("Idempotency-Key")
	var num int
	fmt.Sscanf(r.URL.Query().Get("n"), "%d", &num)
	n.mu.Lock()
	n.calls[key]++
	call := n.calls[key]
	n.mu.Unlock()
	switch {
	case num%10 == 9:
		http.Error(w, "unknown click", http.StatusBadRequest) // refused for good
		return
	case call == 1 && num%5 == 0:
		http.Error(w, "overloaded", http.StatusInternalServerError)
		return
	case call == 1 && num%5 == 1:
		// Past the sender's timeout: the network handles the call, but
		// its answer comes after the sender gave up on it.
		select {
		case <-time.After(n.stall):
		case <-r.Context().Done():
		}
	case call <= 2 && num%5 == 2:
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case call == 1 && num%5 == 3:
		hj, ok := w.(http.Hijacker)
		if ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close() // the connection drops mid-call
				return
			}
		}
	}
	n.mu.Lock()
	if _, dup := n.processed[key]; !dup {
		n.processed[key] = r.URL.String()
	}
	n.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "ok")
}

// newApp creates an account and an app in db, and a postback per network
// of it, returning the app and the postbacks' ids by network.
func newApp(t *testing.T, db *postgres.DB, name string, networks ...string) (*tapline.App, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	accts := postgres.NewAccountService(db)
	a := &tapline.Account{Name: name}
	if err := accts.CreateAccount(ctx, a, &tapline.User{Email: "owner@" + name + ".example"}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	app := &tapline.App{AccountID: a.ID, Name: name, SDKSecret: "secret-" + name + "-00001", SDKKey: "key-" + name + "-000000001",
		IOSURL: "https://apps.apple.com/app/id1", AndroidURL: "https://play.google.com/store/apps/details?id=x"}
	if err := accts.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for _, nw := range networks {
		p := &tapline.Postback{AppID: app.ID, Network: nw, Events: []string{"install"}, URL: "https://nw.example/pb"}
		if err := postgres.NewPostbackService(db).CreatePostback(ctx, p); err != nil {
			t.Fatal(err)
		}
		ids[nw] = p.ID
	}
	return app, ids
}

// TestSenderDeliversOnce drives the sender against a failing network,
// through a sender that dies holding deliveries and a sender restart:
// every delivery the network accepts reaches it under one key, each once
// from its point of view; refusals are dead after one attempt, as is a
// delivery past its age; the network's concurrency limit holds.
func TestSenderDeliversOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	app, pbs := newApp(t, db, "sender", "nw")
	nw := newNetwork(400 * time.Millisecond)
	srv := httptest.NewServer(nw)
	defer srv.Close()

	outbox, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	const total = 200
	now := time.Now().UTC()
	var ds []*tapline.Delivery
	for i := range total {
		d := &tapline.Delivery{Key: fmt.Sprintf("k%03d", i), AppID: app.ID, PostbackID: pbs["nw"], Network: "nw", Trigger: "install",
			ConversionID: fmt.Sprintf("cv-%d", i), Method: "GET", URL: fmt.Sprintf("%s/pb?n=%d", srv.URL, i),
			Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now, Timeout: 150 * time.Millisecond, MaxConcurrent: 3, MaxPerSecond: 2000}
		if i == total-1 {
			d.CreatedAt = now.Add(-25 * time.Hour) // past its age at its first failure
			d.URL = fmt.Sprintf("%s/pb?n=%d", srv.URL, 5)
			d.Key = "old"
		}
		ds = append(ds, d)
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	// A sender that dies holding 20 deliveries: they come back after
	// their lease.
	if held, err := outbox.ClaimDeliveries(ctx, 20, 500*time.Millisecond); err != nil || len(held) != 20 {
		t.Fatalf("claim = %d, %v", len(held), err)
	}
	start := func() *postbacks.Sender {
		s := postbacks.NewSender(outbox)
		s.Client = postbacks.NewClient(true) // the network is on loopback
		s.Logger = slog.New(slog.DiscardHandler)
		s.Batch, s.Lease, s.Poll = 25, 2*time.Second, 20*time.Millisecond
		s.MinBackoff, s.MaxBackoff = 20*time.Millisecond, 80*time.Millisecond
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	time.Sleep(150 * time.Millisecond)
	if err := s.Close(); err != nil { // a restart mid-run
		t.Fatal(err)
	}
	s = start()
	defer s.Close()

	deadline := time.Now().Add(60 * time.Second)
	for {
		pending, err := outbox.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryPending, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still pending after 60 s, e.g. %+v", len(pending), pending[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Close()

	all, err := outbox.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	delivered, dead := 0, 0
	for _, d := range all {
		var num int
		fmt.Sscanf(d.URL[len(srv.URL)+len("/pb?n="):], "%d", &num)
		refused := d.Key != "old" && num%10 == 9
		switch {
		case d.Key == "old":
			if d.Status != tapline.DeliveryDead || d.Attempts != 1 || d.LastCode != 500 {
				t.Errorf("a delivery past its age: %+v, want dead after its first failure", d)
			}
			dead++
		case refused:
			if d.Status != tapline.DeliveryDead || d.Attempts != 1 || d.LastCode != 400 || d.LastBody != "unknown click\n" {
				t.Errorf("refused delivery %s: %+v, want dead after one attempt with the answer", d.Key, d)
			}
			dead++
		default:
			delivered++
			if d.Status != tapline.DeliveryDelivered || d.LastCode != 200 || d.DeliveredAt == nil {
				t.Errorf("delivery %s: %+v, want delivered", d.Key, d)
			}
			// Its schedule's failures were all retried. (An attempt cut
			// short by the restart is not recorded, so the network's count
			// is the one to check.)
			if want := 1 + map[int]int{0: 1, 1: 1, 2: 2, 3: 1}[num%5]; nw.calls[d.Key] < want || d.Attempts < 1 {
				t.Errorf("delivery %s: %d calls, %d attempts recorded; want at least %d calls (its schedule)", d.Key, nw.calls[d.Key], d.Attempts, want)
			}
			if got, ok := nw.processed[d.Key]; !ok || got != fmt.Sprintf("/pb?n=%d", num) {
				t.Errorf("the network processed %s as %q (%v), want /pb?n=%d", d.Key, got, ok, num)
			}
		}
	}
	wantDead := 1 // the old one
	for i := range total - 1 {
		if i%10 == 9 {
			wantDead++
		}
	}
	if delivered+dead != total || dead != wantDead {
		t.Errorf("delivered %d, dead %d; want %d and %d", delivered, dead, total-wantDead, wantDead)
	}
	// From the network's side: each accepted key processed once, however
	// many calls it took.
	if len(nw.processed) != delivered {
		t.Errorf("the network processed %d keys, want %d", len(nw.processed), delivered)
	}
	if calls := nw.total.Load(); calls <= int64(total) {
		t.Errorf("%d calls for %d deliveries: the schedule's failures were not retried", calls, total)
	}
	t.Logf("%d calls, %d processed, %d dead", nw.total.Load(), len(nw.processed), dead)
}

// TestSenderNetworkLimits checks a network never has more calls in
// flight than its postback allows, and that the sender uses them.
func TestSenderNetworkLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	app, pbs := newApp(t, db, "limits", "slow", "wide")
	outbox, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	var mu sync.Mutex
	inFlight, maxFlight := map[string]int{}, map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nw := r.URL.Path
		mu.Lock()
		inFlight[nw]++
		maxFlight[nw] = max(maxFlight[nw], inFlight[nw])
		mu.Unlock()
		time.Sleep(15 * time.Millisecond)
		mu.Lock()
		inFlight[nw]--
		mu.Unlock()
	}))
	defer srv.Close()
	now := time.Now().UTC()
	var ds []*tapline.Delivery
	for i := range 60 {
		nw, conc := "slow", 2
		if i%2 == 1 {
			nw, conc = "wide", 5
		}
		ds = append(ds, &tapline.Delivery{Key: fmt.Sprintf("lim-%d", i), AppID: app.ID, PostbackID: pbs[nw], Network: nw, Trigger: "install",
			Method: "GET", URL: srv.URL + "/" + nw, Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now, MaxConcurrent: conc})
	}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
		t.Fatal(err)
	}
	s := postbacks.NewSender(outbox)
	s.Client = postbacks.NewClient(true)
	s.Logger = slog.New(slog.DiscardHandler)
	s.Poll = 10 * time.Millisecond
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, err := outbox.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryDelivered, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(done) == len(ds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered after 30 s", len(done), len(ds))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxFlight["/slow"] != 2 || maxFlight["/wide"] != 5 {
		t.Errorf("calls in flight at most %v, want slow 2 and wide 5 (its limit, reached)", maxFlight)
	}
}

// TestSenderSignsWebhooks checks a webhook's calls carry the Standard
// Webhooks headers, the id being the delivery's key on every attempt, with
// a signature a receiver computes on its own from the secret; after a
// rotation each call is signed by both secrets, so a receiver with either
// one accepts it.
func TestSenderSignsWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	app, _ := newApp(t, db, "hooks")
	type call struct {
		h    http.Header
		body []byte
	}
	var mu sync.Mutex
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Header.Clone(), b})
		first := len(calls) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable) // retried: the same id, a fresh signature
		}
	}))
	defer srv.Close()
	outbox, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	hook := &tapline.Postback{AppID: app.ID, Kind: tapline.PostbackKindWebhook, Events: []string{"install"}, URL: srv.URL + "/hook"}
	if err := outbox.CreatePostback(ctx, hook); err != nil {
		t.Fatal(err)
	}
	if len(hook.Secrets) != 1 || !strings.HasPrefix(hook.Secrets[0], "whsec_") {
		t.Fatalf("a new webhook's secrets: %q, want one whsec_ secret", hook.Secrets)
	}
	oldSecret := hook.Secrets[0]
	put := func(key string) {
		t.Helper()
		now := time.Now().UTC()
		d := &tapline.Delivery{Key: key, AppID: app.ID, PostbackID: hook.ID, Kind: tapline.PostbackKindWebhook, Network: "webhook",
			Trigger: "install", Method: "POST", URL: hook.URL, ContentType: "application/json",
			Body: []byte(`{"type":"conversion.created","n":"` + key + `"}`), Status: tapline.DeliveryPending, NextAttempt: now, CreatedAt: now}
		if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: []*tapline.Delivery{d}}); err != nil {
			t.Fatal(err)
		}
	}
	s := postbacks.NewSender(outbox)
	s.Client = postbacks.NewClient(true)
	s.Logger = slog.New(slog.DiscardHandler)
	s.Poll, s.MinBackoff, s.MaxBackoff = 10*time.Millisecond, 10*time.Millisecond, 20*time.Millisecond
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitCalls := func(n int) []call {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			got := slices.Clone(calls)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d webhook calls after 20 s, want %d", len(got), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// independent computes the v1 signature from the scheme's definition,
	// without the webhook package.
	independent := func(secret, id, ts string, body []byte) string {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	put("hook-1")
	got := waitCalls(2)
	for i, c := range got {
		id, ts, sig := c.h.Get("webhook-id"), c.h.Get("webhook-timestamp"), c.h.Get("webhook-signature")
		if id != "hook-1" || c.h.Get("Content-Type") != "application/json" {
			t.Errorf("call %d: id %q, content type %q; want the delivery's key and JSON", i, id, c.h.Get("Content-Type"))
		}
		if sig != independent(oldSecret, id, ts, c.body) {
			t.Errorf("call %d: signature %q, want %q", i, sig, independent(oldSecret, id, ts, c.body))
		}
		if sec, _ := strconv.ParseInt(ts, 10, 64); time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
			t.Errorf("call %d: timestamp %s is not the attempt's", i, ts)
		}
	}

	newSecret, err := outbox.RotateWebhookSecret(ctx, app.ID, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	put("hook-2")
	c := waitCalls(3)[2]
	id, ts, sig := c.h.Get("webhook-id"), c.h.Get("webhook-timestamp"), c.h.Get("webhook-signature")
	sigs := strings.Fields(sig)
	if len(sigs) != 2 || !slices.Contains(sigs, independent(newSecret, id, ts, c.body)) || !slices.Contains(sigs, independent(oldSecret, id, ts, c.body)) {
		t.Errorf("after rotation: signatures %q, want one by the new secret and one by the old", sig)
	}
	for _, sec := range []string{oldSecret, newSecret} {
		k, err := webhook.ParseSecret(sec)
		if err != nil {
			t.Fatal(err)
		}
		if err := webhook.Verify([]webhook.Secret{k}, c.h, c.body, time.Now(), 0); err != nil {
			t.Errorf("a receiver holding one of the secrets refuses the call: %v", err)
		}
	}
	ps, err := outbox.Postbacks(ctx, app.ID)
	if err != nil || len(ps[0].Secrets) != 2 || ps[0].Secrets[0] != newSecret || ps[0].PreviousSecretExpires == nil {
		t.Errorf("after rotation the webhook holds %d secrets, previous expiring %v (%v)", len(ps[0].Secrets), ps[0].PreviousSecretExpires, err)
	}
	if _, err := outbox.RotateWebhookSecret(ctx, app.ID+1000, hook.ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("rotating another app's webhook: %v, want ENOTFOUND", err)
	}
	if _, err := outbox.RotateWebhookSecret(ctx, app.ID, hook.ID); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Errorf("a second rotation within the overlap: %v, want ECONFLICT (it would drop the secret the customer may still use)", err)
	}

	// A disabled webhook's pending deliveries are given up, not sent.
	hook.Disabled = true
	if err := outbox.UpdatePostback(ctx, hook); err != nil {
		t.Fatal(err)
	}
	put("hook-3")
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after 20 s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the disabled webhook's delivery given up", func() bool {
		ds, _ := outbox.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryDead, Limit: 10})
		return len(ds) == 1 && ds[0].Key == "hook-3" && strings.Contains(ds[0].LastError, "disabled")
	})
	mu.Lock()
	if len(calls) != 3 {
		t.Errorf("%d calls, want 3: a disabled webhook was called", len(calls))
	}
	mu.Unlock()
}

// TestPublicOnly checks the sender's client refuses tapline's own network:
// a postback URL naming loopback or a private address is never called.
func TestPublicOnly(t *testing.T) {
	for addr, public := range map[string]bool{
		"127.0.0.1:80": false, "[::1]:443": false, "10.1.2.3:80": false, "192.168.0.10:80": false, "172.16.5.4:80": false,
		"169.254.169.254:80": false, "[fe80::1]:80": false, "100.64.0.1:80": false, "0.0.0.0:80": false, "[::ffff:127.0.0.1]:80": false,
		"[fc00::1]:80": false, "224.0.0.1:80": false, "8.8.8.8:443": true, "[2606:4700::1111]:443": true, "151.101.1.1:80": true,
		"[64:ff9b::a00:1]:80": false, "[64:ff9b::808:808]:80": true, "[::7f00:1]:80": false, "[2002:a00:1::1]:80": false,
		"[2002:808:808::1]:80": true, "[fec0::1]:80": false, "[100::1]:80": false, "[2001::1]:80": false, "[2001:2::1]:80": false,
	} {
		err := postbacks.PublicOnly("tcp", addr, nil)
		if (err == nil) != public {
			t.Errorf("PublicOnly(%s) = %v, want public %v", addr, err, public)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("a private address was called") }))
	defer srv.Close()
	s := postbacks.NewSender(nil)
	res := s.Try(context.Background(), &tapline.Delivery{Method: "GET", URL: srv.URL + "/pb", Key: "k"})
	if res.Code != 0 || !strings.Contains(res.Error, "not public") {
		t.Errorf("a loopback postback: %+v, want refused before any call", res)
	}
}

// TestSenderBusyNetworkGivesBack: a network answering slowly, one call at
// a time, holds no more than its own slot: the deliveries claimed for it
// that cannot start are given back (due again, no attempt counted) and
// another network's, claimed after them, go through before the slow
// network has answered once.
func TestSenderBusyNetworkGivesBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	app, pbs := newApp(t, db, "busy", "slow", "fast")
	outbox, fs := postgres.NewPostbackService(db), postgres.NewFactStore(db)
	var mu sync.Mutex
	slowDone, fastAt := 0, []int{} // slow answers given when each fast call came
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select { // far longer than a give-back's 2 s
			case <-release:
			case <-time.After(20 * time.Second):
			}
			mu.Lock()
			slowDone++
			mu.Unlock()
			return
		}
		mu.Lock()
		fastAt = append(fastAt, slowDone)
		mu.Unlock()
	}))
	defer srv.Close()
	defer close(release)
	put := func(nw string, n int, due time.Time) {
		t.Helper()
		var ds []*tapline.Delivery
		for i := range n {
			ds = append(ds, &tapline.Delivery{Key: fmt.Sprintf("%s-%d", nw, i), AppID: app.ID, PostbackID: pbs[nw], Network: nw, Trigger: "install",
				Method: "GET", URL: srv.URL + "/" + nw, Status: tapline.DeliveryPending, NextAttempt: due, CreatedAt: due, MaxConcurrent: 1})
		}
		if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Deliveries: ds}); err != nil {
			t.Fatal(err)
		}
	}
	put("slow", 6, time.Now().UTC().Add(-time.Minute))
	s := postbacks.NewSender(outbox)
	s.Client = postbacks.NewClient(true)
	s.Logger = slog.New(slog.DiscardHandler)
	s.Batch, s.Poll = 6, 20*time.Millisecond // the slow deliveries fill every slot
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	put("fast", 4, time.Now().UTC())
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(fastAt)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 fast deliveries after 15 s: the slow network's claims hold the slots", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if fastAt[3] != 0 {
		t.Errorf("fast calls came after %v slow answers, want before any", fastAt)
	}
	mu.Unlock()
	pending, err := outbox.Deliveries(ctx, tapline.DeliveryQuery{AppID: app.ID, Status: tapline.DeliveryPending, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pending {
		if d.Attempts != 0 {
			t.Errorf("slow delivery %s waiting for its network: %d attempts, want 0 (a give-back counts none)", d.Key, d.Attempts)
		}
	}
	release <- struct{}{} // the call under way ends; Close gives the rest back
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
