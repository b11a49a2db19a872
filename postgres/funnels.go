package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// FunnelStore keeps funnels, their versions, handoffs and backfill ranges
// in PostgreSQL; their results are in fact_funnel_steps (see FactStore).
type FunnelStore struct {
	db *DB
}

var _ tapline.FunnelStore = (*FunnelStore)(nil)

// NewFunnelStore returns a FunnelStore on an opened, migrated db.
func NewFunnelStore(db *DB) *FunnelStore { return &FunnelStore{db: db} }

// versionColumns lists what scanVersion reads, of funnels f joined with
// funnel_versions v.
const versionColumns = `f.id, v.id, v.version, f.app_id, v.definition, v.status, v.created_at, v.live_at,
	coalesce(r.rows, 0), coalesce(r.covered, 0)`

// versionFrom joins a version with its funnel and its backfill progress.
const versionFrom = ` FROM funnel_versions v JOIN funnels f ON f.id = v.funnel_id
	LEFT JOIN LATERAL (
		SELECT sum(rows_scanned) AS rows,
			avg(CASE WHEN done THEN 1 ELSE (cursor_pos::numeric - start_pos) / (end_pos::numeric - start_pos) END)::float8 AS covered
		FROM funnel_backfill_ranges WHERE version_id = v.id
	) r ON true `

func scanVersion(row pgx.Row) (*tapline.Funnel, error) {
	var f tapline.Funnel
	var def []byte
	var status string
	err := row.Scan(&f.ID, &f.VersionID, &f.Version, &f.AppID, &def, &status, &f.CreatedAt, &f.LiveAt,
		&f.RowsScanned, &f.Progress)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def, &f.FunnelDefinition); err != nil {
		return nil, fmt.Errorf("decode funnel definition %d: %w", f.VersionID, err)
	}
	f.Status = tapline.FunnelStatus(status)
	switch f.Status {
	case tapline.FunnelLive, tapline.FunnelSuperseded:
		f.Progress = 1
	case tapline.FunnelPending:
		f.Progress = 0
	}
	if f.Progress > 0 {
		f.RowsEstimated = int64(float64(f.RowsScanned) / f.Progress)
	}
	return &f, nil
}

func (s *FunnelStore) versions(ctx context.Context, q pgx.Tx, where string, args ...any) ([]*tapline.Funnel, error) {
	var rows pgx.Rows
	var err error
	sql := `SELECT ` + versionColumns + versionFrom + where
	if q != nil {
		rows, err = q.Query(ctx, sql, args...)
	} else {
		rows, err = s.db.pool.Query(ctx, sql, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("get funnels: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.Funnel, error) { return scanVersion(r) })
	if err != nil {
		return nil, fmt.Errorf("get funnels: %w", translate(err))
	}
	return out, nil
}

func (s *FunnelStore) one(ctx context.Context, q pgx.Tx, what, where string, args ...any) (*tapline.Funnel, error) {
	fs, err := s.versions(ctx, q, where, args...)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "%s not found.", what)
	}
	return fs[0], nil
}

// validate normalises def and checks it against the app's retention and
// links, in tx.
func validate(ctx context.Context, tx pgx.Tx, appID int64, def *tapline.FunnelDefinition) error {
	var retention int64
	err := tx.QueryRow(ctx, `SELECT retention FROM apps WHERE id = $1`, appID).Scan(&retention)
	if errors.Is(err, pgx.ErrNoRows) {
		return tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	} else if err != nil {
		return fmt.Errorf("get app: %w", translate(err))
	}
	rows, err := tx.Query(ctx, `SELECT id FROM links WHERE app_id = $1`, appID)
	if err != nil {
		return fmt.Errorf("get links: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("get links: %w", translate(err))
	}
	links := make(map[int64]bool, len(ids))
	for _, id := range ids {
		links[id] = true
	}
	def.Name = strings.TrimSpace(def.Name)
	if err := def.Validate(time.Duration(retention)*time.Second, links); err != nil {
		return err
	}
	def.SetDefaults()
	return nil
}

// inTx runs fn in a transaction.
func (s *FunnelStore) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", what, translate(err))
	}
	return nil
}

// CreateFunnel validates def and stores it as version 1 of a new funnel of
// the app, pending its handoff.
func (s *FunnelStore) CreateFunnel(ctx context.Context, appID int64, def tapline.FunnelDefinition) (*tapline.Funnel, error) {
	var out *tapline.Funnel
	err := s.inTx(ctx, "create funnel", func(tx pgx.Tx) error {
		if err := validate(ctx, tx, appID, &def); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO funnels (app_id, name) VALUES ($1, $2) RETURNING id`, appID, def.Name).Scan(&id)
		if pgCode(err) == codeUniqueViolation {
			return tapline.Errorf(tapline.ECONFLICT, "name: the app has a funnel named %q already.", def.Name)
		} else if err != nil {
			return fmt.Errorf("create funnel: %w", translate(err))
		}
		out, err = s.insertVersion(ctx, tx, id, 1, &def)
		return err
	})
	return out, err
}

func (s *FunnelStore) insertVersion(ctx context.Context, tx pgx.Tx, funnelID int64, version int, def *tapline.FunnelDefinition) (*tapline.Funnel, error) {
	js, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("encode funnel definition: %w", err)
	}
	var vid int64
	if err := tx.QueryRow(ctx, `INSERT INTO funnel_versions (funnel_id, version, definition) VALUES ($1, $2, $3) RETURNING id`,
		funnelID, version, js).Scan(&vid); err != nil {
		return nil, fmt.Errorf("create funnel version: %w", translate(err))
	}
	return s.one(ctx, tx, "Funnel version", `WHERE v.id = $1`, vid)
}

// lockFunnel locks a funnel that is not deleted and returns its app.
func lockFunnel(ctx context.Context, tx pgx.Tx, funnelID int64) (int64, error) {
	var appID int64
	err := tx.QueryRow(ctx, `SELECT app_id FROM funnels WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, funnelID).Scan(&appID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, tapline.Errorf(tapline.ENOTFOUND, "Funnel not found.")
	} else if err != nil {
		return 0, fmt.Errorf("lock funnel: %w", translate(err))
	}
	return appID, nil
}

// endVersions ends the funnel's versions in the given statuses below
// version (0: all) with status to, dropping the results of cancelled ones.
func endVersions(ctx context.Context, tx pgx.Tx, funnelID int64, below int, statuses []string, to tapline.FunnelStatus) error {
	rows, err := tx.Query(ctx, `
		UPDATE funnel_versions SET status = $4, ended_at = now()
		WHERE funnel_id = $1 AND ($2 = 0 OR version < $2) AND status = ANY($3)
		RETURNING id`, funnelID, below, statuses, string(to))
	if err != nil {
		return fmt.Errorf("end funnel versions: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("end funnel versions: %w", translate(err))
	}
	if to == tapline.FunnelCancelled && len(ids) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM fact_funnel_steps WHERE funnel_version = ANY($1)`, ids); err != nil {
			return fmt.Errorf("drop funnel results: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM funnel_backfill_ranges WHERE version_id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("drop backfill ranges: %w", translate(err))
		}
	}
	return nil
}

var notLive = []string{string(tapline.FunnelPending), string(tapline.FunnelBackfilling)}

// EditFunnel stores def as the funnel's next version.
func (s *FunnelStore) EditFunnel(ctx context.Context, funnelID int64, def tapline.FunnelDefinition) (*tapline.Funnel, error) {
	var out *tapline.Funnel
	err := s.inTx(ctx, "edit funnel", func(tx pgx.Tx) error {
		appID, err := lockFunnel(ctx, tx, funnelID)
		if err != nil {
			return err
		}
		if err := validate(ctx, tx, appID, &def); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE funnels SET name = $2 WHERE id = $1`, funnelID, def.Name)
		if pgCode(err) == codeUniqueViolation {
			return tapline.Errorf(tapline.ECONFLICT, "name: the app has a funnel named %q already.", def.Name)
		} else if err != nil {
			return fmt.Errorf("rename funnel: %w", translate(err))
		}
		var next int
		if err := tx.QueryRow(ctx, `SELECT max(version) + 1 FROM funnel_versions WHERE funnel_id = $1`, funnelID).Scan(&next); err != nil {
			return fmt.Errorf("next funnel version: %w", translate(err))
		}
		if err := endVersions(ctx, tx, funnelID, next, notLive, tapline.FunnelCancelled); err != nil {
			return err
		}
		out, err = s.insertVersion(ctx, tx, funnelID, next, &def)
		return err
	})
	return out, err
}

// DeleteFunnel marks the funnel deleted, cancels its versions and drops
// their results.
func (s *FunnelStore) DeleteFunnel(ctx context.Context, funnelID int64) error {
	return s.inTx(ctx, "delete funnel", func(tx pgx.Tx) error {
		if _, err := lockFunnel(ctx, tx, funnelID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE funnels SET deleted_at = now() WHERE id = $1`, funnelID); err != nil {
			return fmt.Errorf("delete funnel: %w", translate(err))
		}
		all := []string{string(tapline.FunnelPending), string(tapline.FunnelBackfilling), string(tapline.FunnelLive), string(tapline.FunnelSuperseded)}
		return endVersions(ctx, tx, funnelID, 0, all, tapline.FunnelCancelled)
	})
}

// Funnel returns the newest version of a funnel that is not deleted.
func (s *FunnelStore) Funnel(ctx context.Context, funnelID int64) (*tapline.Funnel, error) {
	return s.one(ctx, nil, "Funnel", `WHERE f.id = $1 AND f.deleted_at IS NULL ORDER BY v.version DESC LIMIT 1`, funnelID)
}

// FunnelVersion returns one version, with its handoff.
func (s *FunnelStore) FunnelVersion(ctx context.Context, versionID int64) (*tapline.Funnel, error) {
	f, err := s.one(ctx, nil, "Funnel version", `WHERE v.id = $1`, versionID)
	if err != nil {
		return nil, err
	}
	if err := s.handoffs(ctx, []*tapline.Funnel{f}); err != nil {
		return nil, err
	}
	return f, nil
}

// FunnelVersions returns the funnel's versions, newest first.
func (s *FunnelStore) FunnelVersions(ctx context.Context, funnelID int64) ([]*tapline.Funnel, error) {
	fs, err := s.versions(ctx, nil, `WHERE f.id = $1 AND f.deleted_at IS NULL ORDER BY v.version DESC`, funnelID)
	if err == nil && len(fs) == 0 {
		err = tapline.Errorf(tapline.ENOTFOUND, "Funnel not found.")
	}
	return fs, err
}

// FunnelsByApp returns the newest version of each funnel of the app, by
// name.
func (s *FunnelStore) FunnelsByApp(ctx context.Context, appID int64) ([]*tapline.Funnel, error) {
	fs, err := s.versions(ctx, nil, `WHERE f.app_id = $1 AND f.deleted_at IS NULL
		AND v.version = (SELECT max(version) FROM funnel_versions WHERE funnel_id = f.id)
		ORDER BY lower(f.name), f.id`, appID)
	if fs == nil && err == nil {
		fs = []*tapline.Funnel{}
	}
	return fs, err
}

// ActiveFunnels returns the versions the matcher counts, with their
// handoffs so far.
func (s *FunnelStore) ActiveFunnels(ctx context.Context) ([]*tapline.Funnel, error) {
	fs, err := s.versions(ctx, nil, `WHERE v.status = ANY($1) ORDER BY v.id`,
		[]string{string(tapline.FunnelPending), string(tapline.FunnelBackfilling), string(tapline.FunnelLive)})
	if err != nil {
		return nil, err
	}
	return fs, s.handoffs(ctx, fs)
}

func (s *FunnelStore) handoffs(ctx context.Context, fs []*tapline.Funnel) error {
	if len(fs) == 0 {
		return nil
	}
	byID := make(map[int64]*tapline.Funnel, len(fs))
	ids := make([]int64, 0, len(fs))
	for _, f := range fs {
		byID[f.VersionID] = f
		ids = append(ids, f.VersionID)
		f.Handoff = map[tapline.Partition]int64{}
	}
	rows, err := s.db.pool.Query(ctx, `SELECT version_id, topic, partition, next_offset FROM funnel_handoffs WHERE version_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("get handoffs: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var vid, off int64
		var topic string
		var part int32
		if err := rows.Scan(&vid, &topic, &part, &off); err != nil {
			return fmt.Errorf("get handoffs: %w", translate(err))
		}
		byID[vid].Handoff[tapline.Partition{Topic: topic, Partition: int(part)}] = off
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("get handoffs: %w", translate(err))
	}
	return nil
}

// CancelFunnel cancels the funnel's newest version unless it is live.
func (s *FunnelStore) CancelFunnel(ctx context.Context, funnelID int64) (*tapline.Funnel, error) {
	var out *tapline.Funnel
	err := s.inTx(ctx, "cancel funnel", func(tx pgx.Tx) error {
		if _, err := lockFunnel(ctx, tx, funnelID); err != nil {
			return err
		}
		f, err := s.one(ctx, tx, "Funnel", `WHERE f.id = $1 ORDER BY v.version DESC LIMIT 1`, funnelID)
		if err != nil {
			return err
		}
		if f.Status != tapline.FunnelPending && f.Status != tapline.FunnelBackfilling {
			return tapline.Errorf(tapline.ECONFLICT, "Version %d of funnel %d is %s: there is no backfill to cancel.", f.Version, funnelID, f.Status)
		}
		if err := endVersions(ctx, tx, funnelID, f.Version+1, notLive, tapline.FunnelCancelled); err != nil {
			return err
		}
		out, err = s.one(ctx, tx, "Funnel", `WHERE v.id = $1`, f.VersionID)
		return err
	})
	return out, err
}

// RestartFunnel starts a cancelled newest version afresh as a new version.
func (s *FunnelStore) RestartFunnel(ctx context.Context, funnelID int64) (*tapline.Funnel, error) {
	var out *tapline.Funnel
	err := s.inTx(ctx, "restart funnel", func(tx pgx.Tx) error {
		appID, err := lockFunnel(ctx, tx, funnelID)
		if err != nil {
			return err
		}
		f, err := s.one(ctx, tx, "Funnel", `WHERE f.id = $1 ORDER BY v.version DESC LIMIT 1`, funnelID)
		if err != nil {
			return err
		}
		if f.Status != tapline.FunnelCancelled {
			out = f
			return nil
		}
		def := f.FunnelDefinition
		if err := validate(ctx, tx, appID, &def); err != nil {
			return err
		}
		out, err = s.insertVersion(ctx, tx, funnelID, f.Version+1, &def)
		return err
	})
	return out, err
}

// CreateRanges creates n backfill ranges for a version whose handoff is
// complete; existing ranges stay as they are.
func (s *FunnelStore) CreateRanges(ctx context.Context, versionID int64, n int) error {
	if n < 1 || n > 4096 {
		return tapline.Errorf(tapline.EINVALID, "ranges: 1 to 4096, not %d.", n)
	}
	rs := tapline.SplitRing(n)
	nos := make([]int32, n)
	starts := make([]int64, n)
	ends := make([]int64, n)
	for i, r := range rs {
		nos[i], starts[i], ends[i] = int32(i), r.Start, r.End
	}
	tag, err := s.db.pool.Exec(ctx, `
		INSERT INTO funnel_backfill_ranges (version_id, range_no, start_pos, end_pos, cursor_pos)
		SELECT $1, n, s, e, s FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS u (n, s, e)
		WHERE EXISTS (SELECT 1 FROM funnel_versions WHERE id = $1 AND status = 'backfilling')
			AND NOT EXISTS (SELECT 1 FROM funnel_backfill_ranges WHERE version_id = $1)
		ON CONFLICT DO NOTHING`, versionID, nos, starts, ends)
	if err != nil {
		return fmt.Errorf("create backfill ranges: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		var status string
		err := s.db.pool.QueryRow(ctx, `SELECT status FROM funnel_versions WHERE id = $1`, versionID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return tapline.Errorf(tapline.ENOTFOUND, "Funnel version %d not found.", versionID)
		} else if err != nil {
			return fmt.Errorf("create backfill ranges: %w", translate(err))
		}
		if status != string(tapline.FunnelBackfilling) && status != string(tapline.FunnelLive) {
			return tapline.Errorf(tapline.ECONFLICT, "Funnel version %d is %s, not backfilling.", versionID, status)
		}
	}
	return nil
}

const rangeColumns = `version_id, range_no, start_pos, end_pos, cursor_pos, done, rows_scanned, installations, coalesce(owner, '')`

func scanRange(row pgx.Row) (*tapline.BackfillRange, error) {
	var r tapline.BackfillRange
	var no int32
	err := row.Scan(&r.VersionID, &no, &r.Start, &r.End, &r.Cursor, &r.Done, &r.Rows, &r.Installations, &r.Owner)
	r.Range = int(no)
	return &r, err
}

// Ranges returns the version's backfill ranges in order.
func (s *FunnelStore) Ranges(ctx context.Context, versionID int64) ([]*tapline.BackfillRange, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+rangeColumns+` FROM funnel_backfill_ranges WHERE version_id = $1 ORDER BY range_no`, versionID)
	if err != nil {
		return nil, fmt.Errorf("get backfill ranges: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tapline.BackfillRange, error) { return scanRange(r) })
	if err != nil {
		return nil, fmt.Errorf("get backfill ranges: %w", translate(err))
	}
	return out, nil
}

// ClaimRange leases an unfinished range to owner: one nobody holds, or
// whose lease ran out, lowest first; ENOTFOUND when there is none.
// Concurrent claimers skip each other's rows.
func (s *FunnelStore) ClaimRange(ctx context.Context, versionID int64, owner string, lease time.Duration) (*tapline.BackfillRange, error) {
	if owner == "" || lease <= 0 {
		return nil, tapline.Errorf(tapline.EINVALID, "A claim needs an owner and a positive lease.")
	}
	// The claimed range is one scalar subquery, evaluated once: a join
	// with it may be planned as a loop that re-runs it for every row and
	// claims every free range at once.
	r, err := scanRange(s.db.pool.QueryRow(ctx, `
		UPDATE funnel_backfill_ranges AS r SET owner = $2, lease_until = now() + $3 * interval '1 microsecond', updated_at = now()
		WHERE r.version_id = $1 AND r.range_no = (
			SELECT range_no FROM funnel_backfill_ranges
			WHERE version_id = $1 AND NOT done AND (owner IS NULL OR lease_until < now())
				AND EXISTS (SELECT 1 FROM funnel_versions WHERE id = $1 AND status = 'backfilling')
			ORDER BY range_no LIMIT 1 FOR UPDATE SKIP LOCKED
		)
		RETURNING r.version_id, r.range_no, r.start_pos, r.end_pos, r.cursor_pos, r.done, r.rows_scanned, r.installations, r.owner`,
		versionID, owner, lease.Microseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No backfill range of version %d is free.", versionID)
	} else if err != nil {
		return nil, fmt.Errorf("claim backfill range: %w", translate(err))
	}
	return r, nil
}

// ReleaseRange gives up owner's claim on a range.
func (s *FunnelStore) ReleaseRange(ctx context.Context, versionID int64, rangeNo int, owner string) error {
	if _, err := s.db.pool.Exec(ctx, `UPDATE funnel_backfill_ranges SET owner = NULL, lease_until = NULL
		WHERE version_id = $1 AND range_no = $2 AND owner = $3`, versionID, rangeNo, owner); err != nil {
		return fmt.Errorf("release backfill range: %w", translate(err))
	}
	return nil
}

// CommitBackfill applies a step of claimed ranges in one transaction: the
// deltas, and each range's cursor, counts and lease. It fails with
// ECONFLICT, applying nothing, when a range is no longer c.Owner's at its
// step's From or the version is no longer backfilling. When it finishes
// the last range the version goes live and the funnel's older versions
// end.
func (s *FunnelStore) CommitBackfill(ctx context.Context, c *tapline.BackfillCommit, lease time.Duration) error {
	for k := range c.Deltas {
		if k.Table != tapline.FactFunnelSteps || k.Funnel != c.VersionID {
			return tapline.Errorf(tapline.EINVALID, "A backfill of version %d writes only its own funnel_steps rows.", c.VersionID)
		}
	}
	if len(c.Steps) == 0 {
		return tapline.Errorf(tapline.EINVALID, "A backfill commit needs a range step.")
	}
	seen := make(map[int]bool, len(c.Steps))
	for _, st := range c.Steps {
		if seen[st.Range] {
			return tapline.Errorf(tapline.EINVALID, "A backfill commit moves range %d twice.", st.Range)
		}
		seen[st.Range] = true
	}
	return s.inTx(ctx, "commit backfill", func(tx pgx.Tx) error {
		// A backfill commit need not wait for the disk: should the
		// database crash and lose it, it loses it whole, the ranges'
		// cursors with their deltas (and a finished version's move to
		// live), so the ranges are scanned again from the cursors they
		// keep, and
		// nothing is counted twice or missed. Without the wait, a commit
		// costs its round trips only.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
			return fmt.Errorf("commit backfill: %w", translate(err))
		}
		var ranges []int32
		var from, to, rows, installs []int64
		var done []bool
		anyDone := false
		for _, st := range c.Steps {
			ranges = append(ranges, int32(st.Range))
			from, to, done = append(from, st.From), append(to, st.To), append(done, st.Done)
			rows, installs = append(rows, st.Rows), append(installs, st.Installations)
			anyDone = anyDone || st.Done
		}
		if anyDone {
			// Finishing commits of one version take turns, so the last one
			// sees every other range done and makes the version live.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM funnel_versions WHERE id = $1 FOR UPDATE`, c.VersionID); err != nil {
				return fmt.Errorf("lock funnel version: %w", translate(err))
			}
		}
		tag, err := tx.Exec(ctx, `
			UPDATE funnel_backfill_ranges AS r SET cursor_pos = s.to_pos, done = s.done, rows_scanned = r.rows_scanned + s.rows,
				installations = r.installations + s.installs, lease_until = now() + $3 * interval '1 microsecond', updated_at = now()
			FROM unnest($4::int[], $5::bigint[], $6::bigint[], $7::bool[], $8::bigint[], $9::bigint[])
				AS s(range_no, from_pos, to_pos, done, rows, installs)
			WHERE r.version_id = $1 AND r.range_no = s.range_no AND r.owner = $2 AND r.cursor_pos = s.from_pos AND NOT r.done
				AND EXISTS (SELECT 1 FROM funnel_versions WHERE id = $1 AND status = 'backfilling')`,
			c.VersionID, c.Owner, lease.Microseconds(), ranges, from, to, done, rows, installs)
		if err != nil {
			return fmt.Errorf("move backfill cursors: %w", translate(err))
		}
		if tag.RowsAffected() != int64(len(c.Steps)) {
			return tapline.Errorf(tapline.ECONFLICT, "A range of funnel version %d moved on, or the version was cancelled.", c.VersionID)
		}
		byTable, err := factRows(c.Deltas)
		if err != nil {
			return fmt.Errorf("commit backfill: %w", err)
		}
		if err := upsertRows(ctx, tx, byTable); err != nil {
			return err
		}
		if !anyDone {
			return nil
		}
		return finishIfDone(ctx, tx, c.VersionID)
	})
}

// finishIfDone makes a version whose ranges are all done live, and ends
// the older versions of its funnel.
func finishIfDone(ctx context.Context, tx pgx.Tx, versionID int64) error {
	var funnelID int64
	var version int
	err := tx.QueryRow(ctx, `
		UPDATE funnel_versions SET status = 'live', live_at = now()
		WHERE id = $1 AND status = 'backfilling'
			AND NOT EXISTS (SELECT 1 FROM funnel_backfill_ranges WHERE version_id = $1 AND NOT done)
		RETURNING funnel_id, version`, versionID).Scan(&funnelID, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("make funnel version live: %w", translate(err))
	}
	if err := endVersions(ctx, tx, funnelID, version, []string{string(tapline.FunnelLive)}, tapline.FunnelSuperseded); err != nil {
		return err
	}
	return endVersions(ctx, tx, funnelID, version, notLive, tapline.FunnelCancelled)
}

// storeHandoffs stores handoffs in tx and moves versions whose handoff is
// now complete (partitions rows) from pending to backfilling; a version
// no longer pending takes no handoffs.
func storeHandoffs(ctx context.Context, tx pgx.Tx, handoffs []tapline.FunnelHandoff) error {
	if len(handoffs) == 0 {
		return nil
	}
	vids := make([]int64, len(handoffs))
	topics := make([]string, len(handoffs))
	parts := make([]int32, len(handoffs))
	offs := make([]int64, len(handoffs))
	partitions := 0
	for i, h := range handoffs {
		vids[i], topics[i], parts[i], offs[i] = h.VersionID, h.Topic, int32(h.Partition.Partition), h.Offset
		partitions = max(partitions, h.Of)
	}
	if partitions <= 0 {
		return tapline.Errorf(tapline.EINVALID, "A funnel handoff needs the number of partitions it is part of.")
	}
	// Matchers storing the handoffs of one version take turns, so that the
	// last one counts every other's rows and completes the version.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM funnel_versions WHERE id = ANY($1) AND status = 'pending' ORDER BY id FOR UPDATE`,
		vids); err != nil {
		return fmt.Errorf("lock funnel versions: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO funnel_handoffs (version_id, topic, partition, next_offset)
		SELECT u.v, u.t, u.p, u.o FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[]) AS u (v, t, p, o)
		JOIN funnel_versions fv ON fv.id = u.v AND fv.status = 'pending'
		ON CONFLICT (version_id, topic, partition) DO NOTHING`, vids, topics, parts, offs); err != nil {
		return fmt.Errorf("store funnel handoffs: %w", translate(err))
	}
	slices.Sort(vids)
	if _, err := tx.Exec(ctx, `
		UPDATE funnel_versions v SET status = 'backfilling', handoff_at = now()
		WHERE v.id = ANY($1) AND v.status = 'pending'
			AND (SELECT count(*) FROM funnel_handoffs h WHERE h.version_id = v.id) >= $2`,
		slices.Compact(vids), partitions); err != nil {
		return fmt.Errorf("complete funnel handoffs: %w", translate(err))
	}
	return nil
}
