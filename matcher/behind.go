package matcher

import (
	"sync"
	"sync/atomic"
	"time"

	"tapline"
)

// progress knows, for each partition this matcher consumes, the bus time
// of the oldest message its worker has fetched and not yet processed:
// the message it works on or, after a full fetch, the last one it
// processed (more wait behind it, none older). A worker whose last fetch
// came back short, or found nothing for OffsetCheck, has reached the end
// of its partition and waits on nothing. Behind reads it for /healthz and the behind gauge: unlike the
// age of the last processed message, it grows while a worker is stuck.
type progress struct {
	mu    sync.Mutex
	parts map[tapline.Partition]*atomic.Int64 // Unix nanoseconds; 0: caught up
}

// join returns the waiting time of a worker starting on p, caught up
// until its first fetch.
func (pr *progress) join(p tapline.Partition) *atomic.Int64 {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.parts == nil {
		pr.parts = map[tapline.Partition]*atomic.Int64{}
	}
	w := new(atomic.Int64)
	pr.parts[p] = w
	return w
}

// leave forgets p's worker w (a later worker of p may have joined since).
func (pr *progress) leave(p tapline.Partition, w *atomic.Int64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.parts[p] == w {
		delete(pr.parts, p)
	}
}

// behind returns how long the oldest waiting message of any partition
// has waited at now, and its partition; 0 when every worker is caught up.
func (pr *progress) behind(now time.Time) (time.Duration, tapline.Partition) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var worst time.Duration
	var at tapline.Partition
	for p, w := range pr.parts {
		ns := w.Load()
		if ns == 0 {
			continue
		}
		if d := now.Sub(time.Unix(0, ns)); d > worst {
			worst, at = d, p
		}
	}
	return worst, at
}

// Behind returns how far this matcher's processing trails its bus: the
// age, by the matcher's clock, of the oldest message one of its partition
// workers has fetched and not yet processed (at most a fetch's span
// older than the true oldest waiting message), and that partition. It is
// 0 when every worker has found the end of its partition, so a partition
// quiet for hours is not behind the moment its next message arrives.
// A worker held back (the fact store is down or behind) reports what its
// last fetch left waiting or, had it reached the end, the start of the
// hold-back: whatever arrived since waits. It covers only the partitions
// this matcher consumes; Lag reports the group's.
func (m *Matcher) Behind() (time.Duration, tapline.Partition) {
	return m.progress.behind(m.Now())
}
