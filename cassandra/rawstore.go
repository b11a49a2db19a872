package cassandra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"tapline"
	"tapline/fingerprint"
)

// MaxLookupDays is the most day partitions one lookup by time visits; a
// wider [from, to] range (after clipping to the app's cut-off) is refused
// with EINVALID.
const MaxLookupDays = 1000

// CutoffCacheTTL is how long a process trusts its cached copy of an app's
// retention cut-off; another process's DeleteBefore takes up to this long
// to hide rows here.
const CutoffCacheTTL = 30 * time.Second

// lookupParallelism bounds the partitions one lookup reads at once.
const lookupParallelism = 8

// maxCASAttempts bounds the lightweight transactions of one put.
const maxCASAttempts = 8

// noCutoff is the cut-off of an app that never had rows deleted.
const noCutoff = math.MinInt64

// RawStore implements tapline.RawStore on a Cassandra cluster.
type RawStore struct {
	// Config says where the cluster is and how to talk to it.
	Config Config
	// Logger receives the store's log lines; nil means slog.Default().
	Logger *slog.Logger

	session *gocql.Session
	closed  atomic.Bool
	cons    gocql.Consistency
	serial  gocql.SerialConsistency
	retry   gocql.RetryPolicy
	stmt    statements

	cutMu sync.Mutex
	cuts  map[int64]cachedCutoff
}

type cachedCutoff struct {
	ns int64
	at time.Time
}

var _ tapline.RawStore = (*RawStore)(nil)

// NewRawStore returns a raw store with cfg's zero fields set to their
// defaults; call Migrate (once per cluster) and Open next.
func NewRawStore(cfg Config) *RawStore {
	if cfg.Keyspace == "" {
		cfg.Keyspace = DefaultKeyspace
	}
	if cfg.Consistency == "" {
		cfg.Consistency = DefaultConsistency
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = DefaultReplicationFactor
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.NumConns == 0 {
		cfg.NumConns = DefaultNumConns
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	return &RawStore{Config: cfg, cuts: make(map[int64]cachedCutoff)}
}

// Open validates the configuration, connects to the cluster and checks that
// the schema is there. It fails with EUNAVAILABLE when no host answers.
// Statements are prepared by gocql on their first use and cached.
func (s *RawStore) Open(ctx context.Context) error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.cuts == nil {
		s.cuts = make(map[int64]cachedCutoff)
	}
	s.cons, _ = s.Config.consistency()
	s.serial = serialFor(s.cons)
	s.retry = &transientRetry{gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 50 * time.Millisecond, Max: time.Second}}
	s.stmt = newStatements(s.Config.Keyspace)
	sess, err := createSession(ctx, s.Config.cluster("", s.Logger))
	if err != nil {
		return fmt.Errorf("open cassandra raw store: %w", err)
	}
	s.session = sess
	s.closed.Store(false)
	if err := s.query(ctx, s.stmt.cutoff, true, int64(0)).Exec(); err != nil {
		sess.Close()
		s.closed.Store(true)
		return fmt.Errorf("open cassandra raw store: check schema (run Migrate first?): %w", translate(err))
	}
	s.Logger.Debug("cassandra raw store open", "hosts", s.Config.Hosts, "keyspace", s.Config.Keyspace, "consistency", s.cons.String())
	return nil
}

// createSession connects with cl, giving up when ctx ends.
func createSession(ctx context.Context, cl *gocql.ClusterConfig) (*gocql.Session, error) {
	type result struct {
		sess *gocql.Session
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sess, err := cl.CreateSession()
		done <- result{sess, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			// The configuration was validated, so a failure here means no
			// host could be reached (gocql does not wrap the cause).
			return nil, &unavailableError{err: fmt.Errorf("connect to %v: %w", cl.Hosts, r.err)}
		}
		return r.sess, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.sess != nil {
				r.sess.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Close closes the session; it is safe to call twice. Operations running
// at that moment fail with EUNAVAILABLE.
func (s *RawStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.session != nil {
		s.session.Close()
	}
	return nil
}

// check returns EUNAVAILABLE for a store that is not open, or ctx's error.
func (s *RawStore) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.session == nil || s.closed.Load() {
		return tapline.Errorf(tapline.EUNAVAILABLE, "The raw store is closed.")
	}
	return nil
}

// query returns stmt bound to args at the configured consistency; an
// idempotent statement may be retried by the driver, others never are.
func (s *RawStore) query(ctx context.Context, stmt string, idempotent bool, args ...any) *gocql.Query {
	q := s.session.Query(stmt, args...).WithContext(ctx).
		Consistency(s.cons).SerialConsistency(s.serial).PageSize(s.Config.PageSize)
	if idempotent {
		q = q.Idempotent(true).RetryPolicy(s.retry)
	}
	return q
}

// exec runs idempotent writes one after the other.
func (s *RawStore) exec(ctx context.Context, writes ...write) error {
	for _, w := range writes {
		if err := s.query(ctx, w.stmt, true, w.args...).Exec(); err != nil {
			return translate(err)
		}
	}
	return nil
}

// transientRetry retries an idempotent statement on the next host, with
// exponential backoff, when its error may not recur (replicas unavailable,
// timeouts, overload, a lost connection). Other errors, such as an invalid
// statement, a missing table or a refused login, come back without the
// retries (gocql's policies retry every error).
type transientRetry struct {
	gocql.ExponentialBackoffRetryPolicy
}

// GetRetryType implements gocql.RetryPolicy.
func (r *transientRetry) GetRetryType(err error) gocql.RetryType {
	if unavailable(err) {
		return gocql.RetryNextHost
	}
	return gocql.Rethrow
}

type write struct {
	stmt string
	args []any
}

// cutoff returns the app's retention cut-off in Unix nanoseconds: raw rows
// with an earlier time are invisible.
func (s *RawStore) cutoff(ctx context.Context, appID int64) (int64, error) {
	s.cutMu.Lock()
	c, ok := s.cuts[appID]
	s.cutMu.Unlock()
	if ok && time.Since(c.at) < CutoffCacheTTL {
		return c.ns, nil
	}
	ns := int64(noCutoff)
	err := s.query(ctx, s.stmt.cutoff, true, appID).Scan(&ns)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, fmt.Errorf("read cut-off: %w", translate(err))
	}
	s.setCutoff(appID, ns)
	return ns, nil
}

// setCutoff caches ns as the app's cut-off unless a later one is cached
// and fresh.
func (s *RawStore) setCutoff(appID, ns int64) {
	s.cutMu.Lock()
	defer s.cutMu.Unlock()
	if c, ok := s.cuts[appID]; ok && c.ns > ns && time.Since(c.at) < CutoffCacheTTL {
		return
	}
	s.cuts[appID] = cachedCutoff{ns: ns, at: time.Now()}
}

// PutHit stores h unless a hit with its (AppID, ID) is stored already, and
// returns the stored hit. It costs one lightweight transaction plus one
// write per index (fingerprint, advertising id).
func (s *RawStore) PutHit(ctx context.Context, h *tapline.Hit) (*tapline.Hit, error) {
	if h == nil || h.ID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "A hit needs an id.")
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	v, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode hit: %w", err)
	}
	t := tapline.UnixNanos(h.Time)
	stored, err := s.putIfAbsent(ctx, &s.stmt.hits, h.AppID, h.ID, t, v)
	if err != nil {
		return nil, fmt.Errorf("put hit: %w", err)
	}
	if !bytes.Equal(stored, v) {
		var old tapline.Hit
		if err := json.Unmarshal(stored, &old); err != nil {
			return nil, fmt.Errorf("decode hit: %w", err)
		}
		return &old, nil
	}
	// This hit is the stored one: write (or repair) its index rows.
	var ws []write
	day := dayOf(t)
	if h.Fingerprint != "" {
		ws = append(ws, write{s.stmt.hitsByFP.insert, []any{h.AppID, day, h.Fingerprint, t, h.ID, v}})
	}
	if h.AdID != "" {
		ws = append(ws, write{s.stmt.hitsByAdID.insert, []any{h.AppID, day, h.AdID, t, h.ID, v}})
	}
	if err := s.exec(ctx, ws...); err != nil {
		return nil, fmt.Errorf("put hit index: %w", err)
	}
	return h, nil
}

// Hit returns the hit id of the app, or ENOTFOUND.
func (s *RawStore) Hit(ctx context.Context, appID int64, id string) (*tapline.Hit, error) {
	v, err := s.byID(ctx, &s.stmt.hits, appID, id)
	if err != nil {
		return nil, err
	}
	var h tapline.Hit
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("decode hit: %w", err)
	}
	return &h, nil
}

// HitAt returns the hit id of the app: hits are read by id, so at does
// not help.
func (s *RawStore) HitAt(ctx context.Context, appID int64, id string, _ time.Time) (*tapline.Hit, error) {
	return s.Hit(ctx, appID, id)
}

// HitsByFingerprint returns the app's hits with the fingerprint whose Time
// lies in [from, to], newest first.
func (s *RawStore) HitsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*tapline.Hit, error) {
	return rangeRows[tapline.Hit](ctx, s, s.stmt.hitsByFP.selectDay, appID, fingerprint, from, to)
}

// HitsByAdID returns the app's hits with the advertising id whose Time lies
// in [from, to], newest first.
func (s *RawStore) HitsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*tapline.Hit, error) {
	return rangeRows[tapline.Hit](ctx, s, s.stmt.hitsByAdID.selectDay, appID, adID, from, to)
}

// PutEvent stores e unless an event with its (AppID, ID) is stored already,
// and returns the stored event. Installs are indexed by fingerprint,
// advertising id, vendor id and referrer hit id, and every event with an install id by
// that (events_by_install). It costs one lightweight transaction plus one
// write per index; the index writes follow the transaction that stored the
// event and are repeated by a retry of the same put.
func (s *RawStore) PutEvent(ctx context.Context, e *tapline.Event) (*tapline.Event, error) {
	if e == nil || e.ID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "An event needs an id.")
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	t := tapline.UnixNanos(e.Time)
	stored, err := s.putIfAbsent(ctx, &s.stmt.events, e.AppID, e.ID, t, v)
	if err != nil {
		return nil, fmt.Errorf("put event: %w", err)
	}
	if !bytes.Equal(stored, v) {
		var old tapline.Event
		if err := json.Unmarshal(stored, &old); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		return &old, nil
	}
	var ws []write
	if e.InstallID != "" {
		ws = append(ws, write{s.stmt.eventsByInstall, []any{e.AppID, e.InstallID, t, e.ID, v}})
	}
	if e.Kind == tapline.KindInstall {
		day := dayOf(t)
		if e.Fingerprint != "" {
			ws = append(ws, write{s.stmt.installsByFP.insert, []any{e.AppID, day, e.Fingerprint, t, e.ID, v}})
		}
		if ad := e.Device.AdID(); ad != "" {
			ws = append(ws, write{s.stmt.installsByAdID.insert, []any{e.AppID, day, ad, t, e.ID, v}})
		}
		if hit := e.ReferrerHitID(); hit != "" {
			ws = append(ws, write{s.stmt.installsByRefHit, []any{e.AppID, hit, t, e.ID, v}})
		}
		if idfv := e.Device.IDFV; idfv != "" {
			ws = append(ws, write{s.stmt.installsByVendorID.insert, []any{e.AppID, day, idfv, t, e.ID, v}})
		}
	}
	if err := s.exec(ctx, ws...); err != nil {
		return nil, fmt.Errorf("put event index: %w", err)
	}
	return e, nil
}

// Event returns the event id of the app, or ENOTFOUND.
func (s *RawStore) Event(ctx context.Context, appID int64, id string) (*tapline.Event, error) {
	v, err := s.byID(ctx, &s.stmt.events, appID, id)
	if err != nil {
		return nil, err
	}
	var e tapline.Event
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return &e, nil
}

// InstallsByFingerprint returns the app's installs with the fingerprint
// whose Time lies in [from, to], newest first.
func (s *RawStore) InstallsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*tapline.Event, error) {
	return rangeRows[tapline.Event](ctx, s, s.stmt.installsByFP.selectDay, appID, fingerprint, from, to)
}

// InstallsByAdID returns the app's installs with the advertising id whose
// Time lies in [from, to], newest first.
func (s *RawStore) InstallsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*tapline.Event, error) {
	return rangeRows[tapline.Event](ctx, s, s.stmt.installsByAdID.selectDay, appID, adID, from, to)
}

// InstallsByVendorID returns the app's installs with the vendor id (IDFV)
// whose Time lies in [from, to], newest first.
func (s *RawStore) InstallsByVendorID(ctx context.Context, appID int64, idfv string, from, to time.Time) ([]*tapline.Event, error) {
	return rangeRows[tapline.Event](ctx, s, s.stmt.installsByVendorID.selectDay, appID, idfv, from, to)
}

// InstallsByReferrerHit returns the app's installs whose install referrer
// carries hitID, newest first.
func (s *RawStore) InstallsByReferrerHit(ctx context.Context, appID int64, hitID string) ([]*tapline.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if hitID == "" {
		return nil, nil
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return nil, err
	}
	vs, err := s.readBlobs(ctx, s.stmt.selectRefHit, appID, hitID, cut)
	if err != nil {
		return nil, fmt.Errorf("installs by referrer hit: %w", err)
	}
	return decodeAll[tapline.Event](vs)
}

// EventsByInstall returns the app's visible events of the installation
// installID, oldest first, from its events_by_install partition; none for
// an empty installID.
func (s *RawStore) EventsByInstall(ctx context.Context, appID int64, installID string) ([]*tapline.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if installID == "" {
		return nil, nil
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return nil, err
	}
	vs, err := s.readBlobs(ctx, s.stmt.selectByInstall, appID, installID, cut)
	if err != nil {
		return nil, fmt.Errorf("events by install: %w", err)
	}
	es, err := decodeAll[tapline.Event](vs)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(es, tapline.CompareEvents)
	return es, nil
}

// ScanInstallations calls fn for each installation of the app whose key,
// the Murmur3 token of its events_by_install partition (token(app_id,
// install_id)), lies in (r.Start, r.End], in token order, with its visible
// events oldest first and its conversion (one more query). It reads the range with one paged query: the rows of
// a partition come together, and partitions in token order (those with
// equal tokens one after the other), so it holds one installation and one
// page at a time. The query sees the partitions of every app in the range
// and keeps the app's. To scan in parallel, call it once per range.
func (s *RawStore) ScanInstallations(ctx context.Context, appID int64, r tapline.ScanRange, fn func(key int64, inst *tapline.Installation) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if r.Start >= r.End {
		return nil
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return err
	}
	var (
		cur    *tapline.Installation
		curKey int64
	)
	// flush passes the installation read so far to fn, unless the cut-off
	// hid all its events.
	flush := func() error {
		inst := cur
		cur = nil
		if inst == nil || len(inst.Events) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		slices.SortStableFunc(inst.Events, tapline.CompareEvents)
		c, err := s.ConversionByInstall(ctx, appID, inst.ID)
		switch {
		case err == nil:
			inst.Conversion = c
		case tapline.ErrorCode(err) != tapline.ENOTFOUND:
			return err
		}
		return fn(curKey, inst)
	}
	iter := s.query(ctx, s.stmt.scanInstalls, true, r.Start, r.End).Iter()
	var (
		app, key, t int64
		install     string
		v           []byte
	)
	for iter.Scan(&app, &install, &key, &t, &v) {
		if app != appID {
			continue
		}
		if cur == nil || key != curKey || install != cur.ID {
			if err = flush(); err != nil {
				break
			}
			cur, curKey = &tapline.Installation{AppID: appID, ID: install}, key
		}
		if t < cut {
			continue
		}
		e := new(tapline.Event)
		if err = json.Unmarshal(v, e); err != nil {
			err = fmt.Errorf("decode event: %w", err)
			break
		}
		cur.Events = append(cur.Events, e)
	}
	cerr := iter.Close()
	switch {
	case err != nil:
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case cerr != nil:
		return fmt.Errorf("scan installations: %w", translate(cerr))
	}
	return flush()
}

// funnelStateRow is a funnel_states row: the columns its lightweight
// transactions compare, the stored bytes and their decoding.
type funnelStateRow struct {
	historyLen int
	lastBy     string
	data       []byte
	state      *tapline.FunnelState
}

// lastBy returns the bus position of a history's last change, or "".
func lastBy(h []tapline.FunnelChange) string {
	if len(h) == 0 {
		return ""
	}
	return h[len(h)-1].By
}

// funnelStateRow reads an installation's funnel state at consistency cons;
// nil when none is stored.
func (s *RawStore) funnelStateRow(ctx context.Context, appID int64, installID string, cons gocql.Consistency) (*funnelStateRow, error) {
	var row funnelStateRow
	err := s.query(ctx, s.stmt.fsSelect, true, appID, installID).Consistency(cons).Scan(&row.historyLen, &row.lastBy, &row.data)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("get funnel state: %w", translate(err))
	}
	row.state = new(tapline.FunnelState)
	if err := json.Unmarshal(row.data, row.state); err != nil {
		return nil, fmt.Errorf("decode funnel state: %w", err)
	}
	return &row, nil
}

// FunnelState returns the funnel state of the app's installation
// installID, or ENOTFOUND.
func (s *RawStore) FunnelState(ctx context.Context, appID int64, installID string) (*tapline.FunnelState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var row *funnelStateRow
	if installID != "" {
		var err error
		if row, err = s.funnelStateRow(ctx, appID, installID, s.cons); err != nil {
			return nil, err
		}
	}
	if row == nil {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No funnel state for install %q.", installID)
	}
	return row.state, nil
}

// PutFunnelState creates or replaces the funnel state of fs's (AppID,
// InstallID), unless fs does not follow the stored state (ECONFLICT). It
// reads the row, checks Follows, and writes with a lightweight transaction
// conditioned on what Follows compared: INSERT ... IF NOT EXISTS, or UPDATE
// ... IF history_len = ? AND last_by = ? with the values read. Of writers
// following the same stored state one wins; the others read again and find
// they no longer follow. An unknown outcome is settled by a SERIAL read: the
// state stored as written is success. Every write refreshes the row's
// 60-day TTL.
func (s *RawStore) PutFunnelState(ctx context.Context, fs *tapline.FunnelState) error {
	if fs == nil || fs.InstallID == "" {
		return tapline.Errorf(tapline.EINVALID, "A funnel state needs an install id.")
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	v, err := json.Marshal(fs)
	if err != nil {
		return fmt.Errorf("encode funnel state: %w", err)
	}
	n, by := len(fs.History), lastBy(fs.History)
	old, err := s.funnelStateRow(ctx, fs.AppID, fs.InstallID, s.cons)
	if err != nil {
		return err
	}
	for range maxCASAttempts {
		var stored *tapline.FunnelState
		if old != nil {
			stored = old.state
		}
		if !fs.Follows(stored) {
			return tapline.Errorf(tapline.ECONFLICT, "The funnel state of install %q changed since it was read.", fs.InstallID)
		}
		var q *gocql.Query
		if old == nil {
			q = s.query(ctx, s.stmt.fsInsert, false, fs.AppID, fs.InstallID, n, by, v)
		} else {
			q = s.query(ctx, s.stmt.fsReplace, false, n, by, v, fs.AppID, fs.InstallID, old.historyLen, old.lastBy)
		}
		applied, err := q.MapScanCAS(make(map[string]any))
		switch {
		case err != nil && !casUncertain(err):
			return fmt.Errorf("put funnel state: %w", translate(err))
		case err == nil && applied:
			return nil
		}
		// Unknown outcome or refused: what is stored now decides. A SERIAL
		// read completes any transaction in progress.
		if old, err = s.funnelStateRow(ctx, fs.AppID, fs.InstallID, gocql.Consistency(s.serial)); err != nil {
			return err
		}
		if old != nil && bytes.Equal(old.data, v) {
			return nil
		}
	}
	return tapline.Errorf(tapline.EUNAVAILABLE, "Too much contention on the funnel state of install %q; retry later.", fs.InstallID)
}

// byIDTable holds the statements of a table keyed by (app_id, id).
type byIDTable struct {
	noun                    string
	insertIfAbsent, replace string
	selectByID              string
	delete                  string // app_id, id

	// The row scans (ScanHitRows, ScanEventRows), in token order; each
	// selects token(app_id, id), app_id, id, time_ns, data.
	scanFrom  string // token(app_id, id) > ?
	scanAfter string // token(app_id, id) > token(?, ?): app_id, id
	scanAt    string // token(app_id, id) is token(?, ?): app_id, id, app_id, id
}

// putIfAbsent stores (id, t, v) in the table unless a visible row holds the
// id, and returns the stored row's data: v when this call or an earlier
// identical one stored it. A row hidden by the app's cut-off is replaced.
// When a transaction's outcome is unknown (a timeout, often from
// contention), a serial read settles it.
func (s *RawStore) putIfAbsent(ctx context.Context, tb *byIDTable, appID int64, id string, t int64, v []byte) ([]byte, error) {
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return nil, err
	}
	for range maxCASAttempts {
		row := make(map[string]any)
		applied, err := s.query(ctx, tb.insertIfAbsent, false, appID, id, t, v).MapScanCAS(row)
		var old []byte
		var oldT int64
		var ok bool
		switch {
		case err != nil && !casUncertain(err):
			return nil, translate(err)
		case err == nil && applied:
			return v, nil
		case err == nil:
			old, oldT, ok = casExisting(row)
		}
		if !ok {
			// Unknown outcome, or a refusal without the row: read the row
			// at SERIAL consistency, which completes any transaction in
			// progress.
			var found bool
			old, oldT, found, err = s.serialRead(ctx, tb, appID, id)
			switch {
			case err != nil && casUncertain(err):
				continue // the Paxos read met contention too: try again
			case err != nil:
				return nil, translate(err)
			case !found:
				continue
			}
		}
		if oldT >= cut {
			return old, nil
		}
		// The id is held by a row the app's cut-off hides: take it over,
		// unless another writer changed it meanwhile.
		applied, err = s.query(ctx, tb.replace, false, t, v, appID, id, old).MapScanCAS(make(map[string]any))
		switch {
		case err != nil && !casUncertain(err):
			return nil, translate(err)
		case err == nil && applied:
			return v, nil
		}
		// Lost the race or unknown: look again.
	}
	return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Too much contention on %s %q; retry later.", tb.noun, id)
}

// casExisting returns the stored row's data and time from the columns a
// refused INSERT ... IF NOT EXISTS returned: Cassandra sends [applied] and
// then every column of the existing row, in table order, which MapScanCAS
// keys by name. ok is false when either column is missing or null.
func casExisting(row map[string]any) (data []byte, t int64, ok bool) {
	data, okData := row["data"].([]byte)
	t, okTime := row["time_ns"].(int64)
	return data, t, okData && okTime && data != nil
}

// casUncertain reports whether a lightweight transaction failed in a way
// that leaves its outcome unknown.
func casUncertain(err error) bool {
	var writeTO *gocql.RequestErrWriteTimeout
	var readTO *gocql.RequestErrReadTimeout // from the Paxos read phase
	var casUnk *gocql.RequestErrCASWriteUnknown
	return errors.As(err, &writeTO) || errors.As(err, &readTO) || errors.As(err, &casUnk) ||
		errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, gocql.ErrConnectionClosed)
}

// serialRead reads the row of id at the serial consistency level; its
// error is the driver's, untranslated.
func (s *RawStore) serialRead(ctx context.Context, tb *byIDTable, appID int64, id string) (data []byte, t int64, found bool, err error) {
	err = s.query(ctx, tb.selectByID, true, appID, id).Consistency(gocql.Consistency(s.serial)).Scan(&t, &data)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, 0, false, nil
	} else if err != nil {
		return nil, 0, false, err
	}
	return data, t, true, nil
}

// byID returns the data of the visible row of id, or ENOTFOUND.
func (s *RawStore) byID(ctx context.Context, tb *byIDTable, appID int64, id string) ([]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return nil, err
	}
	var data []byte
	var t int64
	err = s.query(ctx, tb.selectByID, true, appID, id).Scan(&t, &data)
	switch {
	case errors.Is(err, gocql.ErrNotFound) || (err == nil && t < cut):
		return nil, tapline.Errorf(tapline.ENOTFOUND, "%s %q not found.", upperFirst(tb.noun), id)
	case err != nil:
		return nil, fmt.Errorf("get %s: %w", tb.noun, translate(err))
	}
	return data, nil
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// rangeRows returns the rows of a day-bucketed index table with the key
// whose time lies in [from, to] and not before the app's cut-off, newest
// first. It reads the day partitions in parallel.
func rangeRows[T any](ctx context.Context, s *RawStore, stmt string, appID int64, key string, from, to time.Time) ([]*T, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, nil
	}
	cut, err := s.cutoff(ctx, appID)
	if err != nil {
		return nil, err
	}
	lo, hi := max(tapline.UnixNanos(from), cut), tapline.UnixNanos(to)
	if lo > hi {
		return nil, nil
	}
	if n := int64(dayOf(hi)) - int64(dayOf(lo)) + 1; n > MaxLookupDays {
		return nil, tapline.Errorf(tapline.EINVALID, "A lookup may span at most %d days, not %d.", MaxLookupDays, n)
	}
	ds := days(lo, hi)
	parts := make([][][]byte, len(ds))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookupParallelism)
	for i, d := range ds {
		g.Go(func() error {
			vs, err := s.readBlobs(gctx, stmt, appID, d, key, lo, hi)
			parts[i] = vs
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("lookup by time: %w", err)
	}
	vs := slices.Concat(parts...) // newest first: the days newest first, each by time descending
	return decodeAll[T](vs[:min(len(vs), tapline.MaxLookupRows)])
}

// readBlobs runs a query selecting one blob column and returns every row's
// value, following pages.
func (s *RawStore) readBlobs(ctx context.Context, stmt string, args ...any) ([][]byte, error) {
	iter := s.query(ctx, stmt, true, args...).Iter()
	var out [][]byte
	for {
		var v []byte // Scan reuses a non-nil slice
		if !iter.Scan(&v) {
			break
		}
		out = append(out, v)
	}
	if err := iter.Close(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

func decodeAll[T any](vs [][]byte) ([]*T, error) {
	out := make([]*T, 0, len(vs))
	for _, v := range vs {
		row := new(T)
		if err := json.Unmarshal(v, row); err != nil {
			return nil, fmt.Errorf("decode raw row: %w", err)
		}
		out = append(out, row)
	}
	return out, nil
}

// PutConversion creates or replaces the conversion with c's (AppID, ID),
// unless c does not follow the stored conversion (ECONFLICT). The
// conversion row is written with a lightweight transaction conditioned on
// the row as read (IF NOT EXISTS, or IF data = the bytes read), so two
// matchers re-attributing one install at once cannot both win; the index
// rows follow with plain writes.
func (s *RawStore) PutConversion(ctx context.Context, c *tapline.Conversion) error {
	if c == nil || c.ID == "" {
		return tapline.Errorf(tapline.EINVALID, "A conversion needs an id.")
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode conversion: %w", err)
	}
	oldV, old, err := s.conversionRow(ctx, c.AppID, c.ID, s.cons)
	if err != nil {
		return err
	}
	if !c.Follows(old) {
		return tapline.Errorf(tapline.ECONFLICT, "Conversion %q changed since it was read.", c.ID)
	}
	var q *gocql.Query
	if old == nil {
		q = s.query(ctx, s.stmt.convInsert, false, c.AppID, c.ID, c.InstallID, c.HitID, v)
	} else {
		q = s.query(ctx, s.stmt.convReplace, false, c.InstallID, c.HitID, v, c.AppID, c.ID, oldV)
	}
	applied, err := q.MapScanCAS(make(map[string]any))
	if err != nil && !casUncertain(err) {
		return fmt.Errorf("put conversion: %w", translate(err))
	}
	if err != nil || !applied {
		// Unknown outcome or refused: what is stored now decides. A SERIAL
		// read completes any transaction in progress.
		now, _, rerr := s.conversionRow(ctx, c.AppID, c.ID, gocql.Consistency(s.serial))
		if rerr != nil {
			return rerr
		}
		if !bytes.Equal(now, v) {
			return tapline.Errorf(tapline.ECONFLICT, "Conversion %q changed while it was written.", c.ID)
		}
	}
	var ws []write
	if c.HitID != "" {
		ws = append(ws, write{s.stmt.convByHit.insert, []any{c.AppID, c.HitID, c.ID}})
	}
	if c.InstallID != "" {
		ws = append(ws, write{s.stmt.convByInstall.insert, []any{c.AppID, c.InstallID, c.ID}})
	}
	if old != nil {
		if old.HitID != "" && old.HitID != c.HitID {
			ws = append(ws, write{s.stmt.convByHit.delete, []any{c.AppID, old.HitID, c.ID}})
		}
		if old.InstallID != "" && old.InstallID != c.InstallID {
			ws = append(ws, write{s.stmt.convByInstall.delete, []any{c.AppID, old.InstallID, c.ID}})
		}
	}
	if err := s.exec(ctx, ws...); err != nil {
		return fmt.Errorf("put conversion: %w", err)
	}
	return nil
}

// conversionRow reads the stored bytes of a conversion and decodes them, at
// consistency cons; both are nil when none is stored.
func (s *RawStore) conversionRow(ctx context.Context, appID int64, id string, cons gocql.Consistency) ([]byte, *tapline.Conversion, error) {
	var v []byte
	err := s.query(ctx, s.stmt.convSelect, true, appID, id).Consistency(cons).Scan(&v)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("get conversion: %w", translate(err))
	}
	var c tapline.Conversion
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, nil, fmt.Errorf("decode conversion: %w", err)
	}
	// A conversion stored before conversions were kept private leaves the
	// store private, and its next write (a re-attribution, an erasure)
	// stores it so; the embedded store rewrites them all at Open, which a
	// cluster's table is too large for.
	fingerprint.PrivateConversion(&c)
	return v, &c, nil
}

// Conversion returns the conversion id of the app, or ENOTFOUND.
func (s *RawStore) Conversion(ctx context.Context, appID int64, id string) (*tapline.Conversion, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	_, c, err := s.conversionRow(ctx, appID, id, s.cons)
	if err != nil {
		return nil, err
	} else if c == nil {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Conversion %q not found.", id)
	}
	return c, nil
}

// ConversionByInstall returns the conversion of the app's install
// installID, or ENOTFOUND. Should several conversions name the install, the
// one with the earliest InstallTime wins.
func (s *RawStore) ConversionByInstall(ctx context.Context, appID int64, installID string) (*tapline.Conversion, error) {
	cs, err := s.conversionsBy(ctx, s.stmt.convByInstall.selectIDs, appID, installID,
		func(c *tapline.Conversion) bool { return c.InstallID == installID })
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No conversion for install %q.", installID)
	}
	return slices.MinFunc(cs, func(a, b *tapline.Conversion) int { return a.InstallTime.Compare(b.InstallTime) }), nil
}

// ConversionsByHit returns the conversions whose current HitID is hitID, in
// id order.
func (s *RawStore) ConversionsByHit(ctx context.Context, appID int64, hitID string) ([]*tapline.Conversion, error) {
	return s.conversionsBy(ctx, s.stmt.convByHit.selectIDs, appID, hitID,
		func(c *tapline.Conversion) bool { return c.HitID == hitID })
}

// conversionsBy reads the conversion ids an index holds for value, then the
// conversions themselves in parallel, and keeps those that still match.
func (s *RawStore) conversionsBy(ctx context.Context, stmt string, appID int64, value string, match func(*tapline.Conversion) bool) ([]*tapline.Conversion, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if value == "" {
		return nil, nil
	}
	iter := s.query(ctx, stmt, true, appID, value).Iter()
	var ids []string
	var id string
	for iter.Scan(&id) {
		ids = append(ids, id)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("conversion index: %w", translate(err))
	}
	found := make([]*tapline.Conversion, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookupParallelism)
	for i, id := range ids {
		g.Go(func() error {
			c, err := s.Conversion(gctx, appID, id)
			if tapline.ErrorCode(err) == tapline.ENOTFOUND {
				return nil
			} else if err != nil {
				return err
			}
			if match(c) {
				found[i] = c
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(found, func(c *tapline.Conversion) bool { return c == nil })
	slices.SortFunc(out, func(a, b *tapline.Conversion) int { return cmpString(a.ID, b.ID) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sync returns at once: every write is durable at its consistency level when
// it returns.
func (s *RawStore) Sync(ctx context.Context) error { return nil }

// DeleteBefore hides the app's raw hits and events whose Time is before t
// by recording t as the app's cut-off; their TTL removes them from disk.
// A cut-off earlier than the current one changes nothing. Other processes
// see the new cut-off within CutoffCacheTTL. Conversions stay.
func (s *RawStore) DeleteBefore(ctx context.Context, appID int64, t time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	cut := tapline.UnixNanos(t)
	s.cutMu.Lock()
	delete(s.cuts, appID) // read the stored cut-off afresh
	s.cutMu.Unlock()
	cur, err := s.cutoff(ctx, appID)
	if err != nil {
		return fmt.Errorf("delete before: %w", err)
	}
	if cut <= cur {
		return nil
	}
	// Insert the new cut-off, then drop the older ones: both idempotent,
	// and the newest row wins whatever happens in between.
	err = s.exec(ctx,
		write{s.stmt.cutoffInsert, []any{appID, cut}},
		write{s.stmt.cutoffPrune, []any{appID, cut}})
	if err != nil {
		return fmt.Errorf("delete before: %w", err)
	}
	s.setCutoff(appID, cut)
	return nil
}

const dayNanos = int64(24 * time.Hour)

// dayOf returns the day bucket of a time in Unix nanoseconds: whole days
// since the epoch, rounded down.
func dayOf(ns int64) int32 {
	d := ns / dayNanos
	if ns%dayNanos < 0 {
		d--
	}
	return int32(d)
}

// days returns the day buckets a [lo, hi] range of Unix nanoseconds visits,
// newest first, or nil for an empty range.
func days(lo, hi int64) []int32 {
	if lo > hi {
		return nil
	}
	first, last := dayOf(lo), dayOf(hi)
	out := make([]int32, 0, int(last-first)+1)
	for d := last; d >= first; d-- {
		out = append(out, d)
	}
	return out
}
