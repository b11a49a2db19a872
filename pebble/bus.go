package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

// Bus defaults.
const (
	DefaultPartitions = 8
	DefaultRetention  = 7 * 24 * time.Hour
	DefaultCacheSize  = 32 << 20 // the bus's block cache; fetches mostly hit the memtable
)

// Key spaces of the bus.
const (
	spaceTopic   = 'T' // T topic: partition count (uint32)
	spaceNext    = 'O' // O topic partition: next offset
	spaceMessage = 'M' // M topic partition offset: time, key, value
)

// maxGroup bounds the messages the writer commits in one batch.
const maxGroup = 4096

// Bus implements tapline.Bus on a pebble database in Dir. Topics are created
// on first use with NumPartitions partitions; a message goes to partition
// FNV-1a(key) mod partitions and gets the partition's next offset, starting
// at 0. Publish returns once the messages are synced to disk; concurrent
// publishes are committed together in one batch. Messages older than
// Retention are range-deleted in the background.
type Bus struct {
	// Dir is the directory of the database; Open creates it.
	Dir string
	// NumPartitions is the partition count of topics created from now on;
	// an existing topic keeps the count it was created with.
	NumPartitions int
	// Retention is how long messages are kept.
	Retention time.Duration
	// CacheSize is the size in bytes of pebble's block cache;
	// MemTableSize of its memtables (0: DefaultMemTableSize).
	CacheSize    int64
	MemTableSize int64
	// Logger receives the bus's and pebble's log lines; nil means
	// slog.Default().
	Logger *slog.Logger
	// MinFreeBytes is the free space of the filesystem below which writes
	// are refused with tapline.ErrStorageFull (0: DefaultMinFreeBytes;
	// negative: never), since pebble ends the process when its
	// write-ahead log cannot be written.
	MinFreeBytes int64

	mu      sync.RWMutex // held for reading by every database access, for writing by Close
	db      *pdb.DB
	closed  bool
	reserve *diskReserve

	topicsMu sync.Mutex
	topics   map[string]*topic

	reqs    chan *publishRequest // to the writer goroutine; unbuffered
	closing chan struct{}        // closed by Close
	wg      sync.WaitGroup
}

var _ tapline.Bus = (*Bus)(nil)

type topic struct {
	name  string
	parts []*partition
}

type partition struct {
	topic string
	index int

	mu     sync.Mutex
	next   int64         // the offset the next message gets; written by the writer only
	notify chan struct{} // closed and replaced when next grows
}

type publishRequest struct {
	msgs   []tapline.Message
	topics []*topic
	done   chan error
}

// NewBus returns a bus on the database in dir with the default partitions
// and retention; call Open next.
func NewBus(dir string) *Bus {
	return &Bus{Dir: dir, NumPartitions: DefaultPartitions, Retention: DefaultRetention, CacheSize: DefaultCacheSize}
}

// Validate reports the first bad field.
func (b *Bus) Validate() error {
	switch {
	case b.Dir == "":
		return fmt.Errorf("bus: Dir is required")
	case b.NumPartitions < 1:
		return fmt.Errorf("bus: NumPartitions must be at least 1, not %d", b.NumPartitions)
	case b.Retention <= 0:
		return fmt.Errorf("bus: Retention must be positive, not %s", b.Retention)
	}
	return nil
}

// Open validates the configuration, opens or creates the database and
// starts the writer and the retention goroutines.
func (b *Bus) Open() error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	if b.CacheSize <= 0 {
		b.CacheSize = DefaultCacheSize
	}
	db, err := openDB(b.Dir, b.CacheSize, b.MemTableSize, b.Logger)
	if err != nil {
		return fmt.Errorf("open bus: %w", err)
	}
	b.db, b.closed = db, false
	b.reserve = newDiskReserve(b.Dir, minFree(b.MinFreeBytes))
	b.topics = make(map[string]*topic)
	b.reqs = make(chan *publishRequest)
	b.closing = make(chan struct{})
	b.wg.Add(2)
	go b.writeLoop()
	go b.retentionLoop()
	return nil
}

// Close stops the goroutines and closes the database once running fetches
// finish; it is safe to call twice.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed || b.db == nil {
		b.closed = true
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	b.mu.Unlock()
	b.wg.Wait()
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close bus: %w", err)
	}
	return nil
}

var errClosed = tapline.Errorf(tapline.EUNAVAILABLE, "The bus is closed.")

// acquire holds the database open for one access; the caller calls release.
func (b *Bus) acquire() (release func(), err error) {
	b.mu.RLock()
	if b.closed || b.db == nil {
		b.mu.RUnlock()
		return nil, errClosed
	}
	return b.mu.RUnlock, nil
}

func topicKey(space byte, name string) []byte {
	return appendString(append(make([]byte, 0, 32), space), name)
}

func partitionKey(space byte, name string, part int) []byte {
	return binary.BigEndian.AppendUint32(topicKey(space, name), uint32(part))
}

func messageKey(name string, part int, offset int64) []byte {
	return appendInt64(partitionKey(spaceMessage, name, part), offset)
}

// topic returns the topic, loading it from the database or creating it.
func (b *Bus) topic(name string) (*topic, error) {
	if name == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "A topic needs a name.")
	}
	b.topicsMu.Lock()
	defer b.topicsMu.Unlock()
	if t, ok := b.topics[name]; ok {
		return t, nil
	}
	release, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer release()

	n := b.NumPartitions
	v, closer, err := b.db.Get(topicKey(spaceTopic, name))
	switch {
	case errors.Is(err, pdb.ErrNotFound):
		if err := b.db.Set(topicKey(spaceTopic, name), binary.BigEndian.AppendUint32(nil, uint32(n)), pdb.Sync); err != nil {
			return nil, fmt.Errorf("create topic %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("read topic %s: %w", name, err)
	default:
		if len(v) == 4 {
			n = int(binary.BigEndian.Uint32(v))
		}
		closer.Close()
		if n != b.NumPartitions {
			b.Logger.Warn("bus topic keeps its partition count", "topic", name, "partitions", n, "configured", b.NumPartitions)
		}
	}
	t := &topic{name: name, parts: make([]*partition, n)}
	for i := range t.parts {
		p := &partition{topic: name, index: i, notify: make(chan struct{})}
		v, closer, err := b.db.Get(partitionKey(spaceNext, name, i))
		switch {
		case errors.Is(err, pdb.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("read next offset of %s/%d: %w", name, i, err)
		default:
			if len(v) == 8 {
				p.next = readInt64(v)
			}
			closer.Close()
		}
		t.parts[i] = p
	}
	b.topics[name] = t
	return t, nil
}

// Partitions returns the partition count of topic, creating the topic when
// it does not exist.
func (b *Bus) Partitions(ctx context.Context, name string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, err := b.topic(name)
	if err != nil {
		return 0, err
	}
	return len(t.parts), nil
}

// partitionOf returns the partition of key among n.
func partitionOf(key []byte, n int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}

// Publish writes msgs and returns once they are synced to disk. A message's
// Time is kept when set and is the publish time otherwise; retention counts
// from the publish time. It returns ctx's error if ctx ends first, when the
// messages may or may not be written.
func (b *Bus) Publish(ctx context.Context, msgs ...tapline.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &publishRequest{msgs: msgs, topics: make([]*topic, len(msgs)), done: make(chan error, 1)}
	for i := range msgs {
		t, err := b.topic(msgs[i].Topic)
		if err != nil {
			return err
		}
		r.topics[i] = t
	}
	select {
	case b.reqs <- r:
	case <-b.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeLoop commits publish requests, grouping those that wait together
// into one synced batch.
func (b *Bus) writeLoop() {
	defer b.wg.Done()
	var group []*publishRequest
	for {
		select {
		case <-b.closing:
			return
		case r := <-b.reqs:
			group = append(group[:0], r)
			n := len(r.msgs)
		gather:
			for n < maxGroup {
				select {
				case r := <-b.reqs:
					group = append(group, r)
					n += len(r.msgs)
				default:
					break gather
				}
			}
			err := b.commit(group)
			for _, r := range group {
				r.done <- err
			}
			clear(group)
		}
	}
}

// commit assigns offsets to the group's messages and writes them, and the
// partitions' next offsets, in one synced batch; then it wakes fetchers.
func (b *Bus) commit(group []*publishRequest) error {
	now := time.Now()
	batch := b.db.NewBatch()
	defer batch.Close()
	next := make(map[*partition]int64)
	var order []*partition
	var val []byte
	for _, r := range group {
		for i, m := range r.msgs {
			t := r.topics[i]
			p := t.parts[partitionOf(m.Key, len(t.parts))]
			off, ok := next[p]
			if !ok {
				p.mu.Lock()
				off = p.next
				p.mu.Unlock()
				order = append(order, p)
			}
			next[p] = off + 1
			at := m.Time
			if at.IsZero() {
				at = now
			}
			val = appendInt64(val[:0], now.UnixNano()) // append time, for retention
			val = appendInt64(val, tapline.UnixNanos(at))
			val = binary.AppendUvarint(val, uint64(len(m.Key)))
			val = append(append(val, m.Key...), m.Value...)
			_ = batch.Set(messageKey(t.name, p.index, off), val, nil)
		}
	}
	for _, p := range order {
		_ = batch.Set(partitionKey(spaceNext, p.topic, p.index), appendInt64(nil, next[p]), nil)
	}
	if err := b.reserve.check(len(batch.Repr())); err != nil {
		b.Logger.Warn("bus write refused", "messages", batch.Count(), "err", err)
		return fmt.Errorf("commit bus batch: %w", err)
	}
	if err := batch.Commit(pdb.Sync); err != nil {
		b.Logger.Error("bus commit failed", "err", err)
		return fmt.Errorf("commit bus batch: %w", err)
	}
	for _, p := range order {
		p.mu.Lock()
		p.next = next[p]
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}
	return nil
}

// Fetch returns up to limit messages of the partition from offset on,
// waiting until at least one exists or ctx ends. An offset before the oldest
// kept message starts at the oldest; a limit below 1 means 1.
func (b *Bus) Fetch(ctx context.Context, name string, part int, offset int64, limit int) ([]tapline.Message, error) {
	t, err := b.topic(name)
	if err != nil {
		return nil, err
	}
	if part < 0 || part >= len(t.parts) {
		return nil, tapline.Errorf(tapline.EINVALID, "Topic %s has no partition %d.", name, part)
	}
	limit = max(limit, 1)
	offset = max(offset, 0)
	p := t.parts[part]
	for {
		p.mu.Lock()
		next, notify := p.next, p.notify
		p.mu.Unlock()
		if offset < next {
			msgs, err := b.read(name, part, offset, next, limit)
			if err != nil || len(msgs) > 0 {
				return msgs, err
			}
		}
		select {
		case <-notify:
		case <-b.closing:
			return nil, errClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// read returns up to limit stored messages with offsets in [from, to).
func (b *Bus) read(name string, part int, from, to int64, limit int) ([]tapline.Message, error) {
	release, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	prefix := partitionKey(spaceMessage, name, part)
	it, err := b.db.NewIter(&pdb.IterOptions{
		LowerBound: messageKey(name, part, from),
		UpperBound: messageKey(name, part, to),
	})
	if err != nil {
		return nil, fmt.Errorf("bus iterator: %w", err)
	}
	defer it.Close()
	var msgs []tapline.Message
	for it.First(); it.Valid() && len(msgs) < limit; it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read bus message: %w", err)
		}
		m, err := decodeMessage(v)
		if err != nil {
			return nil, err
		}
		m.Topic, m.Partition, m.Offset = name, part, readInt64(it.Key()[len(prefix):])
		msgs = append(msgs, m)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("bus iterator: %w", err)
	}
	return msgs, nil
}

// decodeMessage decodes the time, key and value of a stored message: append
// time and message time (8 bytes each), key length (uvarint), key, value.
func decodeMessage(v []byte) (tapline.Message, error) {
	if len(v) < 16 {
		return tapline.Message{}, fmt.Errorf("bus message of %d bytes", len(v))
	}
	m := tapline.Message{Time: time.Unix(0, readInt64(v[8:]))}
	n, size := binary.Uvarint(v[16:])
	if size <= 0 || uint64(len(v)-16-size) < n {
		return tapline.Message{}, fmt.Errorf("bus message with a bad key length")
	}
	rest := v[16+size:]
	m.Key = bytes.Clone(rest[:n])
	m.Value = bytes.Clone(rest[n:])
	return m, nil
}

// retentionLoop expires old messages until Close.
func (b *Bus) retentionLoop() {
	defer b.wg.Done()
	every := min(max(b.Retention/10, time.Second), time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-b.closing:
			return
		case now := <-tick.C:
			if err := b.expire(now.Add(-b.Retention)); err != nil {
				b.Logger.Error("bus retention", "err", err)
			}
		}
	}
}

// expire range-deletes, in every partition of every topic, the messages
// published before cutoff. It finds the first message to keep by binary
// search over the dense offsets, so it reads a few messages per partition.
func (b *Bus) expire(cutoff time.Time) error {
	names, err := b.topicNames()
	if err != nil {
		return err
	}
	for _, name := range names {
		t, err := b.topic(name)
		if err != nil {
			return err
		}
		for _, p := range t.parts {
			if err := b.expirePartition(p, cutoff.UnixNano()); err != nil {
				return err
			}
		}
	}
	return nil
}

// topicNames returns the names of the topics stored in the database.
func (b *Bus) topicNames() ([]string, error) {
	release, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	lo := []byte{spaceTopic}
	it, err := b.db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, fmt.Errorf("bus iterator: %w", err)
	}
	defer it.Close()
	var names []string
	for it.First(); it.Valid(); it.Next() {
		name, _, err := readString(it.Key()[1:])
		if err != nil {
			return nil, fmt.Errorf("bad topic key: %w", err)
		}
		names = append(names, name)
	}
	return names, it.Error()
}

func (b *Bus) expirePartition(p *partition, cutoff int64) error {
	release, err := b.acquire()
	if err != nil {
		return err
	}
	defer release()
	p.mu.Lock()
	next := p.next
	p.mu.Unlock()
	it, err := b.db.NewIter(&pdb.IterOptions{
		LowerBound: messageKey(p.topic, p.index, 0),
		UpperBound: messageKey(p.topic, p.index, next),
	})
	if err != nil {
		return fmt.Errorf("bus iterator: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return it.Error()
	}
	prefixLen := len(partitionKey(spaceMessage, p.topic, p.index))
	oldest := readInt64(it.Key()[prefixLen:])
	// Find the first offset in [oldest, next) published at or after cutoff.
	var searchErr error
	keep := oldest + int64(sort.Search(int(next-oldest), func(i int) bool {
		if searchErr != nil || !it.SeekGE(messageKey(p.topic, p.index, oldest+int64(i))) {
			return true
		}
		v, err := it.ValueAndErr()
		if err != nil || len(v) < 8 {
			searchErr = fmt.Errorf("read bus message: %v", err)
			return true
		}
		return readInt64(v) >= cutoff
	}))
	if searchErr != nil {
		return searchErr
	}
	if keep == oldest {
		return nil
	}
	if err := b.db.DeleteRange(messageKey(p.topic, p.index, 0), messageKey(p.topic, p.index, keep), pdb.NoSync); err != nil {
		return fmt.Errorf("expire %s/%d: %w", p.topic, p.index, err)
	}
	b.Logger.Debug("bus messages expired", "topic", p.topic, "partition", p.index, "before_offset", keep)
	return nil
}

var _ tapline.EndOffsetReader = (*Bus)(nil)

// EndOffsets returns the next offset of each partition of topic, creating
// the topic when it does not exist. It reads what the writer keeps in
// memory, so it answers at once; EUNAVAILABLE when the bus is closed.
func (b *Bus) EndOffsets(ctx context.Context, name string) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release, err := b.acquire()
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", name, err)
	}
	release()
	t, err := b.topic(name)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", name, err)
	}
	ends := make([]int64, len(t.parts))
	for i, p := range t.parts {
		p.mu.Lock()
		ends[i] = p.next
		p.mu.Unlock()
	}
	return ends, nil
}
