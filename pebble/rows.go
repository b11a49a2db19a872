package pebble

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"tapline"
	"tapline/internal/wire"
)

// The rows a raw store keeps of each record, written by the store's puts
// and by a Loader alike: the raw store's on-disk layout, in one place.

// setHit adds the rows of hit h to b: the hit by id and its fingerprint and
// advertising id index entries, all under the bucket of its Time.
func setHit(b *pdb.Batch, h *tapline.Hit) {
	v := wire.AppendHit(nil, h)
	t := tapline.UnixNanos(h.Time)
	_ = b.Set(appendString(bucketKey(h.AppID, t, tableHit), h.ID), v, nil)
	if h.Fingerprint != "" {
		_ = b.Set(indexKey(h.AppID, tableHitByFP, h.Fingerprint, t, h.ID), v, nil)
	}
	if h.AdID != "" {
		_ = b.Set(indexKey(h.AppID, tableHitByAdID, h.AdID, t, h.ID), v, nil)
	}
}

// setEvent adds the rows of event e to b: the event by id, its install
// index entry (what Event.Installed keeps), and for an install its
// fingerprint, advertising id, referrer hit and vendor id index entries, all under the bucket of its Time.
func setEvent(b *pdb.Batch, e *tapline.Event) {
	v := wire.AppendEvent(nil, e)
	t := tapline.UnixNanos(e.Time)
	_ = b.Set(appendString(bucketKey(e.AppID, t, tableEvent), e.ID), v, nil)
	if e.InstallID != "" {
		k := installIndexKey(e.AppID, t, installKey(e.InstallID), e.InstallID, e.ID)
		_ = b.Set(k, wire.AppendEvent(nil, e.Installed()), nil)
	}
	if e.Kind == tapline.KindInstall {
		if e.Fingerprint != "" {
			_ = b.Set(indexKey(e.AppID, tableInstallByFP, e.Fingerprint, t, e.ID), v, nil)
		}
		if ad := e.Device.AdID(); ad != "" {
			_ = b.Set(indexKey(e.AppID, tableInstallByAdID, ad, t, e.ID), v, nil)
		}
		if hit := e.ReferrerHitID(); hit != "" {
			_ = b.Set(indexKey(e.AppID, tableInstallByReferr, hit, t, e.ID), v, nil)
		}
		if idfv := e.Device.IDFV; idfv != "" {
			_ = b.Set(indexKey(e.AppID, tableInstallByVendor, idfv, t, e.ID), v, nil)
		}
	}
}

// setConversion adds the rows of conversion c to b: the conversion by id,
// by its hit and by its installation. It returns the index entries' value.
func setConversion(b *pdb.Batch, c *tapline.Conversion) []byte {
	_ = b.Set(appendString(appKey(spaceConversion, c.AppID), c.ID), wire.AppendConversion(nil, c), nil)
	idx := leanConversion(c)
	if c.HitID != "" {
		_ = b.Set(convIndexKey(spaceConvByHit, c.AppID, c.HitID, c.ID), idx, nil)
	}
	_ = b.Set(convInstallKey(c.AppID, c.InstallID, c.ID), idx, nil)
	return idx
}

// leanConversion encodes c as its index entries hold it: without its
// decision, which the matcher reads on every event and every hit, never
// for the decision.
func leanConversion(c *tapline.Conversion) []byte {
	if c.Decision == nil {
		return wire.AppendConversion(nil, c)
	}
	lean := *c
	lean.Decision = nil
	return wire.AppendConversion(nil, &lean)
}

// deleteConversionIndex adds to b the deletion of c's index entries.
func deleteConversionIndex(b *pdb.Batch, c *tapline.Conversion) {
	if c.HitID != "" {
		_ = b.Delete(convIndexKey(spaceConvByHit, c.AppID, c.HitID, c.ID), nil)
	}
	_ = b.Delete(convInstallKey(c.AppID, c.InstallID, c.ID), nil)
}

// A Loader writes records known to be new and final into a raw store
// database that no RawStore has open: the same rows PutHit, PutEvent and
// PutConversion write, without their read before the write (put-if-absent,
// a conversion following the stored one) and without a write-ahead log.
// It fills a store for a benchmark or an import at several times the speed
// of the puts; a load that fails is thrown away, as Close is what makes it
// durable.
type Loader struct {
	db *pdb.DB
}

// OpenLoader opens (creating) the raw store database in dir for loading.
func OpenLoader(dir string, logger *slog.Logger) (*Loader, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := &pdb.Options{
		FormatMajorVersion: pdb.FormatNewest,
		CacheSize:          DefaultRawCacheSize,
		MemTableSize:       64 << 20,
		DisableWAL:         true,
		Logger:             pebbleLogger{logger},
	}
	rawTables(opts)
	db, err := pdb.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open raw store for loading: %w", err)
	}
	// What a Loader writes is new: the conversions are private already.
	if err := db.Set(privateMarker, nil, pdb.NoSync); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open raw store for loading: %w", err)
	}
	return &Loader{db: db}, nil
}

// A LoadBatch collects rows to load; Commit writes them. One goroutine
// uses a batch; several batches load in parallel.
type LoadBatch struct {
	l *Loader
	b *pdb.Batch
}

// NewBatch returns an empty batch.
func (l *Loader) NewBatch() *LoadBatch { return &LoadBatch{l: l, b: l.db.NewBatch()} }

// Hit adds the rows of h.
func (b *LoadBatch) Hit(h *tapline.Hit) { setHit(b.b, h) }

// Event adds the rows of e.
func (b *LoadBatch) Event(e *tapline.Event) { setEvent(b.b, e) }

// Conversion adds the rows of c, the installation's only conversion.
func (b *LoadBatch) Conversion(c *tapline.Conversion) { setConversion(b.b, c) }

// Size returns the bytes the batch holds.
func (b *LoadBatch) Size() int { return b.b.Len() }

// Commit writes the batch's rows and empties it.
func (b *LoadBatch) Commit() error {
	if b.b.Empty() {
		return nil
	}
	if err := b.b.Commit(pdb.NoSync); err != nil {
		return fmt.Errorf("load raw rows: %w", err)
	}
	b.b.Close()
	b.b = b.l.db.NewBatch()
	return nil
}

// Close drops the batch's uncommitted rows.
func (b *LoadBatch) Close() { _ = b.b.Close() }

// Close flushes what was loaded, waits until pebble's background
// compactions have settled the tree as a store that has been live for a
// while would be (a tree fresh from a bulk load has a compaction debt that
// the next process to open it would pay), and closes the database.
func (l *Loader) Close(ctx context.Context) error {
	err := l.db.Flush()
	// Settled: no compaction running or started for a second (pebble's
	// debt estimate may stay above 0 with nothing left it would pick).
	var count int64
	idleSince := time.Now()
	for err == nil {
		m := l.db.Metrics()
		if m.Compact.NumInProgress > 0 || m.Compact.Count != count {
			count, idleSince = m.Compact.Count, time.Now()
		} else if time.Since(idleSince) >= time.Second {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if cerr := l.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("load raw store: %w", err)
	}
	return nil
}

// migrateConversionIndex moves the index of conversions by installation
// from its first layout, N app installID id, sorted by install id, to
// K app key installID id, sorted by installation key as the install index
// is, so that ScanInstallations reads an installation's conversion in the
// same pass as its events. It runs at Open, in batches; a crash in between
// leaves both layouts, and the next Open finishes the move.
func migrateConversionIndex(db *pdb.DB, logger *slog.Logger) error {
	lo := []byte{spaceConvByInstalOld}
	it, err := db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("migrate conversion index: %w", err)
	}
	defer it.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	moved := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 9 {
			return fmt.Errorf("migrate conversion index: malformed key %x", k)
		}
		app := readInt64(k[1:])
		install, rest, err := readString(k[9:])
		if err != nil {
			return fmt.Errorf("migrate conversion index: key %x: %w", k, err)
		}
		id, _, err := readString(rest)
		if err != nil {
			return fmt.Errorf("migrate conversion index: key %x: %w", k, err)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("migrate conversion index: %w", err)
		}
		_ = b.Set(convInstallKey(app, install, id), v, nil)
		_ = b.Delete(bytes.Clone(k), nil)
		if moved++; b.Len() >= 1<<20 {
			if err := b.Commit(pdb.Sync); err != nil {
				return fmt.Errorf("migrate conversion index: %w", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("migrate conversion index: %w", err)
	}
	if moved == 0 {
		return nil
	}
	if err := b.Commit(pdb.Sync); err != nil {
		return fmt.Errorf("migrate conversion index: %w", err)
	}
	logger.Info("raw store: moved the conversion index to installation key order", "conversions", moved)
	return nil
}

// rowTime returns the Time, in Unix nanoseconds, of a raw row of table.
func rowTime(table byte, v []byte) (int64, error) {
	switch table {
	case tableHit, tableHitByFP, tableHitByAdID:
		var h tapline.Hit
		if err := wire.DecodeHit(v, &h); err != nil {
			return 0, err
		}
		return tapline.UnixNanos(h.Time), nil
	default:
		var e tapline.Event
		if err := wire.DecodeEvent(v, &e); err != nil {
			return 0, err
		}
		return tapline.UnixNanos(e.Time), nil
	}
}

// rawTables sets the table options of the raw store's database, for the
// store and a Loader alike. Every point read of the store (a put's check
// for an existing row, HitAt, a conversion by id) reads one key: a bloom
// filter per table lets it skip the levels that do not hold it instead of
// reading a block of each. Scans dominate the rest (the funnel backfill
// reads every event once): blocks of 16 KiB cost a quarter of the
// per-block work of pebble's 4 KiB, for a little more read per point
// lookup.
func rawTables(o *pdb.Options) {
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	o.Levels[0].BlockSize = 16 << 10
}
