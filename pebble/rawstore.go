package pebble

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
	"tapline/internal/wire"
)

// BucketWidth is the width of the raw store's time buckets. Rows live under
// the bucket of their Time; DeleteBefore drops whole buckets with one range
// delete and hides the rest of a partly expired bucket behind a watermark, so
// a row outlives its deletion by less than one bucket on disk. Lookups by id
// or by referrer visit each stored bucket of the app once.
const BucketWidth = 7 * 24 * time.Hour

// Key spaces of the raw store.
const (
	spaceRaw           = 'R' // R app bucket table ...: hits and events, expiring
	spaceConversion    = 'C' // C app id: conversion
	spaceConvByHit     = 'B' // B app hitID id: conversion
	spaceConvByInstall = 'K' // K app key installID id: conversion, in installation key order

	// spaceConvByInstalOld is the first layout of the index by installation,
	// N app installID id; Open moves it to K (migrateConversionIndex).
	spaceConvByInstalOld = 'N'
	spaceWatermark       = 'W' // W app: Unix nanoseconds of the last DeleteBefore
	spaceFunnelState     = 'U' // U app installID: funnel state, expiring by its write time
	spaceFunnelWeek      = 'V' // V app week installID: empty; the week of the state's last write
	spaceReengagement    = 'G' // G app id: re-engagement, kept forever
	spaceReengByHit      = 'T' // T app hitID: the id of the re-engagement crediting the tap
	spaceMeta            = 'M' // M name: the store's own markers (privateConversions)
)

// Tables inside a raw bucket.
const (
	tableHit             = 'h' // h id: hit
	tableHitByFP         = 'f' // f fingerprint time id: hit
	tableHitByAdID       = 'a' // a adID time id: hit
	tableEvent           = 'e' // e id: event
	tableInstallByFP     = 'F' // F fingerprint time id: install
	tableInstallByAdID   = 'A' // A adID time id: install
	tableInstallByReferr = 'r' // r hitID time id: install
	tableInstallByVendor = 'v' // v idfv time id: install
	tableEventByInstall  = 'i' // i key installID time id: event with an install id
)

// DefaultRawCacheSize is the raw store's default block cache size.
const DefaultRawCacheSize = 128 << 20

// noWatermark marks an app that never had rows deleted.
const noWatermark = math.MinInt64

// lockStripes is the number of mutexes that make put-if-absent atomic.
const lockStripes = 64

// RawStore implements tapline.RawStore on a pebble database in Dir.
type RawStore struct {
	// Dir is the directory of the database; Open creates it.
	Dir string
	// CacheSize is the size in bytes of pebble's block cache;
	// MemTableSize of its memtables (0: DefaultMemTableSize).
	CacheSize    int64
	MemTableSize int64
	// ConversionCache is how many installations' conversions (or their
	// lack) ConversionByInstall remembers (0: DefaultConversionCache).
	ConversionCache int
	// Logger receives pebble's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of funnel state writes: a state is stored with the
	// time of its write, from which its expiry counts (DeleteBefore), as
	// Cassandra's TTL counts from the write. Nothing else reads it; nil
	// means time.Now. Tests set it to write states in the past.
	Now func() time.Time

	// MinFreeBytes is the free space of the filesystem below which writes
	// are refused with tapline.ErrStorageFull (0: DefaultMinFreeBytes;
	// negative: never), since pebble ends the process when its
	// write-ahead log cannot be written.
	MinFreeBytes int64

	mu      sync.RWMutex // held for reading by every operation, for writing by Close
	db      *pdb.DB
	closed  bool
	reserve *diskReserve

	locks [lockStripes]sync.Mutex // serialise writes of one (app, id)
	delMu sync.Mutex              // serialises DeleteBefore; taken before any stripe

	// scans counts the installation scans holding iterators. A scan holds
	// mu only while it reads, not while its callback runs (which may use
	// the store), so Close marks the store closed, waits for the scans to
	// notice and close their iterators, then closes the database.
	scans sync.WaitGroup

	wmMu sync.Mutex
	wm   map[int64]int64 // app id → watermark, cached

	bktMu sync.Mutex
	bkts  map[int64]*bucketSet // app id → the buckets it has rows in (storedBuckets)

	convs *convCache // ConversionByInstall's answers
}

var _ tapline.RawStore = (*RawStore)(nil)

// NewRawStore returns a raw store for the database in dir; call Open next.
func NewRawStore(dir string) *RawStore {
	return &RawStore{Dir: dir, CacheSize: DefaultRawCacheSize, Now: time.Now, wm: make(map[int64]int64)}
}

// Validate reports the first bad field.
func (s *RawStore) Validate() error {
	switch {
	case s.Dir == "":
		return fmt.Errorf("raw store: Dir is required")
	case s.CacheSize < 0:
		return fmt.Errorf("raw store: CacheSize must not be negative, not %d", s.CacheSize)
	case s.ConversionCache < 0:
		return fmt.Errorf("raw store: ConversionCache must not be negative, not %d", s.ConversionCache)
	}
	return nil
}

// Open validates the configuration and opens or creates the database.
func (s *RawStore) Open() error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.wm == nil {
		s.wm = make(map[int64]int64)
	}
	s.bkts = make(map[int64]*bucketSet)
	if s.ConversionCache == 0 {
		s.ConversionCache = DefaultConversionCache
	}
	s.convs = newConvCache(s.ConversionCache)
	if s.CacheSize <= 0 {
		s.CacheSize = DefaultRawCacheSize
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	db, err := openDB(s.Dir, s.CacheSize, s.MemTableSize, s.Logger, rawTables)
	s.reserve = newDiskReserve(s.Dir, minFree(s.MinFreeBytes))
	if err != nil {
		return fmt.Errorf("open raw store: %w", err)
	}
	if err := migrateConversionIndex(db, s.Logger); err != nil {
		_ = db.Close()
		return fmt.Errorf("open raw store: %w", err)
	}
	if err := privateConversions(db, s.Logger); err != nil {
		_ = db.Close()
		return fmt.Errorf("open raw store: %w", err)
	}
	s.mu.Lock()
	s.db, s.closed = db, false
	s.mu.Unlock()
	return nil
}

// Close closes the database once running operations finish; it is safe to
// call twice. A running ScanInstallations returns EUNAVAILABLE before its
// next installation.
func (s *RawStore) Close() error {
	s.mu.Lock()
	if s.closed || s.db == nil {
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	db := s.db
	s.mu.Unlock()
	s.scans.Wait()
	if err := db.Close(); err != nil {
		return fmt.Errorf("close raw store: %w", err)
	}
	return nil
}

// acquire holds the store open for one operation; the caller calls release.
func (s *RawStore) acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed || s.db == nil {
		s.mu.RUnlock()
		return nil, tapline.Errorf(tapline.EUNAVAILABLE, "The raw store is closed.")
	}
	return s.mu.RUnlock, nil
}

// lockID locks the stripe of (app, id) and returns its unlock.
func (s *RawStore) lockID(kind byte, appID int64, id string) func() {
	m := &s.locks[stripe(kind, appID, id)]
	m.Lock()
	return m.Unlock
}

// lockIDs locks the stripes of several (kind, app, id) keys, each once,
// in ascending order, as every writer holding more than one does; it
// returns the unlock.
func (s *RawStore) lockIDs(keys ...struct {
	kind  byte
	appID int64
	id    string
}) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, stripe(k.kind, k.appID, k.id))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			s.locks[i].Unlock()
		}
	}
}

// stripe returns the index of (app, id)'s lock stripe. A writer holds one
// stripe at a time, except DeleteBefore and PutReengagement, which lock
// several in ascending order.
func stripe(kind byte, appID int64, id string) int {
	h := fnv.New32a()
	h.Write(appKey(kind, appID))
	h.Write([]byte(id))
	return int(h.Sum32() % lockStripes)
}

// watermark returns the app's watermark: rows with Time before it, and
// funnel states written before it, are deleted, logically if not yet
// physically.
func (s *RawStore) watermark(appID int64) (int64, error) {
	s.wmMu.Lock()
	defer s.wmMu.Unlock()
	if w, ok := s.wm[appID]; ok {
		return w, nil
	}
	w := int64(noWatermark)
	v, closer, err := s.db.Get(appKey(spaceWatermark, appID))
	switch {
	case errors.Is(err, pdb.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("read watermark: %w", err)
	default:
		if len(v) == 8 {
			w = readInt64(v)
		}
		closer.Close()
	}
	s.wm[appID] = w
	return w, nil
}

func appKey(space byte, appID int64) []byte {
	return appendInt64(append(make([]byte, 0, 64), space), appID)
}

// bucketKey returns R app bucket(t) table.
func bucketKey(appID, t int64, table byte) []byte {
	return append(appendInt64(appKey(spaceRaw, appID), floorDiv(t, int64(BucketWidth))), table)
}

// indexKey returns R app bucket(t) table value time id.
func indexKey(appID int64, table byte, value string, t int64, id string) []byte {
	k := appendString(bucketKey(appID, t, table), value)
	return appendString(appendInt64(k, t), id)
}

// PutHit stores h unless a hit with its (AppID, ID) is stored already, and
// returns the stored hit.
func (s *RawStore) PutHit(ctx context.Context, h *tapline.Hit) (*tapline.Hit, error) {
	if h == nil || h.ID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "A hit needs an id.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.lockID(tableHit, h.AppID, h.ID)()

	if old, err := s.hit(h.AppID, h.ID); err == nil {
		return old, nil
	} else if tapline.ErrorCode(err) != tapline.ENOTFOUND {
		return nil, err
	}
	s.noteBucket(h.AppID, tapline.UnixNanos(h.Time))
	b := s.db.NewBatch()
	defer b.Close()
	setHit(b, h)
	if err := s.commit(b, pdb.NoSync); err != nil {
		return nil, fmt.Errorf("put hit: %w", err)
	}
	return h, nil
}

// Hit returns the hit id of the app, or ENOTFOUND.
func (s *RawStore) Hit(ctx context.Context, appID int64, id string) (*tapline.Hit, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.hit(appID, id)
}

func (s *RawStore) hit(appID int64, id string) (*tapline.Hit, error) {
	h := new(tapline.Hit)
	found, err := s.rowByID(appID, tableHit, id, hitRow(h))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Hit %q not found.", id)
	}
	return h, nil
}

// HitAt returns the hit id of the app stored with Time at, as a
// conversion's HitTime records it: one point read in at's bucket instead of
// Hit's look into every stored bucket. A hit not found there is looked up as
// Hit does.
func (s *RawStore) HitAt(ctx context.Context, appID int64, id string, at time.Time) (*tapline.Hit, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if at.IsZero() {
		return s.hit(appID, id)
	}
	v, closer, err := s.db.Get(appendString(bucketKey(appID, tapline.UnixNanos(at), tableHit), id))
	if errors.Is(err, pdb.ErrNotFound) {
		return s.hit(appID, id)
	} else if err != nil {
		return nil, fmt.Errorf("get hit: %w", err)
	}
	defer closer.Close()
	h := new(tapline.Hit)
	if err := wire.DecodeHit(v, h); err != nil {
		return nil, err
	}
	wm, err := s.watermark(appID)
	if err != nil {
		return nil, err
	}
	if tapline.UnixNanos(h.Time) < wm {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Hit %q not found.", id)
	}
	return h, nil
}

// HitsByFingerprint returns the app's hits with the fingerprint whose Time
// lies in [from, to], newest first.
func (s *RawStore) HitsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*tapline.Hit, error) {
	return scanRows(ctx, s, appID, tableHitByFP, fingerprint, from, to, wire.DecodeHit)
}

// HitsByAdID returns the app's hits with the advertising id whose Time lies
// in [from, to], newest first.
func (s *RawStore) HitsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*tapline.Hit, error) {
	return scanRows(ctx, s, appID, tableHitByAdID, adID, from, to, wire.DecodeHit)
}

// PutEvent stores e unless an event with its (AppID, ID) is stored already,
// and returns the stored event. Installs are indexed by fingerprint,
// advertising id and referrer hit id, every event with an install id by
// that, all in the event's batch.
func (s *RawStore) PutEvent(ctx context.Context, e *tapline.Event) (*tapline.Event, error) {
	if e == nil || e.ID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "An event needs an id.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.lockID(tableEvent, e.AppID, e.ID)()

	if old, err := s.event(e.AppID, e.ID); err == nil {
		return old, nil
	} else if tapline.ErrorCode(err) != tapline.ENOTFOUND {
		return nil, err
	}
	s.noteBucket(e.AppID, tapline.UnixNanos(e.Time))
	b := s.db.NewBatch()
	defer b.Close()
	setEvent(b, e)
	if err := s.commit(b, pdb.NoSync); err != nil {
		return nil, fmt.Errorf("put event: %w", err)
	}
	return e, nil
}

// Event returns the event id of the app, or ENOTFOUND.
func (s *RawStore) Event(ctx context.Context, appID int64, id string) (*tapline.Event, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.event(appID, id)
}

func (s *RawStore) event(appID int64, id string) (*tapline.Event, error) {
	e := new(tapline.Event)
	found, err := s.rowByID(appID, tableEvent, id, eventRow(e))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Event %q not found.", id)
	}
	return e, nil
}

// InstallsByFingerprint returns the app's installs with the fingerprint
// whose Time lies in [from, to], newest first.
func (s *RawStore) InstallsByFingerprint(ctx context.Context, appID int64, fingerprint string, from, to time.Time) ([]*tapline.Event, error) {
	return scanRows(ctx, s, appID, tableInstallByFP, fingerprint, from, to, wire.DecodeEvent)
}

// InstallsByAdID returns the app's installs with the advertising id whose
// Time lies in [from, to], newest first.
func (s *RawStore) InstallsByAdID(ctx context.Context, appID int64, adID string, from, to time.Time) ([]*tapline.Event, error) {
	return scanRows(ctx, s, appID, tableInstallByAdID, adID, from, to, wire.DecodeEvent)
}

// InstallsByVendorID returns the app's installs with the vendor id (IDFV)
// whose Time lies in [from, to], newest first.
func (s *RawStore) InstallsByVendorID(ctx context.Context, appID int64, idfv string, from, to time.Time) ([]*tapline.Event, error) {
	return scanRows(ctx, s, appID, tableInstallByVendor, idfv, from, to, wire.DecodeEvent)
}

// InstallsByReferrerHit returns the app's installs whose install referrer
// carries hitID, newest first.
func (s *RawStore) InstallsByReferrerHit(ctx context.Context, appID int64, hitID string) ([]*tapline.Event, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var out []*tapline.Event
	err = s.scanBuckets(appID, tableInstallByReferr, appendString(nil, hitID), func(v []byte) (bool, error) {
		var e tapline.Event
		if err := wire.DecodeEvent(v, &e); err != nil {
			return false, err
		}
		out = append(out, &e)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *tapline.Event) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// scanBuckets calls fn with the value of every visible row of table whose
// key (after the table byte) starts with the encoded value, bucket by
// bucket from the oldest visible bucket, until fn returns false. It seeks at
// most twice per stored bucket and never visits buckets without rows.
func (s *RawStore) scanBuckets(appID int64, table byte, value []byte, fn func(v []byte) (bool, error)) error {
	wm, err := s.watermark(appID)
	if err != nil {
		return err
	}
	lo := appKey(spaceRaw, appID)
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("raw store iterator: %w", err)
	}
	defer it.Close()

	wmBucket := floorDiv(wm, int64(BucketWidth))
	bucket := wmBucket
	var prefix []byte
	for {
		prefix = append(append(appendInt64(append(prefix[:0], lo...), bucket), table), value...)
		if !it.SeekGE(prefix) {
			break
		}
		if b := readInt64(it.Key()[len(lo):]); b != bucket {
			bucket = b // the next stored bucket; seek into it
			continue
		}
		for ; it.Valid() && bytes.HasPrefix(it.Key(), prefix); it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("read raw row: %w", err)
			}
			if wm != noWatermark && bucket == wmBucket {
				// Only this bucket can hold rows hidden by the watermark.
				t, err := rowTime(table, v)
				if err != nil {
					return err
				}
				if t < wm {
					continue
				}
			}
			if more, err := fn(v); err != nil || !more {
				return err
			}
		}
		if bucket == math.MaxInt64 {
			break
		}
		bucket++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raw store iterator: %w", err)
	}
	return nil
}

// scanRows returns the rows of an index table with the value whose time lies
// in [from, to] and after the watermark, newest first, visiting each stored
// bucket of the range once.
func scanRows[T any](ctx context.Context, s *RawStore, appID int64, table byte, value string, from, to time.Time, decode func([]byte, *T) error) ([]*T, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	wm, err := s.watermark(appID)
	if err != nil {
		return nil, err
	}
	lo, hi := max(tapline.UnixNanos(from), wm), tapline.UnixNanos(to)
	if lo > hi {
		return nil, nil
	}
	base := appKey(spaceRaw, appID)
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: base, UpperBound: prefixEnd(base)})
	if err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	defer it.Close()

	var out []*T
	first, bucket := floorDiv(lo, int64(BucketWidth)), floorDiv(hi, int64(BucketWidth))
	var prefix, start []byte
	for bucket >= first {
		prefix = appendString(append(appendInt64(append(prefix[:0], base...), bucket), table), value)
		start = appendInt64(append(start[:0], prefix...), lo)
		if !it.SeekLT(prefixEnd(appendInt64(prefix, hi))) {
			break
		}
		if b := readInt64(it.Key()[len(base):]); b < bucket {
			bucket = b // the previous stored bucket; seek into it
			continue
		}
		for ; it.Valid() && bytes.HasPrefix(it.Key(), prefix) && bytes.Compare(it.Key(), start) >= 0; it.Prev() {
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("read raw row: %w", err)
			}
			row := new(T)
			if err := decode(v, row); err != nil {
				return nil, err
			}
			out = append(out, row)
			if len(out) == tapline.MaxLookupRows {
				return out, nil
			}
		}
		if bucket == math.MinInt64 {
			break
		}
		bucket--
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	return out, nil
}

// installKey returns an installation's key on the int64 ring: the FNV-1a 64
// hash of its install id, mixed by Murmur3's 64-bit finalizer (FNV alone
// leaves the high bits of ids that differ only at their end nearly equal,
// which would crowd them into one scan range), as a signed integer.
// math.MinInt64 counts as math.MaxInt64 (as in Cassandra's Murmur3 tokens),
// so the ranges of tapline.SplitRing, the first of which excludes
// math.MinInt64, cover every key. Keys are stored: never change this.
func installKey(installID string) int64 {
	h := fnv.New64a()
	h.Write([]byte(installID))
	k := h.Sum64()
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	if int64(k) == math.MinInt64 {
		return math.MaxInt64
	}
	return int64(k)
}

// installIndexKey returns R app bucket(t) i key installID time id: rows of
// the install index sort by key, install id, time and id within a bucket.
func installIndexKey(appID, t, key int64, installID, id string) []byte {
	k := appendString(appendInt64(bucketKey(appID, t, tableEventByInstall), key), installID)
	return appendString(appendInt64(k, t), id)
}

// EventsByInstall returns the app's visible events of the installation
// installID, oldest first; none for an empty installID. It reads the
// install index of each stored bucket.
func (s *RawStore) EventsByInstall(ctx context.Context, appID int64, installID string) ([]*tapline.Event, error) {
	if installID == "" {
		return nil, nil
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	group := appendString(appendInt64(nil, installKey(installID)), installID)
	var out []*tapline.Event
	err = s.scanBuckets(appID, tableEventByInstall, group, func(v []byte) (bool, error) {
		var e tapline.Event
		if err := wire.DecodeEvent(v, &e); err != nil {
			return false, err
		}
		out = append(out, &e)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, tapline.CompareEvents)
	return out, nil
}

// ScanInstallations calls fn for each installation of the app whose key,
// the hash of its install id (installKey), lies in (r.Start, r.End]: in key
// order, installations with colliding keys in install id order, each with
// its visible events oldest first. It opens one iterator per stored week
// bucket of the app, bounded to the range, and merges them by (key, install
// id), so an installation's events from several weeks come together; it
// holds one installation at a time. It reads under the store's lock and
// calls fn outside it, so fn may use the store; a Close meanwhile ends the
// scan with EUNAVAILABLE.
func (s *RawStore) ScanInstallations(ctx context.Context, appID int64, r tapline.ScanRange, fn func(key int64, inst *tapline.Installation) error) error {
	sc, err := s.openInstallScan(ctx, appID, r)
	if err != nil || sc == nil {
		return err
	}
	defer sc.close()
	for {
		key, inst, err := sc.next(ctx)
		if err != nil || inst == nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(key, inst); err != nil {
			return err
		}
	}
}

// installScan merges the install index rows of an app's buckets over a
// key range.
type installScan struct {
	s       *RawStore
	appID   int64
	wm      int64
	cursors []*installCursor
	group   []byte

	// conv reads the index of conversions by installation over the same
	// range, in the same order; convBase is the length of its "K app" part.
	conv     *pdb.Iterator
	convBase int
	seek     []byte

	inst tapline.Installation // the one passed to fn, reused
	slab []tapline.Event      // its events, reused
}

// installCursor reads the install index of one bucket.
type installCursor struct {
	it     *pdb.Iterator
	prefix int    // length of the "R app bucket i" part of its keys
	group  []byte // encoded (key, install id) of the current row; nil when done
}

// openInstallScan opens the iterators of a scan, or returns nil for an
// empty range. The caller closes a scan it got.
func (s *RawStore) openInstallScan(ctx context.Context, appID int64, r tapline.ScanRange) (_ *installScan, err error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if r.Start >= r.End {
		return nil, nil
	}
	wm, err := s.watermark(appID)
	if err != nil {
		return nil, err
	}
	buckets, err := s.buckets(appID, floorDiv(wm, int64(BucketWidth)))
	if err != nil {
		return nil, err
	}
	s.scans.Add(1) // under mu, with the store open: Close waits for it
	sc := &installScan{s: s, appID: appID, wm: wm}
	defer func() {
		if err != nil {
			sc.close()
		}
	}()
	base := appKey(spaceConvByInstall, appID)
	sc.conv, err = s.db.NewIter(&pdb.IterOptions{
		LowerBound: appendInt64(bytes.Clone(base), r.Start+1),
		UpperBound: prefixEnd(appendInt64(bytes.Clone(base), r.End)),
	})
	if err != nil {
		return nil, fmt.Errorf("conversion index iterator: %w", err)
	}
	sc.conv.First()
	sc.convBase = len(base)
	for _, b := range buckets {
		table := func() []byte { return append(appendInt64(appKey(spaceRaw, appID), b), tableEventByInstall) }
		it, err := s.db.NewIter(&pdb.IterOptions{
			LowerBound: appendInt64(table(), r.Start+1),
			UpperBound: prefixEnd(appendInt64(table(), r.End)),
		})
		if err != nil {
			return nil, fmt.Errorf("install index iterator: %w", err)
		}
		c := &installCursor{it: it, prefix: len(table())}
		sc.cursors = append(sc.cursors, c)
		it.First()
		if err := c.settle(); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// buckets returns the app's stored buckets from first on, oldest first,
// seeking once per bucket.
func (s *RawStore) buckets(appID, first int64) ([]int64, error) {
	base := appKey(spaceRaw, appID)
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: base, UpperBound: prefixEnd(base)})
	if err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	defer it.Close()
	var out []int64
	seek := make([]byte, 0, len(base)+8)
	for b := first; it.SeekGE(appendInt64(append(seek[:0], base...), b)); {
		got := readInt64(it.Key()[len(base):])
		out = append(out, got)
		if got == math.MaxInt64 {
			break
		}
		b = got + 1
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("raw store iterator: %w", err)
	}
	return out, nil
}

// settle reads the group of the cursor's current row, or marks it done.
func (c *installCursor) settle() error {
	if !c.it.Valid() {
		c.group = nil
		if err := c.it.Error(); err != nil {
			return fmt.Errorf("install index iterator: %w", err)
		}
		return nil
	}
	rest := c.it.Key()[c.prefix:]
	if len(rest) < 8 {
		return fmt.Errorf("install index: malformed key %x", c.it.Key())
	}
	_, tail, err := readString(rest[8:])
	if err != nil {
		return fmt.Errorf("install index: malformed key %x: %w", c.it.Key(), err)
	}
	c.group = append(c.group[:0], rest[:len(rest)-len(tail)]...)
	return nil
}

// next returns the next installation with visible events and its key, or
// nil at the end of the range. It holds the store open while it reads.
func (sc *installScan) next(ctx context.Context) (int64, *tapline.Installation, error) {
	release, err := sc.s.acquire(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		var least []byte
		for _, c := range sc.cursors {
			if c.group != nil && (least == nil || bytes.Compare(c.group, least) < 0) {
				least = c.group
			}
		}
		if least == nil {
			return 0, nil, nil
		}
		sc.group = append(sc.group[:0], least...)
		id, _, err := readString(sc.group[8:])
		if err != nil {
			return 0, nil, fmt.Errorf("install index: %w", err)
		}
		// The installation and its events reuse the previous one's
		// memory, which fn let go of (see tapline.RawStore).
		inst := &sc.inst
		*inst = tapline.Installation{AppID: sc.appID, ID: id, Events: inst.Events[:0]}
		sc.slab = sc.slab[:0]
		for _, c := range sc.cursors {
			if !bytes.Equal(c.group, sc.group) {
				continue
			}
			for ; c.it.Valid() && bytes.HasPrefix(c.it.Key()[c.prefix:], sc.group); c.it.Next() {
				v, err := c.it.ValueAndErr()
				if err != nil {
					return 0, nil, fmt.Errorf("read install index: %w", err)
				}
				if len(sc.slab) == cap(sc.slab) {
					// A new array: the events taken from the old one stay.
					sc.slab = make([]tapline.Event, 0, max(16, 2*cap(sc.slab)))
				}
				sc.slab = sc.slab[:len(sc.slab)+1]
				e := &sc.slab[len(sc.slab)-1]
				if err := wire.DecodeEvent(v, e); err != nil {
					return 0, nil, err
				}
				if tapline.UnixNanos(e.Time) >= sc.wm {
					inst.Events = append(inst.Events, e)
				} else {
					sc.slab = sc.slab[:len(sc.slab)-1]
				}
			}
			if err := c.settle(); err != nil {
				return 0, nil, err
			}
		}
		if len(inst.Events) > 0 {
			slices.SortStableFunc(inst.Events, tapline.CompareEvents)
			if inst.Conversion, err = sc.conversion(); err != nil {
				return 0, nil, err
			}
			return readInt64(sc.group), inst, nil
		}
	}
}

// conversion returns the conversion of the installation of the current
// group, nil when it has none, moving the conversion index iterator past
// it. Installations without visible events may have conversions (they are
// kept forever): the iterator seeks over them.
func (sc *installScan) conversion() (*tapline.Conversion, error) {
	it := sc.conv
	if it.Valid() && bytes.Compare(it.Key()[sc.convBase:], sc.group) < 0 {
		sc.seek = append(append(sc.seek[:0], it.Key()[:sc.convBase]...), sc.group...)
		it.SeekGE(sc.seek)
	}
	var cs []*tapline.Conversion
	for ; it.Valid() && bytes.HasPrefix(it.Key()[sc.convBase:], sc.group); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read conversion: %w", err)
		}
		c := new(tapline.Conversion)
		if err := wire.DecodeConversion(v, c); err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("conversion index iterator: %w", err)
	}
	if len(cs) == 0 {
		return nil, nil
	}
	return firstConversion(cs), nil
}

// close closes the scan's iterators and lets Close proceed.
func (sc *installScan) close() {
	for _, c := range sc.cursors {
		_ = c.it.Close()
	}
	if sc.conv != nil {
		_ = sc.conv.Close()
	}
	sc.cursors = nil
	sc.s.scans.Done()
}

// convIndexKey returns space app value id.
func convIndexKey(space byte, appID int64, value, id string) []byte {
	return appendString(appendString(appKey(space, appID), value), id)
}

// PutConversion creates or replaces the conversion with c's (AppID, ID) and
// moves its hit and install index entries along, unless c does not follow
// the stored conversion (ECONFLICT).
func (s *RawStore) PutConversion(ctx context.Context, c *tapline.Conversion) error {
	if c == nil || c.ID == "" {
		return tapline.Errorf(tapline.EINVALID, "A conversion needs an id.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer s.lockID(spaceConversion, c.AppID, c.ID)()

	key := appendString(appKey(spaceConversion, c.AppID), c.ID)
	b := s.db.NewBatch()
	defer b.Close()
	old, err := s.conversion(key)
	switch {
	case err == nil:
		if !c.Follows(old) {
			return tapline.Errorf(tapline.ECONFLICT, "Conversion %q changed since it was read.", c.ID)
		}
		deleteConversionIndex(b, old)
	case tapline.ErrorCode(err) != tapline.ENOTFOUND:
		return err
	case !c.Follows(nil):
		return tapline.Errorf(tapline.ECONFLICT, "Conversion %q is gone or was never stored.", c.ID)
	}
	idx := setConversion(b, c)
	if err := s.commit(b, pdb.NoSync); err != nil {
		return fmt.Errorf("put conversion: %w", err)
	}
	if old != nil && old.InstallID != c.InstallID {
		s.convs.forget(c.AppID, old.InstallID)
	}
	s.convs.wrote(c.AppID, c.InstallID, c.ID, idx)
	return nil
}

// Conversion returns the conversion id of the app, or ENOTFOUND.
func (s *RawStore) Conversion(ctx context.Context, appID int64, id string) (*tapline.Conversion, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.conversion(appendString(appKey(spaceConversion, appID), id))
}

func (s *RawStore) conversion(key []byte) (*tapline.Conversion, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Conversion not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get conversion: %w", err)
	}
	defer closer.Close()
	var c tapline.Conversion
	if err := wire.DecodeConversion(v, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ConversionByInstall returns the conversion of the app's install
// installID, or ENOTFOUND. Should several conversions name the install, the
// one with the earliest InstallTime wins.
func (s *RawStore) ConversionByInstall(ctx context.Context, appID int64, installID string) (*tapline.Conversion, error) {
	notFound := func() error { return tapline.Errorf(tapline.ENOTFOUND, "No conversion for install %q.", installID) }
	release, err := s.acquire(ctx) // a closed store answers EUNAVAILABLE, cached or not
	if err != nil {
		return nil, err
	}
	defer release()
	v, ok, gen := s.convs.get(appID, installID)
	if ok {
		if v == nil {
			return nil, notFound()
		}
		var c tapline.Conversion
		if err := wire.DecodeConversion(v, &c); err != nil {
			return nil, err
		}
		return &c, nil
	}
	cs, err := s.conversionsByLocked(convInstallPrefix(appID, installID))
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		s.convs.add(appID, installID, "", nil, gen)
		return nil, notFound()
	}
	c := firstConversion(cs)
	s.convs.add(appID, installID, c.ID, wire.AppendConversion(nil, c), gen)
	return c, nil
}

// firstConversion returns the conversion of an installation among several
// naming it: the one with the earliest InstallTime.
func firstConversion(cs []*tapline.Conversion) *tapline.Conversion {
	return slices.MinFunc(cs, func(a, b *tapline.Conversion) int { return a.InstallTime.Compare(b.InstallTime) })
}

// convInstallPrefix returns K app key installID, the prefix of the
// installation's entries in the index of conversions by installation.
func convInstallPrefix(appID int64, installID string) []byte {
	return appendString(appendInt64(appKey(spaceConvByInstall, appID), installKey(installID)), installID)
}

// convInstallKey returns K app key installID id.
func convInstallKey(appID int64, installID, id string) []byte {
	return appendString(convInstallPrefix(appID, installID), id)
}

// ConversionsByHit returns the conversions whose current HitID is hitID, in
// id order.
func (s *RawStore) ConversionsByHit(ctx context.Context, appID int64, hitID string) ([]*tapline.Conversion, error) {
	return s.conversionsBy(ctx, appendString(appKey(spaceConvByHit, appID), hitID))
}

// conversionsBy returns the conversions of the index entries under prefix.
func (s *RawStore) conversionsBy(ctx context.Context, prefix []byte) ([]*tapline.Conversion, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.conversionsByLocked(prefix)
}

func funnelStateKey(appID int64, installID string) []byte {
	return appendString(appKey(spaceFunnelState, appID), installID)
}

// funnelWeekKey returns V app week(written) installID, the week index entry
// of a state written at written (Unix nanoseconds).
func funnelWeekKey(appID, written int64, installID string) []byte {
	return appendString(appendInt64(appKey(spaceFunnelWeek, appID), floorDiv(written, int64(BucketWidth))), installID)
}

// funnelStateValue is the first byte of a stored funnel state, followed by
// the time the store wrote it (appendInt64 of Unix nanoseconds) and the
// state as JSON. A value that is JSON alone was stored before states
// expired: its UpdatedAt stands for the write time, and having no week
// index entry it is hidden by the watermark but dropped only when
// rewritten.
const funnelStateValue = 0x01

func encodeFunnelState(written int64, fs *tapline.FunnelState) ([]byte, error) {
	js, err := json.Marshal(fs)
	if err != nil {
		return nil, fmt.Errorf("encode funnel state: %w", err)
	}
	v := appendInt64(append(make([]byte, 0, 9+len(js)), funnelStateValue), written)
	return append(v, js...), nil
}

// decodeFunnelState decodes a stored funnel state and the time it was
// written.
func decodeFunnelState(v []byte) (*tapline.FunnelState, int64, error) {
	prefixed := len(v) > 0 && v[0] == funnelStateValue
	js := v
	if prefixed {
		if len(v) < 9 {
			return nil, 0, fmt.Errorf("decode funnel state: value of %d bytes", len(v))
		}
		js = v[9:]
	}
	var fs tapline.FunnelState
	if err := json.Unmarshal(js, &fs); err != nil {
		return nil, 0, fmt.Errorf("decode funnel state: %w", err)
	}
	if !prefixed {
		return &fs, tapline.UnixNanos(fs.UpdatedAt), nil
	}
	return &fs, readInt64(v[1:9]), nil
}

// FunnelState returns the funnel state of the app's installation
// installID, or ENOTFOUND, also when the state was last written before the
// app's watermark (see DeleteBefore).
func (s *RawStore) FunnelState(ctx context.Context, appID int64, installID string) (*tapline.FunnelState, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	fs, written, err := s.storedFunnelState(appID, installID)
	if err != nil {
		return nil, err
	}
	if hidden, err := s.funnelStateHidden(appID, written); err != nil {
		return nil, err
	} else if fs == nil || hidden {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "No funnel state for install %q.", installID)
	}
	return fs, nil
}

// storedFunnelState returns the stored funnel state of (app, installID),
// hidden or not, and the time it was written, or nil when none is stored.
func (s *RawStore) storedFunnelState(appID int64, installID string) (*tapline.FunnelState, int64, error) {
	v, closer, err := s.db.Get(funnelStateKey(appID, installID))
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, 0, nil
	} else if err != nil {
		return nil, 0, fmt.Errorf("get funnel state: %w", err)
	}
	defer closer.Close()
	return decodeFunnelState(v)
}

// funnelStateHidden reports whether a state of the app written at written
// has expired: it was written before the app's watermark, and the next
// DeleteBefore drops it if this one has not.
func (s *RawStore) funnelStateHidden(appID, written int64) (bool, error) {
	wm, err := s.watermark(appID)
	if err != nil {
		return false, err
	}
	return written < wm, nil
}

// PutFunnelState creates or replaces the funnel state of fs's (AppID,
// InstallID), unless fs does not follow the stored state (ECONFLICT); an
// expired state counts as none. The state is stored with the time of the
// write (Now) and its week index entry moves to that week, in one batch
// under the install's lock stripe, which makes the check and the write
// atomic.
func (s *RawStore) PutFunnelState(ctx context.Context, fs *tapline.FunnelState) error {
	if fs == nil || fs.InstallID == "" {
		return tapline.Errorf(tapline.EINVALID, "A funnel state needs an install id.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer s.lockID(spaceFunnelState, fs.AppID, fs.InstallID)()

	old, written, err := s.storedFunnelState(fs.AppID, fs.InstallID)
	if err != nil {
		return err
	}
	follows := old
	if hidden, err := s.funnelStateHidden(fs.AppID, written); err != nil {
		return err
	} else if hidden {
		follows = nil
	}
	if !fs.Follows(follows) {
		return tapline.Errorf(tapline.ECONFLICT, "The funnel state of install %q changed since it was read.", fs.InstallID)
	}
	now := tapline.UnixNanos(s.Now())
	v, err := encodeFunnelState(now, fs)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if old != nil && floorDiv(written, int64(BucketWidth)) != floorDiv(now, int64(BucketWidth)) {
		_ = b.Delete(funnelWeekKey(fs.AppID, written, fs.InstallID), nil)
	}
	_ = b.Set(funnelStateKey(fs.AppID, fs.InstallID), v, nil)
	_ = b.Set(funnelWeekKey(fs.AppID, now, fs.InstallID), nil, nil)
	if err := s.commit(b, pdb.NoSync); err != nil {
		return fmt.Errorf("put funnel state: %w", err)
	}
	return nil
}

// Sync makes every put so far durable: puts commit without waiting for
// the disk, and one synced write-ahead-log record covers all of them.
func (s *RawStore) Sync(ctx context.Context) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := s.db.LogData(nil, pdb.Sync); err != nil {
		return fmt.Errorf("sync raw store: %w", err)
	}
	return nil
}

// DeleteBefore drops the app's raw hits and events whose Time is before t,
// and its funnel states last written before t: one range delete removes
// the buckets wholly before t, and the app's watermark hides the older
// rows of t's bucket, and every state written before it, until a later
// call drops them. The raw rows and the watermark go in one synced batch;
// then dropFunnelStates drops the expired states of the weeks wholly
// before the watermark. Conversions stay.
//
// Dropping the states after the watermark is safe: the watermark hides
// them already, so readers see the same before and after the drop, and a
// crash or error in between leaves states that are hidden, with their
// week index entries; the next call, even one with an older t, drops them.
func (s *RawStore) DeleteBefore(ctx context.Context, appID int64, t time.Time) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	s.delMu.Lock()
	defer s.delMu.Unlock()
	cut := tapline.UnixNanos(t)
	wm, err := s.watermark(appID)
	if err != nil {
		return err
	}
	if cut > wm {
		base := appKey(spaceRaw, appID)
		b := s.db.NewBatch()
		_ = b.DeleteRange(base, appendInt64(bytes.Clone(base), floorDiv(cut, int64(BucketWidth))), nil)
		_ = b.Set(appKey(spaceWatermark, appID), appendInt64(nil, cut), nil)
		err := s.commit(b, pdb.Sync)
		b.Close()
		if err != nil {
			return fmt.Errorf("delete raw rows: %w", err)
		}
		s.wmMu.Lock()
		s.wm[appID] = cut
		s.wmMu.Unlock()
		wm = cut
	}
	return s.dropFunnelStates(ctx, appID, wm)
}

// dropChunk is the number of week index entries whose states
// dropFunnelStates reads and drops under one set of lock stripes.
const dropChunk = 1024

// dropFunnelStates drops the app's funnel states written before wm, its
// watermark, without visiting states that are not expiring. It walks the
// week index entries of the weeks wholly before wm in chunks; under the
// lock stripes of a chunk's states (taken in ascending order) it reads
// each state again and deletes it and its entry if it is still written
// before wm. A state rewritten since has moved to a newer week and stays.
// A last synced batch range-deletes the walked weeks of the index.
//
// The walk also stops before the week preceding the clock's (Now): a put
// committing during the walk read the clock in one of those two weeks or
// later and indexes its state there, so the range delete removes no entry
// the walk did not see. This bites only a watermark less than a week old
// or in the future; the states it skips stay hidden until a later call
// drops them.
func (s *RawStore) dropFunnelStates(ctx context.Context, appID, wm int64) error {
	if wm == noWatermark {
		return nil
	}
	last := min(floorDiv(wm, int64(BucketWidth)), floorDiv(tapline.UnixNanos(s.Now()), int64(BucketWidth))-1)
	lo := appKey(spaceFunnelWeek, appID)
	hi := appendInt64(bytes.Clone(lo), last)
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("funnel state index iterator: %w", err)
	}
	defer it.Close()
	var ids []string
	walked := false
	for valid := it.First(); valid; valid = it.Next() {
		id, _, err := readString(it.Key()[len(lo)+8:])
		if err != nil {
			return fmt.Errorf("funnel state index: malformed key %x: %w", it.Key(), err)
		}
		ids, walked = append(ids, id), true
		if len(ids) == dropChunk {
			if err := s.dropFunnelStateChunk(ctx, appID, wm, ids); err != nil {
				return err
			}
			ids = ids[:0]
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("funnel state index iterator: %w", err)
	}
	if !walked {
		return nil
	}
	if err := s.dropFunnelStateChunk(ctx, appID, wm, ids); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(lo, hi, nil)
	if err := s.commit(b, pdb.Sync); err != nil {
		return fmt.Errorf("delete funnel state index: %w", err)
	}
	return nil
}

// dropFunnelStateChunk deletes those of the app's states ids that are
// written before wm, with their week index entries, in one batch under
// their lock stripes.
func (s *RawStore) dropFunnelStateChunk(ctx context.Context, appID, wm int64, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stripes := make([]int, 0, len(ids))
	for _, id := range ids {
		stripes = append(stripes, stripe(spaceFunnelState, appID, id))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}()
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		fs, written, err := s.storedFunnelState(appID, id)
		if err != nil {
			return err
		}
		if fs == nil || written >= wm {
			continue // dropped already, or written again since
		}
		_ = b.Delete(funnelStateKey(appID, id), nil)
		_ = b.Delete(funnelWeekKey(appID, written, id), nil)
	}
	if b.Empty() {
		return nil
	}
	if err := s.commit(b, pdb.NoSync); err != nil {
		return fmt.Errorf("drop funnel states: %w", err)
	}
	return nil
}

// commit writes b unless the disk is short of the reserve.
func (s *RawStore) commit(b *pdb.Batch, opts *pdb.WriteOptions) error {
	if err := s.reserve.check(len(b.Repr())); err != nil {
		return err
	}
	return b.Commit(opts)
}
