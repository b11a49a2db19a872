package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"tapline"
	"tapline/internal/httperr"
)

// Route is the export's route on the dashboard's listener.
const Route = "/api/v1/apps/{id}/export/{kind}"

// Defaults of an API.
const (
	// DefaultMaxRunning is how many exports one process streams at once;
	// more answer 503 with Retry-After.
	DefaultMaxRunning = 4
	// DefaultStallTimeout is how long one write to a client may block
	// before the export gives up on it.
	DefaultStallTimeout = time.Minute
)

// Accounts is what the export reads of accounts: the account of an API
// token, the app a path names and, for the conversions CSV, its links'
// names. tapline.AccountService has them.
type Accounts interface {
	// AccountByAPIToken returns the account of a live token's secret, or
	// EUNAUTHORIZED.
	AccountByAPIToken(ctx context.Context, secret string) (*tapline.Account, error)
	App(ctx context.Context, id int64) (*tapline.App, error)
	LinksByApp(ctx context.Context, appID int64) ([]*tapline.Link, error)
}

// Conversions lists an app's conversions from the conversions table, a
// page at a time, newest install first (tapline.Reports does).
type Conversions interface {
	Conversions(ctx context.Context, q tapline.ConversionQuery) (*tapline.ConversionPage, error)
}

// RawRows scans an app's raw hits and events by time, resumably
// (tapline.RawStore does): all the export may do with a raw store.
type RawRows interface {
	ScanHitRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Hit) error) error
	ScanEventRows(ctx context.Context, appID int64, from, to time.Time, after tapline.RowPos, fn func(*tapline.Event) error) error
}

// API serves the export routes. Set its fields (New sets the defaults),
// then call Handler or Mount; changes after that are not seen.
type API struct {
	// Accounts and Conversions are required.
	Accounts    Accounts
	Conversions Conversions
	// Raw scans hits and events; without it their exports answer 503
	// with RawMissing, which should say what to configure.
	Raw        RawRows
	RawMissing string
	// MaxRunning bounds the exports streaming at once (DefaultMaxRunning);
	// StallTimeout bounds one write to a client (DefaultStallTimeout).
	MaxRunning   int
	StallTimeout time.Duration
	// Logger receives failures that are not the caller's; Now is the
	// clock retention is measured by.
	Logger *slog.Logger
	Now    func() time.Time

	once    sync.Once
	handler http.Handler
	running chan struct{} // a token per export streaming
	closing chan struct{} // closed by Close
	closed  sync.Once

	mu      sync.Mutex
	streams map[*stream]struct{} // the exports streaming, for Close
}

// New returns an API over accounts and conversions with the defaults set:
// no raw store, DefaultMaxRunning, DefaultStallTimeout, slog.Default and
// the wall clock.
func New(accounts Accounts, conversions Conversions) *API {
	return &API{
		Accounts:     accounts,
		Conversions:  conversions,
		RawMissing:   "Exporting hits and events needs the raw store, which this process does not have.",
		MaxRunning:   DefaultMaxRunning,
		StallTimeout: DefaultStallTimeout,
		Logger:       slog.Default(),
		Now:          time.Now,
		closing:      make(chan struct{}),
		streams:      make(map[*stream]struct{}),
	}
}

// Validate reports every missing dependency and bad field, each named.
func (a *API) Validate() error {
	var errs []error
	if a.Accounts == nil {
		errs = append(errs, errors.New("export: Accounts is required"))
	}
	if a.Conversions == nil {
		errs = append(errs, errors.New("export: Conversions is required"))
	}
	if a.MaxRunning < 1 {
		errs = append(errs, fmt.Errorf("export: MaxRunning must be at least 1, not %d", a.MaxRunning))
	}
	if a.StallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("export: StallTimeout must be positive, not %s", a.StallTimeout))
	}
	if a.Logger == nil || a.Now == nil || a.closing == nil {
		errs = append(errs, errors.New("export: make the API with New"))
	}
	return errors.Join(errs...)
}

// Handler returns the router serving the export routes (and answering
// JSON 404s and 405s on other paths). It panics when Validate fails: an
// export without its stores would start and fail on the first request.
func (a *API) Handler() http.Handler {
	if err := a.Validate(); err != nil {
		panic(fmt.Sprintf("export: Handler on an API that does not validate: %v", err))
	}
	a.once.Do(func() {
		a.running = make(chan struct{}, a.MaxRunning)
		r := chi.NewRouter()
		r.Use(middleware.Recoverer, noStore, a.authenticate)
		r.Get(Route, a.export)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			httperr.Write(w, r, a.Logger, tapline.Errorf(tapline.ENOTFOUND, "No export here: GET /api/v1/apps/{id}/export/{conversions|events|hits}."))
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodGet)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_ = json.NewEncoder(w).Encode(httperr.Body{Error: "method_not_allowed", Message: r.Method + " is not allowed here: exports are read with GET."})
		})
		a.handler = r
	})
	return a.handler
}

// Mount returns a handler that serves the export routes, every path under
// /api/v1/apps/{id}/export, and passes every other request to next, the
// dashboard's router.
func (a *API) Mount(next http.Handler) http.Handler {
	h := a.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsExportPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsExportPath reports whether path is /api/v1/apps/{id}/export or under it.
func IsExportPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/v1/apps/")
	if !ok {
		return false
	}
	id, rest, _ := strings.Cut(rest, "/")
	return id != "" && (rest == "export" || strings.HasPrefix(rest, "export/"))
}

// Close makes new exports answer 503 and cuts the running ones short after
// their current row, or at once when their client does not read, so that a
// server shutting down need not wait for them; their clients resume after
// their last complete row, elsewhere or later. It is safe to call twice.
func (a *API) Close() error {
	a.closed.Do(func() {
		close(a.closing)
		a.mu.Lock()
		defer a.mu.Unlock()
		for st := range a.streams {
			// A write blocked on a client that does not read fails now;
			// a stream that sent nothing yet answers the error.
			if st.start.Load() {
				_ = st.rc.SetWriteDeadline(time.Now())
			}
		}
	})
	return nil
}

// noStore marks every answer uncacheable.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// accountKey is the context key of the account an API token named.
type accountKey struct{}

// authenticate lets through requests that carry a live API token, with
// its account in the context, and answers 401 to others.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		secret = strings.TrimSpace(secret)
		if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(secret, tapline.APITokenPrefix) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tapline"`)
			httperr.Write(w, r, a.Logger, tapline.Errorf(tapline.EUNAUTHORIZED,
				"Send an API token of the account: Authorization: Bearer %s… (an owner makes one on the Account page).", tapline.APITokenPrefix))
			return
		}
		acct, err := a.Accounts.AccountByAPIToken(r.Context(), secret)
		if err != nil {
			if tapline.ErrorCode(err) == tapline.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tapline", error="invalid_token"`)
			}
			httperr.Write(w, r, a.Logger, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), accountKey{}, acct)))
	})
}

// export answers one export request: the app, the query, then the rows.
func (a *API) export(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	acct, _ := ctx.Value(accountKey{}).(*tapline.Account)
	app, err := a.app(ctx, acct, chi.URLParam(r, "id"))
	if err != nil {
		httperr.Write(w, r, a.Logger, err)
		return
	}
	q, err := parseQuery(chi.URLParam(r, "kind"), r.URL.Query(), app, a.Now())
	if err == nil {
		err = a.serve(w, r, app, q)
	}
	if err != nil {
		httperr.Write(w, r, a.Logger, err)
	}
}

// serve streams q's rows of app when the export can run now. It returns
// an error, having written nothing, for the caller to answer: the raw
// store missing, the server shutting down, too many exports running, or
// a failure before the first byte went out. Once one went out, a failure
// cuts the response short instead (stream).
func (a *API) serve(w http.ResponseWriter, r *http.Request, app *tapline.App, q query) error {
	if q.kind != KindConversions && a.Raw == nil {
		return tapline.Errorf(tapline.EUNAVAILABLE, "%s", a.RawMissing)
	}
	select {
	case <-a.closing:
		return errClosing
	default:
	}
	select {
	case a.running <- struct{}{}:
		defer func() { <-a.running }()
	default:
		return tapline.Errorf(tapline.EUNAVAILABLE,
			"Too many exports are running (this server streams at most %d at once): retry in a few seconds.", a.MaxRunning)
	}
	return a.stream(w, r, app, q)
}

// Download is one export that its caller has authorised itself (the
// dashboard, for a logged-in user of the app's account) and a browser
// downloads as one answer: every row of the range, with neither cursor
// nor limit.
type Download struct {
	App *tapline.App
	// Kind is KindConversions, KindEvents or KindHits; Format FormatCSV
	// or FormatNDJSON ("" is FormatNDJSON).
	Kind, Format string
	// From and To bound the rows' times, [From, To); a zero one is
	// unbounded, as a missing from or to of the API.
	From, To time.Time
	// Name is the file's name without its extension, which the format
	// adds; "" is app-{id}-{kind}, the API's. Characters other than
	// ASCII letters, digits, '.', '_' and '-' become '-'.
	Name string
}

// Download streams d to w as the API's route would stream the same range
// to an API token, the same rows in the same bytes, NDJSON's trailer line
// and the HTTP trailers included, with d.Name as the attachment's name.
// It returns an error, having written nothing, when the download is
// refused (EINVALID for a bad kind, format or range, EUNAVAILABLE while
// it cannot run) or failed before its first byte went out, for the
// caller to answer in its own way; after that, a failure cuts the
// response short, without its end, as the API's are, and Download
// returns nil. It panics on an API that does not validate, as Handler.
func (a *API) Download(w http.ResponseWriter, r *http.Request, d Download) error {
	a.Handler() // validates, and makes the running slots
	v := url.Values{}
	if d.Format != "" {
		v.Set("format", d.Format)
	}
	if !d.From.IsZero() {
		v.Set("from", d.From.UTC().Format(time.RFC3339Nano))
	}
	if !d.To.IsZero() {
		v.Set("to", d.To.UTC().Format(time.RFC3339Nano))
	}
	q, err := parseQuery(d.Kind, v, d.App, a.Now())
	if err != nil {
		return err
	}
	q.name = fileName(d.Name)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	return a.serve(w, r, d.App, q)
}

// fileName returns name with every character but ASCII letters, digits,
// '.', '_' and '-' replaced by '-', so it goes in a Content-Disposition
// header as it is.
func fileName(name string) string {
	return strings.Map(func(c rune) rune {
		if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-", c)) {
			return c
		}
		return '-'
	}, name)
}

// app returns the app id names when acct's account owns it; another
// account's app is not found, as one that does not exist.
func (a *API) app(ctx context.Context, acct *tapline.Account, id string) (*tapline.App, error) {
	appID, err := parseAppID(id)
	if err != nil {
		return nil, err
	}
	app, err := a.Accounts.App(ctx, appID)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND || (err == nil && (acct == nil || app.AccountID != acct.ID)) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App %d not found.", appID)
	}
	return app, err
}
