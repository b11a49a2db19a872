package collector

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"tapline"
)

// maxNegative bounds the remembered misses so that a flood of random slugs
// or keys cannot grow the cache without limit.
const maxNegative = 100_000

// cache keeps lookups by string key in memory. A fresh hit is served as is;
// a stale one is served while a background load refreshes it (and keeps
// being served when that load fails, so a cached link redirects while the
// database is down); a miss loads synchronously, one load per key at a
// time. Not-found style answers are remembered for the negative TTL.
type cache[V any] struct {
	ttl, negTTL time.Duration
	now         func() time.Time
	load        func(ctx context.Context, key string) (V, error)

	mu    sync.RWMutex
	items map[string]*cacheItem[V]
	neg   map[string]negItem
	group singleflight.Group
	// stored counts the values stored or removed, added the keys stored
	// that the cache did not hold, for the snapshot writer.
	stored, added atomic.Int64
}

type cacheItem[V any] struct {
	v          V
	expires    time.Time
	refreshing bool
	// unverified marks a value loaded from the snapshot of an earlier
	// run: its first use asks the database first (see verify).
	unverified bool
}

type negItem struct {
	err     error
	expires time.Time
}

func newCache[V any](ttl, negTTL time.Duration, now func() time.Time, load func(context.Context, string) (V, error)) *cache[V] {
	return &cache[V]{ttl: ttl, negTTL: negTTL, now: now, load: load,
		items: make(map[string]*cacheItem[V]), neg: make(map[string]negItem)}
}

// get returns the value of key. A synchronous load runs on ctx's values
// but not its cancellation: concurrent callers share it, so one caller
// hanging up must not fail the others (the loaders bound their own time).
func (c *cache[V]) get(ctx context.Context, key string) (V, error) {
	now := c.now()
	c.mu.RLock()
	it, ok := c.items[key]
	var stale, unverified bool
	if ok {
		stale = now.After(it.expires) && !it.refreshing
		unverified = it.unverified
	}
	n, negOK := c.neg[key]
	c.mu.RUnlock()
	if unverified {
		return c.verify(ctx, key, it)
	}
	if ok {
		if stale {
			c.refresh(key)
		}
		return it.v, nil
	}
	if negOK && now.Before(n.expires) {
		var zero V
		return zero, n.err
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		v, err := c.load(context.WithoutCancel(ctx), key)
		c.store(key, v, err)
		return v, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// verify loads key, whose cached item it came from the snapshot, from the
// database: its answer replaces the item (a link disabled or deleted since
// the snapshot answers not found); when the database cannot answer, the
// snapshot's value is served and reloaded in the background after the
// negative TTL, like any stale entry.
func (c *cache[V]) verify(ctx context.Context, key string, it *cacheItem[V]) (V, error) {
	v, err, _ := c.group.Do(key, func() (any, error) {
		v, err := c.load(context.WithoutCancel(ctx), key)
		if err != nil && !isNegative(err) {
			c.mu.Lock()
			if c.items[key] == it {
				it.unverified = false
				it.expires = c.now().Add(min(c.negTTL, c.ttl))
			}
			c.mu.Unlock()
			return it.v, nil
		}
		c.store(key, v, err)
		return v, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// cacheRecord is one cached value in a snapshot.
type cacheRecord[V any] struct {
	Key   string `json:"key"`
	Value V      `json:"value"`
}

// export returns up to limit cached values, the most recently loaded
// first.
func (c *cache[V]) export(limit int) []cacheRecord[V] {
	c.mu.RLock()
	type rec struct {
		key     string
		v       V
		expires time.Time
	}
	all := make([]rec, 0, len(c.items))
	for k, it := range c.items {
		all = append(all, rec{k, it.v, it.expires})
	}
	c.mu.RUnlock()
	slices.SortFunc(all, func(a, b rec) int { return b.expires.Compare(a.expires) })
	out := make([]cacheRecord[V], 0, min(len(all), limit))
	for _, r := range all[:min(len(all), limit)] {
		out = append(out, cacheRecord[V]{Key: r.key, Value: r.v})
	}
	return out
}

// seed adds snapshot values to the cache, unverified; keys already cached
// are left alone.
func (c *cache[V]) seed(recs []cacheRecord[V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		if _, ok := c.items[r.Key]; !ok {
			c.items[r.Key] = &cacheItem[V]{v: r.Value, unverified: true}
		}
	}
}

// changes returns a count that grows with every value stored.
func (c *cache[V]) changes() int64 { return c.stored.Load() }

// additions returns a count that grows with every key newly stored.
func (c *cache[V]) additions() int64 { return c.added.Load() }

// refresh reloads key in the background, once at a time.
func (c *cache[V]) refresh(key string) {
	c.mu.Lock()
	it, ok := c.items[key]
	if !ok || it.refreshing {
		c.mu.Unlock()
		return
	}
	it.refreshing = true
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := c.load(ctx, key)
		if err != nil && !isNegative(err) {
			// Keep serving the stale value; try again after a short pause.
			c.mu.Lock()
			it.refreshing = false
			it.expires = c.now().Add(min(c.negTTL, c.ttl))
			c.mu.Unlock()
			return
		}
		c.store(key, v, err)
	}()
}

// store records the outcome of a load: a value, a remembered miss, or
// nothing for a transient failure.
func (c *cache[V]) store(key string, v V, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		if _, ok := c.items[key]; !ok {
			c.added.Add(1)
		}
		c.items[key] = &cacheItem[V]{v: v, expires: c.now().Add(c.ttl)}
		delete(c.neg, key)
		c.stored.Add(1)
	case isNegative(err):
		if _, ok := c.items[key]; ok {
			c.stored.Add(1)
		}
		delete(c.items, key)
		if len(c.neg) >= maxNegative {
			clear(c.neg)
		}
		c.neg[key] = negItem{err: err, expires: c.now().Add(c.negTTL)}
	}
}

// isNegative reports whether err is an answer worth remembering rather than
// a failure to get one.
func isNegative(err error) bool {
	return isDomain(err, tapline.ENOTFOUND, tapline.EFORBIDDEN, tapline.EUNAUTHORIZED, tapline.EINVALID)
}
