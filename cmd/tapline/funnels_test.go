package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/pebble"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// cli is a database with an account, an app and two links, and a data
// directory, for running "tapline funnels" commands on.
type cli struct {
	t       *testing.T
	db      string
	dataDir string
	app     dashboard.AppView
	links   []int64
	pg      *postgres.DB
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	c := &cli{t: t, db: pgtest.URL(t), dataDir: t.TempDir()}
	if _, _, err := c.run("create-account", "-name", "acme", "-email", "ops@acme.example", "-password", "a-long-password"); err != nil {
		t.Fatalf("create-account: %v", err)
	}
	out, _, err := c.run("create-app", "-account", "acme", "-name", "Shop", "-ios-url", "https://apps.apple.com/app/id42")
	if err != nil {
		t.Fatalf("create-app: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &c.app); err != nil {
		t.Fatalf("create-app printed %q: %v", out, err)
	}
	for _, slug := range []string{"spring", "summer"} {
		out, _, err := c.run("create-link", "-app", fmt.Sprint(c.app.ID), "-slug", slug)
		if err != nil {
			t.Fatalf("create-link: %v", err)
		}
		var l tapline.Link
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("create-link printed %q: %v", out, err)
		}
		c.links = append(c.links, l.ID)
	}
	c.pg = postgres.NewDB(c.db)
	if err := c.pg.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.pg.Close() })
	return c
}

// run runs a tapline command with the test's database and data directory.
func (c *cli) run(args ...string) (stdout, stderr string, err error) {
	return c.runCtx(context.Background(), nil, args...)
}

// runCtx runs a command with a context and stdin.
func (c *cli) runCtx(ctx context.Context, stdin *strings.Reader, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, ProgressEvery: 20 * time.Millisecond}
	if stdin != nil {
		m.Stdin = stdin
	}
	err = m.Run(ctx, append(args, "-database-url", c.db, "-data-dir", c.dataDir))
	return out.String(), errOut.String(), err
}

// mustRun runs a command that must succeed and returns its output.
func (c *cli) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("tapline %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// create creates a funnel from flags and returns it.
func (c *cli) create(args ...string) *tapline.Funnel {
	c.t.Helper()
	out := c.mustRun(append([]string{"funnels", "create", "-app", fmt.Sprint(c.app.ID), "-json"}, args...)...)
	var f tapline.Funnel
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		c.t.Fatalf("create -json printed %q: %v", out, err)
	}
	return &f
}

func (c *cli) funnels() *postgres.FunnelStore { return postgres.NewFunnelStore(c.pg) }

// handoff completes a version's handoff as the matchers would: offset
// `at` on partitions 0 and 1 of hits and events.
func (c *cli) handoff(versionID, at int64) {
	c.t.Helper()
	if err := c.handoffErr(versionID, at); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cli) handoffErr(versionID, at int64) error {
	var hs []tapline.FunnelHandoff
	for _, topic := range []string{"hits", "events"} {
		for p := range 2 {
			hs = append(hs, tapline.FunnelHandoff{VersionID: versionID, Partition: tapline.Partition{Topic: topic, Partition: p}, Offset: at, Of: 4})
		}
	}
	if err := postgres.NewFactStore(c.pg).ApplyFacts(context.Background(), "matcher", nil, nil, tapline.FlushRows{Handoffs: hs}); err != nil {
		return fmt.Errorf("apply handoffs: %w", err)
	}
	return nil
}

func (c *cli) version(versionID int64) *tapline.Funnel {
	c.t.Helper()
	f, err := c.funnels().FunnelVersion(c.t.Context(), versionID)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// tableRow finds the line of a table that starts with cells (separated
// by runs of spaces) and returns all its cells.
func tableRow(t *testing.T, out string, first ...string) []string {
	t.Helper()
	sep := regexp.MustCompile(`\s{2,}`)
	for line := range strings.SplitSeq(out, "\n") {
		cells := sep.Split(strings.TrimSpace(line), -1)
		if len(cells) >= len(first) && slicesHasPrefix(cells, first) {
			return cells
		}
	}
	t.Fatalf("no table row starting with %q in:\n%s", first, out)
	return nil
}

func slicesHasPrefix(s, prefix []string) bool {
	for i, p := range prefix {
		if s[i] != p {
			return false
		}
	}
	return true
}

func TestFunnelsRoundTrip(t *testing.T) {
	c := newCLI(t)
	app := fmt.Sprint(c.app.ID)
	link := fmt.Sprint(c.links[0])

	out := c.mustRun("funnels", "create", "-app", app, "-name", "Spring buyers",
		"-step", "tap:links="+link+":utm_campaign=spring", "-step", "install", "-step", "event:purchase:revenue>0",
		"-exclude", "event:uninstall:after=2:before=3", "-window", "7d", "-breakdown", "link_param:utm_source")
	mustContain(t, "create", out, `Created funnel`, `"Spring buyers"`,
		"order ordered, window 7d, breakdown link_param utm_source",
		"step 1: Tap on link "+link+" where utm_campaign = spring", "step 2: Install", "step 3: purchase where revenue > 0",
		"excluded: uninstall, after step 2 and before step 3",
		"as flags: -name 'Spring buyers' -window 7d -order ordered -step tap:links="+link+":utm_campaign=spring -step install -step 'event:purchase:revenue>0' -exclude event:uninstall:after=2:before=3 -breakdown link_param:utm_source",
		"version 1 (id ", "pending")
	id := regexp.MustCompile(`Created funnel (\d+)`).FindStringSubmatch(out)[1]

	// A second one from JSON on stdin.
	def := `{"name": "Openers", "steps": [{"kind": "install"}, {"kind": "event", "event": "open"}], "order": "strict"}`
	out, errOut, err := c.runCtx(context.Background(), strings.NewReader(def), "funnels", "create", "-app", app, "-file", "-", "-json")
	if err != nil {
		t.Fatalf("create -file -: %v\n%s", err, errOut)
	}
	var openers tapline.Funnel
	if err := json.Unmarshal([]byte(out), &openers); err != nil || openers.Name != "Openers" || openers.Order != tapline.OrderStrict || openers.Status != tapline.FunnelPending {
		t.Fatalf("create -file - -json printed %q (%v), want the pending strict funnel Openers", out, err)
	}

	out = c.mustRun("funnels", "list", "-app", app)
	mustContain(t, "list", out, "ID", "NAME", "VERSION", "STATUS", "PROGRESS", "ROWS")
	tableRow(t, out, fmt.Sprint(openers.ID), "Openers", "1", "pending", "-", "-")
	tableRow(t, out, id, "Spring buyers", "1", "pending", "-", "-")
	var listed []tapline.Funnel
	if err := json.Unmarshal([]byte(c.mustRun("funnels", "list", "-account", "acme", "-app-name", "Shop", "-json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("list -json: %d funnels, %v; want 2", len(listed), err)
	}

	out = c.mustRun("funnels", "show", id, "-from", "2026-01-01", "-to", "2026-01-31", "-tz", "Europe/Berlin")
	mustContain(t, "show", out, `Funnel `+id+` "Spring buyers", app `+app, "step 3: purchase where revenue > 0",
		"Entry days 2026-01-01 to 2026-01-31 (Europe/Berlin)", "(the results are incomplete until the backfill is done)",
		"By link_param utm_source", "(no installations)")
	mustContain(t, "show", out, "STEP  TITLE")
	if row := tableRow(t, out, "2", "Install"); !slicesHasPrefix(row, []string{"2", "Install", "0", "0.0%", "0.0%", "0", "-", "-"}) {
		t.Errorf("step 2 row = %q", row)
	}
	var res tapline.FunnelResults
	if err := json.Unmarshal([]byte(c.mustRun("funnels", "show", "-json", id, "-from", "2026-01-01", "-to", "2026-01-03")), &res); err != nil {
		t.Fatal(err)
	}
	if res.From != "2026-01-01" || res.To != "2026-01-04" || res.TimeZone != "UTC" || len(res.Steps) != 3 || len(res.Days) != 3 {
		t.Errorf("show -json = %+v, want 3 steps over 3 days from 2026-01-01 to 2026-01-04 (exclusive) in UTC", res)
	}

	// The definition as JSON, edited through -file.
	var got tapline.FunnelDefinition
	if err := json.Unmarshal([]byte(c.mustRun("funnels", "show", id, "-definition")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "Spring buyers" || len(got.Steps) != 3 || got.WindowSeconds != 7*86400 || got.Exclusions[0].Before != 3 {
		t.Fatalf("show -definition = %+v", got)
	}

	// Edit one part: the rest stays.
	out = c.mustRun("funnels", "edit", id, "-window", "3d")
	mustContain(t, "edit", out, "Stored version 2 of funnel "+id, "window 3d", "step 3: purchase where revenue > 0",
		"Version 1, which was pending, is cancelled.")
	got.Name = "Spring purchasers"
	got.Breakdown = tapline.FunnelBreakdown{}
	path := filepath.Join(t.TempDir(), "def.json")
	js, _ := json.Marshal(got)
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	out = c.mustRun("funnels", "edit", id, "-file", path)
	mustContain(t, "edit -file", out, "Stored version 3", `"Spring purchasers"`, "window 7d", "breakdown none")

	out = c.mustRun("funnels", "status")
	tableRow(t, out, fmt.Sprint(openers.ID), app, "Openers", "1 (id "+fmt.Sprint(openers.VersionID)+")", "pending (handoff: 0 partitions)", "-", "-", "-")
	tableRow(t, out, id, app, "Spring purchasers")
	var rows []statusRow
	if err := json.Unmarshal([]byte(c.mustRun("funnels", "status", id, "-json")), &rows); err != nil || len(rows) != 1 || rows[0].Funnel.Version != 3 {
		t.Fatalf("status ID -json = %+v, %v; want version 3", rows, err)
	}

	out = c.mustRun("funnels", "cancel", id)
	mustContain(t, "cancel", out, "Cancelled version 3", "which was pending", "No version of the funnel is live.",
		`"tapline funnels backfill `+id+`" restarts it.`)
	if _, _, err := c.run("funnels", "cancel", id); err == nil || !strings.Contains(err.Error(), "conflict: Version 3 of funnel "+id+" is cancelled") {
		t.Fatalf("second cancel: %v, want a conflict", err)
	}
	tableRow(t, c.mustRun("funnels", "list", "-app", app), id, "Spring purchasers", "3", "cancelled")

	out = c.mustRun("funnels", "delete", id)
	mustContain(t, "delete", out, "Deleted funnel "+id+` "Spring purchasers"`)
	if _, _, err := c.run("funnels", "show", id); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("show of a deleted funnel: %v, want not_found", err)
	}
	if err := json.Unmarshal([]byte(c.mustRun("funnels", "list", "-app", app, "-json")), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("list after delete: %d funnels, %v; want 1", len(listed), err)
	}
}

func TestFunnelsCommandErrors(t *testing.T) {
	c := newCLI(t)
	app := fmt.Sprint(c.app.ID)
	create := func(args ...string) []string {
		return append([]string{"funnels", "create", "-app", app, "-name", "F"}, args...)
	}
	path := filepath.Join(t.TempDir(), "def.json")
	if err := os.WriteFile(path, []byte(`{"name": "F", "stepz": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"syntax", create("-step", "tap", "-step", "event:buy:x~1"), `invalid: -step 2 "event:buy:x~1": "x~1" is not a filter`},
		{"revenue compared as a string", create("-step", "tap", "-step", "event:buy:revenue=1"), "invalid: step 2: filter 1: revenue is a number"},
		{"number expected", create("-step", "tap", "-step", "event:level:level>high"), `invalid: step 2: filter 1: gt needs a number, not "high"`},
		{"link of another app", create("-step", "tap:links=999999", "-step", "install"), "invalid: step 1: link 999999 is not a link of this app"},
		{"one step", create("-step", "install"), "invalid: steps: a funnel has 2 to 20 steps, not 1."},
		{"tap excluded", create("-step", "install", "-step", "event:open", "-exclude", "tap"), "invalid: exclusion 1: a tap cannot be excluded"},
		{"exclusion span", create("-step", "install", "-step", "event:open", "-exclude", "event:x:after=2:before=5"), "invalid: exclusion 1: after and before must be step numbers"},
		{"order", create("-step", "install", "-step", "event:open", "-order", "sideways"), `invalid: order: "sideways" is not one of ordered, strict, any.`},
		{"breakdown", create("-step", "install", "-step", "event:open", "-breakdown", "country"), `invalid: breakdown: "country" is not one of`},
		{"breakdown param", create("-step", "install", "-step", "event:open", "-breakdown", "link_param"), `invalid: breakdown: "link_param" needs a param.`},
		{"window", create("-step", "install", "-step", "event:open", "-window", "2w"), `invalid: -window "2w"`},
		{"window over retention", create("-step", "install", "-step", "event:open", "-window", "90d"), "invalid: window_seconds: at most the app's raw retention"},
		{"no name", []string{"funnels", "create", "-app", app, "-step", "install", "-step", "event:open"}, "invalid: name: required."},
		{"unknown field", []string{"funnels", "create", "-app", app, "-file", path}, `-file ` + path + `: json: unknown field "stepz"`},
		{"file and flags", []string{"funnels", "create", "-app", app, "-file", path, "-step", "install"}, "-file gives the whole definition: drop -step"},
		{"no app", []string{"funnels", "create", "-name", "F", "-step", "install", "-step", "event:open"}, "-app: required"},
		{"unknown app", []string{"funnels", "list", "-app", "999999"}, "not_found"},
		{"unknown funnel", []string{"funnels", "show", "999999"}, "not_found"},
		{"no id", []string{"funnels", "show"}, `want one funnel ID, as in "tapline funnels show 7"`},
		{"bad id", []string{"funnels", "delete", "seven"}, `"seven" is not a funnel ID`},
		{"edit without changes", []string{"funnels", "edit", "1"}, "give -file or at least one of"},
		{"bad tz", []string{"funnels", "show", "1", "-tz", "Local"}, "-tz"},
		{"unknown command", []string{"funnels", "frobnicate"}, `funnels: unknown command "frobnicate"`},
		{"no command", []string{"funnels"}, "funnels: name a command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := c.run(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if out := c.mustRun("funnels", "list", "-app", app); !strings.Contains(out, "has no funnels") {
		t.Fatalf("invalid definitions created funnels:\n%s", out)
	}
	// Help goes to stdout for "funnels help", and -h of a command lists its
	// own flags and the connection flags, not every flag of run.
	mustContain(t, "funnels help", c.mustRun("funnels", "help"), "tap[:links=ID,ID…][:FILTER…]", "backfill  ID")
	_, errOut, err := c.run("funnels", "create", "-h")
	if err == nil {
		t.Fatal("create -h: no error, want flag.ErrHelp")
	}
	mustContain(t, "create -h", errOut, "Usage: tapline funnels create", "-step value", "-exclude value", "-database-url", "-data-dir")
	if strings.Contains(errOut, "-collector-addr") {
		t.Errorf("create -h lists the flags of run:\n%s", errOut)
	}
}

// TestFunnelsExitStatus runs the real main: an invalid definition exits 1
// with the store's message on stderr.
func TestFunnelsExitStatus(t *testing.T) {
	c := newCLI(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPLINE_TEST_AS_MAIN=1", "TAPLINE_TEST_ARGS="+strings.Join([]string{"funnels", "create",
		"-app", fmt.Sprint(c.app.ID), "-name", "F", "-step", "tap", "-step", "event:buy:revenue=1", "-database-url", c.db}, " "))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	mustContain(t, "stderr", stderr.String(), "tapline: invalid: step 2: filter 1: revenue is a number")
}

// install is one installation written to the raw store.
type install struct {
	id       string
	hit      string // "" for organic
	source   string // utm_source of the tapped link
	purchase string // bus position of a purchase with revenue, "" for none
}

// writeRaw writes installations into the embedded raw store under the
// data directory, as the matcher would have: a hit, an install event at
// events/0/n, its conversion, and a purchase.
func (c *cli) writeRaw(installs []install, at time.Time, withSources bool) {
	c.t.Helper()
	s := pebble.NewRawStore(filepath.Join(c.dataDir, "raw"))
	if err := s.Open(); err != nil {
		c.t.Fatal(err)
	}
	defer s.Close()
	ctx := c.t.Context()
	app, link := c.app.ID, c.links[0]
	pos := func(p string) string {
		if withSources {
			return p
		}
		return ""
	}
	for n, in := range installs {
		t0 := at.Add(time.Duration(n) * time.Second)
		attr := tapline.Attribution{Method: tapline.MethodOrganic}
		if in.hit != "" {
			h := &tapline.Hit{ID: in.hit, Time: t0, AppID: app, LinkID: link, IP: "203.0.113.7", UserAgent: iphoneSafari,
				Params: map[string]string{"utm_source": in.source}, Platform: tapline.PlatformIOS, Fingerprint: "fp"}
			if _, err := s.PutHit(ctx, h); err != nil {
				c.t.Fatal(err)
			}
			attr = tapline.Attribution{HitID: in.hit, LinkID: link, Method: tapline.MethodFingerprint, HitTime: t0}
		}
		ev := &tapline.Event{ID: in.id + "-install", AppID: app, Name: "install", Kind: tapline.KindInstall,
			Time: t0.Add(time.Minute), ReceivedAt: t0.Add(time.Minute), InstallID: in.id, IP: "203.0.113.7",
			Device: tapline.Device{Platform: tapline.PlatformIOS}, Protocol: "v1", Fingerprint: "fp", Source: pos(fmt.Sprintf("events/0/%d", n%100))}
		if _, err := s.PutEvent(ctx, ev); err != nil {
			c.t.Fatal(err)
		}
		conv := &tapline.Conversion{ID: tapline.ConversionID(ev.ID), AppID: app, EventID: ev.ID, InstallID: in.id,
			InstallTime: ev.Time, Platform: tapline.PlatformIOS, Fingerprint: "fp", Attribution: attr,
			History: []tapline.AttributionChange{{By: ev.Source, To: attr, At: ev.Time}}, UpdatedAt: ev.Time}
		if err := s.PutConversion(ctx, conv); err != nil {
			c.t.Fatal(err)
		}
		if in.purchase != "" {
			p := *ev
			p.ID, p.Name, p.Kind, p.Source = in.id+"-purchase", "purchase", tapline.KindPurchase, pos(in.purchase)
			p.Time = t0.Add(time.Hour)
			p.Revenue = &tapline.Revenue{Micros: 1_990_000, Currency: "USD"}
			if _, err := s.PutEvent(ctx, &p); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

func TestFunnelsBackfill(t *testing.T) {
	c := newCLI(t)
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	c.writeRaw([]install{
		{id: "i1", hit: "h1", source: "ads", purchase: "events/1/7"},
		{id: "i2", hit: "h2", source: "ads"},
		{id: "i3"},                                                      // organic: never tapped, not in the funnel
		{id: "i4", hit: "h4", source: "mail", purchase: "events/1/500"}, // the purchase comes after the handoff
	}, at, true)
	f := c.create("-name", "Buyers", "-step", "tap", "-step", "install", "-step", "event:purchase:revenue>0", "-breakdown", "link_param:utm_source")
	id := fmt.Sprint(f.ID)

	// Before the handoff a dry run counts as of now: i4's purchase too.
	out := c.mustRun("funnels", "backfill", id, "-dry-run")
	mustContain(t, "dry run", out, "as of now: it is pending, so its handoff is not complete", "Nothing is written.", "of 4 installations")
	tableRow(t, out, "3", "purchase where revenue > 0", "2")

	c.handoff(f.VersionID, 100)
	out = c.mustRun("funnels", "status", id)
	tableRow(t, out, id, fmt.Sprint(c.app.ID), "Buyers", fmt.Sprintf("1 (id %d)", f.VersionID), "backfilling")

	out = c.mustRun("funnels", "backfill", id, "-dry-run", "-workers", "2")
	mustContain(t, "dry run", out, "as of its handoff (4 partitions), as the backfill counts")
	tableRow(t, out, "1", "Tap", "3", "100.0%", "100.0%", "-")
	tableRow(t, out, "2", "Install", "3", "100.0%", "100.0%", "0")
	// 59 minutes from install to purchase, the only time in its bucket
	// (30 to 60 minutes): the median is that time.
	tableRow(t, out, "3", "purchase where revenue > 0", "1", "33.3%", "33.3%", "2", "59.0m", "59.8m")
	tableRow(t, out, "ads", "2", "2", "1", "50.0%")
	tableRow(t, out, "mail", "1", "1", "0", "0.0%")
	if v := c.version(f.VersionID); v.Status != tapline.FunnelBackfilling || v.RowsScanned != 0 {
		t.Fatalf("after dry runs the version is %s with %d rows scanned, want backfilling and nothing written", v.Status, v.RowsScanned)
	}

	out = c.mustRun("funnels", "backfill", id, "-workers", "2")
	mustContain(t, "backfill", out, fmt.Sprintf("backfill version %d: ", f.VersionID),
		fmt.Sprintf("backfill version %d: 100%% 6 rows, live", f.VersionID), "This process scanned 6 rows of 4 installations",
		fmt.Sprintf("Version 1 (id %d) of funnel %s is live", f.VersionID, id))
	if v := c.version(f.VersionID); v.Status != tapline.FunnelLive || v.RowsScanned != 6 {
		t.Fatalf("after the backfill the version is %s with %d rows, want live with 6", v.Status, v.RowsScanned)
	}
	out = c.mustRun("funnels", "show", id)
	tableRow(t, out, "1", "Tap", "3")
	tableRow(t, out, "3", "purchase where revenue > 0", "1", "33.3%", "33.3%", "2", "59.0m", "59.8m")
	tableRow(t, out, "ads", "2", "2", "1", "50.0%")
	tableRow(t, c.mustRun("funnels", "list", "-app", fmt.Sprint(c.app.ID)), id, "Buyers", "1", "live", "100.0%", "6")

	mustContain(t, "second backfill", c.mustRun("funnels", "backfill", id), "is live already: there is nothing to backfill")
	if _, _, err := c.run("funnels", "cancel", id); err == nil || !strings.Contains(err.Error(), "is live: there is no backfill to cancel") {
		t.Fatalf("cancel of a live version: %v, want a conflict", err)
	}

	// An edit cancelled before it went live is restarted by backfill,
	// which waits for its handoff.
	out = c.mustRun("funnels", "edit", id, "-step", "install", "-step", "event:purchase", "-breakdown", "none")
	mustContain(t, "edit", out, "Stored version 2", "Version 1 stays live until version 2 is.")
	mustContain(t, "cancel", c.mustRun("funnels", "cancel", id), "Cancelled version 2", "Version 1 stays live.")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			v, err := c.funnels().Funnel(ctx, f.ID)
			if err == nil && v.Version == 3 {
				time.Sleep(100 * time.Millisecond) // let backfill say it waits
				if err := c.handoffErr(v.VersionID, 100); err != nil {
					t.Error(err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	out, errOut, err := c.runCtx(ctx, nil, "funnels", "backfill", id)
	wg.Wait()
	if err != nil {
		t.Fatalf("backfill of a cancelled version: %v\n%s\n%s", err, out, errOut)
	}
	mustContain(t, "restart", out, "of funnel "+id+" was cancelled: restarted as version 3", "Waiting for the matchers to fix its handoff",
		"No tapline process holds", "pending: waiting for the matchers to fix its handoff (0 partitions so far)", "Version 3 (id ")
	out = c.mustRun("funnels", "show", id)
	mustContain(t, "show after the restart", out, "version 3 (id ", "live since")
	tableRow(t, out, "1", "Install", "4")
	tableRow(t, out, "2", "purchase", "1") // i4's purchase is after the handoff
}

// TestFunnelsBackfillResumes stops a rate-limited backfill, as Ctrl-C
// does, and checks that a second run resumes it and counts every
// installation once.
func TestFunnelsBackfillResumes(t *testing.T) {
	c := newCLI(t)
	const n = 1500
	installs := make([]install, n)
	for i := range installs {
		installs[i] = install{id: fmt.Sprintf("i%04d", i)}
	}
	c.writeRaw(installs, time.Now().UTC().Add(-24*time.Hour), true)
	f := c.create("-name", "Installs", "-step", "install", "-step", "event:open")
	c.handoff(f.VersionID, 1000)

	// A burst of 1,000 rows, then 20 a second: stop it once some ranges are
	// committed.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			// Past the burst the worker mostly waits for the limiter.
			if v, err := c.funnels().FunnelVersion(ctx, f.VersionID); err == nil && v.RowsScanned >= 980 {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, _, err := c.runCtx(ctx, nil, "funnels", "backfill", fmt.Sprint(f.ID), "-workers", "1", "-rate", "20")
	if !errors.Is(err, errInterrupted) || !strings.Contains(err.Error(), "the ranges committed so far stay") {
		t.Fatalf("stopped backfill: %v, want interrupted\n%s", err, out)
	}
	v := c.version(f.VersionID)
	rs, err := c.funnels().Ranges(t.Context(), f.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, r := range rs {
		if r.Done {
			done++
		}
	}
	if v.Status != tapline.FunnelBackfilling || done == 0 || done == len(rs) || v.RowsScanned == 0 || v.RowsScanned >= n {
		t.Fatalf("after the stop: %s, %d of %d ranges done, %d rows; want part of it done", v.Status, done, len(rs), v.RowsScanned)
	}
	tableRow(t, c.mustRun("funnels", "status"), fmt.Sprint(f.ID), fmt.Sprint(c.app.ID), "Installs", fmt.Sprintf("1 (id %d)", f.VersionID),
		"backfilling", fmt.Sprintf("%d/%d", done, len(rs)))

	out = c.mustRun("funnels", "backfill", fmt.Sprint(f.ID))
	mustContain(t, "resumed backfill", out, fmt.Sprintf("backfill version %d: 100%% 1,500 rows, live", f.VersionID))
	tableRow(t, c.mustRun("funnels", "show", fmt.Sprint(f.ID)), "1", "Install", "1,500")
}

// TestFunnelsFollowRunningTapline starts "tapline run" on a data
// directory: its matcher fixes the handoff and its in-process runner
// backfills, and "funnels backfill" follows from PostgreSQL since the
// embedded raw store is locked. A dry run needs the store: it fails.
func TestFunnelsFollowRunningTapline(t *testing.T) {
	c := newCLI(t)
	// The bus of the new tapline is empty, so the handoff is offset 0
	// everywhere: rows without a bus position come before it.
	c.writeRaw([]install{{id: "i1", hit: "h1", source: "ads", purchase: "x"}, {id: "i2", hit: "h2", source: "ads"}},
		time.Now().UTC().Add(-time.Hour), false)
	// The matcher looks for new versions every 3 s: the backfill below
	// starts while the version is pending.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPLINE_TEST_AS_MAIN=1", "TAPLINE_TEST_ARGS="+strings.Join([]string{"run",
		"-database-url", c.db, "-data-dir", c.dataDir, "-collector-addr", "127.0.0.1:0", "-dashboard-addr", "127.0.0.1:0",
		"-matcher-funnel-poll", "3s"}, " "))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), "tapline started") {
				started <- true
			}
		}
		close(started)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	select {
	case ok := <-started:
		if !ok {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("tapline exited before it started:\n%s", logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tapline not started after 30 s")
	}

	f := c.create("-name", "Buyers", "-step", "tap", "-step", "install", "-step", "event:purchase")
	_, _, err = c.run("funnels", "backfill", fmt.Sprint(f.ID), "-dry-run")
	if err == nil || !strings.Contains(err.Error(), "a dry run reads the raw store itself, and the embedded raw store "+filepath.Join(c.dataDir, "raw")+
		" is held by the running tapline process (pid "+strconv.Itoa(cmd.Process.Pid)+")") {
		t.Fatalf("dry run with the store locked: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, errOut, err := c.runCtx(ctx, nil, "funnels", "backfill", fmt.Sprint(f.ID))
	if err != nil {
		t.Fatalf("backfill following tapline: %v\n%s\n%s", err, out, errOut)
	}
	mustContain(t, "follow", out, "is held by the running tapline process (pid "+strconv.Itoa(cmd.Process.Pid)+"), which backfills the version in-process",
		"Following its progress in PostgreSQL", fmt.Sprintf("backfill version %d: pending: waiting for the matchers", f.VersionID),
		fmt.Sprintf("backfill version %d: 100%% 3 rows, live", f.VersionID), "is live: 3 rows counted")
	tableRow(t, c.mustRun("funnels", "show", fmt.Sprint(f.ID)), "3", "purchase", "1", "50.0%")
}
