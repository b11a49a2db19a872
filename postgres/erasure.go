package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// adIDKeyName names the key of advertising id hashes in hash_keys.
const adIDKeyName = "ad_id"

// hasher computes the keyed hashes the database keeps instead of
// advertising ids and install ids.
type hasher struct{ key []byte }

// hashKey returns the key named name from hash_keys, making it (32 random
// bytes) when absent; the first process to store it wins. It is cached for
// the life of the DB.
func (db *DB) hasher(ctx context.Context) (*hasher, error) {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if db.adIDKey != nil {
		return db.adIDKey, nil
	}
	if db.pool == nil {
		return nil, errors.New("postgres: database not open")
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make hash key: %w", err)
	}
	var key []byte
	err := db.pool.QueryRow(ctx, `
		WITH ins AS (INSERT INTO hash_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING key)
		SELECT key FROM ins UNION ALL SELECT key FROM hash_keys WHERE name = $1 LIMIT 1`, adIDKeyName, fresh).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another process stored the key after this statement's snapshot
		// was taken: a new statement sees it.
		err = db.pool.QueryRow(ctx, `SELECT key FROM hash_keys WHERE name = $1`, adIDKeyName).Scan(&key)
	}
	if err != nil {
		return nil, fmt.Errorf("load hash key: %w", translate(err))
	}
	db.adIDKey = &hasher{key: key}
	return db.adIDKey, nil
}

// mac returns the hex HMAC-SHA256 of the parts joined by ':'.
func (h *hasher) mac(parts ...string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(m.Sum(nil))
}

// adID returns what the database keeps of the app's advertising id id:
// the keyed hash of its unkeyed SHA-256 (sha256Hex), "" for none. Hashing
// the SHA-256 lets Migrate rehash the unkeyed hashes stored before.
func (h *hasher) adID(appID int64, id string) string {
	s := sha256Hex(id)
	if s == "" {
		return ""
	}
	return h.fromSHA256(appID, s)
}

// fromSHA256 returns the keyed hash of an advertising id given its
// sha256Hex.
func (h *hasher) fromSHA256(appID int64, s string) string {
	return h.mac("ad_id", strconv.FormatInt(appID, 10), s)
}

// installID returns the keyed hash of the app's install id.
func (h *hasher) installID(appID int64, id string) string {
	return h.mac("install_id", strconv.FormatInt(appID, 10), id)
}

// sha256Hex returns the hex SHA-256 of an advertising id's normal form
// (tapline.NormalizeAdID; any other non-empty id trimmed and lower-cased),
// "" for none.
func sha256Hex(id string) string {
	n := tapline.NormalizeAdID(id)
	if n == "" {
		n = strings.ToLower(strings.TrimSpace(id))
		if strings.Trim(n, "0-") == "" {
			return ""
		}
	}
	sum := sha256.Sum256([]byte(n))
	return hex.EncodeToString(sum[:])
}

// rekeyBatch is the number of conversions rehashed per statement.
const rekeyBatch = 1000

// rekeyConversions rehashes the unkeyed advertising id hashes that
// migration 18 moved to ad_id_sha256, a batch per transaction, until none
// is left. Several processes may run it at once: a batch locks its rows
// and skips those another holds.
func (db *DB) rekeyConversions(ctx context.Context) error {
	h, err := db.hasher(ctx)
	if err != nil {
		return err
	}
	total := 0
	for {
		n, err := db.rekeyBatch(ctx, h)
		if err != nil {
			return fmt.Errorf("rehash conversions: %w", err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total > 0 {
		db.Logger.Info("postgres: keyed the advertising id hashes of conversions", "conversions", total)
	}
	return nil
}

func (db *DB) rekeyBatch(ctx context.Context, h *hasher) (int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	rows, err := tx.Query(ctx, `SELECT app_id, id, ad_id_sha256 FROM conversions
		WHERE ad_id_sha256 <> '' ORDER BY app_id, id LIMIT $1 FOR UPDATE SKIP LOCKED`, rekeyBatch)
	if err != nil {
		return 0, translate(err)
	}
	var apps []int64
	var ids, hashes []string
	for rows.Next() {
		var app int64
		var id, sum string
		if err := rows.Scan(&app, &id, &sum); err != nil {
			rows.Close()
			return 0, translate(err)
		}
		apps, ids, hashes = append(apps, app), append(ids, id), append(hashes, h.fromSHA256(app, sum))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, translate(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE conversions c SET ad_id_hash = u.hash, ad_id_sha256 = ''
		FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u (app_id, id, hash)
		WHERE c.app_id = u.app_id AND c.id = u.id`, apps, ids, hashes); err != nil {
		return 0, translate(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, translate(err)
	}
	return len(ids), nil
}

// ErasureStore implements tapline.ErasureService on PostgreSQL.
type ErasureStore struct {
	db *DB
}

var _ tapline.ErasureService = (*ErasureStore)(nil)

// NewErasureStore returns the erasure requests of db.
func NewErasureStore(db *DB) *ErasureStore { return &ErasureStore{db: db} }

// normalizeErasure checks r's kind and key and normalises the key.
func normalizeErasure(r *tapline.ErasureRequest) error {
	switch r.Kind {
	case tapline.ErasureAdID:
		n := tapline.NormalizeAdID(r.Key)
		if n == "" {
			return tapline.Errorf(tapline.EINVALID, "ad_id: not an advertising id (a UUID such as 6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e, not all zeros)")
		}
		r.Key = n
	case tapline.ErasureInstallID:
		k := strings.TrimSpace(r.Key)
		if k == "" || len(k) > tapline.MaxInstallIDLen || !storable(k) {
			return tapline.Errorf(tapline.EINVALID, "install_id: required, at most %d bytes of text", tapline.MaxInstallIDLen)
		}
		r.Key = k
	default:
		return tapline.Errorf(tapline.EINVALID, "kind: must be ad_id or install_id")
	}
	if r.AppID <= 0 {
		return tapline.Errorf(tapline.EINVALID, "app_id: required")
	}
	return nil
}

// keyHash returns the keyed hash of r's key.
func (h *hasher) keyHash(r *tapline.ErasureRequest) string {
	if r.Kind == tapline.ErasureAdID {
		return h.adID(r.AppID, r.Key)
	}
	return h.installID(r.AppID, r.Key)
}

// RequestErasure records r as pending; ENOTFOUND for an unknown app.
func (s *ErasureStore) RequestErasure(ctx context.Context, r *tapline.ErasureRequest) error {
	if err := normalizeErasure(r); err != nil {
		return err
	}
	if r.RequestedBy == "" || !storable(r.RequestedBy) {
		return tapline.Errorf(tapline.EINVALID, "requested_by: required")
	}
	h, err := s.db.hasher(ctx)
	if err != nil {
		return err
	}
	r.KeyHash = h.keyHash(r)
	err = s.db.pool.QueryRow(ctx, `INSERT INTO erasure_requests (app_id, kind, key, key_hash, requested_by)
		SELECT id, $2, $3, $4, $5 FROM apps WHERE id = $1
		RETURNING id, requested_at`, r.AppID, string(r.Kind), r.Key, r.KeyHash, r.RequestedBy).Scan(&r.ID, &r.RequestedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "No such app.")
	} else if err != nil {
		return fmt.Errorf("request erasure: %w", translate(err))
	}
	r.RequestedAt = r.RequestedAt.UTC()
	return nil
}

const erasureColumns = `id, app_id, kind, coalesce(key, ''), key_hash, requested_by, requested_at, done_at,
	hits, events, hits_stripped, conversions, conversion_rows`

func scanErasure(row pgx.Row) (*tapline.ErasureRequest, error) {
	var r tapline.ErasureRequest
	var kind string
	var done *time.Time
	err := row.Scan(&r.ID, &r.AppID, &kind, &r.Key, &r.KeyHash, &r.RequestedBy, &r.RequestedAt, &done,
		&r.Counts.Hits, &r.Counts.Events, &r.Counts.HitsStripped, &r.Counts.Conversions, &r.Counts.Rows)
	if err != nil {
		return nil, err
	}
	r.Kind, r.RequestedAt = tapline.ErasureKind(kind), r.RequestedAt.UTC()
	if done != nil {
		r.DoneAt = done.UTC()
	}
	return &r, nil
}

// Erasure returns the app's request id, or ENOTFOUND.
func (s *ErasureStore) Erasure(ctx context.Context, appID, id int64) (*tapline.ErasureRequest, error) {
	r, err := scanErasure(s.db.pool.QueryRow(ctx,
		`SELECT `+erasureColumns+` FROM erasure_requests WHERE app_id = $1 AND id = $2`, appID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No such erasure request in this app.")
	} else if err != nil {
		return nil, fmt.Errorf("read erasure request: %w", translate(err))
	}
	return r, nil
}

// ClaimErasure returns the oldest pending request not leased to another
// matcher, leasing it for lease; nil when there is none.
func (s *ErasureStore) ClaimErasure(ctx context.Context, lease time.Duration) (*tapline.ErasureRequest, error) {
	r, err := scanErasure(s.db.pool.QueryRow(ctx, `
		UPDATE erasure_requests SET claimed_until = now() + $1 * interval '1 millisecond'
		WHERE id = (SELECT id FROM erasure_requests
			WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+erasureColumns, lease.Milliseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim erasure request: %w", translate(err))
	}
	return r, nil
}

// ErasureConversions returns the ids of the app's conversions in the
// conversions table of r's device, by its advertising id's keyed hash or
// its install id.
func (s *ErasureStore) ErasureConversions(ctx context.Context, r *tapline.ErasureRequest) ([]string, error) {
	return erasureConversions(ctx, s.db.pool, r)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func erasureConversions(ctx context.Context, q querier, r *tapline.ErasureRequest) ([]string, error) {
	var rows pgx.Rows
	var err error
	switch r.Kind {
	case tapline.ErasureAdID:
		rows, err = q.Query(ctx, `SELECT id FROM conversions WHERE app_id = $1 AND ad_id_hash = $2 AND ad_id_hash <> ''
			ORDER BY id`, r.AppID, r.KeyHash)
	default:
		if r.Key == "" {
			return nil, nil // done: the install id is forgotten
		}
		rows, err = q.Query(ctx, `SELECT id FROM conversions WHERE app_id = $1 AND install_id = $2 ORDER BY id`, r.AppID, r.Key)
	}
	if err != nil {
		return nil, fmt.Errorf("conversions of erasure request: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("conversions of erasure request: %w", translate(err))
	}
	return ids, nil
}

// FinishErasure strips the conversions table rows ids and those of r's
// device (ErasureConversions) of their advertising id hash and masked
// fingerprint, and their decisions' signals of the device's values; marks
// them erased (a later flush of an older state keeps the stripped
// decision); marks r done with counts plus the rows stripped, and forgets
// its key, in one transaction. A request done already is left as it is.
func (s *ErasureStore) FinishErasure(ctx context.Context, r *tapline.ErasureRequest, ids []string, counts tapline.ErasureCounts) error {
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var pending bool
	if err := tx.QueryRow(ctx, `SELECT done_at IS NULL FROM erasure_requests WHERE id = $1 FOR UPDATE`, r.ID).Scan(&pending); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return tapline.Errorf(tapline.ENOTFOUND, "No such erasure request.")
		}
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	if !pending {
		return nil
	}
	more, err := erasureConversions(ctx, tx, r)
	if err != nil {
		return err
	}
	all := append(append([]string{}, ids...), more...)
	rows, err := tx.Query(ctx, `SELECT id, decision FROM conversions WHERE app_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE`, r.AppID, all)
	if err != nil {
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	var convIDs []string
	var decisions [][]byte
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return fmt.Errorf("finish erasure: %w", translate(err))
		}
		if len(raw) > 0 {
			c := tapline.Conversion{Decision: new(tapline.Decision)}
			if err := json.Unmarshal(raw, c.Decision); err != nil {
				rows.Close()
				return fmt.Errorf("finish erasure: decision of %s: %w", id, err)
			}
			c.Erase()
			if raw, err = jsonOrNil(c.Decision, false); err != nil {
				rows.Close()
				return err
			}
		}
		convIDs, decisions = append(convIDs, id), append(decisions, raw)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	if len(convIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE conversions c SET ad_id_hash = '', ad_id_sha256 = '', fingerprint = '',
			decision = u.decision, erased_at = now()
			FROM unnest($2::text[], $3::jsonb[]) AS u (id, decision)
			WHERE c.app_id = $1 AND c.id = u.id`, r.AppID, convIDs, decisions); err != nil {
			return fmt.Errorf("finish erasure: strip conversions: %w", translate(err))
		}
		if err := eraseDeliveries(ctx, tx, r.AppID, convIDs); err != nil {
			return fmt.Errorf("finish erasure: %w", err)
		}
	}
	counts.Rows += len(convIDs)
	if _, err := tx.Exec(ctx, `UPDATE erasure_requests SET done_at = now(), key = NULL, claimed_until = NULL,
		hits = $2, events = $3, hits_stripped = $4, conversions = $5, conversion_rows = $6 WHERE id = $1`,
		r.ID, counts.Hits, counts.Events, counts.HitsStripped, counts.Conversions, counts.Rows); err != nil {
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("finish erasure: %w", translate(err))
	}
	r.Key, r.Counts = "", counts
	return nil
}
