package pebble

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/hashicorp/golang-lru/simplelru"
)

// DefaultConversionCache is the default number of installations whose
// conversion, or the lack of one, a raw store remembers: 8 to 12 MB of
// heap with conversions like the bench's.
const DefaultConversionCache = 16 << 10

// convCache remembers what ConversionByInstall found for recently asked
// installations: the encoded conversion, or nil for none. The matcher asks
// for every event it counts, and most installations (organic ones) have
// none, which an index scan of every level of the database proves at a
// cost of 15 µs or so; the answer from here costs a map lookup and, when
// there is a conversion, its decoding.
//
// A write of a conversion updates the answer of its installation when the
// cache knew it had no other conversion, and forgets every other answer it
// may change; a read that raced with a write does not store its answer: add
// stores it only when no write changed anything since the read began (the
// generation did not move), so the cache never holds an answer older than
// the database. (Two writers creating conversions of one installation at
// once may leave the first one's answer until the second forgets it; the
// matcher writes an app's conversions one at a time.)
type convCache struct {
	mu  sync.Mutex
	gen uint64
	lru *simplelru.LRU // convCacheKey → convAnswer
}

// convAnswer is a remembered answer: the conversion's id and encoding, or
// "" and nil for none.
type convAnswer struct {
	id string
	v  []byte
}

func newConvCache(size int) *convCache {
	l, _ := simplelru.NewLRU(max(size, 1), nil) // an error only for a size below 1
	return &convCache{lru: l}
}

func convCacheKey(appID int64, installID string) string {
	return string(binary.BigEndian.AppendUint64(nil, uint64(appID))) + installID
}

// get returns the remembered answer for the installation and whether there
// is one, with the generation to pass to add after reading the database.
func (c *convCache) get(appID int64, installID string) (v []byte, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, hit := c.lru.Get(convCacheKey(appID, installID)); hit {
		return x.(convAnswer).v, true, c.gen
	}
	return nil, false, c.gen
}

// add remembers the answer (id "" and v nil: none) for the installation
// unless a write changed anything after gen was read. The cache keeps
// copies: an encoder's spare capacity stays out of it.
func (c *convCache) add(appID int64, installID, id string, v []byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.lru.Add(convCacheKey(appID, installID), convAnswer{id, bytes.Clone(v)})
	}
}

// wrote records, after its commit, that conversion id (encoded as v) of
// the installation was written: the answer becomes it when the cache knew
// the installation had no conversion or only this one, and is forgotten
// otherwise.
func (c *convCache) wrote(appID int64, installID, id string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := convCacheKey(appID, installID)
	if x, ok := c.lru.Peek(key); ok && (x.(convAnswer).id == "" || x.(convAnswer).id == id) {
		c.lru.Add(key, convAnswer{id, bytes.Clone(v)})
	} else {
		c.lru.Remove(key)
	}
	c.gen++
}

// forget drops the answers of the installations, after a write of their
// conversions committed.
func (c *convCache) forget(appID int64, installIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range installIDs {
		c.lru.Remove(convCacheKey(appID, id))
	}
	c.gen++
}
