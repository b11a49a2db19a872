package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"tapline"
	"tapline/postgres/pgtest"
	"tapline/whatif"
)

// TestWhatIfInProcess: a what-if requested while the all-in-one holds the
// raw store (as the dashboard and the CLI request it) is run by the node's
// matcher process and its result stored.
func TestWhatIfInProcess(t *testing.T) {
	ctx := context.Background()
	cfg := NewConfig()
	cfg.DatabaseURL = pgtest.URL(t)
	cfg.DataDir = t.TempDir()
	cfg.CollectorAddr, cfg.DashboardAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Demo = true
	n := New(cfg, nil)
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	demo, err := SeedDemo(ctx, n.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const idfa = "1E2D3C4B-5A69-4788-9766-554433221100"
	req := mustRequest(t, n.CollectorURL+"/l/"+DemoLinkSlug+"?idfa="+idfa)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(1100 * time.Millisecond) // the install comes a second after the tap
	form := url.Values{"secret": {DemoSDKSecret}, "uuid": {"device-1"}, "platform": {"iOS"}, "hardware-ios-idfa": {idfa},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	resp, err = client.PostForm(n.CollectorURL+"/"+DemoAccount+"/event/ios-demo-install/", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.Raw.ConversionByInstall(ctx, demo.App.ID, "device-1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no conversion after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A click window shorter than the second between tap and install.
	body, _ := json.Marshal(whatif.Request{AppID: demo.App.ID, From: time.Now().UTC().Add(-time.Hour), To: time.Now().UTC().Add(time.Hour),
		Rules: whatif.Rules{ClickWindow: 500 * time.Millisecond}})
	run := &tapline.WhatIfRun{AppID: demo.App.ID, Request: body, RequestedBy: "test"}
	if err := n.WhatIfs.RequestWhatIf(ctx, run); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := n.WhatIfs.WhatIf(ctx, demo.App.ID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == tapline.WhatIfDone || got.Status == tapline.WhatIfFailed {
			run = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("what-if still %s after 30 s", got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var res whatif.Result
	if run.Status != tapline.WhatIfDone || json.Unmarshal(run.Result, &res) != nil {
		t.Fatalf("what-if %s: %s", run.Status, run.Error)
	}
	if res.Installs != 1 || res.StoredSame != 1 || res.Moved != 1 || len(res.Moves) != 1 || res.Moves[0].Today.Method != "advertising_id" ||
		res.Moves[0].Hyp.Method == "advertising_id" {
		t.Errorf("result %+v: want the one install replayed as stored, moved off its advertising id match", res)
	}
}
