package collector

import (
	"context"
	"testing"
	"time"
)

// TestCacheLoadOutlivesFirstCaller checks that a synchronous load is not
// cancelled when the request that started it goes away: other requests for
// the same key share that load, and a hang-up must not fail them (nor be
// logged as a database failure).
func TestCacheLoadOutlivesFirstCaller(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	loadErr := make(chan error, 1)
	c := newCache(time.Minute, time.Second, time.Now, func(ctx context.Context, key string) (string, error) {
		close(started)
		<-release
		loadErr <- ctx.Err()
		return "value of " + key, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.get(ctx, "k")
	}()
	<-started
	cancel()
	close(release)
	<-done
	if err := <-loadErr; err != nil {
		t.Fatalf("load ctx.Err() = %v after the first caller left, want nil", err)
	}
	if v, err := c.get(context.Background(), "k"); err != nil || v != "value of k" {
		t.Fatalf("get = %q, %v; want %q, nil", v, err, "value of k")
	}
}
