package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
)

// TestPostbacksAllInOne follows a tap and an install, then an event, of the
// demo app through the all-in-one to an ad network's postback endpoint:
// the install's and the event's postbacks arrive with the tap's id and
// parameters, the allowed advertising id, the link's slug, each once, and
// the delivery log says delivered.
func TestPostbacksAllInOne(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]url.Values{} // by idempotency key
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		got[r.Header.Get("Idempotency-Key")] = r.URL.Query()
	}))
	defer srv.Close()

	n, demo := openDemo(t, func(cfg *Config) { cfg.PostbacksAllowPrivate = true }) // the network is on loopback
	pb := &tapline.Postback{AppID: demo.App.ID, Network: "demo-network", Events: []string{"install", "ios-demo-level-up"},
		Fields: []string{"idfa"},
		URL:    srv.URL + "/pb?click={click_id}&slug={link_slug}&ev={event_name}&sub={sub_id}&idfa={idfa}&ip={ip}&m={match_method}"}
	if err := n.Postbacks.CreatePostback(ctx, pb); err != nil {
		t.Fatal(err)
	}
	const idfa = "1E2D3C4B-5A69-4788-9766-554433221100"
	tapDemo(t, n, "?sub_id=pub-42&idfa="+idfa)
	const session = "2B4D6F80-1A3C-4E5F-8091-A2B3C4D5E6F7"
	for _, ev := range []string{"ios-demo-install", "ios-demo-level-up", "ios-demo-other"} {
		postDemoEvent(t, n, ev, session, idfa)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := n.Postbacks.Deliveries(ctx, tapline.DeliveryQuery{AppID: demo.App.ID, Status: tapline.DeliveryDelivered, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			all, _ := n.Postbacks.Deliveries(ctx, tapline.DeliveryQuery{AppID: demo.App.ID, Limit: 10})
			for _, d := range all {
				t.Logf("%+v", *d)
			}
			t.Fatalf("delivered %d postbacks after 30 s, want 2", len(ds))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time for a wrong third one
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || len(got) != 2 {
		t.Fatalf("the network got %d calls under %d keys, want 2 and 2: %v", calls, len(got), got)
	}
	events := map[string]url.Values{}
	for _, q := range got {
		events[q.Get("ev")] = q
	}
	inst, lvl := events["install"], events["ios-demo-level-up"]
	if inst == nil || lvl == nil {
		t.Fatalf("postbacks %v, want an install and an ios-demo-level-up", got)
	}
	for _, q := range []url.Values{inst, lvl} {
		if q.Get("click") == "" || q.Get("click") != inst.Get("click") || q.Get("slug") != DemoLinkSlug || q.Get("sub") != "pub-42" ||
			q.Get("idfa") != strings.ToUpper(idfa) || q.Get("ip") != "" || q.Get("m") != string(tapline.MethodAdID) {
			t.Errorf("postback %v: want the tap's id, slug demo, sub pub-42, the allowed idfa, no address, method advertising_id", q)
		}
	}
}
