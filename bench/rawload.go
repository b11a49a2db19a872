package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"tapline/pebble"
)

// loadInstalls writes the generated installations from the channel into l
// with parallel writers, a batch of several installations at a time.
// pebble.RawStore's PutHit, PutEvent and PutConversion read before they
// write (put-if-absent, a conversion must follow the stored one): on two
// cores they store about 7,000 rows a second, so the 5 million rows of the
// funnel benchmark would take a quarter of an hour. A pebble.Loader writes
// the same rows, knowing they are new and final, at several times the
// speed (TestRawLoaderMatchesRawStore compares both stores key by key).
func loadInstalls(ctx context.Context, l *pebble.Loader, installs <-chan *genInstall) error {
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for i := range errs {
		wg.Go(func() {
			b := l.NewBatch()
			defer b.Close()
			for g := range installs {
				if errs[i] != nil || ctx.Err() != nil {
					continue // drain
				}
				for _, h := range g.Hits {
					b.Hit(h)
				}
				for _, e := range g.Events {
					b.Event(e)
				}
				if g.Conversion != nil {
					b.Conversion(g.Conversion)
				}
				if b.Size() >= 4<<20 {
					errs[i] = b.Commit()
				}
			}
			if errs[i] == nil {
				errs[i] = b.Commit()
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
