package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"tapline/whatif"
)

// TestWhatIfCommand runs "tapline whatif" on an embedded raw store no
// tapline holds: it replays here, stores the result and prints it; a
// fingerprint window shorter than every tap-to-install delay moves every
// fingerprint credit to organic.
func TestWhatIfCommand(t *testing.T) {
	c := newCLI(t)
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	c.writeRaw([]install{{id: "i1", hit: "h1", source: "ads"}, {id: "i2", hit: "h2", source: "ads"}, {id: "i3"}}, at, true)
	day := at.Format(time.DateOnly)
	next := at.Add(48 * time.Hour).Format(time.DateOnly)
	out, errOut, err := c.run("whatif", "-app", fmt.Sprint(c.app.ID), "-from", day, "-to", next, "-fingerprint-window", "30s", "-json")
	if err != nil {
		t.Fatalf("whatif: %v\n%s", err, errOut)
	}
	var res whatif.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("whatif -json printed %q: %v", out, err)
	}
	fp := 0
	for _, cnt := range res.Counts {
		if cnt.Method == "fingerprint" {
			fp += cnt.Today
			if cnt.Hypothetical != 0 {
				t.Errorf("%+v: a fingerprint credit under a 30 s window, every tap being a minute before its install", cnt)
			}
		}
	}
	if res.Installs != 3 || fp == 0 || res.Moved != fp || res.Hypothetical.FingerprintWindow != 30*time.Second {
		t.Errorf("result %+v: want 3 installs, the fingerprint credits moved", res)
	}
	if !strings.Contains(errOut, "What-if 1: replaying app") {
		t.Errorf("the progress line is missing: %q", errOut)
	}
	// The table, and the run kept for the dashboard.
	out = c.mustRun("whatif", "-app", fmt.Sprint(c.app.ID), "-from", day, "-to", next, "-fingerprint-min-score", "19")
	mustContain(t, "table", out, "What-if 2, app", "rules tried:", "minimum fingerprint score 19", "replay check:", "Installs that would move:")
	for _, args := range [][]string{
		{"whatif", "-app", fmt.Sprint(c.app.ID), "-from", day},                                    // no rule changed
		{"whatif", "-app", fmt.Sprint(c.app.ID), "-from", "yesterday", "-click-window", "1d"},     // no day
		{"whatif", "-app", fmt.Sprint(c.app.ID), "-from", day, "-to", day, "-click-window", "1d"}, // empty range
		{"whatif", "-app", fmt.Sprint(c.app.ID), "-from", day, "-click-window", "soon"},           // no duration
		{"whatif", "-app", "999999", "-from", day, "-click-window", "1d"},                         // no app
	} {
		if _, _, err := c.run(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
