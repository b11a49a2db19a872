package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
	"tapline/fingerprint"
)

// storeConversions writes convs, each in its latest state, in the flush's
// transaction; a conversion stored with a longer history is newer and
// stays. Rows are written in primary-key order, so concurrent flushes do
// not deadlock.
//
// The advertising id is kept as its keyed hash (hasher.adID), the
// fingerprint masked; a state without the advertising id (one read back
// from a raw store, which keeps none) takes it from another state of the
// same conversion in convs.
func storeConversions(ctx context.Context, tx pgx.Tx, h *hasher, convs []*tapline.Conversion) error {
	if len(convs) == 0 {
		return nil
	}
	convs = slices.Clone(convs)
	slices.SortFunc(convs, func(a, b *tapline.Conversion) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), strings.Compare(a.ID, b.ID))
	})
	// One state per conversion: unnest cannot upsert a row twice.
	type convKey struct {
		app int64
		id  string
	}
	known := make(map[convKey]string) // advertising ids by conversion
	for _, c := range convs {
		if c.AdID != "" {
			known[convKey{c.AppID, c.ID}] = c.AdID
		}
	}
	convs = slices.CompactFunc(convs, func(a, b *tapline.Conversion) bool { return a.AppID == b.AppID && a.ID == b.ID })
	n := len(convs)
	var (
		appIDs, linkIDs                = make([]int64, n), make([]int64, n)
		ids, installIDs, eventIDs      = make([]string, n), make([]string, n), make([]string, n)
		platforms, adIDs, fps, methods = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hitIDs                         = make([]string, n)
		installTimes, updated          = make([]time.Time, n), make([]time.Time, n)
		hitTimes                       = make([]*time.Time, n)
		clickMillis                    = make([]*int64, n)
		params, decisions, histories   = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		reinstalls                     = make([][]byte, n)
		changes                        = make([]int32, n)
	)
	for i, c := range convs {
		appIDs[i], linkIDs[i] = c.AppID, c.LinkID
		ids[i], installIDs[i], eventIDs[i] = pgText(c.ID), pgText(c.InstallID), pgText(c.EventID)
		platforms[i], adIDs[i], fps[i], methods[i] = pgText(string(c.Platform)), h.adID(c.AppID, cmp.Or(c.AdID, known[convKey{c.AppID, c.ID}])), pgText(fingerprint.MaskFingerprint(c.Fingerprint)), pgText(string(c.Method))
		hitIDs[i] = pgText(c.HitID)
		installTimes[i], updated[i] = c.InstallTime.UTC(), c.UpdatedAt.UTC()
		if c.Method != tapline.MethodOrganic && !c.HitTime.IsZero() {
			t := c.HitTime.UTC()
			ms := c.ClickToInstall.Milliseconds()
			hitTimes[i], clickMillis[i] = &t, &ms
		}
		var err error
		// Kept forever: no advertising id, which a tap's query may carry.
		hp := tapline.WithoutAdIDs(c.HitParams)
		if params[i], err = jsonOrNil(hp, len(hp) == 0); err != nil {
			return err
		}
		if decisions[i], err = jsonOrNil(c.Decision, c.Decision == nil); err != nil {
			return err
		}
		if histories[i], err = jsonOrNil(historyWithoutAdIDs(c.History), false); err != nil {
			return fmt.Errorf("encode history of conversion %s: %w", c.ID, err)
		}
		if reinstalls[i], err = jsonOrNil(c.Reinstall, c.Reinstall == nil); err != nil {
			return err
		}
		changes[i] = int32(len(c.History))
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO conversions AS c (app_id, id, install_id, event_id, install_time, platform, ad_id_hash,
			fingerprint, method, link_id, hit_id, hit_time, click_to_install_ms, hit_params, decision,
			history, changes, updated_at, reinstall)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
			$6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[],
			$12::timestamptz[], $13::bigint[], $14::jsonb[], $15::jsonb[], $16::jsonb[], $17::int[],
			$18::timestamptz[], $19::jsonb[])
		ON CONFLICT (app_id, id) DO UPDATE SET
			method = excluded.method, link_id = excluded.link_id, hit_id = excluded.hit_id,
			hit_time = excluded.hit_time, click_to_install_ms = excluded.click_to_install_ms,
			hit_params = excluded.hit_params, history = excluded.history,
			decision = CASE WHEN c.erased_at IS NULL THEN excluded.decision ELSE c.decision END,
			changes = excluded.changes, updated_at = excluded.updated_at, reinstall = excluded.reinstall
		WHERE c.changes <= excluded.changes`,
		appIDs, ids, installIDs, eventIDs, installTimes, platforms, adIDs, fps, methods, linkIDs,
		hitIDs, hitTimes, clickMillis, params, decisions, histories, changes, updated, reinstalls)
	if err != nil {
		return fmt.Errorf("store %d conversions: %w", n, translate(err))
	}
	return nil
}

// jsonOrNil encodes v for a jsonb column, or returns nil (SQL NULL) when
// empty. PostgreSQL's jsonb takes no NUL character, which anything a
// device or a tap URL sends may hold: it becomes U+FFFD (encoding/json
// already writes invalid UTF-8 so).
func jsonOrNil(v any, empty bool) ([]byte, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return b, nil
	}
	// Walk the escapes from the left, so that an escaped backslash before
	// "u0000" is left alone.
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if bytes.HasPrefix(b[i:], []byte(`\u0000`)) {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out, nil
}

// historyWithoutAdIDs returns h with no advertising id in the hit
// parameters of its attributions.
func historyWithoutAdIDs(h []tapline.AttributionChange) []tapline.AttributionChange {
	out := slices.Clone(h)
	for i := range out {
		out[i].To.HitParams = tapline.WithoutAdIDs(out[i].To.HitParams)
		if out[i].From != nil {
			from := *out[i].From
			from.HitParams = tapline.WithoutAdIDs(from.HitParams)
			out[i].From = &from
		}
	}
	return out
}

// pgText returns s as PostgreSQL's text takes it: valid UTF-8 without NUL,
// each offending byte U+FFFD.
func pgText(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

const conversionColumns = `id, app_id, install_id, event_id, install_time, platform, fingerprint,
	method, link_id, hit_id, hit_time, click_to_install_ms, hit_params, decision, history, updated_at, reinstall`

// scanConversion reads a row of conversionColumns.
func scanConversion(row pgx.Row) (*tapline.Conversion, error) {
	var (
		c                         tapline.Conversion
		platform, method          string
		hitTime                   *time.Time
		clickMillis               *int64
		params, decision, history []byte
		reinstall                 []byte
	)
	if err := row.Scan(&c.ID, &c.AppID, &c.InstallID, &c.EventID, &c.InstallTime, &platform,
		&c.Fingerprint, &method, &c.LinkID, &c.HitID, &hitTime, &clickMillis, &params, &decision,
		&history, &c.UpdatedAt, &reinstall); err != nil {
		return nil, err
	}
	c.Platform, c.Method = tapline.Platform(platform), tapline.MatchMethod(method)
	c.InstallTime, c.UpdatedAt = c.InstallTime.UTC(), c.UpdatedAt.UTC()
	if hitTime != nil {
		c.HitTime = hitTime.UTC()
	}
	if clickMillis != nil {
		c.ClickToInstall = time.Duration(*clickMillis) * time.Millisecond
	}
	for _, f := range []struct {
		raw []byte
		v   any
	}{{params, &c.HitParams}, {decision, &c.Decision}, {history, &c.History}, {reinstall, &c.Reinstall}} {
		if len(f.raw) == 0 {
			continue
		}
		if err := json.Unmarshal(f.raw, f.v); err != nil {
			return nil, fmt.Errorf("decode conversion %s: %w", c.ID, err)
		}
	}
	return &c, nil
}

// Conversion returns one conversion of the app, or ENOTFOUND.
func (r *Reports) Conversion(ctx context.Context, appID int64, id string) (*tapline.Conversion, error) {
	if !storable(id) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No such conversion in this app.")
	}
	c, err := scanConversion(r.db.pool.QueryRow(ctx,
		`SELECT `+conversionColumns+` FROM conversions WHERE app_id = $1 AND id = $2`, appID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No such conversion in this app.")
	} else if err != nil {
		return nil, fmt.Errorf("read conversion %s: %w", id, translate(err))
	}
	return c, nil
}

// Conversions lists the app's conversions q selects, newest install first.
func (r *Reports) Conversions(ctx context.Context, q tapline.ConversionQuery) (*tapline.ConversionPage, error) {
	if q.AppID <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "app_id: required")
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = tapline.DefaultConversionPage
	case limit < 0 || limit > tapline.MaxConversionPage:
		return nil, tapline.Errorf(tapline.EINVALID, "limit: must be 1 to %d", tapline.MaxConversionPage)
	}
	where := []string{"app_id = $1"}
	args := []any{q.AppID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if !storable(q.Search) {
		return nil, tapline.Errorf(tapline.EINVALID, "q: not valid text (a NUL character or bytes that are not UTF-8)")
	}
	if s := strings.TrimSpace(q.Search); s != "" {
		h, err := r.db.hasher(ctx)
		if err != nil {
			return nil, fmt.Errorf("list conversions: %w", err)
		}
		args = append(args, s)
		p := "$" + strconv.Itoa(len(args))
		args = append(args, h.adID(q.AppID, s))
		hash := "$" + strconv.Itoa(len(args))
		where = append(where, "(install_id = "+p+" OR hit_id = "+p+" OR id = "+p+" OR (ad_id_hash <> '' AND ad_id_hash = "+hash+"))")
	}
	if q.Method != "" {
		add("method = ?", string(q.Method))
	}
	if q.LinkID != 0 {
		add("link_id = ?", q.LinkID)
	}
	if !q.From.IsZero() {
		add("install_time >= ?", q.From)
	}
	if !q.To.IsZero() {
		add("install_time < ?", q.To)
	}
	if q.After != "" {
		t, id, err := tapline.ParseConversionCursor(q.After)
		if err != nil {
			return nil, err
		}
		args = append(args, t, id)
		where = append(where, fmt.Sprintf("(install_time, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, limit+1)
	rows, err := r.db.pool.Query(ctx, `SELECT `+conversionColumns+` FROM conversions
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY install_time DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list conversions: %w", translate(err))
	}
	defer rows.Close()
	page := &tapline.ConversionPage{Conversions: []*tapline.Conversion{}}
	for rows.Next() {
		c, err := scanConversion(rows)
		if err != nil {
			return nil, fmt.Errorf("list conversions: %w", translate(err))
		}
		page.Conversions = append(page.Conversions, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list conversions: %w", translate(err))
	}
	if len(page.Conversions) > limit {
		page.Conversions = page.Conversions[:limit]
		last := page.Conversions[limit-1]
		page.Next = tapline.ConversionCursor(last.InstallTime, last.ID)
	}
	return page, nil
}
