package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/internal/node"
	"tapline/postgres"
)

// Main runs one tapline command; tests drive it the way main does.
type Main struct {
	Stdout, Stderr io.Writer
	// Stdin is read by "funnels create -file -"; nil means os.Stdin.
	Stdin io.Reader
	// ProgressEvery is how often a backfill's progress is logged when
	// stdout is not a terminal; 0 means 5 s.
	ProgressEvery time.Duration
	// Node is the running process after a successful "run".
	Node *node.Node
}

// NewMain returns a Main writing to the process's standard streams.
func NewMain() *Main { return &Main{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin} }

// Run parses args and runs the command they name. "run" returns once the
// node serves; Close stops it.
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := "run"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || slices.Contains([]string{"-h", "-help", "--help"}, args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return m.run(ctx, args)
	case "migrate":
		return m.migrate(ctx, args)
	case "create-account":
		return m.createAccount(ctx, args)
	case "create-app":
		return m.createApp(ctx, args)
	case "create-link":
		return m.createLink(ctx, args)
	case "funnels":
		return m.funnelsCmd(ctx, args)
	case "datacenters":
		return m.datacenters(ctx, args)
	case "explain":
		return m.explain(ctx, args)
	case "whatif":
		return m.whatIf(ctx, args)
	case "erase":
		return m.erase(ctx, args)
	case "export":
		return m.export(ctx, args)
	case "help", "-h", "-help", "--help":
		printUsage(m.Stdout)
		fs, _ := m.flags("run")
		fmt.Fprintln(m.Stdout, "\nFlags of run (and, for the database and the stores, of every command):")
		fs.SetOutput(m.Stdout)
		fs.PrintDefaults()
		return nil
	}
	printUsage(m.Stderr)
	return fmt.Errorf("unknown command %q", cmd)
}

// Close stops a running node.
func (m *Main) Close() error {
	if m.Node == nil {
		return nil
	}
	return m.Node.Close()
}

func (m *Main) flags(name string) (*flag.FlagSet, *node.Config) {
	fs := flag.NewFlagSet("tapline "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cfg := node.NewConfig()
	cfg.RegisterFlags(fs)
	return fs, &cfg
}

func (m *Main) run(ctx context.Context, args []string) error {
	fs, cfg := m.flags("run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n := node.New(*cfg, cfg.NewLogger(os.Stderr))
	if err := n.Open(ctx); err != nil {
		return err
	}
	m.Node = n
	if cfg.Demo {
		m.printDemo(n)
	}
	return nil
}

// printDemo tells a newcomer where everything is.
func (m *Main) printDemo(n *node.Node) {
	public := n.Dashboard.Config.CollectorURL
	form := url.Values{
		"secret":       {node.DemoSDKSecret},
		"sdkversion":   {"2.12.0"},
		"uuid":         {"11111111-2222-3333-4444-555555555555"},
		"platform":     {"iOS"},
		"vendor":       {"Apple"},
		"model":        {"iPhone15,2"},
		"os":           {"iOS 17.4.1"},
		"resolution":   {"1179x2556"},
		"locale":       {"en_US"},
		"app-name":     {"Demo"},
		"app-version":  {"1.0"},
		"package-name": {"com.example.demo"},
		"gmtoffset":    {"0"},
		"created-ms":   {"NOW_MS"},
	}
	body := strings.Replace(form.Encode(), "NOW_MS", "$(date +%s%3N)", 1)
	fmt.Fprintf(m.Stdout, `
tapline is running (stop it with Ctrl-C).

  Dashboard      %s
  Login          %s / %s   (account %q)
  Tracking link  %s/l/%s
  Admin token    in %s/admin.token

Tap the link from a phone, or pretend to be an iPhone:
  curl -si -A 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1' %s/l/%s

Then post the install the Tapstream iOS SDK would send from the same device:
  curl -si %s/%s/event/ios-demo-install/ -d "%s"

The install shows up as a conversion on the dashboard within a few seconds.
`, n.DashboardURL, node.DemoEmail, node.DemoPassword, node.DemoAccount,
		public, node.DemoLinkSlug, n.Config.DataDir,
		public, node.DemoLinkSlug,
		public, node.DemoAccount, body)
}

// openDB opens and migrates the database named by the command's flags.
func (m *Main) openDB(ctx context.Context, cfg *node.Config) (*postgres.DB, error) {
	if cfg.DatabaseURL == "" {
		return nil, fmt.Errorf("-database-url: required (or set DATABASE_URL)")
	}
	db := postgres.NewDB(cfg.DatabaseURL)
	if err := db.Open(ctx); err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return db, nil
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	fs, cfg := m.flags("migrate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := m.openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(m.Stdout, "postgres: migrations applied")
	if cfg.CassandraHosts == "" {
		return nil
	}
	if err := node.MigrateCassandra(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, "cassandra: migrations applied")
	return nil
}

func (m *Main) createAccount(ctx context.Context, args []string) error {
	fs, cfg := m.flags("create-account")
	name := fs.String("name", "", "account name, used in SDK URLs (lower-case letters, digits, -)")
	email := fs.String("email", "", "login email of the account's first user, its owner")
	password := fs.String("password", "", "login password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return m.create(ctx, cfg, func(svc *postgres.AccountService) (any, error) {
		a, owner := &tapline.Account{Name: *name}, &tapline.User{Email: *email}
		if err := svc.CreateAccount(ctx, a, owner, *password); err != nil {
			return nil, err
		}
		return dashboard.NewAccountView(a, owner), nil
	})
}

func (m *Main) createApp(ctx context.Context, args []string) error {
	fs, cfg := m.flags("create-app")
	account := fs.String("account", "", "name of the account the app belongs to")
	a := &tapline.App{}
	fs.StringVar(&a.Name, "name", "", "app name")
	fs.StringVar(&a.IOSURL, "ios-url", "", "App Store URL")
	fs.StringVar(&a.AndroidURL, "android-url", "", "Play Store URL")
	fs.StringVar(&a.WebURL, "web-url", "", "web fallback URL")
	fs.DurationVar(&a.ClickWindow, "click-window", tapline.DefaultClickWindow, "deterministic match window")
	fs.DurationVar(&a.FingerprintWindow, "fingerprint-window", tapline.DefaultFingerprintWindow, "fingerprint match window")
	fs.DurationVar(&a.LatenessHorizon, "lateness-horizon", tapline.DefaultLatenessHorizon, "how long a late hit may still claim an install")
	fs.DurationVar(&a.Retention, "retention", tapline.DefaultRetention, "how long raw hits and events are kept")
	fs.DurationVar(&a.ReengagementWindow, "reengagement-window", tapline.DefaultReengagementWindow, "how long after a tap on a re-engagement link an open is credited to it")
	fs.DurationVar(&a.ReinstallWindow, "reinstall-window", tapline.DefaultReinstallWindow, "how long after a device's install another install from it is a reinstall")
	fs.BoolVar(&a.ReattributeReinstalls, "reattribute-reinstalls", false, "credit a reinstall to its own tap instead of keeping the earlier install's attribution")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return m.create(ctx, cfg, func(svc *postgres.AccountService) (any, error) {
		acct, err := svc.AccountByName(ctx, *account)
		if err != nil {
			return nil, err
		}
		a.AccountID = acct.ID
		if err := svc.CreateApp(ctx, a); err != nil {
			return nil, err
		}
		return dashboard.NewAppView(a), nil
	})
}

func (m *Main) createLink(ctx context.Context, args []string) error {
	fs, cfg := m.flags("create-link")
	l := &tapline.Link{}
	fs.Int64Var(&l.AppID, "app", 0, "id of the app the link belongs to (or name it with -account and -app-name)")
	account := fs.String("account", "", "account of the app, with -app-name")
	appName := fs.String("app-name", "", "name of the app, with -account")
	fs.StringVar(&l.Slug, "slug", "", "the link's path: /l/SLUG")
	fs.StringVar(&l.Name, "name", "", "campaign name")
	fs.StringVar(&l.IOSURL, "ios-url", "", "iOS destination (default: the app's)")
	fs.StringVar(&l.AndroidURL, "android-url", "", "Android destination (default: the app's)")
	fs.StringVar(&l.WebURL, "web-url", "", "web destination (default: the app's)")
	fs.StringVar(&l.DeepLink, "deep-link", "", "where in the app the link leads")
	fs.DurationVar(&l.ClickWindow, "click-window", 0, "the link's own click window, such as 720h (default: the app's)")
	fs.DurationVar(&l.FingerprintWindow, "fingerprint-window", 0, "the link's own fingerprint window, such as 6h (default: the app's)")
	fs.Func("param", "a query parameter every tap carries, name=value (repeat it: -param utm_source=facebook -param utm_campaign=spring)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want name=value, got %q", s)
		}
		if l.Params == nil {
			l.Params = map[string]string{}
		}
		if _, dup := l.Params[k]; dup {
			return fmt.Errorf("%s given twice", k)
		}
		l.Params[k] = v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	return m.create(ctx, cfg, func(svc *postgres.AccountService) (any, error) {
		if l.AppID == 0 && *account != "" {
			id, err := appID(ctx, svc, *account, *appName)
			if err != nil {
				return nil, err
			}
			l.AppID = id
		}
		if err := svc.CreateLink(ctx, l); err != nil {
			return nil, err
		}
		return dashboard.NewLinkView(l, cfg.PublicBase()), nil
	})
}

// create opens the database, runs fn with the account service and prints
// what fn created as JSON.
func (m *Main) create(ctx context.Context, cfg *node.Config, fn func(*postgres.AccountService) (any, error)) error {
	db, err := m.openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := fn(postgres.NewAccountService(db))
	if err != nil {
		return describe(err)
	}
	return m.printJSON(v)
}

// appID finds an account's app by name.
func appID(ctx context.Context, svc tapline.AccountService, account, name string) (int64, error) {
	acct, err := svc.AccountByName(ctx, account)
	if err != nil {
		return 0, err
	}
	apps, err := svc.AppsByAccount(ctx, acct.ID)
	if err != nil {
		return 0, err
	}
	for _, a := range apps {
		if a.Name == name {
			return a.ID, nil
		}
	}
	return 0, tapline.Errorf(tapline.ENOTFOUND, "account %q has no app named %q", account, name)
}

func (m *Main) printJSON(v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// describe turns a domain error into its message for the terminal.
func describe(err error) error {
	if code := tapline.ErrorCode(err); code != tapline.EINTERNAL {
		return fmt.Errorf("%s: %s", code, tapline.ErrorMessage(err))
	}
	return err
}
