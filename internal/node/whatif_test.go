package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"tapline"
	"tapline/whatif"
)

// TestWhatIfInProcess: a what-if requested while the all-in-one holds the
// raw store (as the dashboard and the CLI request it) is run by the node's
// matcher process and its result stored.
func TestWhatIfInProcess(t *testing.T) {
	ctx := context.Background()
	n, demo := openDemo(t, nil)
	const idfa = "1E2D3C4B-5A69-4788-9766-554433221100"
	tapDemo(t, n, "?idfa="+idfa)
	time.Sleep(1100 * time.Millisecond) // the install comes a second after the tap
	postDemoEvent(t, n, "ios-demo-install", "device-1", idfa)
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
