package postgres

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"

	"tapline"
)

// Limits on account fields.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72 // bcrypt ignores what follows
	maxNameLength     = 200
	maxURLLength      = 2048
	// maxAppStoreID bounds an App Store id: Apple's are ten digits at most.
	maxAppStoreID = 1<<53 - 1
)

var (
	// accountNameRE matches account names, which appear in SDK URLs.
	accountNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	// linkSlugRE matches link slugs, which appear in /l/{slug}.
	linkSlugRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// credentialRE matches SDK secrets and keys given by the caller.
	credentialRE = regexp.MustCompile(`^[A-Za-z0-9_.~-]{16,128}$`)
)

// AccountService stores accounts, apps and links in PostgreSQL.
type AccountService struct {
	// BcryptCost is the cost of new password hashes; NewAccountService
	// sets bcrypt.DefaultCost. Tests may lower it to bcrypt.MinCost.
	BcryptCost int

	db        *DB
	dummyOnce sync.Once
	dummyHash []byte // compared against for unknown logins
}

var _ tapline.AccountService = (*AccountService)(nil)

// NewAccountService returns an AccountService on an opened, migrated db.
func NewAccountService(db *DB) *AccountService {
	return &AccountService{db: db, BcryptCost: bcrypt.DefaultCost}
}

// cost returns the bcrypt cost to hash with.
func (s *AccountService) cost() int {
	if s.BcryptCost < bcrypt.MinCost || s.BcryptCost > bcrypt.MaxCost {
		return bcrypt.DefaultCost
	}
	return s.BcryptCost
}

// CreateAccount validates a and its first user owner, hashes password
// with bcrypt and inserts both in one transaction, filling in their IDs and
// CreatedAt. The owner's email is stored in lower case.
func (s *AccountService) CreateAccount(ctx context.Context, a *tapline.Account, owner *tapline.User, password string) error {
	a.Name = strings.TrimSpace(a.Name)
	if !accountNameRE.MatchString(a.Name) {
		return tapline.Errorf(tapline.EINVALID, "name: must be 1 to 63 lower-case letters, digits or '-', not starting or ending with '-'")
	}
	owner.Email = strings.ToLower(strings.TrimSpace(owner.Email))
	owner.Role = tapline.RoleOwner
	if err := validateEmail(owner.Email); err != nil {
		return err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return err
	}
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create account: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	err = tx.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ($1) RETURNING id, created_at`, a.Name).Scan(&a.ID, &a.CreatedAt)
	if pgCode(err) == codeUniqueViolation {
		return tapline.Errorf(tapline.ECONFLICT, "An account with this name exists already.")
	} else if err != nil {
		return fmt.Errorf("create account: %w", translate(err))
	}
	owner.AccountID = a.ID
	if err := insertUser(ctx, tx, owner, hash); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create account: %w", translate(err))
	}
	return nil
}

// hashPassword checks password against the strength rules every password
// follows (at account creation, change, or an invite's acceptance) and
// hashes it with bcrypt.
func (s *AccountService) hashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", tapline.Errorf(tapline.EINVALID, "password: must be at least %d characters", MinPasswordLength)
	}
	if len(password) > MaxPasswordLength {
		return "", tapline.Errorf(tapline.EINVALID, "password: must be at most %d bytes", MaxPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost())
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(hash), nil
}

// AccountByName returns the account named name, or ENOTFOUND.
func (s *AccountService) AccountByName(ctx context.Context, name string) (*tapline.Account, error) {
	if !accountNameRE.MatchString(name) { // no such name can exist; PostgreSQL may not even take it
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	}
	return s.account(ctx, `WHERE name = $1`, name)
}

// account returns the account selected by where.
func (s *AccountService) account(ctx context.Context, where string, args ...any) (*tapline.Account, error) {
	var a tapline.Account
	err := s.db.pool.QueryRow(ctx, `SELECT id, name, created_at FROM accounts `+where, args...).Scan(&a.ID, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get account: %w", translate(err))
	}
	return &a, nil
}

// appColumns lists the columns scanApp reads, in order.
const appColumns = `id, account_id, name, sdk_secret, sdk_key, ios_url, android_url, web_url,
	click_window, fingerprint_window, lateness_horizon, retention,
	fraud_click_injection, fraud_click_flooding, fraud_datacenter, fraud_tap_after_install,
	fraud_min_click_to_install, fraud_flood_min_taps, fraud_flood_max_install_rate, fingerprint_min_score,
	reengagement_window, reinstall_window, reattribute_reinstalls,
	COALESCE(app_store_id, 0), conversion_schema, created_at`

// scanApp scans a row of appColumns.
func scanApp(row pgx.Row) (*tapline.App, error) {
	var a tapline.App
	var click, fingerprint, lateness, retention, minCTI, reengagement, reinstall int64
	f := &a.Fraud
	err := row.Scan(&a.ID, &a.AccountID, &a.Name, &a.SDKSecret, &a.SDKKey, &a.IOSURL, &a.AndroidURL, &a.WebURL,
		&click, &fingerprint, &lateness, &retention,
		&f.ClickInjection, &f.ClickFlooding, &f.Datacenter, &f.TapAfterInstall,
		&minCTI, &f.FloodMinTaps, &f.FloodMaxInstallRate, &a.FingerprintMinScore,
		&reengagement, &reinstall, &a.ReattributeReinstalls,
		&a.AppStoreID, &a.ConversionSchema, &a.CreatedAt)
	if err != nil {
		return nil, err
	}
	a.ClickWindow = time.Duration(click) * time.Second
	a.FingerprintWindow = time.Duration(fingerprint) * time.Second
	a.LatenessHorizon = time.Duration(lateness) * time.Second
	a.Retention = time.Duration(retention) * time.Second
	f.MinClickToInstall = time.Duration(minCTI) * time.Millisecond
	a.ReengagementWindow = time.Duration(reengagement) * time.Second
	a.ReinstallWindow = time.Duration(reinstall) * time.Second
	return &a, nil
}

// CreateApp validates a, fills in missing SDK credentials and attribution
// settings, and inserts it, filling in ID and CreatedAt. An unknown account
// is ENOTFOUND; a taken SDK key or app name within the account ECONFLICT.
func (s *AccountService) CreateApp(ctx context.Context, a *tapline.App) error {
	if a.AccountID <= 0 {
		return tapline.Errorf(tapline.EINVALID, "account_id: required")
	}
	var err error
	if a.SDKSecret == "" {
		if a.SDKSecret, err = randomToken(); err != nil {
			return err
		}
	}
	if a.SDKKey == "" {
		if a.SDKKey, err = randomToken(); err != nil {
			return err
		}
	}
	a.SetDefaults()
	if err := validateApp(a); err != nil {
		return err
	}
	err = s.db.pool.QueryRow(ctx, `
		INSERT INTO apps (account_id, name, sdk_secret, sdk_key, ios_url, android_url, web_url,
			click_window, fingerprint_window, lateness_horizon, retention,
			fraud_click_injection, fraud_click_flooding, fraud_datacenter, fraud_tap_after_install,
			fraud_min_click_to_install, fraud_flood_min_taps, fraud_flood_max_install_rate, fingerprint_min_score,
			reengagement_window, reinstall_window, reattribute_reinstalls, app_store_id, conversion_schema)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
			NULLIF($23::bigint, 0), $24)
		RETURNING id, created_at`,
		a.AccountID, a.Name, a.SDKSecret, a.SDKKey, a.IOSURL, a.AndroidURL, a.WebURL,
		seconds(a.ClickWindow), seconds(a.FingerprintWindow), seconds(a.LatenessHorizon), seconds(a.Retention),
		a.Fraud.ClickInjection, a.Fraud.ClickFlooding, a.Fraud.Datacenter, a.Fraud.TapAfterInstall,
		a.Fraud.MinClickToInstall.Milliseconds(), a.Fraud.FloodMinTaps, a.Fraud.FloodMaxInstallRate,
		a.FingerprintMinScore, seconds(a.ReengagementWindow), seconds(a.ReinstallWindow), a.ReattributeReinstalls,
		a.AppStoreID, a.ConversionSchema,
	).Scan(&a.ID, &a.CreatedAt)
	switch pgCode(err) {
	case codeUniqueViolation:
		return appConflict(err, a)
	case codeForeignKeyViolation:
		return tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	}
	if err != nil {
		return fmt.Errorf("create app: %w", translate(err))
	}
	return nil
}

// appConflict is the ECONFLICT of a unique violation storing a: its App
// Store id, or its name or SDK key.
func appConflict(err error, a *tapline.App) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "apps_app_store_id_key" {
		return tapline.Errorf(tapline.ECONFLICT, "app_store_id: another app has App Store id %d; an app's SKAdNetwork postbacks go to one app.", a.AppStoreID)
	}
	return tapline.Errorf(tapline.ECONFLICT, "An app with this name or SDK key exists already.")
}

// AppByAppStoreID returns the app whose App Store id is id, or ENOTFOUND.
func (s *AccountService) AppByAppStoreID(ctx context.Context, id int64) (*tapline.App, error) {
	if id <= 0 {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	return s.app(ctx, `WHERE app_store_id = $1`, id)
}

// App returns the app with the given id, or ENOTFOUND.
func (s *AccountService) App(ctx context.Context, id int64) (*tapline.App, error) {
	return s.app(ctx, `WHERE id = $1`, id)
}

// AppBySDKKey returns the app whose SDK key is key, or ENOTFOUND.
func (s *AccountService) AppBySDKKey(ctx context.Context, key string) (*tapline.App, error) {
	if !credentialRE.MatchString(key) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	return s.app(ctx, `WHERE sdk_key = $1`, key)
}

func (s *AccountService) app(ctx context.Context, where string, args ...any) (*tapline.App, error) {
	a, err := scanApp(s.db.pool.QueryRow(ctx, `SELECT `+appColumns+` FROM apps `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get app: %w", translate(err))
	}
	return a, nil
}

// AppsByAccount returns the apps of an account ordered by id; none is an
// empty slice, not an error.
func (s *AccountService) AppsByAccount(ctx context.Context, accountID int64) ([]*tapline.App, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+appColumns+` FROM apps WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", translate(err))
	}
	apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.App, error) { return scanApp(r) })
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", translate(err))
	}
	return apps, nil
}

// AllApps returns every app of every account, by id: for housekeeping
// (the matcher expires each app's raw rows).
func (s *AccountService) AllApps(ctx context.Context) ([]*tapline.App, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+appColumns+` FROM apps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list every app: %w", translate(err))
	}
	apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.App, error) { return scanApp(r) })
	if err != nil {
		return nil, fmt.Errorf("list every app: %w", translate(err))
	}
	return apps, nil
}

// AppBySecret returns the app of the named account whose SDK secret is
// secret: ENOTFOUND for an unknown account, EFORBIDDEN for a wrong secret.
// Secrets are compared in constant time.
func (s *AccountService) AppBySecret(ctx context.Context, account, secret string) (*tapline.App, error) {
	if !accountNameRE.MatchString(account) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	}
	var accountID int64
	err := s.db.pool.QueryRow(ctx, `SELECT id FROM accounts WHERE name = $1`, account).Scan(&accountID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Account not found.")
	} else if err != nil {
		return nil, fmt.Errorf("app by secret: %w", translate(err))
	}
	apps, err := s.AppsByAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var found *tapline.App
	for _, a := range apps {
		// Compare with every app so the time taken does not tell which
		// one matched.
		if subtle.ConstantTimeCompare([]byte(a.SDKSecret), []byte(secret)) == 1 && found == nil {
			found = a
		}
	}
	if found == nil || secret == "" {
		return nil, tapline.Errorf(tapline.EFORBIDDEN, "Wrong SDK secret.")
	}
	return found, nil
}

// AppBySDKSecret returns the app whose SDK secret is secret: of several in
// one account the oldest (as AppBySecret picks), EFORBIDDEN for an unknown
// secret or one that apps of several accounts share. The lookup goes
// through a hash index, so its time does not tell how much of a guessed
// secret is right.
func (s *AccountService) AppBySDKSecret(ctx context.Context, secret string) (*tapline.App, error) {
	if secret == "" {
		return nil, tapline.Errorf(tapline.EFORBIDDEN, "Wrong SDK secret.")
	}
	rows, err := s.db.pool.Query(ctx, `SELECT `+appColumns+` FROM apps WHERE sdk_secret = $1 ORDER BY id`, secret)
	if err != nil {
		return nil, fmt.Errorf("app by sdk secret: %w", translate(err))
	}
	apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.App, error) { return scanApp(r) })
	if err != nil {
		return nil, fmt.Errorf("app by sdk secret: %w", translate(err))
	}
	if len(apps) == 0 {
		return nil, tapline.Errorf(tapline.EFORBIDDEN, "Wrong SDK secret.")
	}
	for _, a := range apps[1:] {
		if a.AccountID != apps[0].AccountID {
			return nil, tapline.Errorf(tapline.EFORBIDDEN, "This SDK secret is shared by apps of several accounts; give each app its own.")
		}
	}
	return apps[0], nil
}

// UpdateApp saves a's name, destinations, attribution settings and SDK
// credentials (empty ones are kept). Its account cannot change. a is
// refreshed from the stored row; an unknown app is ENOTFOUND.
func (s *AccountService) UpdateApp(ctx context.Context, a *tapline.App) error {
	a.SetDefaults()
	check := *a
	if check.SDKSecret == "" {
		check.SDKSecret = strings.Repeat("x", 16)
	}
	if check.SDKKey == "" {
		check.SDKKey = strings.Repeat("x", 16)
	}
	if err := validateApp(&check); err != nil {
		return err
	}
	a.ConversionSchema = check.ConversionSchema // its labels trimmed
	updated, err := scanApp(s.db.pool.QueryRow(ctx, `
		UPDATE apps SET name = $2,
			sdk_secret = COALESCE(NULLIF($3, ''), sdk_secret),
			sdk_key = COALESCE(NULLIF($4, ''), sdk_key),
			ios_url = $5, android_url = $6, web_url = $7,
			click_window = $8, fingerprint_window = $9, lateness_horizon = $10, retention = $11,
			fraud_click_injection = $12, fraud_click_flooding = $13, fraud_datacenter = $14, fraud_tap_after_install = $15,
			fraud_min_click_to_install = $16, fraud_flood_min_taps = $17, fraud_flood_max_install_rate = $18,
			fingerprint_min_score = $19, reengagement_window = $20, reinstall_window = $21, reattribute_reinstalls = $22,
			app_store_id = NULLIF($23::bigint, 0), conversion_schema = $24
		WHERE id = $1
		RETURNING `+appColumns,
		a.ID, a.Name, a.SDKSecret, a.SDKKey, a.IOSURL, a.AndroidURL, a.WebURL,
		seconds(a.ClickWindow), seconds(a.FingerprintWindow), seconds(a.LatenessHorizon), seconds(a.Retention),
		a.Fraud.ClickInjection, a.Fraud.ClickFlooding, a.Fraud.Datacenter, a.Fraud.TapAfterInstall,
		a.Fraud.MinClickToInstall.Milliseconds(), a.Fraud.FloodMinTaps, a.Fraud.FloodMaxInstallRate,
		a.FingerprintMinScore, seconds(a.ReengagementWindow), seconds(a.ReinstallWindow), a.ReattributeReinstalls,
		a.AppStoreID, a.ConversionSchema))
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	if pgCode(err) == codeUniqueViolation {
		return appConflict(err, a)
	}
	if err != nil {
		return fmt.Errorf("update app: %w", translate(err))
	}
	*a = *updated
	return nil
}

// validateLink checks and tidies what a link's owner sets: name (the slug
// when empty), destinations, parameters, deep link and windows.
func validateLink(l *tapline.Link) error {
	l.Name = strings.TrimSpace(l.Name)
	if l.Name == "" {
		l.Name = l.Slug
	}
	if len(l.Name) > maxNameLength || !storable(l.Name) {
		return tapline.Errorf(tapline.EINVALID, "name: must be at most %d characters of valid UTF-8 without NUL", maxNameLength)
	}
	for _, f := range []struct{ field, url string }{
		{"ios_url", l.IOSURL}, {"android_url", l.AndroidURL}, {"web_url", l.WebURL},
	} {
		if err := validateURL(f.field, f.url); err != nil {
			return err
		}
	}
	if len(l.Params) > tapline.MaxLinkParams {
		return tapline.Errorf(tapline.EINVALID, "params: at most %d, not %d", tapline.MaxLinkParams, len(l.Params))
	}
	for k, v := range l.Params {
		if k == "" || len(k) > tapline.MaxLinkParamKey || !storable(k) || strings.ContainsAny(k, "&=#? ") {
			return tapline.Errorf(tapline.EINVALID, "params: %q is not a parameter name (1 to %d characters, no spaces, &, =, # or ?)", k, tapline.MaxLinkParamKey)
		}
		if len(v) > tapline.MaxLinkParamValue || !storable(v) {
			return tapline.Errorf(tapline.EINVALID, "params: the value of %s must be at most %d characters of valid UTF-8", k, tapline.MaxLinkParamValue)
		}
	}
	if len(l.Params) == 0 {
		l.Params = nil
	}
	l.DeepLink = strings.TrimSpace(l.DeepLink)
	if len(l.DeepLink) > maxURLLength || !storable(l.DeepLink) || strings.ContainsAny(l.DeepLink, " \t\r\n") {
		return tapline.Errorf(tapline.EINVALID, "deep_link: at most %d characters, without spaces", maxURLLength)
	}
	for _, f := range []struct {
		field string
		d     time.Duration
	}{{"click_window", l.ClickWindow}, {"fingerprint_window", l.FingerprintWindow}} {
		if f.d != 0 && (f.d < time.Second || f.d > tapline.MaxLinkWindow) {
			return tapline.Errorf(tapline.EINVALID, "%s: must be from one second to %d days, or none for the app's", f.field, tapline.MaxLinkWindow/(24*time.Hour))
		}
	}
	return nil
}

// CreateLink validates l and inserts it, filling in ID and CreatedAt; an
// empty Name becomes the slug. An unknown app is ENOTFOUND, a taken slug
// ECONFLICT.
func (s *AccountService) CreateLink(ctx context.Context, l *tapline.Link) error {
	l.Slug = strings.TrimSpace(l.Slug)
	if l.AppID <= 0 {
		return tapline.Errorf(tapline.EINVALID, "app_id: required")
	}
	if !linkSlugRE.MatchString(l.Slug) {
		return tapline.Errorf(tapline.EINVALID, "slug: must be 1 to 64 letters, digits, '-' or '_'")
	}
	if err := validateLink(l); err != nil {
		return err
	}
	err := s.db.pool.QueryRow(ctx, `
		INSERT INTO links (app_id, slug, name, ios_url, android_url, web_url, params, deep_link, archived_at, reengagement,
			click_window, fingerprint_window)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id, created_at`,
		l.AppID, l.Slug, l.Name, l.IOSURL, l.AndroidURL, l.WebURL, linkParams(l.Params), l.DeepLink, l.ArchivedAt, l.Reengagement,
		seconds(l.ClickWindow), seconds(l.FingerprintWindow)).Scan(&l.ID, &l.CreatedAt)
	switch pgCode(err) {
	case codeUniqueViolation:
		return tapline.Errorf(tapline.ECONFLICT, "A link with this slug exists already.")
	case codeForeignKeyViolation:
		return tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	if err != nil {
		return fmt.Errorf("create link: %w", translate(err))
	}
	return nil
}

// linkParams is what the params column stores: never NULL.
func linkParams(p map[string]string) map[string]string {
	if p == nil {
		return map[string]string{}
	}
	return p
}

// UpdateLink stores l's settings (see tapline.AccountService); an unknown
// link is ENOTFOUND. l is filled in from the stored row.
func (s *AccountService) UpdateLink(ctx context.Context, l *tapline.Link) error {
	if err := validateLink(l); err != nil {
		return err
	}
	updated, err := scanLink(s.db.pool.QueryRow(ctx, `
		UPDATE links SET name = $2, ios_url = $3, android_url = $4, web_url = $5, params = $6, deep_link = $7, archived_at = $8,
			reengagement = $9, click_window = $10, fingerprint_window = $11
		WHERE id = $1 RETURNING `+linkColumns,
		l.ID, l.Name, l.IOSURL, l.AndroidURL, l.WebURL, linkParams(l.Params), l.DeepLink, l.ArchivedAt, l.Reengagement,
		seconds(l.ClickWindow), seconds(l.FingerprintWindow)))
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "Link not found.")
	}
	if err != nil {
		return fmt.Errorf("update link: %w", translate(err))
	}
	*l = *updated
	return nil
}

// Link returns the link with id, or ENOTFOUND.
func (s *AccountService) Link(ctx context.Context, id int64) (*tapline.Link, error) {
	l, err := scanLink(s.db.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Link not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get link: %w", translate(err))
	}
	return l, nil
}

// linkColumns lists the columns scanLink reads, in order.
const linkColumns = `id, app_id, slug, name, ios_url, android_url, web_url, params, deep_link, archived_at, reengagement,
	click_window, fingerprint_window, created_at`

func scanLink(row pgx.Row) (*tapline.Link, error) {
	var l tapline.Link
	var click, fingerprint int64
	err := row.Scan(&l.ID, &l.AppID, &l.Slug, &l.Name, &l.IOSURL, &l.AndroidURL, &l.WebURL, &l.Params, &l.DeepLink, &l.ArchivedAt, &l.Reengagement,
		&click, &fingerprint, &l.CreatedAt)
	if err != nil {
		return nil, err
	}
	l.ClickWindow = time.Duration(click) * time.Second
	l.FingerprintWindow = time.Duration(fingerprint) * time.Second
	if len(l.Params) == 0 {
		l.Params = nil
	}
	return &l, nil
}

// LinkBySlug returns the link with the given slug, or ENOTFOUND.
func (s *AccountService) LinkBySlug(ctx context.Context, slug string) (*tapline.Link, error) {
	if !linkSlugRE.MatchString(slug) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Link not found.")
	}
	l, err := scanLink(s.db.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE slug = $1`, slug))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Link not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get link: %w", translate(err))
	}
	return l, nil
}

// LinksByApp returns the links of an app ordered by id; none is an empty
// slice, not an error.
func (s *AccountService) LinksByApp(ctx context.Context, appID int64) ([]*tapline.Link, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+linkColumns+` FROM links WHERE app_id = $1 ORDER BY id`, appID)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", translate(err))
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.Link, error) { return scanLink(r) })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", translate(err))
	}
	return links, nil
}

// validateApp checks an app whose credentials and settings are filled in.
func validateApp(a *tapline.App) error {
	a.Name = strings.TrimSpace(a.Name)
	if a.Name == "" {
		return tapline.Errorf(tapline.EINVALID, "name: required")
	}
	if len(a.Name) > maxNameLength || !storable(a.Name) {
		return tapline.Errorf(tapline.EINVALID, "name: must be at most %d characters of valid UTF-8 without NUL", maxNameLength)
	}
	if !credentialRE.MatchString(a.SDKSecret) {
		return tapline.Errorf(tapline.EINVALID, "sdk_secret: must be 16 to 128 URL-safe characters")
	}
	if !credentialRE.MatchString(a.SDKKey) {
		return tapline.Errorf(tapline.EINVALID, "sdk_key: must be 16 to 128 URL-safe characters")
	}
	for _, f := range []struct{ field, url string }{
		{"ios_url", a.IOSURL}, {"android_url", a.AndroidURL}, {"web_url", a.WebURL},
	} {
		if err := validateURL(f.field, f.url); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		field string
		d     time.Duration
	}{
		{"click_window", a.ClickWindow}, {"fingerprint_window", a.FingerprintWindow},
		{"lateness_horizon", a.LatenessHorizon}, {"retention", a.Retention},
		{"reengagement_window", a.ReengagementWindow}, {"reinstall_window", a.ReinstallWindow},
	} {
		if f.d < time.Second {
			return tapline.Errorf(tapline.EINVALID, "%s: must be at least one second", f.field)
		}
	}
	if s := a.FingerprintMinScore; math.IsNaN(s) || s < -tapline.MaxFingerprintMinScore || s > tapline.MaxFingerprintMinScore {
		return tapline.Errorf(tapline.EINVALID, "fingerprint_min_score: must be a number from %g to %g", -tapline.MaxFingerprintMinScore, tapline.MaxFingerprintMinScore)
	}
	if a.AppStoreID < 0 || a.AppStoreID > maxAppStoreID {
		return tapline.Errorf(tapline.EINVALID, "app_store_id: must be the app's App Store id (the digits after id in its apps.apple.com address), or 0 for none")
	}
	if err := a.ConversionSchema.Validate(); err != nil {
		return err
	}
	return a.Fraud.Validate()
}

// validateURL accepts "" or an absolute URL a visitor may be redirected to:
// http(s) with a host, or an app deep link scheme.
func validateURL(field, s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || len(s) > maxURLLength || u.Scheme == "" || !storable(s) {
		return tapline.Errorf(tapline.EINVALID, "%s: must be an absolute URL", field)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return tapline.Errorf(tapline.EINVALID, "%s: must name a host", field)
		}
	case "javascript", "data", "vbscript", "file", "blob":
		return tapline.Errorf(tapline.EINVALID, "%s: scheme %q is not allowed", field, u.Scheme)
	}
	return nil
}

func validateEmail(s string) error {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > 254 || !strings.Contains(s, "@") {
		return tapline.Errorf(tapline.EINVALID, "email: must be a valid address")
	}
	return nil
}

// storable reports whether PostgreSQL can hold s in a text column: valid
// UTF-8 without NUL bytes. Anything else fails as an internal error there.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// randomToken returns 32 random bytes in URL-safe base64.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// seconds returns d in whole seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }
