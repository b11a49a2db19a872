package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/webhook"
)

// PostbackService stores postback templates and is the outbox of their
// deliveries.
type PostbackService struct{ db *DB }

var (
	_ tapline.PostbackService = (*PostbackService)(nil)
	_ tapline.Outbox          = (*PostbackService)(nil)
)

// NewPostbackService returns a PostbackService on an opened, migrated db.
func NewPostbackService(db *DB) *PostbackService { return &PostbackService{db: db} }

const postbackColumns = `id, app_id, kind, network, source, link_ids, events, method, url, body, content_type, fields,
	on_reattribution, max_concurrent, max_per_second, timeout_ms, disabled, secrets, previous_secret_expires, created_at`

func scanPostback(r pgx.CollectableRow) (*tapline.Postback, error) {
	var p tapline.Postback
	var timeoutMS int64
	if err := r.Scan(&p.ID, &p.AppID, &p.Kind, &p.Network, &p.Source, &p.LinkIDs, &p.Events, &p.Method, &p.URL, &p.Body, &p.ContentType,
		&p.Fields, &p.OnReattribution, &p.MaxConcurrent, &p.MaxPerSecond, &timeoutMS, &p.Disabled, &p.Secrets, &p.PreviousSecretExpires,
		&p.CreatedAt); err != nil {
		return nil, err
	}
	p.Timeout = time.Duration(timeoutMS) * time.Millisecond
	if len(p.LinkIDs) == 0 {
		p.LinkIDs = nil
	}
	if len(p.Fields) == 0 {
		p.Fields = nil
	}
	if p.PreviousSecretExpires != nil && !p.PreviousSecretExpires.After(time.Now()) {
		p.Secrets, p.PreviousSecretExpires = p.Secrets[:min(1, len(p.Secrets))], nil
	}
	return &p, nil
}

// validatePostback validates p and checks that the database can store its
// text and that its links belong to its app.
func (s *PostbackService) validatePostback(ctx context.Context, p *tapline.Postback) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.IsWebhook() && len(p.Secrets) == 0 {
		p.Secrets = []string{webhook.NewSecret()}
	}
	for _, s := range p.Secrets {
		if _, err := webhook.ParseSecret(s); err != nil {
			return tapline.Errorf(tapline.EINVALID, "secret: %v", tapline.ErrorMessage(err))
		}
	}
	for _, f := range append([]string{p.Network, p.Source, p.URL, p.Body, p.ContentType}, p.Events...) {
		if !storable(f) {
			return tapline.Errorf(tapline.EINVALID, "postback: text must be valid UTF-8 without NUL")
		}
	}
	if len(p.LinkIDs) > 0 {
		var n int
		if err := s.db.pool.QueryRow(ctx, `SELECT count(*) FROM links WHERE app_id = $1 AND id = ANY($2)`, p.AppID, p.LinkIDs).Scan(&n); err != nil {
			return fmt.Errorf("check postback links: %w", translate(err))
		}
		if n != len(slices.Compact(slices.Sorted(slices.Values(p.LinkIDs)))) {
			return tapline.Errorf(tapline.EINVALID, "link_ids: every link must be one of the app's")
		}
	}
	return nil
}

// CreatePostback validates and stores p.
func (s *PostbackService) CreatePostback(ctx context.Context, p *tapline.Postback) error {
	if err := s.validatePostback(ctx, p); err != nil {
		return err
	}
	err := s.db.pool.QueryRow(ctx, `INSERT INTO postbacks (app_id, network, source, link_ids, events, method, url, body,
		content_type, fields, on_reattribution, max_concurrent, max_per_second, timeout_ms, disabled, kind, secrets)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id, created_at`,
		p.AppID, p.Network, p.Source, nonNil(p.LinkIDs), p.Events, p.Method, p.URL, p.Body, p.ContentType, nonNil(p.Fields),
		p.OnReattribution, p.MaxConcurrent, p.MaxPerSecond, p.Timeout.Milliseconds(), p.Disabled, p.Kind, nonNil(p.Secrets)).Scan(&p.ID, &p.CreatedAt)
	if err != nil {
		if pgCode(err) == codeForeignKeyViolation {
			return tapline.Errorf(tapline.ENOTFOUND, "No such app.")
		}
		return fmt.Errorf("create postback: %w", translate(err))
	}
	return nil
}

// UpdatePostback replaces p's settings; its kind and a webhook's secrets
// stay (RotateWebhookSecret changes those).
func (s *PostbackService) UpdatePostback(ctx context.Context, p *tapline.Postback) error {
	var kind string
	if err := s.db.pool.QueryRow(ctx, `SELECT kind FROM postbacks WHERE id = $1 AND app_id = $2`, p.ID, p.AppID).Scan(&kind); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
		}
		return fmt.Errorf("update postback: %w", translate(err))
	}
	if p.Kind != "" && p.Kind != kind {
		return tapline.Errorf(tapline.EINVALID, "kind: a postback keeps its kind")
	}
	p.Kind = kind
	if err := s.validatePostback(ctx, p); err != nil {
		return err
	}
	p.Secrets = nil // kept as they are
	tag, err := s.db.pool.Exec(ctx, `UPDATE postbacks SET network = $3, source = $4, link_ids = $5, events = $6, method = $7,
		url = $8, body = $9, content_type = $10, fields = $11, on_reattribution = $12, max_concurrent = $13,
		max_per_second = $14, timeout_ms = $15, disabled = $16, updated_at = now() WHERE id = $1 AND app_id = $2`,
		p.ID, p.AppID, p.Network, p.Source, nonNil(p.LinkIDs), p.Events, p.Method, p.URL, p.Body, p.ContentType, nonNil(p.Fields),
		p.OnReattribution, p.MaxConcurrent, p.MaxPerSecond, p.Timeout.Milliseconds(), p.Disabled)
	if err != nil {
		return fmt.Errorf("update postback: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
	}
	return nil
}

// RotateWebhookSecret makes a new current secret for webhook id, keeping
// the current one as the previous for tapline.WebhookRotationOverlap.
func (s *PostbackService) RotateWebhookSecret(ctx context.Context, appID, id int64) (string, error) {
	fresh := webhook.NewSecret()
	// One rotation at a time: a second one within the overlap would drop
	// the secret the customer may still verify with.
	tag, err := s.db.pool.Exec(ctx, `UPDATE postbacks SET secrets = ARRAY[$3::text, secrets[1]],
		previous_secret_expires = now() + $4 * interval '1 second', updated_at = now()
		WHERE id = $1 AND app_id = $2 AND kind = 'webhook' AND (previous_secret_expires IS NULL OR previous_secret_expires <= now())`,
		id, appID, fresh, int64(tapline.WebhookRotationOverlap/time.Second))
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		var kind string
		var until *time.Time
		err := s.db.pool.QueryRow(ctx, `SELECT kind, previous_secret_expires FROM postbacks WHERE id = $1 AND app_id = $2`, id, appID).Scan(&kind, &until)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return "", tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
		case err != nil:
			return "", fmt.Errorf("rotate webhook secret: %w", translate(err))
		case kind != tapline.PostbackKindWebhook:
			return "", tapline.Errorf(tapline.EINVALID, "Only a webhook has secrets.")
		case until != nil:
			return "", tapline.Errorf(tapline.ECONFLICT, "A rotation is under way: the previous secret signs until %s; rotate again after that.", until.UTC().Format(time.RFC3339))
		}
		return "", tapline.Errorf(tapline.ECONFLICT, "The webhook changed meanwhile; try again.")
	}
	return fresh, nil
}

// DeletePostback removes a postback; its deliveries stay in the log, and
// pending ones are still sent.
func (s *PostbackService) DeletePostback(ctx context.Context, appID, id int64) error {
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM postbacks WHERE id = $1 AND app_id = $2`, id, appID)
	if err != nil {
		return fmt.Errorf("delete postback: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return tapline.Errorf(tapline.ENOTFOUND, "No such postback.")
	}
	return nil
}

// Postbacks lists an app's postbacks, oldest first.
func (s *PostbackService) Postbacks(ctx context.Context, appID int64) ([]*tapline.Postback, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+postbackColumns+` FROM postbacks WHERE app_id = $1 ORDER BY id`, appID)
	if err != nil {
		return nil, fmt.Errorf("list postbacks: %w", translate(err))
	}
	ps, err := pgx.CollectRows(rows, scanPostback)
	if err != nil {
		return nil, fmt.Errorf("list postbacks: %w", translate(err))
	}
	return ps, nil
}

const deliveryColumns = `id, key, app_id, postback_id, kind, network, trigger, conversion_id, event_id, method, url, content_type,
	body, status, attempts, next_attempt, last_code, last_error, last_body, timeout_ms, max_concurrent, max_per_second,
	created_at, delivered_at`

func scanDelivery(r pgx.CollectableRow) (*tapline.Delivery, error) { return scanDeliveryWith(r) }

// scanDeliveryWith scans deliveryColumns into a delivery, and then the
// columns the query adds after them into what more point at.
func scanDeliveryWith(r pgx.CollectableRow, more ...func(d *tapline.Delivery) any) (*tapline.Delivery, error) {
	var d tapline.Delivery
	var timeoutMS int64
	dst := []any{&d.ID, &d.Key, &d.AppID, &d.PostbackID, &d.Kind, &d.Network, &d.Trigger, &d.ConversionID, &d.EventID, &d.Method,
		&d.URL, &d.ContentType, &d.Body, &d.Status, &d.Attempts, &d.NextAttempt, &d.LastCode, &d.LastError, &d.LastBody,
		&timeoutMS, &d.MaxConcurrent, &d.MaxPerSecond, &d.CreatedAt, &d.DeliveredAt}
	for _, m := range more {
		dst = append(dst, m(&d))
	}
	if err := r.Scan(dst...); err != nil {
		return nil, err
	}
	d.Timeout = time.Duration(timeoutMS) * time.Millisecond
	return &d, nil
}

// Deliveries lists the app's deliveries q selects, newest first.
func (s *PostbackService) Deliveries(ctx context.Context, q tapline.DeliveryQuery) ([]*tapline.Delivery, error) {
	limit := cmp.Or(q.Limit, tapline.DefaultDeliveryPage)
	if limit < 1 || limit > tapline.MaxDeliveryPage {
		return nil, tapline.Errorf(tapline.EINVALID, "limit: 1 to %d", tapline.MaxDeliveryPage)
	}
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM postback_deliveries
		WHERE app_id = $1 AND id < $2 AND ($3 = '' OR status = $3) AND ($4 = '' OR network = $4)
		ORDER BY id DESC LIMIT $5`, q.AppID, before, string(q.Status), storableText(q.Network), limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", translate(err))
	}
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", translate(err))
	}
	return ds, nil
}

// ExpireDeliveries deletes up to limit delivered and dead deliveries
// created before before, oldest first, in one statement. A delivery never
// goes back to pending, so one read as finished stays so; rows another
// expiry holds are skipped.
func (s *PostbackService) ExpireDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, tapline.Errorf(tapline.EINVALID, "expire deliveries: limit must be positive, got %d", limit)
	}
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM postback_deliveries WHERE id IN (
		SELECT id FROM postback_deliveries WHERE status <> 'pending' AND created_at < $1
		ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("expire deliveries: %w", translate(err))
	}
	return int(tag.RowsAffected()), nil
}

// ClaimDeliveries takes up to n due pending deliveries, oldest due first,
// and moves their next attempt lease ahead; rows another sender holds
// locked are skipped.
func (s *PostbackService) ClaimDeliveries(ctx context.Context, n int, lease time.Duration) ([]*tapline.Delivery, error) {
	rows, err := s.db.pool.Query(ctx, `UPDATE postback_deliveries d SET next_attempt = now() + $2 * interval '1 millisecond',
		claims = d.claims + 1
		FROM (SELECT id FROM postback_deliveries WHERE status = 'pending' AND next_attempt <= now()
			ORDER BY next_attempt LIMIT $1 FOR UPDATE SKIP LOCKED) due
		WHERE d.id = due.id RETURNING `+prefixed("d.", deliveryColumns)+`,
			(SELECT CASE WHEN p.previous_secret_expires > now() THEN p.secrets ELSE p.secrets[1:1] END
			 FROM postbacks p WHERE p.id = d.postback_id),
			d.claims,
			COALESCE((SELECT CASE WHEN p.disabled THEN 'disabled' ELSE '' END FROM postbacks p WHERE p.id = d.postback_id), 'deleted')`,
		n, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", translate(err))
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.Delivery, error) {
		return scanDeliveryWith(r, func(d *tapline.Delivery) any { return &d.Secrets },
			func(d *tapline.Delivery) any { return &d.Claim }, func(d *tapline.Delivery) any { return &d.Stopped })
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", translate(err))
	}
	return ds, nil
}

// RecordAttempt stores the outcome of one attempt at delivery id. A
// delivery no longer pending (erased, or recorded by another sender whose
// lease it outlived) is left as it is.
func (s *PostbackService) RecordAttempt(ctx context.Context, id int64, claim int, status tapline.DeliveryStatus, next time.Time, r tapline.DeliveryResult) error {
	_, err := s.db.pool.Exec(ctx, `UPDATE postback_deliveries SET status = $2, attempts = attempts + 1, next_attempt = $3,
		last_code = $4, last_error = $5, last_body = $6, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
		WHERE id = $1 AND status = 'pending' AND (claims = $7 OR $2 = 'delivered')`,
		id, string(status), next, r.Code, clip(storableText(r.Error), 1000), clip(storableText(r.Body), 512), claim)
	if err != nil {
		return fmt.Errorf("record delivery attempt: %w", translate(err))
	}
	return nil
}

// ReleaseDelivery makes a claimed delivery due again.
func (s *PostbackService) ReleaseDelivery(ctx context.Context, id int64, claim int) error {
	if _, err := s.db.pool.Exec(ctx, `UPDATE postback_deliveries SET next_attempt = now()
		WHERE id = $1 AND status = 'pending' AND claims = $2`, id, claim); err != nil {
		return fmt.Errorf("release delivery: %w", translate(err))
	}
	return nil
}

// storeDeliveries puts deliveries in the outbox in the flush's
// transaction, each once by its key: a replay's are ignored.
func storeDeliveries(ctx context.Context, tx pgx.Tx, ds []*tapline.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b *tapline.Delivery) int { return strings.Compare(a.Key, b.Key) }) // lock order
	b := &pgx.Batch{}
	for _, d := range ds {
		b.Queue(`INSERT INTO postback_deliveries (key, app_id, postback_id, network, trigger, conversion_id, event_id, method, url,
			content_type, body, status, next_attempt, timeout_ms, max_concurrent, max_per_second, created_at, kind)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14, $15, $12, $16)
			ON CONFLICT (key) DO NOTHING`,
			d.Key, d.AppID, d.PostbackID, d.Network, storableText(d.Trigger), storableText(d.ConversionID), storableText(d.EventID),
			d.Method, storableText(d.URL), d.ContentType, d.Body, d.CreatedAt, d.Timeout.Milliseconds(), d.MaxConcurrent, d.MaxPerSecond,
			cmp.Or(d.Kind, tapline.PostbackKindNetwork))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store postback deliveries: %w", translate(err))
	}
	return nil
}

// eraseDeliveries strips the deliveries of the erased conversions of
// their URL, body and answer (which may carry the device's advertising id
// or address) and gives up the pending ones.
func eraseDeliveries(ctx context.Context, tx pgx.Tx, appID int64, conversions []string) error {
	if _, err := tx.Exec(ctx, `UPDATE postback_deliveries SET url = '', body = NULL, last_body = '',
		status = CASE WHEN status = 'pending' THEN 'dead' ELSE status END,
		last_error = CASE WHEN status = 'pending' THEN 'erased before delivery' ELSE 'erased' END
		WHERE app_id = $1 AND conversion_id = ANY($2)`, appID, conversions); err != nil {
		return fmt.Errorf("erase postback deliveries: %w", translate(err))
	}
	return nil
}

// prefixed qualifies each of a comma-separated column list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") // a rune cut in two is dropped
}

// storableText makes s storable as text: valid UTF-8 without NUL.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
