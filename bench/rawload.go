package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"runtime"
	"sync"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
	"tapline/pebble"
)

// rawLoader writes generated rows into a new embedded raw store the way
// pebble.RawStore's PutHit, PutEvent and PutConversion leave them, in large
// unchecked batches. Those methods read before they write (put-if-absent,
// a conversion must follow the stored one): on two cores they store about
// 7,000 rows a second, so the 5 million rows of the funnel benchmark would
// take a quarter of an hour. The loader writes the same keys and values
// (TestRawLoaderMatchesRawStore compares both stores key by key), knowing
// the rows are new and final, at several times the speed. The keys are
// the raw store's on-disk format, which it never changes: rows stored by
// one version are read by the next.
type rawLoader struct {
	db *pdb.DB
}

// openRawLoader opens (creating) the raw store database in dir for loading.
func openRawLoader(dir string) (*rawLoader, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := pdb.Open(dir, &pdb.Options{
		FormatMajorVersion: pdb.FormatNewest,
		CacheSize:          pebble.DefaultRawCacheSize,
		MemTableSize:       64 << 20,
		DisableWAL:         true, // Close flushes; a failed load is thrown away
		Logger:             discardPebble{},
	})
	if err != nil {
		return nil, fmt.Errorf("open raw store for loading: %w", err)
	}
	return &rawLoader{db: db}, nil
}

// Close flushes what was loaded, waits until pebble's background
// compactions have settled the tree as a store that has been live for a
// while would be (a tree fresh from a bulk load has a compaction debt that
// the next process to open it would pay), and closes the database.
func (l *rawLoader) Close(ctx context.Context) error {
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

// install writes one installation's rows in one batch.
func (l *rawLoader) install(b *pdb.Batch, g *genInstall) error {
	for _, h := range g.Hits {
		v, err := json.Marshal(h)
		if err != nil {
			return err
		}
		t := tapline.UnixNanos(h.Time)
		_ = b.Set(rkString(rkBucket(h.AppID, t, 'h'), h.ID), v, nil)
		if h.Fingerprint != "" {
			_ = b.Set(rkIndex(h.AppID, 'f', h.Fingerprint, t, h.ID), v, nil)
		}
		if h.AdID != "" {
			_ = b.Set(rkIndex(h.AppID, 'a', h.AdID, t, h.ID), v, nil)
		}
	}
	for _, e := range g.Events {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		t := tapline.UnixNanos(e.Time)
		_ = b.Set(rkString(rkBucket(e.AppID, t, 'e'), e.ID), v, nil)
		if e.InstallID != "" {
			k := rkString(rkInt64(rkBucket(e.AppID, t, 'i'), rkInstallKey(e.InstallID)), e.InstallID)
			_ = b.Set(rkString(rkInt64(k, t), e.ID), v, nil)
		}
		if e.Kind == tapline.KindInstall {
			if e.Fingerprint != "" {
				_ = b.Set(rkIndex(e.AppID, 'F', e.Fingerprint, t, e.ID), v, nil)
			}
			if ad := e.Device.AdID(); ad != "" {
				_ = b.Set(rkIndex(e.AppID, 'A', ad, t, e.ID), v, nil)
			}
			if hit := e.ReferrerHitID(); hit != "" {
				_ = b.Set(rkIndex(e.AppID, 'r', hit, t, e.ID), v, nil)
			}
		}
	}
	if c := g.Conversion; c != nil {
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_ = b.Set(rkString(rkApp('C', c.AppID), c.ID), v, nil)
		if c.HitID != "" {
			_ = b.Set(rkString(rkString(rkApp('B', c.AppID), c.HitID), c.ID), v, nil)
		}
		_ = b.Set(rkString(rkString(rkApp('N', c.AppID), c.InstallID), c.ID), v, nil)
	}
	return nil
}

// load writes installations from the channel with parallel
// writers, a batch of several installations at a time.
func (l *rawLoader) load(ctx context.Context, installs <-chan *genInstall) error {
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for i := range errs {
		wg.Go(func() {
			b := l.db.NewBatch()
			defer func() { b.Close() }()
			flush := func() error {
				if b.Empty() {
					return nil
				}
				if err := b.Commit(pdb.NoSync); err != nil {
					return err
				}
				b.Close()
				b = l.db.NewBatch()
				return nil
			}
			for g := range installs {
				if errs[i] != nil || ctx.Err() != nil {
					continue // drain
				}
				if err := l.install(b, g); err != nil {
					errs[i] = err
					continue
				}
				if b.Len() >= 4<<20 {
					errs[i] = flush()
				}
			}
			if errs[i] == nil {
				errs[i] = flush()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("load raw store: %w", err)
		}
	}
	return ctx.Err()
}

// The raw store's key encoding (package pebble, rawstore.go and pebble.go).

func rkInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63)) }

func rkString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, c)
		}
	}
	return append(b, 0, 1)
}

func rkApp(space byte, appID int64) []byte {
	return rkInt64(append(make([]byte, 0, 96), space), appID)
}

func rkBucket(appID, t int64, table byte) []byte {
	w := int64(pebble.BucketWidth)
	q := t / w
	if t%w != 0 && t < 0 {
		q--
	}
	return append(rkInt64(rkApp('R', appID), q), table)
}

func rkIndex(appID int64, table byte, value string, t int64, id string) []byte {
	return rkString(rkInt64(rkString(rkBucket(appID, t, table), value), t), id)
}

func rkInstallKey(installID string) int64 {
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

// discardPebble drops pebble's log lines.
type discardPebble struct{}

func (discardPebble) Infof(string, ...any)  {}
func (discardPebble) Errorf(string, ...any) {}
func (discardPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
