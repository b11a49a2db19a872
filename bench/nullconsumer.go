package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"tapline"
	"tapline/internal/wire"
	"tapline/pebble"
)

// nullConsume reads every message of the pre-filled embedded bus at dir
// (n messages in all) as the matcher reads it, one reader per partition of
// each topic fetching batches, and decodes each into its hit or event,
// doing nothing else: the floor a matcher's drain is measured against. It
// returns the time and this process's CPU time over it.
func nullConsume(ctx context.Context, dir string, n int) (time.Duration, time.Duration, error) {
	bus := pebble.NewBus(dir)
	bus.NumPartitions = drainPartitions
	bus.Logger = slog.New(slog.DiscardHandler)
	if err := bus.Open(); err != nil {
		return 0, 0, fmt.Errorf("open bus: %w", err)
	}
	defer bus.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var decoded atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*drainPartitions)
	start, cpu0 := time.Now(), CPUTime(os.Getpid())
	for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
		parts, err := bus.Partitions(ctx, topic)
		if err != nil {
			return 0, 0, err
		}
		for part := range parts {
			wg.Go(func() {
				var off int64
				for ctx.Err() == nil {
					msgs, err := bus.Fetch(ctx, topic, part, off, 500)
					if err != nil {
						if ctx.Err() == nil {
							errs <- fmt.Errorf("fetch %s/%d: %w", topic, part, err)
						}
						return
					}
					for i := range msgs {
						var err error
						if topic == tapline.TopicHits {
							err = wire.DecodeHit(msgs[i].Value, new(tapline.Hit))
						} else {
							err = wire.DecodeEvent(msgs[i].Value, new(tapline.Event))
						}
						if err != nil {
							errs <- fmt.Errorf("decode %s: %w", msgs[i].Position(), err)
							cancel()
							return
						}
						off = msgs[i].Offset + 1
					}
					if decoded.Add(int64(len(msgs))) >= int64(n) {
						cancel() // every message read: the others stop waiting
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), CPUTime(os.Getpid())-cpu0
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	if got := decoded.Load(); got != int64(n) {
		return 0, 0, fmt.Errorf("null consumer read %d of %d messages", got, n)
	}
	return elapsed, cpu, nil
}
