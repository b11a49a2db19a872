package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

// Spool defaults.
const (
	DefaultSpoolMaxBytes       = 1 << 30 // 1 GiB of spooled messages
	DefaultSpoolAttemptTimeout = 2 * time.Second
	DefaultSpoolRetryInterval  = time.Second
	DefaultSpoolReplayBatch    = 500
	DefaultSpoolCacheSize      = 8 << 20 // the spool is written and read once; a small cache will do
	spoolMemTableSize          = 4 << 20 // and only while Kafka is down
)

// spaceSpool is the key space of spooled messages: 'S' then the sequence
// number as a big-endian uint64, so key order is append order.
const spaceSpool = 'S'

// maxReplayBytes bounds the spooled bytes one replay Publish carries, below
// Kafka's default request limit.
const maxReplayBytes = 4 << 20

// Spool is a tapline.Bus that publishes to Bus and, while Bus is
// unavailable, appends to a bounded on-disk queue in Dir instead, replaying
// it to Bus in order when Bus is back. The collector of the scale-out mode
// puts it in front of Kafka so that it keeps accepting hits and events
// through a Kafka outage.
//
// In normal mode Publish tries Bus.Publish for at most AttemptTimeout. On
// success it returns nil. On an error coded tapline.EUNAVAILABLE, or when the
// attempt's deadline ran out while the caller's context is still alive, it
// writes the messages to the spool in one synced pebble batch, returns nil
// (they are durable locally, which is what a 200 to an SDK promises) and
// switches to spooling mode. Other errors (EINVALID, ETOOLARGE, a caller that
// gave up) are returned as they are.
//
// In spooling mode every Publish appends to the spool, after the backlog, so
// that a message never overtakes one published before it (order holds
// between publishes where one returned before the other started; concurrent
// publishes have no order, as on any Bus). A background replayer publishes
// the backlog to Bus in order, in batches of up to ReplayBatch messages, and
// deletes a batch only after Bus.Publish accepted it; while Bus fails it
// tries again every RetryInterval. When the backlog is empty, and no append
// is under way, the spool switches back to normal mode; that switch and the
// decision of Publish to append are made under one mutex, so nothing
// published during the last replay can overtake the backlog. Under steady
// traffic the backlog is never quite empty, so when the replayer reaches its
// tail it closes a gate: new publishes wait (never past their context) until
// the tail is replayed and then go to Bus directly; if Bus fails meanwhile
// the gate opens and they are spooled.
//
// Delivery is at least once: a crash (or a failed Bus.Publish that wrote
// part of a batch, or an attempt that timed out after the broker took the
// messages) between a publish to Bus and the spool's delete replays those
// messages again. The matcher drops such duplicates by hit and event id.
//
// The spool is bounded: while the spooled bytes plus the new messages would
// exceed MaxBytes, Publish returns tapline.EUNAVAILABLE, which the collector
// answers with 503 and Retry-After (SDKs retry) and which makes its hit queue
// retry or drop as it does for any bus outage. Spooled bytes count the keys
// and values of spooled records, not pebble's write-ahead log and compaction
// overhead, so leave the disk some room above MaxBytes. A single Publish
// larger than MaxBytes gets tapline.ETOOLARGE while spooling.
//
// Messages without a Time get the time they were spooled, so a replayed
// message keeps the time it was accepted. A message the bus rejects on
// replay with EINVALID or ETOOLARGE is logged and dropped so it cannot block
// the queue; DroppedMessages counts them.
//
// Close stops the replayer and keeps the backlog on disk; the next Open
// starts in spooling mode and replays it. Close does not close Bus: its
// owner closes it after the spool. Partitions and Fetch go to Bus directly.
type Spool struct {
	// Bus is the real bus the spool publishes to (Kafka).
	Bus tapline.Bus
	// Dir is the directory of the spool's own pebble database; Open
	// creates it. It must not be shared with another database.
	Dir string
	// MaxBytes bounds the spooled bytes; past it Publish returns
	// EUNAVAILABLE.
	MaxBytes int64
	// AttemptTimeout bounds each Publish to Bus, from Publish in normal mode
	// and from the replayer, before the messages are spooled or the replay
	// is tried again.
	AttemptTimeout time.Duration
	// RetryInterval is how long the replayer waits after a failed replay
	// before it probes Bus again.
	RetryInterval time.Duration
	// ReplayBatch is the most messages one replay Publish carries.
	ReplayBatch int
	// CacheSize is the size in bytes of pebble's block cache.
	CacheSize int64
	// Logger receives the spool's and pebble's log lines; nil means
	// slog.Default().
	Logger *slog.Logger

	// MinFreeBytes is the free space of the filesystem below which writes
	// are refused with tapline.ErrStorageFull (0: DefaultMinFreeBytes;
	// negative: never), since pebble ends the process when its
	// write-ahead log cannot be written.
	MinFreeBytes int64

	db      *pdb.DB
	reserve *diskReserve

	// mu guards the mode, the reservations and the pending appends. A
	// Publish decides whether to append and reserves its bytes under mu; the
	// replayer switches back to normal mode under mu only when nothing is
	// reserved, that is when the backlog is empty and no append is pending.
	mu       sync.Mutex
	open     bool
	closed   bool
	spooling bool
	gate     chan struct{}  // while the replayer finishes the tail: Publish waits until it is closed
	pending  []*spoolAppend // appends in reservation order, taken by the writer

	count   atomic.Int64 // spooled plus pending messages
	bytes   atomic.Int64 // their spooled bytes
	dropped atomic.Int64

	next   uint64 // sequence number of the next append; the writer's
	cursor uint64 // sequence number of the oldest spooled message; the replayer's

	writeKick  chan struct{} // wakes the writer; buffered 1
	replayKick chan struct{} // wakes the replayer; buffered 1
	closing    chan struct{}
	cancel     context.CancelFunc // cancels the replayer's publishes
	wg         sync.WaitGroup
}

var _ tapline.Bus = (*Spool)(nil)

// spoolAppend is one Publish waiting for the writer.
type spoolAppend struct {
	vals [][]byte // encoded messages
	size int64
	done chan error
}

// NewSpool returns a spool in front of bus, with its database in dir and
// the default bounds and timeouts; call Open next.
func NewSpool(bus tapline.Bus, dir string) *Spool {
	return &Spool{
		Bus:            bus,
		Dir:            dir,
		MaxBytes:       DefaultSpoolMaxBytes,
		AttemptTimeout: DefaultSpoolAttemptTimeout,
		RetryInterval:  DefaultSpoolRetryInterval,
		ReplayBatch:    DefaultSpoolReplayBatch,
		CacheSize:      DefaultSpoolCacheSize,
	}
}

// Validate reports every bad field.
func (s *Spool) Validate() error {
	var errs []error
	if s.Bus == nil {
		errs = append(errs, fmt.Errorf("spool: Bus is required"))
	}
	if s.Dir == "" {
		errs = append(errs, fmt.Errorf("spool: Dir is required"))
	}
	if s.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("spool: MaxBytes must be positive, not %d", s.MaxBytes))
	}
	if s.AttemptTimeout <= 0 {
		errs = append(errs, fmt.Errorf("spool: AttemptTimeout must be positive, not %s", s.AttemptTimeout))
	}
	if s.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("spool: RetryInterval must be positive, not %s", s.RetryInterval))
	}
	if s.ReplayBatch < 1 {
		errs = append(errs, fmt.Errorf("spool: ReplayBatch must be at least 1, not %d", s.ReplayBatch))
	}
	return errors.Join(errs...)
}

// Open validates the configuration, opens or creates the database in Dir,
// recovers the spooled backlog and starts the writer and the replayer. A
// spool with a backlog starts in spooling mode and replays it.
func (s *Spool) Open() error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.CacheSize <= 0 {
		s.CacheSize = DefaultSpoolCacheSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		return fmt.Errorf("open spool: already open")
	}
	db, err := openDB(s.Dir, s.CacheSize, spoolMemTableSize, s.Logger)
	s.reserve = newDiskReserve(s.Dir, minFree(s.MinFreeBytes))
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	first, next, count, size, err := scanSpool(db)
	if err != nil {
		db.Close()
		return fmt.Errorf("open spool: %w", err)
	}
	s.db = db
	s.open, s.closed = true, false
	s.cursor, s.next = first, next
	s.count.Store(count)
	s.bytes.Store(size)
	s.spooling = count > 0
	s.gate = nil
	s.pending = nil
	s.writeKick = make(chan struct{}, 1)
	s.replayKick = make(chan struct{}, 1)
	s.closing = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if count > 0 {
		s.Logger.Warn("spool has a backlog; replaying it before publishing directly", "messages", count, "bytes", size)
		s.replayKick <- struct{}{}
	}
	s.wg.Add(2)
	go s.writeLoop()
	go s.replayLoop(ctx)
	return nil
}

// scanSpool reads the backlog's first and next sequence numbers, its
// message count and its spooled bytes.
func scanSpool(db *pdb.DB) (first, next uint64, count, size int64, err error) {
	lo := []byte{spaceSpool}
	it, err := db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("spool iterator: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return 0, 0, 0, 0, fmt.Errorf("spool key of %d bytes", len(k))
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if count == 0 {
			first = seq
		}
		next = seq + 1
		count++
		size += int64(len(k)) + int64(len(it.Value()))
	}
	if err := it.Error(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("spool iterator: %w", err)
	}
	if count == 0 {
		// An empty spool starts its sequence after any deleted range, which
		// pebble may not have compacted away yet; starting at 0 is as good.
		first, next = 0, 0
	}
	return first, next, count, size, nil
}

// Close stops the replayer and the writer, after the writer has stored the
// appends already accepted, and closes the database. Spooled messages stay on
// disk for the next Open. It does not close Bus; it is safe to call twice.
func (s *Spool) Close() error {
	s.mu.Lock()
	if !s.open || s.closed {
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

// SpooledMessages returns how many messages the spool holds (or is writing)
// now; it is 0 in normal mode.
func (s *Spool) SpooledMessages() int64 { return s.count.Load() }

// SpooledBytes returns the spooled bytes the spool holds (or is writing)
// now, the figure MaxBytes bounds.
func (s *Spool) SpooledBytes() int64 { return s.bytes.Load() }

// DroppedMessages returns how many spooled messages the bus rejected on
// replay as invalid or too large since Open.
func (s *Spool) DroppedMessages() int64 { return s.dropped.Load() }

// Spooling reports whether the spool is in spooling mode, where every
// Publish appends to the spool until the backlog is replayed.
func (s *Spool) Spooling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spooling
}

var errSpoolClosed = tapline.Errorf(tapline.EUNAVAILABLE, "The spool is closed.")

// errBackToNormal tells Publish that the spool left spooling mode while it
// was about to append.
var errBackToNormal = errors.New("spool back to normal mode")

// Publish publishes msgs to Bus or, while Bus is unavailable or a backlog is
// being replayed, stores them in the spool; see Spool. It returns nil once
// the messages are durable in either. It returns EUNAVAILABLE when the spool
// is full or closed.
func (s *Spool) Publish(ctx context.Context, msgs ...tapline.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		s.mu.Lock()
		if !s.open || s.closed {
			s.mu.Unlock()
			return errSpoolClosed
		}
		spooling, gate := s.spooling, s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
				continue
			case <-s.closing:
				return errSpoolClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !spooling {
			break
		}
		// The replayer may switch back to normal mode before append
		// reserves its place; then publish directly after all.
		if err := s.append(ctx, msgs, nil); err != errBackToNormal {
			return err
		}
	}

	actx, cancel := context.WithTimeout(ctx, s.AttemptTimeout)
	err := s.Bus.Publish(actx, msgs...)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil || !(tapline.ErrorCode(err) == tapline.EUNAVAILABLE || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return s.append(ctx, msgs, err)
}

// append stores msgs at the end of the spool and switches to spooling mode.
// cause is the bus error that sent them here, nil when the spool was in
// spooling mode already.
func (s *Spool) append(ctx context.Context, msgs []tapline.Message, cause error) error {
	now := time.Now()
	a := &spoolAppend{vals: make([][]byte, len(msgs)), done: make(chan error, 1)}
	for i := range msgs {
		if msgs[i].Topic == "" {
			return tapline.Errorf(tapline.EINVALID, "A topic needs a name.")
		}
		a.vals[i] = encodeSpooled(&msgs[i], now)
		a.size += spoolRecordSize(a.vals[i])
	}
	if a.size > s.MaxBytes {
		return tapline.Errorf(tapline.ETOOLARGE, "The messages are larger than the spool.")
	}

	s.mu.Lock()
	switch {
	case !s.open || s.closed:
		s.mu.Unlock()
		return errSpoolClosed
	case s.bytes.Load()+a.size > s.MaxBytes:
		s.mu.Unlock()
		return tapline.Errorf(tapline.EUNAVAILABLE, "The bus is unavailable and the spool is full; retry later.")
	}
	if !s.spooling {
		if cause == nil {
			s.mu.Unlock()
			return errBackToNormal
		}
		s.spooling = true
		s.Logger.Warn("bus unavailable; spooling messages to disk", "dir", s.Dir, "err", cause)
	}
	s.count.Add(int64(len(msgs)))
	s.bytes.Add(a.size)
	s.pending = append(s.pending, a)
	s.mu.Unlock()
	kick(s.writeKick)

	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		// The append may still be stored, as the Bus contract allows.
		return ctx.Err()
	}
}

// kick wakes the goroutine waiting on c without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// writeLoop stores pending appends, all that wait together in one synced
// batch, in the order they were reserved. On Close it stores what is still
// pending and returns.
func (s *Spool) writeLoop() {
	defer s.wg.Done()
	for {
		stop := false
		select {
		case <-s.writeKick:
		case <-s.closing:
			stop = true
		}
		s.mu.Lock()
		group := s.pending
		s.pending = nil
		s.mu.Unlock()
		if len(group) > 0 {
			s.store(group)
		}
		if stop {
			return
		}
	}
}

// store writes group to the database and answers each append.
func (s *Spool) store(group []*spoolAppend) {
	batch := s.db.NewBatch()
	defer batch.Close()
	seq := s.next
	for _, a := range group {
		for _, v := range a.vals {
			_ = batch.Set(spoolKey(seq), v, nil)
			seq++
		}
	}
	err := s.reserve.check(len(batch.Repr()))
	if err != nil {
		s.Logger.Warn("spool write refused", "err", err)
		err = fmt.Errorf("spool write: %w", err)
	} else if err = batch.Commit(pdb.Sync); err != nil {
		s.Logger.Error("spool write failed", "err", err)
		err = fmt.Errorf("spool write: %w: %w", tapline.Errorf(tapline.EUNAVAILABLE, "The messages could not be stored; retry later."), err)
	}
	if err != nil {
		var n, size int64
		for _, a := range group {
			n += int64(len(a.vals))
			size += a.size
		}
		s.count.Add(-n)
		s.bytes.Add(-size)
	} else {
		s.next = seq
		kick(s.replayKick)
	}
	for _, a := range group {
		a.done <- err
	}
}

// replayLoop publishes the backlog to Bus until Close, and switches back to
// normal mode when it is empty.
func (s *Spool) replayLoop(ctx context.Context) {
	defer s.wg.Done()
	failing := false
	for {
		if !s.Spooling() {
			if !s.wait(ctx, s.replayKick, 0) {
				return
			}
			continue
		}
		seqs, msgs, sizes, more, err := s.readBatch()
		if err != nil {
			s.setGate(false)
			s.Logger.Error("spool read failed", "err", err)
			if !s.wait(ctx, nil, s.RetryInterval) {
				return
			}
			continue
		}
		if len(msgs) == 0 {
			s.mu.Lock()
			if s.count.Load() == 0 {
				s.spooling = false
				s.setGateLocked(false)
				s.Logger.Info("spool replayed; publishing to the bus directly")
			}
			s.mu.Unlock()
			// Either back to normal, or an append is pending and the
			// writer kicks when it is stored.
			if !s.wait(ctx, s.replayKick, 0) {
				return
			}
			continue
		}
		done, dsize, err := s.replay(ctx, msgs, sizes)
		if done > 0 {
			if derr := s.db.DeleteRange(spoolKey(seqs[0]), spoolKey(seqs[done-1]+1), pdb.Sync); derr != nil {
				// The messages stay and are replayed again.
				s.Logger.Error("spool delete failed", "err", derr)
			} else {
				s.cursor = seqs[done-1] + 1
				s.count.Add(-int64(done))
				s.bytes.Add(-dsize)
			}
		}
		// At the tail of the backlog, hold new publishes back until it is
		// replayed: under steady traffic the backlog would otherwise never
		// be empty and the spool would never leave spooling mode.
		s.setGate(err == nil && !more)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				s.Logger.Warn("spool replay failed; retrying", "backlog", s.count.Load(), "err", err)
			} else {
				s.Logger.Debug("spool replay failed; retrying", "backlog", s.count.Load(), "err", err)
			}
			failing = true
			if !s.wait(ctx, nil, s.RetryInterval) {
				return
			}
			continue
		}
		if failing {
			s.Logger.Info("bus is back; replaying the spool", "backlog", s.count.Load())
			failing = false
		}
	}
}

// wait blocks until c receives, d passes (when positive) or ctx ends; it
// reports false when ctx ended.
func (s *Spool) wait(ctx context.Context, c chan struct{}, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-c:
		return true
	case <-timer:
		return true
	case <-ctx.Done():
		return false
	}
}

// setGate closes the gate on new publishes when closed is true and opens it
// otherwise.
func (s *Spool) setGate(closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setGateLocked(closed)
}

func (s *Spool) setGateLocked(closed bool) {
	switch {
	case closed && s.gate == nil:
		s.gate = make(chan struct{})
	case !closed && s.gate != nil:
		close(s.gate)
		s.gate = nil
	}
}

// readBatch reads up to ReplayBatch spooled messages from the cursor on,
// with their sequence numbers and spooled sizes; more reports that it
// stopped at a bound rather than at the end of the backlog.
func (s *Spool) readBatch() (seqs []uint64, msgs []tapline.Message, sizes []int64, more bool, err error) {
	it, err := s.db.NewIter(&pdb.IterOptions{
		LowerBound: spoolKey(s.cursor),
		UpperBound: prefixEnd([]byte{spaceSpool}),
	})
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("spool iterator: %w", err)
	}
	defer it.Close()
	var total int64
	for it.First(); it.Valid() && len(msgs) < s.ReplayBatch && total < maxReplayBytes; it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, nil, nil, false, fmt.Errorf("read spooled message: %w", err)
		}
		m, err := decodeSpooled(v)
		if err != nil {
			return nil, nil, nil, false, err
		}
		size := spoolRecordSize(v)
		seqs = append(seqs, binary.BigEndian.Uint64(it.Key()[1:]))
		msgs = append(msgs, m)
		sizes = append(sizes, size)
		total += size
	}
	if err := it.Error(); err != nil {
		return nil, nil, nil, false, fmt.Errorf("spool iterator: %w", err)
	}
	return seqs, msgs, sizes, it.Valid(), nil
}

// replay publishes msgs to Bus and returns how many leading messages are
// done with (published or dropped), their spooled bytes, and the error that
// stopped it. When the bus rejects the batch as invalid or too large it
// publishes the messages one at a time and drops those it rejects.
func (s *Spool) replay(ctx context.Context, msgs []tapline.Message, sizes []int64) (int, int64, error) {
	sum := func(n int) int64 {
		var t int64
		for _, v := range sizes[:n] {
			t += v
		}
		return t
	}
	err := s.publishAttempt(ctx, msgs...)
	if err == nil {
		return len(msgs), sum(len(msgs)), nil
	}
	if !rejected(err) {
		return 0, 0, err
	}
	for i := range msgs {
		err := s.publishAttempt(ctx, msgs[i])
		switch {
		case err == nil:
		case rejected(err):
			s.dropped.Add(1)
			s.Logger.Error("bus rejected a spooled message; dropping it", "topic", msgs[i].Topic, "bytes", len(msgs[i].Value), "err", err)
		default:
			return i, sum(i), err
		}
	}
	return len(msgs), sum(len(msgs)), nil
}

// rejected reports whether the bus refused a message for good.
func rejected(err error) bool {
	code := tapline.ErrorCode(err)
	return code == tapline.EINVALID || code == tapline.ETOOLARGE
}

func (s *Spool) publishAttempt(ctx context.Context, msgs ...tapline.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.AttemptTimeout)
	defer cancel()
	return s.Bus.Publish(ctx, msgs...)
}

// Partitions returns Bus's partition count of topic.
func (s *Spool) Partitions(ctx context.Context, topic string) (int, error) {
	return s.Bus.Partitions(ctx, topic)
}

// Fetch fetches from Bus; spooled messages are not visible until replayed.
func (s *Spool) Fetch(ctx context.Context, topic string, partition int, offset int64, max int) ([]tapline.Message, error) {
	return s.Bus.Fetch(ctx, topic, partition, offset, max)
}

func spoolKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{spaceSpool}, seq)
}

// spoolRecordSize is the bytes a spooled record counts against MaxBytes:
// its key and its encoded value.
func spoolRecordSize(val []byte) int64 { return 9 + int64(len(val)) }

// encodeSpooled encodes a message for the spool: topic length (uvarint),
// topic, key length (uvarint), key, time (8 bytes, now when unset), value.
func encodeSpooled(m *tapline.Message, now time.Time) []byte {
	at := m.Time
	if at.IsZero() {
		at = now
	}
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(m.Topic)+len(m.Key)+8+len(m.Value))
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.AppendUvarint(b, uint64(len(m.Key)))
	b = append(b, m.Key...)
	b = appendInt64(b, tapline.UnixNanos(at))
	return append(b, m.Value...)
}

// decodeSpooled decodes a message written by encodeSpooled.
func decodeSpooled(v []byte) (tapline.Message, error) {
	var m tapline.Message
	field := func() ([]byte, error) {
		n, size := binary.Uvarint(v)
		if size <= 0 || uint64(len(v)-size) < n {
			return nil, fmt.Errorf("spooled message with a bad length")
		}
		f := v[size : size+int(n)]
		v = v[size+int(n):]
		return f, nil
	}
	topic, err := field()
	if err != nil {
		return m, err
	}
	key, err := field()
	if err != nil {
		return m, err
	}
	if len(v) < 8 {
		return m, fmt.Errorf("spooled message without a time")
	}
	m.Topic = string(topic)
	m.Key = append([]byte(nil), key...)
	m.Time = time.Unix(0, readInt64(v))
	m.Value = append([]byte(nil), v[8:]...)
	return m, nil
}
