package tapstream1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema creates the baseline's tables; it is idempotent.
const Schema = `
CREATE TABLE IF NOT EXISTS ts1_hits (
	id         bigserial PRIMARY KEY,
	link       text NOT NULL,
	ip         text NOT NULL,
	platform   text NOT NULL,
	user_agent text NOT NULL,
	params     text NOT NULL,
	ad_id      text,
	created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ts1_hits_fp ON ts1_hits (ip, platform, created_at);
CREATE INDEX IF NOT EXISTS ts1_hits_ad ON ts1_hits (ad_id, created_at) WHERE ad_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS ts1_events (
	id          bigserial PRIMARY KEY,
	install_id  text NOT NULL,
	name        text NOT NULL,
	kind        text NOT NULL,
	ip          text NOT NULL,
	platform    text NOT NULL,
	model       text NOT NULL,
	ad_id       text,
	referrer    text,
	micros      bigint,
	currency    text,
	created_at  timestamptz NOT NULL,
	received_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ts1_conversions (
	install_id   text PRIMARY KEY,
	hit_id       bigint,
	link         text NOT NULL,
	method       text NOT NULL,
	installed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ts1_conversions_hit ON ts1_conversions (hit_id);
CREATE TABLE IF NOT EXISTS ts1_facts (
	hour   timestamptz NOT NULL,
	link   text NOT NULL,
	metric text NOT NULL,
	count  bigint NOT NULL,
	sum    bigint NOT NULL,
	PRIMARY KEY (hour, link, metric)
);`

// Config is the one account, app and set of links the baseline serves.
type Config struct {
	Account           string
	Secret            string // Tapstream SDK secret
	SDKKey            string // JSON API bearer key
	Links             []string
	IOSURL            string
	AndroidURL        string
	WebURL            string
	ClickWindow       time.Duration
	FingerprintWindow time.Duration
}

// Server is the baseline's HTTP handler over a PostgreSQL pool.
type Server struct {
	Config Config
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	links  map[string]bool
}

// New returns a server for cfg on pool.
func New(cfg Config, pool *pgxpool.Pool) *Server {
	s := &Server{Config: cfg, Pool: pool, Logger: slog.Default(), links: map[string]bool{}}
	for _, l := range cfg.Links {
		s.links[l] = true
	}
	return s
}

// Migrate creates the tables.
func (s *Server) Migrate(ctx context.Context) error {
	if _, err := s.Pool.Exec(ctx, Schema); err != nil {
		return fmt.Errorf("create tapstream1 schema: %w", err)
	}
	return nil
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Get("/l/{slug}", s.serveLink)
	r.Post("/{account}/event/{event}", s.serveTapstream)
	r.Post("/{account}/event/{event}/", s.serveTapstream)
	r.Post("/v1/events", s.serveJSON)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	return r
}

func platformOf(ua string) string {
	switch {
	case strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad"):
		return "ios"
	case strings.Contains(ua, "Android"):
		return "android"
	}
	return "web"
}

// clientIP is the right-most X-Forwarded-For address (the baseline runs
// behind the benchmark's trusted proxy), else the peer.
func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		parts := strings.Split(xff, ",")
		return strings.TrimSpace(parts[len(parts)-1])
	}
	host, _, _ := strings.Cut(r.RemoteAddr, ":")
	return host
}

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

const upsertFact = `INSERT INTO ts1_facts (hour, link, metric, count, sum) VALUES ($1, $2, $3, 1, $4)
ON CONFLICT (hour, link, metric) DO UPDATE SET count = ts1_facts.count + 1, sum = ts1_facts.sum + excluded.sum`

func (s *Server) serveLink(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	if !s.links[slug] {
		http.NotFound(w, r)
		return
	}
	ua := r.UserAgent()
	p := platformOf(ua)
	q := r.URL.Query()
	var adID *string
	for _, k := range []string{"idfa", "gaid"} {
		if v := q.Get(k); v != "" {
			v = strings.ToLower(v)
			adID = &v
		}
	}
	now := time.Now().UTC()
	var id int64
	err := pgx.BeginFunc(r.Context(), s.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(r.Context(), `INSERT INTO ts1_hits (link, ip, platform, user_agent, params, ad_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, slug, clientIP(r), p, ua, r.URL.RawQuery, adID, now).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), upsertFact, hourOf(now), slug, "hits", 0)
		return err
	})
	if err != nil {
		s.Logger.Error("record hit", "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	dest := s.Config.WebURL
	switch p {
	case "ios":
		dest = s.Config.IOSURL
	case "android":
		dest = s.Config.AndroidURL + "&referrer=" + url.QueryEscape("utm_source=tapstream&tapline_hit="+strconv.FormatInt(id, 10))
	}
	http.Redirect(w, r, dest, http.StatusFound)
}

// event is one SDK event in either protocol.
type event struct {
	installID, name, kind, platform, model, os, adID, referrer, currency string
	micros                                                               int64
	time                                                                 time.Time
}

func (s *Server) serveTapstream(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if chi.URLParam(r, "account") != s.Config.Account {
		http.NotFound(w, r)
		return
	}
	if r.PostForm.Get("secret") != s.Config.Secret {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	f := r.PostForm
	name := strings.ToLower(chi.URLParam(r, "event"))
	e := event{
		installID: f.Get("uuid"), name: name, platform: strings.ToLower(f.Get("platform")), model: f.Get("model"),
		os: f.Get("os"), referrer: f.Get("android-referrer"), time: time.Now().UTC(),
	}
	if e.installID == "" {
		http.Error(w, "uuid required", http.StatusBadRequest)
		return
	}
	if ms, err := strconv.ParseInt(f.Get("created-ms"), 10, 64); err == nil && ms > 0 {
		e.time = time.UnixMilli(ms).UTC()
	}
	e.adID = strings.ToLower(f.Get("hardware-ios-idfa") + f.Get("hardware-android-advertising-id"))
	switch {
	case f.Get("purchase-price") != "":
		e.kind = "purchase"
		cents, _ := strconv.ParseInt(f.Get("purchase-price"), 10, 64)
		e.micros, e.currency = cents*10_000, strings.ToUpper(f.Get("purchase-currency"))
	case strings.HasSuffix(name, "-install"):
		e.kind = "install"
	case strings.HasSuffix(name, "-open"):
		e.kind = "open"
	default:
		e.kind = "custom"
	}
	if err := pgx.BeginFunc(r.Context(), s.Pool, func(tx pgx.Tx) error { return s.record(r.Context(), tx, &e, clientIP(r)) }); err != nil {
		s.Logger.Error("record event", "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"accepted"}`)
}

type jsonBatch struct {
	Events []struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Time      string `json:"time"`
		InstallID string `json:"install_id"`
		Device    struct {
			Platform  string `json:"platform"`
			OSVersion string `json:"os_version"`
			Model     string `json:"model"`
			IDFA      string `json:"idfa"`
			GAID      string `json:"gaid"`
		} `json:"device"`
		Referrer string `json:"referrer"`
		Revenue  *struct {
			Amount   json.Number `json:"amount"`
			Currency string      `json:"currency"`
		} `json:"revenue"`
	} `json:"events"`
}

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.Config.SDKKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var b jsonBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Events) == 0 {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	ip := clientIP(r)
	err := pgx.BeginFunc(r.Context(), s.Pool, func(tx pgx.Tx) error {
		for _, je := range b.Events {
			e := event{
				installID: je.InstallID, name: je.Name, kind: je.Name, platform: je.Device.Platform, model: je.Device.Model,
				os: je.Device.OSVersion, adID: strings.ToLower(je.Device.IDFA + je.Device.GAID), referrer: je.Referrer, time: time.Now().UTC(),
			}
			if t, err := time.Parse(time.RFC3339Nano, je.Time); err == nil {
				e.time = t.UTC()
			}
			if je.Revenue != nil {
				f, _ := je.Revenue.Amount.Float64()
				e.micros, e.currency = int64(f*1e6+0.5), strings.ToUpper(je.Revenue.Currency)
			}
			if err := s.record(r.Context(), tx, &e, ip); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.Logger.Error("record batch", "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d}`, len(b.Events))
}

// record inserts an event, matches it when it is an install, and updates
// the fact rows, inside tx.
func (s *Server) record(ctx context.Context, tx pgx.Tx, e *event, ip string) error {
	var adID *string
	if e.adID != "" && strings.Trim(e.adID, "0-") != "" {
		adID = &e.adID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ts1_events (install_id, name, kind, ip, platform, model, ad_id, referrer, micros, currency, created_at, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())`,
		e.installID, e.name, e.kind, ip, e.platform, e.model, adID, e.referrer, e.micros, e.currency, e.time); err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	if e.kind != "install" {
		var link string
		err := tx.QueryRow(ctx, `SELECT link FROM ts1_conversions WHERE install_id = $1`, e.installID).Scan(&link)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("conversion of install: %w", err)
		}
		if _, err := tx.Exec(ctx, upsertFact, hourOf(e.time), link, "events", 0); err != nil {
			return fmt.Errorf("event fact: %w", err)
		}
		if e.micros > 0 {
			if _, err := tx.Exec(ctx, upsertFact, hourOf(e.time), link, "revenue_"+e.currency, e.micros); err != nil {
				return fmt.Errorf("revenue fact: %w", err)
			}
		}
		return nil
	}

	var (
		hitID  *int64
		link   string
		method = "organic"
	)
	if ref, err := url.ParseQuery(e.referrer); err == nil && ref.Get("tapline_hit") != "" {
		if id, err := strconv.ParseInt(ref.Get("tapline_hit"), 10, 64); err == nil {
			var l string
			if err := tx.QueryRow(ctx, `SELECT link FROM ts1_hits WHERE id = $1 AND created_at >= $2`, id, e.time.Add(-s.Config.ClickWindow)).Scan(&l); err == nil {
				hitID, link, method = &id, l, "referrer"
			}
		}
	}
	if hitID == nil && adID != nil {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id, link FROM ts1_hits WHERE ad_id = $1 AND created_at BETWEEN $2 AND $3 ORDER BY created_at DESC LIMIT 1`,
			*adID, e.time.Add(-s.Config.ClickWindow), e.time.Add(time.Minute)).Scan(&id, &link); err == nil {
			hitID, method = &id, "advertising_id"
		}
	}
	if hitID == nil {
		var id int64
		err := tx.QueryRow(ctx, `SELECT h.id, h.link FROM ts1_hits h
			WHERE h.ip = $1 AND h.platform = $2 AND h.created_at BETWEEN $3 AND $4
			AND NOT EXISTS (SELECT 1 FROM ts1_conversions c WHERE c.hit_id = h.id)
			ORDER BY h.created_at DESC LIMIT 1`, ip, e.platform, e.time.Add(-s.Config.FingerprintWindow), e.time.Add(time.Minute)).Scan(&id, &link)
		if err == nil {
			hitID, method = &id, "fingerprint"
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("match install: %w", err)
		}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO ts1_conversions (install_id, hit_id, link, method, installed_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (install_id) DO NOTHING`, e.installID, hitID, link, method, e.time)
	if err != nil {
		return fmt.Errorf("insert conversion: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // a second install event of one installation
	}
	if _, err := tx.Exec(ctx, upsertFact, hourOf(e.time), link, "installs_"+method, 0); err != nil {
		return fmt.Errorf("install fact: %w", err)
	}
	return nil
}
