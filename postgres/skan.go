package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// SKANStore keeps SKAdNetwork and AdAttributionKit postbacks
// (skan_postbacks) and their fact rows (fact_skan) in PostgreSQL.
type SKANStore struct {
	db *DB
	// Now stamps a postback given without ReceivedAt; NewSKANStore sets
	// time.Now.
	Now func() time.Time
	// MaxRejected bounds the rejected postbacks an app keeps per UTC day
	// of receipt (tapline.ErrSKANRejectedFull past it); NewSKANStore sets
	// tapline.DefaultSKANMaxRejected, and 0 or less keeps every one.
	MaxRejected int
}

var _ tapline.SKANStore = (*SKANStore)(nil)

// NewSKANStore returns a SKANStore on an opened, migrated db.
func NewSKANStore(db *DB) *SKANStore {
	return &SKANStore{db: db, Now: time.Now, MaxRejected: tapline.DefaultSKANMaxRejected}
}

// skanColumns lists the columns scanSKAN reads, in order.
const skanColumns = `id, app_id, kind, version, via, ad_network_id, source_identifier, app_store_id, transaction_id,
	postback_window, conversion_value, coarse_value, conversion_type, fidelity_type, redownload, did_win, source_app_id, source_domain,
	status, reason, key, raw, received_at, received`

func scanSKAN(row pgx.Row) (*tapline.SKANPostback, error) {
	var p tapline.SKANPostback
	var window, fidelity int16
	var value *int16
	var raw []byte
	err := row.Scan(&p.ID, &p.AppID, &p.Kind, &p.Version, &p.Via, &p.AdNetworkID, &p.SourceIdentifier, &p.AppStoreID, &p.TransactionID,
		&window, &value, &p.CoarseValue, &p.ConversionType, &fidelity, &p.Redownload, &p.DidWin, &p.SourceAppID, &p.SourceDomain,
		&p.Status, &p.Reason, &p.Key, &raw, &p.ReceivedAt, &p.Received)
	if err != nil {
		return nil, err
	}
	p.Window, p.FidelityType, p.Raw = int(window), int(fidelity), raw
	if value != nil {
		v := int(*value)
		p.ConversionValue = &v
	}
	p.ReceivedAt = p.ReceivedAt.UTC()
	return &p, nil
}

// RecordSKANPostback stores p and adds its fact row in one transaction
// (see tapline.SKANStore). The postbacks of one key are taken one at a
// time, under a transaction advisory lock on the key, so that deciding
// whether the key was counted and counting it are one step: a retry and
// the original, or a developer's copy and a network's forward arriving
// together, count once.
func (s *SKANStore) RecordSKANPostback(ctx context.Context, p *tapline.SKANPostback) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.ReceivedAt.IsZero() {
		p.ReceivedAt = s.Now()
	}
	p.ReceivedAt = p.ReceivedAt.UTC().Truncate(time.Microsecond)
	body := sha256.Sum256(p.Raw)
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record postback: begin: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "skan:"+p.Key); err != nil {
		return fmt.Errorf("record postback: lock its key: %w", translate(err))
	}
	// The same body again (Apple retries until it is answered 200): the
	// same postback, counted when it first came.
	stored, err := scanSKAN(tx.QueryRow(ctx, `
		UPDATE skan_postbacks SET received = received + 1, last_received_at = $3
		WHERE app_id = $1 AND body_sha256 = $2
		RETURNING `+skanColumns, p.AppID, body[:], p.ReceivedAt))
	switch {
	case err == nil:
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("record postback: commit: %w", translate(err))
		}
		*p = *stored
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("record postback: look for its body: %w", translate(err))
	}
	if p.Status == tapline.SKANRejected && s.MaxRejected > 0 {
		if err := s.underRejectedBound(ctx, tx, p); err != nil {
			return err
		}
	}
	if p.Status == tapline.SKANVerified {
		var first int64
		err := tx.QueryRow(ctx, `SELECT id FROM skan_postbacks WHERE key = $1 AND status = 'verified'`, p.Key).Scan(&first)
		switch {
		case err == nil:
			p.Status = tapline.SKANDuplicate
			p.Reason = fmt.Sprintf("Postback %d has the same transaction id and window (%s) and was counted.", first, p.Key)
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("record postback: look for its key: %w", translate(err))
		}
	}
	var value *int16
	if p.ConversionValue != nil {
		v := int16(*p.ConversionValue)
		value = &v
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO skan_postbacks (app_id, kind, version, via, ad_network_id, source_identifier, app_store_id, transaction_id,
			postback_window, conversion_value, coarse_value, conversion_type, fidelity_type, redownload, did_win, source_app_id, source_domain,
			status, reason, key, raw, body_sha256, received_at, last_received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23)
		RETURNING id`,
		p.AppID, p.Kind, p.Version, p.Via, p.AdNetworkID, p.SourceIdentifier, p.AppStoreID, p.TransactionID,
		int16(p.Window), value, p.CoarseValue, p.ConversionType, int16(p.FidelityType), p.Redownload, p.DidWin, p.SourceAppID, p.SourceDomain,
		string(p.Status), p.Reason, p.Key, []byte(p.Raw), body[:], p.ReceivedAt).Scan(&p.ID)
	if pgCode(err) == codeForeignKeyViolation {
		return tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	if err != nil {
		return fmt.Errorf("record postback: %w", translate(err))
	}
	p.Received = 1
	k, v := p.Fact()
	byTable, err := factRows(map[tapline.FactKey]tapline.FactValue{k: v})
	if err != nil {
		return fmt.Errorf("record postback: %w", err)
	}
	if err := upsertRows(ctx, tx, byTable); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record postback: commit: %w", translate(err))
	}
	return nil
}

// underRejectedBound returns tapline.ErrSKANRejectedFull when p's app
// already keeps MaxRejected rejected postbacks of p's UTC day. The
// rejected postbacks of one app and day are taken one at a time, under a
// transaction advisory lock, so that a flood arriving at once stores no
// more than the bound. The count is the day's rejected fact row, which
// every stored rejected postback adds one to in its transaction: one row
// read by its key, however many the bound allows.
func (s *SKANStore) underRejectedBound(ctx context.Context, tx pgx.Tx, p *tapline.SKANPostback) error {
	day := p.ReceivedAt.UTC().Format("2006-01-02")
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
		fmt.Sprintf("skan-rejected:%d:%s", p.AppID, day)); err != nil {
		return fmt.Errorf("record postback: lock the app's rejected postbacks: %w", translate(err))
	}
	k, _ := p.Fact()
	var stored int64
	err := tx.QueryRow(ctx, `SELECT count FROM fact_skan WHERE app_id = $1 AND day = $2::date AND ad_network = $3
		AND source_identifier = $4 AND postback_window = $5 AND conversion_value = $6 AND outcome = $7`,
		p.AppID, day, k.AdNetwork, k.SourceIdentifier, k.PostbackWindow, k.ConversionValue, string(k.Outcome)).Scan(&stored)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("record postback: count the app's rejected postbacks: %w", translate(err))
	case stored >= int64(s.MaxRejected):
		return tapline.ErrSKANRejectedFull
	}
	return nil
}

// SKANPostbacks lists the app's postbacks q selects, newest first.
func (s *SKANStore) SKANPostbacks(ctx context.Context, q tapline.SKANQuery) ([]*tapline.SKANPostback, error) {
	limit := cmp.Or(q.Limit, tapline.DefaultSKANPage)
	if limit < 1 || limit > tapline.MaxSKANPage {
		return nil, tapline.Errorf(tapline.EINVALID, "limit: 1 to %d", tapline.MaxSKANPage)
	}
	rows, err := s.db.pool.Query(ctx, `SELECT `+skanColumns+` FROM skan_postbacks
		WHERE app_id = $1 AND ($2 = '' OR status = $2) AND ($3 = 0 OR id < $3)
		ORDER BY id DESC LIMIT $4`, q.AppID, string(q.Status), q.Before, limit)
	if err != nil {
		return nil, fmt.Errorf("list postbacks: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.SKANPostback, error) { return scanSKAN(r) })
	if err != nil {
		return nil, fmt.Errorf("list postbacks: %w", translate(err))
	}
	return out, nil
}

// SKANCounts sums the app's fact_skan rows of the UTC days [from, to).
func (s *SKANStore) SKANCounts(ctx context.Context, appID int64, from, to time.Time) ([]tapline.SKANCount, error) {
	const day = "2006-01-02"
	rows, err := s.db.pool.Query(ctx, `
		SELECT ad_network, source_identifier, postback_window, conversion_value, outcome, sum(count)::bigint, sum(sum)::bigint
		FROM fact_skan
		WHERE app_id = $1 AND day >= $2::date AND day < $3::date
		GROUP BY 1, 2, 3, 4, 5
		ORDER BY 1, 2, 3, 4, 5`, appID, from.UTC().Format(day), to.UTC().Format(day))
	if err != nil {
		return nil, fmt.Errorf("count postbacks: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tapline.SKANCount, error) {
		var c tapline.SKANCount
		var window int32
		err := r.Scan(&c.AdNetwork, &c.SourceIdentifier, &window, &c.Value, &c.Outcome, &c.Postbacks, &c.Redownloads)
		c.Window = int(window)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count postbacks: %w", translate(err))
	}
	if out == nil {
		out = []tapline.SKANCount{}
	}
	return out, nil
}
