package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/funnels"
	"tapline/internal/node"
	"tapline/postgres"
)

const funnelsUsage = `Usage: tapline funnels COMMAND [ID] [flags]

Commands:
  create    -app ID (-file FILE | -name NAME -step SPEC -step SPEC … [-window 14d]
            [-order ordered|strict|any] [-exclude SPEC] [-breakdown KIND])
  list      -app ID                the app's funnels: newest version, status, backfill progress
  show      ID [-from -to -tz]     definition and results (step table, breakdown); -json
  edit      ID (-file FILE | flags as create; the flags given replace those parts)
  delete    ID                     delete the funnel and drop its results
  cancel    ID                     cancel the newest version while it is pending or backfilling
  status    [ID]                   progress of the backfills (every pending or backfilling one)
  backfill  ID [-workers N] [-rate R] [-dry-run]
                                   run (or resume, or restart a cancelled) backfill here

Steps (-step, one per step in order; -exclude):
  tap[:links=ID,ID…][:FILTER…]     the tap the installation is attributed to (filters: link query)
  install[:FILTER…]                the install (first open)
  event:NAME[:FILTER…]             an SDK event; revenue and currency are its revenue
  FILTER: param=v  param!=v  param>N  param>=N  param<N  param<=N  "param in v1|v2|…"
  -exclude takes install or event steps with :after=N:before=M (default 1 and the last
  step). A backslash takes the next character literally: "utm_content=a\:b".

Example:
  tapline funnels create -app 3 -name 'Spring buyers' \
    -step tap:links=3,4:utm_campaign=spring -step install -step 'event:purchase:revenue>0' \
    -exclude event:uninstall:after=2:before=3 -breakdown link_param:utm_source

Each command takes the flags of "tapline run" for PostgreSQL and the raw store
(-database-url, -data-dir, -cassandra-hosts …); "tapline funnels COMMAND -h"
lists its own. docs/funnels.md defines what a funnel counts.
`

// funnelsCmd runs "tapline funnels COMMAND".
func (m *Main) funnelsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !slices.Contains([]string{"-h", "-help", "--help"}, args[0])) {
		fmt.Fprint(m.Stderr, funnelsUsage)
		return fmt.Errorf("funnels: name a command (create, list, show, edit, delete, cancel, status or backfill) before the flags")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "create":
		return m.funnelsCreate(ctx, args)
	case "list":
		return m.funnelsList(ctx, args)
	case "show":
		return m.funnelsShow(ctx, args)
	case "edit":
		return m.funnelsEdit(ctx, args)
	case "delete":
		return m.funnelsDelete(ctx, args)
	case "cancel":
		return m.funnelsCancel(ctx, args)
	case "status":
		return m.funnelsStatus(ctx, args)
	case "backfill":
		return m.funnelsBackfill(ctx, args)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, funnelsUsage)
		return nil
	}
	fmt.Fprint(m.Stderr, funnelsUsage)
	return fmt.Errorf("funnels: unknown command %q", cmd)
}

// connectionFlags are the flags of "tapline run" a funnels command's help
// lists; it accepts the others too.
var connectionFlags = map[string]bool{
	"database-url": true, "data-dir": true, "cassandra-hosts": true, "cassandra-keyspace": true,
	"cassandra-consistency": true, "cassandra-local-dc": true,
}

// funnelCommand is the flag set of one funnels command, or of another
// command that reads the stores (explain).
type funnelCommand struct {
	fs      *flag.FlagSet
	cfg     *node.Config
	node    map[string]bool // flags of the node configuration
	asJSON  *bool
	m       *Main
	name    string // "show"
	path    string // "funnels show"
	posArgs string
}

// command returns the flag set of "funnels NAME": the node configuration's
// flags, -json, and the command's own, which its help lists first.
func (m *Main) command(name, posArgs, synopsis string, withJSON bool) *funnelCommand {
	c := m.subcommand("funnels "+name, posArgs, synopsis, withJSON)
	c.name = name
	return c
}

// subcommand returns the flag set of the command path ("explain",
// "funnels show") as command does.
func (m *Main) subcommand(path, posArgs, synopsis string, withJSON bool) *funnelCommand {
	fs, cfg := m.flags(path)
	c := &funnelCommand{fs: fs, cfg: cfg, node: map[string]bool{}, m: m, name: path, path: path, posArgs: posArgs}
	fs.VisitAll(func(f *flag.Flag) { c.node[f.Name] = true })
	if withJSON {
		c.asJSON = fs.Bool("json", false, "print JSON")
	} else {
		c.asJSON = new(bool)
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: tapline %s\n\n%s\n\nFlags:\n", strings.TrimSpace(path+" "+posArgs), synopsis)
		own := flag.NewFlagSet("", flag.ContinueOnError)
		own.SetOutput(w)
		conn := flag.NewFlagSet("", flag.ContinueOnError)
		conn.SetOutput(w)
		fs.VisitAll(func(f *flag.Flag) {
			switch {
			case !c.node[f.Name]:
				own.Var(f.Value, f.Name, f.Usage)
				own.Lookup(f.Name).DefValue = f.DefValue
			case connectionFlags[f.Name]:
				conn.Var(f.Value, f.Name, f.Usage)
				conn.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		own.PrintDefaults()
		fmt.Fprintln(w, "\nConnection (and every other flag of tapline run):")
		conn.PrintDefaults()
	}
	return c
}

// parse parses args, in which positional arguments may come before,
// between or after the flags ("show 7 -json", "show -json 7"), and
// returns the positional ones.
func (c *funnelCommand) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, err
		}
		if c.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
}

// parseID parses args with exactly one positional argument, a funnel id.
func (c *funnelCommand) parseID(args []string) (int64, error) {
	pos, err := c.parse(args)
	if err != nil {
		return 0, err
	}
	if len(pos) != 1 {
		return 0, fmt.Errorf("funnels %s: want one funnel ID, as in \"tapline funnels %s 7\"", c.name, c.name)
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("funnels %s: %q is not a funnel ID", c.name, pos[0])
	}
	return id, nil
}

// parseNone parses args that take no positional argument.
func (c *funnelCommand) parseNone(args []string) error {
	pos, err := c.parse(args)
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("%s: unexpected argument %q", c.path, pos[0])
	}
	return err
}

// set reports whether a flag was given.
func (c *funnelCommand) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// withStores opens the database and runs fn with the funnel store.
func (c *funnelCommand) withStores(ctx context.Context, fn func(db *postgres.DB, s *postgres.FunnelStore) error) error {
	db, err := c.m.openDB(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db, postgres.NewFunnelStore(db))
}

// appFlags are -app ID, or -account and -app-name.
type appFlags struct {
	id            *int64
	account, name *string
}

func (c *funnelCommand) appFlags() appFlags {
	return appFlags{
		id:      c.fs.Int64("app", 0, "id of the app (or name it with -account and -app-name)"),
		account: c.fs.String("account", "", "account of the app, with -app-name"),
		name:    c.fs.String("app-name", "", "name of the app, with -account"),
	}
}

// app returns the app the flags name.
func (a appFlags) app(ctx context.Context, svc tapline.AccountService) (*tapline.App, error) {
	id := *a.id
	if id == 0 && *a.account != "" {
		var err error
		if id, err = appID(ctx, svc, *a.account, *a.name); err != nil {
			return nil, err
		}
	}
	if id == 0 {
		return nil, fmt.Errorf("-app: required (or -account and -app-name)")
	}
	return svc.App(ctx, id)
}

// defFlags are the flags that give a definition.
type defFlags struct {
	file, name, window, order, breakdown *string
	steps, excludes                      stepsFlag
}

var definitionFlags = []string{"name", "step", "exclude", "window", "order", "breakdown"}

func (c *funnelCommand) defFlags() *defFlags {
	d := &defFlags{
		file:      c.fs.String("file", "", "the definition as JSON (docs/funnels.md; \"show -definition\" prints one), - for stdin"),
		name:      c.fs.String("name", "", "funnel name"),
		window:    c.fs.String("window", "", "conversion window from the first step: 14d (the default), 36h, 1d12h …"),
		order:     c.fs.String("order", "", "ordered (the default), strict or any"),
		breakdown: c.fs.String("breakdown", "", "link, platform, method, link_param:PARAM, entry_param:PARAM or none"),
	}
	c.fs.Var(&d.steps, "step", "a step, in order (repeat: 2 to 20); see \"tapline funnels help\"")
	c.fs.Var(&d.excludes, "exclude", "an excluded event with :after=N:before=M (repeat; none drops them)")
	return d
}

// definition returns base (nil: an empty definition) with what the flags
// give: -file replaces it whole, each other flag the part it names.
func (d *defFlags) definition(c *funnelCommand, base *tapline.FunnelDefinition, stdin io.Reader) (tapline.FunnelDefinition, error) {
	var def tapline.FunnelDefinition
	if base != nil {
		def = *base
	}
	if c.set("file") {
		for _, f := range definitionFlags {
			if c.set(f) {
				return def, fmt.Errorf("-file gives the whole definition: drop -%s", f)
			}
		}
		return readDefinition(*d.file, stdin)
	}
	if c.set("name") {
		def.Name = *d.name
	}
	if c.set("step") {
		steps, err := funnels.ParseSteps(d.steps)
		if err != nil {
			return def, err
		}
		def.Steps = steps
	}
	if c.set("exclude") {
		xs, err := funnels.ParseExclusions(d.excludes)
		if err != nil {
			return def, err
		}
		def.Exclusions = xs
	}
	if c.set("window") {
		secs, err := funnels.ParseWindow(*d.window)
		if err != nil {
			return def, err
		}
		def.WindowSeconds = secs
	}
	if c.set("order") {
		def.Order = tapline.FunnelOrder(strings.ToLower(strings.TrimSpace(*d.order)))
	}
	if c.set("breakdown") {
		def.Breakdown = funnels.ParseBreakdown(*d.breakdown)
	}
	funnels.FillExclusions(&def)
	return def, nil
}

// readDefinition reads a JSON definition from a file, or stdin for "-".
func readDefinition(path string, stdin io.Reader) (tapline.FunnelDefinition, error) {
	var def tapline.FunnelDefinition
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return def, fmt.Errorf("-file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&def); err != nil {
		return def, tapline.Errorf(tapline.EINVALID, "-file %s: %v", path, err)
	}
	return def, nil
}

func (m *Main) stdin() io.Reader {
	if m.Stdin != nil {
		return m.Stdin
	}
	return os.Stdin
}

func (m *Main) funnelsCreate(ctx context.Context, args []string) error {
	c := m.command("create", "", "Create a funnel: version 1, pending its handoff, then backfilled over the raw store.", true)
	app := c.appFlags()
	d := c.defFlags()
	if err := c.parseNone(args); err != nil {
		return err
	}
	def, err := d.definition(c, nil, m.stdin())
	if err != nil {
		return describe(err)
	}
	return c.withStores(ctx, func(db *postgres.DB, s *postgres.FunnelStore) error {
		a, err := app.app(ctx, postgres.NewAccountService(db))
		if err != nil {
			return describe(err)
		}
		f, err := s.CreateFunnel(ctx, a.ID, def)
		if err != nil {
			return describe(err)
		}
		if *c.asJSON {
			return m.printJSON(f)
		}
		fmt.Fprintf(m.Stdout, "Created funnel %d %q for app %d.\n", f.ID, f.Name, f.AppID)
		writeDefinition(m.Stdout, f)
		fmt.Fprintf(m.Stdout, "  version %d (id %d): %s\n", f.Version, f.VersionID, versionStatus(f))
		fmt.Fprintf(m.Stdout, "The matchers fix its handoff within seconds; then it is backfilled over the raw store.\nFollow it with \"tapline funnels status %d\".\n", f.ID)
		return nil
	})
}

func (m *Main) funnelsEdit(ctx context.Context, args []string) error {
	c := m.command("edit", "ID", "Store a new version of the funnel: -file replaces the definition, each other flag the part it names.\nThe live version stays live until the new one is.", true)
	d := c.defFlags()
	id, err := c.parseID(args)
	if err != nil {
		return err
	}
	set := c.set("file")
	for _, f := range definitionFlags {
		set = set || c.set(f)
	}
	if !set {
		return fmt.Errorf("funnels edit: give -file or at least one of -%s", strings.Join(definitionFlags, ", -"))
	}
	return c.withStores(ctx, func(_ *postgres.DB, s *postgres.FunnelStore) error {
		old, err := s.Funnel(ctx, id)
		if err != nil {
			return describe(err)
		}
		def, err := d.definition(c, &old.FunnelDefinition, m.stdin())
		if err != nil {
			return describe(err)
		}
		f, err := s.EditFunnel(ctx, id, def)
		if err != nil {
			return describe(err)
		}
		if *c.asJSON {
			return m.printJSON(f)
		}
		fmt.Fprintf(m.Stdout, "Stored version %d of funnel %d %q.\n", f.Version, f.ID, f.Name)
		writeDefinition(m.Stdout, f)
		fmt.Fprintf(m.Stdout, "  version %d (id %d): %s\n", f.Version, f.VersionID, versionStatus(f))
		switch old.Status {
		case tapline.FunnelPending, tapline.FunnelBackfilling:
			fmt.Fprintf(m.Stdout, "Version %d, which was %s, is cancelled.\n", old.Version, old.Status)
		}
		if live := liveVersion(ctx, s, id); live != nil {
			fmt.Fprintf(m.Stdout, "Version %d stays live until version %d is.\n", live.Version, f.Version)
		}
		return nil
	})
}

// liveVersion returns the funnel's live version, nil for none.
func liveVersion(ctx context.Context, s *postgres.FunnelStore, id int64) *tapline.Funnel {
	vs, err := s.FunnelVersions(ctx, id)
	if err != nil {
		return nil
	}
	for _, v := range vs {
		if v.Status == tapline.FunnelLive {
			return v
		}
	}
	return nil
}

func (m *Main) funnelsList(ctx context.Context, args []string) error {
	c := m.command("list", "", "List the app's funnels with their newest version and its backfill progress.", true)
	app := c.appFlags()
	if err := c.parseNone(args); err != nil {
		return err
	}
	return c.withStores(ctx, func(db *postgres.DB, s *postgres.FunnelStore) error {
		a, err := app.app(ctx, postgres.NewAccountService(db))
		if err != nil {
			return describe(err)
		}
		fs, err := s.FunnelsByApp(ctx, a.ID)
		if err != nil {
			return describe(err)
		}
		if *c.asJSON {
			return m.printJSON(fs)
		}
		if len(fs) == 0 {
			fmt.Fprintf(m.Stdout, "App %d has no funnels.\n", a.ID)
			return nil
		}
		t := newTable("ID", "NAME", "VERSION", "STATUS", "PROGRESS", "ROWS").alignRight(0, 2, 4, 5)
		for _, f := range fs {
			t.add(strconv.FormatInt(f.ID, 10), f.Name, strconv.Itoa(f.Version), string(f.Status), progressPercent(f), rowsText(f))
		}
		t.write(m.Stdout)
		return nil
	})
}

// progressPercent is a version's backfill progress for tables.
func progressPercent(f *tapline.Funnel) string {
	switch f.Status {
	case tapline.FunnelPending, tapline.FunnelCancelled:
		return "-"
	}
	return percent(f.Progress)
}

// rowsText is "scanned of ~estimated" while backfilling, else the rows
// scanned.
func rowsText(f *tapline.Funnel) string {
	switch {
	case f.Status == tapline.FunnelPending || f.Status == tapline.FunnelCancelled:
		return "-"
	case f.Status == tapline.FunnelBackfilling && f.RowsEstimated > 0:
		return thousands(f.RowsScanned) + " of ~" + thousands(approx(f.RowsEstimated))
	}
	return thousands(f.RowsScanned)
}

// versionStatus says where a version is.
func versionStatus(f *tapline.Funnel) string {
	switch f.Status {
	case tapline.FunnelPending:
		return "pending: the matchers are fixing its handoff"
	case tapline.FunnelBackfilling:
		return fmt.Sprintf("backfilling, %s (%s rows)", percent(f.Progress), rowsText(f))
	case tapline.FunnelLive:
		if f.LiveAt != nil {
			return "live since " + f.LiveAt.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return "live"
	}
	return string(f.Status)
}

// writeDefinition writes a funnel's definition readably, then as the
// flags that recreate it.
func writeDefinition(w io.Writer, f *tapline.Funnel) {
	d := f.FunnelDefinition
	d.SetDefaults()
	bd := "none"
	if d.Breakdown.Kind != tapline.BreakdownNone {
		bd = strings.TrimSpace(string(d.Breakdown.Kind) + " " + d.Breakdown.Param)
	}
	fmt.Fprintf(w, "  order %s, window %s, breakdown %s\n", d.Order, funnels.FormatWindow(d.WindowSeconds), bd)
	for i := range d.Steps {
		fmt.Fprintf(w, "  step %d: %s\n", i+1, d.Steps[i].Title())
	}
	for i := range d.Exclusions {
		x := &d.Exclusions[i]
		fmt.Fprintf(w, "  excluded: %s, after step %d and before step %d\n", x.Title(), x.After, x.Before)
	}
	fmt.Fprintf(w, "  as flags: %s\n", definitionArgs(&d))
}

// definitionArgs writes the flags of create and edit that give d.
func definitionArgs(d *tapline.FunnelDefinition) string {
	order := d.Order
	if order == "" {
		order = tapline.OrderOrdered
	}
	args := []string{"-name", shellQuote(d.Name), "-window", funnels.FormatWindow(int64(d.Window() / time.Second)), "-order", string(order)}
	steps, excludes := funnels.SpecsOf(d)
	for _, s := range steps {
		args = append(args, "-step", shellQuote(s))
	}
	for _, s := range excludes {
		args = append(args, "-exclude", shellQuote(s))
	}
	if d.Breakdown.Kind != tapline.BreakdownNone {
		args = append(args, "-breakdown", shellQuote(funnels.FormatBreakdown(d.Breakdown)))
	}
	return strings.Join(args, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (m *Main) funnelsShow(ctx context.Context, args []string) error {
	c := m.command("show", "ID", "Show a funnel's definition and results over entry days: the live version's, or the newest's\nwhile none is live.", true)
	from := c.fs.String("from", "", "first entry day, YYYY-MM-DD (default: the app's raw retention before -to)")
	to := c.fs.String("to", "", "last entry day, YYYY-MM-DD, included (default: today)")
	tz := c.fs.String("tz", "UTC", "time zone of the entry days (IANA name)")
	version := c.fs.Int("version", 0, "show this version (number) instead")
	defOnly := c.fs.Bool("definition", false, "print only the definition as JSON, as -file takes it")
	id, err := c.parseID(args)
	if err != nil {
		return err
	}
	if _, err := loadTZ(*tz); err != nil {
		return describe(err)
	}
	return c.withStores(ctx, func(db *postgres.DB, s *postgres.FunnelStore) error {
		vs, err := s.FunnelVersions(ctx, id)
		if err != nil {
			return describe(err)
		}
		newest, shown := vs[0], vs[0]
		for _, v := range vs {
			if (*version == 0 && v.Status == tapline.FunnelLive) || (*version != 0 && v.Version == *version) {
				shown = v
				break
			}
		}
		if *version != 0 && shown.Version != *version {
			return describe(tapline.Errorf(tapline.ENOTFOUND, "Funnel %d has no version %d.", id, *version))
		}
		if *defOnly {
			return m.printJSON(shown.FunnelDefinition)
		}
		app, err := postgres.NewAccountService(db).App(ctx, shown.AppID)
		if err != nil {
			return describe(err)
		}
		f := tapline.ResultsFilter{AppID: shown.AppID, VersionID: shown.VersionID}
		days, err := dayRange(*from, *to, *tz, app.Retention, time.Now(), &f)
		if err != nil {
			return describe(err)
		}
		rows, err := postgres.NewReports(db).FunnelRows(ctx, f)
		if err != nil {
			return describe(err)
		}
		res := funnels.Results(shown, rows, days)
		res.From, res.To, res.TimeZone = days[0], f.To.Format(time.DateOnly), f.Location.String()
		if *c.asJSON {
			return m.printJSON(res)
		}
		w := m.Stdout
		fmt.Fprintf(w, "Funnel %d %q, app %d\n", shown.ID, shown.Name, shown.AppID)
		writeDefinition(w, shown)
		fmt.Fprintf(w, "  version %d (id %d): %s\n", shown.Version, shown.VersionID, versionStatus(shown))
		if newest != shown {
			fmt.Fprintf(w, "  newest version %d (id %d): %s\n", newest.Version, newest.VersionID, versionStatus(newest))
		}
		if shown.Status == tapline.FunnelBackfilling || shown.Status == tapline.FunnelPending {
			fmt.Fprintln(w, "  (the results are incomplete until the backfill is done)")
		}
		fmt.Fprintf(w, "\nEntry days %s to %s (%s)\n\n", days[0], days[len(days)-1], res.TimeZone)
		writeResults(w, res)
		return nil
	})
}

// dayRange reads -from, -to (inclusive) and -tz into f and returns the
// days; the default range is the app's raw retention up to today.
func dayRange(from, to, tz string, retention time.Duration, now time.Time, f *tapline.ResultsFilter) ([]string, error) {
	loc, err := loadTZ(tz)
	if err != nil {
		return nil, err
	}
	day := func(flag, s string) (time.Time, error) {
		t, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil {
			return t, tapline.Errorf(tapline.EINVALID, "-%s: want YYYY-MM-DD, not %q", flag, s)
		}
		return t, nil
	}
	n := now.In(loc)
	last := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	if to != "" {
		if last, err = day("to", to); err != nil {
			return nil, err
		}
	}
	days := max(int(retention/(24*time.Hour)), 1)
	first := last.AddDate(0, 0, -(days - 1))
	if from != "" {
		if first, err = day("from", from); err != nil {
			return nil, err
		}
	}
	if first.After(last) {
		return nil, tapline.Errorf(tapline.EINVALID, "-from (%s) is after -to (%s)", first.Format(time.DateOnly), last.Format(time.DateOnly))
	}
	list, lo, hi, err := funnels.Days(first, last.AddDate(0, 0, 1), loc, 366)
	if err != nil {
		return nil, err
	}
	f.From, f.To, f.Location = lo, hi, loc
	return list, nil
}

// loadTZ reads -tz: an IANA name PostgreSQL knows too.
func loadTZ(tz string) (*time.Location, error) {
	if tz == "" || tz == "Local" {
		return nil, tapline.Errorf(tapline.EINVALID, "-tz: want an IANA time zone name such as UTC or Europe/Berlin")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, tapline.Errorf(tapline.EINVALID, "-tz: unknown time zone %q", tz)
	}
	return loc, nil
}

// writeResults writes the step table and, with a breakdown, the
// breakdown table.
func writeResults(w io.Writer, res *tapline.FunnelResults) {
	t := newTable("STEP", "TITLE", "COUNT", "CONVERSION", "FROM FIRST", "DROP-OFF", "MEDIAN", "P90").alignRight(0, 2, 3, 4, 5, 6, 7)
	for i, s := range res.Steps {
		drop := "-"
		if i > 0 {
			drop = thousands(s.DropOff)
		}
		t.add(strconv.Itoa(s.Step), s.Title, thousands(s.Count), percent(s.Conversion), percent(s.TotalConversion), drop,
			seconds(s.MedianSeconds), seconds(s.P90Seconds))
	}
	t.write(w)
	if res.Funnel == nil || res.Funnel.Breakdown.Kind == tapline.BreakdownNone {
		return
	}
	b := res.Funnel.Breakdown
	fmt.Fprintf(w, "\nBy %s\n\n", strings.TrimSpace(string(b.Kind)+" "+b.Param))
	head := []string{"VALUE"}
	right := []int{}
	for i := range res.Steps {
		head = append(head, "STEP "+strconv.Itoa(i+1))
		right = append(right, i+1)
	}
	head = append(head, "CONVERSION")
	bt := newTable(head...).alignRight(append(right, len(res.Steps)+1)...)
	for _, r := range res.Breakdown {
		cells := []string{r.Value}
		if r.Value == "" {
			cells[0] = "(none)"
		}
		for _, n := range r.Steps {
			cells = append(cells, thousands(n))
		}
		bt.add(append(cells, percent(r.Conversion))...)
	}
	if len(res.Breakdown) == 0 {
		fmt.Fprintln(w, "(no installations)")
		return
	}
	bt.write(w)
}

func (m *Main) funnelsDelete(ctx context.Context, args []string) error {
	c := m.command("delete", "ID", "Delete a funnel: its versions are cancelled and their results dropped.", false)
	id, err := c.parseID(args)
	if err != nil {
		return err
	}
	return c.withStores(ctx, func(_ *postgres.DB, s *postgres.FunnelStore) error {
		f, err := s.Funnel(ctx, id)
		if err != nil {
			return describe(err)
		}
		if err := s.DeleteFunnel(ctx, id); err != nil {
			return describe(err)
		}
		fmt.Fprintf(m.Stdout, "Deleted funnel %d %q of app %d: its versions are cancelled and their results dropped.\n", f.ID, f.Name, f.AppID)
		return nil
	})
}

func (m *Main) funnelsCancel(ctx context.Context, args []string) error {
	c := m.command("cancel", "ID", "Cancel the newest version of a funnel while it is pending or backfilling, and drop its results.\n\"tapline funnels backfill ID\" restarts it.", true)
	id, err := c.parseID(args)
	if err != nil {
		return err
	}
	return c.withStores(ctx, func(_ *postgres.DB, s *postgres.FunnelStore) error {
		before, err := s.Funnel(ctx, id)
		if err != nil {
			return describe(err)
		}
		f, err := s.CancelFunnel(ctx, id)
		if err != nil {
			return describe(err)
		}
		if *c.asJSON {
			return m.printJSON(f)
		}
		fmt.Fprintf(m.Stdout, "Cancelled version %d (id %d) of funnel %d %q, which was %s; its results are dropped.\n",
			f.Version, f.VersionID, f.ID, f.Name, versionStatus(before))
		if live := liveVersion(ctx, s, id); live != nil {
			fmt.Fprintf(m.Stdout, "Version %d stays live.\n", live.Version)
		} else {
			fmt.Fprintln(m.Stdout, "No version of the funnel is live.")
		}
		fmt.Fprintf(m.Stdout, "\"tapline funnels backfill %d\" restarts it.\n", f.ID)
		return nil
	})
}

// statusRow is one version in "funnels status -json".
type statusRow struct {
	Funnel     *tapline.Funnel `json:"funnel"`
	Handoffs   int             `json:"handoff_partitions"`
	RangesDone int             `json:"ranges_done"`
	Ranges     int             `json:"ranges"`
}

func (m *Main) funnelsStatus(ctx context.Context, args []string) error {
	c := m.command("status", "[ID]", "Show the progress of every backfill pending or running, or of the funnel's newest version.", true)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	var id int64
	switch len(pos) {
	case 0:
	case 1:
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("funnels status: %q is not a funnel ID", pos[0])
		}
	default:
		return fmt.Errorf("funnels status: want at most one funnel ID")
	}
	return c.withStores(ctx, func(_ *postgres.DB, s *postgres.FunnelStore) error {
		var vids []int64
		if id != 0 {
			f, err := s.Funnel(ctx, id)
			if err != nil {
				return describe(err)
			}
			vids = append(vids, f.VersionID)
		} else {
			fs, err := s.ActiveFunnels(ctx)
			if err != nil {
				return describe(err)
			}
			for _, f := range fs {
				if f.Status == tapline.FunnelPending || f.Status == tapline.FunnelBackfilling {
					vids = append(vids, f.VersionID)
				}
			}
		}
		rows := []statusRow{}
		for _, vid := range vids {
			p, err := readProgress(ctx, s, vid)
			if err != nil {
				return describe(err)
			}
			rows = append(rows, statusRow{Funnel: p.f, Handoffs: len(p.f.Handoff), RangesDone: p.rangesDone, Ranges: p.ranges})
		}
		if *c.asJSON {
			return m.printJSON(rows)
		}
		if len(rows) == 0 {
			fmt.Fprintln(m.Stdout, "No backfill is pending or running.")
			return nil
		}
		t := newTable("FUNNEL", "APP", "NAME", "VERSION", "STATUS", "RANGES", "ROWS", "PROGRESS").alignRight(0, 1, 3, 5, 6, 7)
		for _, r := range rows {
			f := r.Funnel
			ranges := "-"
			if r.Ranges > 0 {
				ranges = fmt.Sprintf("%d/%d", r.RangesDone, r.Ranges)
			}
			status := string(f.Status)
			if f.Status == tapline.FunnelPending {
				status = fmt.Sprintf("pending (handoff: %d partitions)", r.Handoffs)
			}
			t.add(strconv.FormatInt(f.ID, 10), strconv.FormatInt(f.AppID, 10), f.Name,
				fmt.Sprintf("%d (id %d)", f.Version, f.VersionID), status, ranges, rowsText(f), progressPercent(f))
		}
		t.write(m.Stdout)
		return nil
	})
}

// errInterrupted ends a command stopped by a signal.
var errInterrupted = errors.New("interrupted")
