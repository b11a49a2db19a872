package bench

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline/pebble"
)

// The loader writes exactly the keys and values that the raw store's
// PutHit, PutEvent and PutConversion write for the same rows.
func TestRawLoaderMatchesRawStore(t *testing.T) {
	ctx := context.Background()
	w := &funnelWorkload{AppID: 3, Links: []int64{5, 6, 7}, Seed: 9, Rows: 4000, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Partitions: 4}
	putDir, loadDir := t.TempDir(), t.TempDir()
	raw := pebble.NewRawStore(putDir)
	raw.Logger = slog.New(slog.DiscardHandler)
	if err := raw.Open(); err != nil {
		t.Fatal(err)
	}
	c, _, err := w.generate(func(g *genInstall) error { return putInstall(ctx, raw, g) })
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	// In two parts, as the benchmark stores its two sizes.
	half := *w
	half.Rows = w.Rows / 2
	h, _, err := storeFunnelWorkload(ctx, loadDir, &half, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := storeFunnelWorkload(ctx, loadDir, w, h.Installations); err != nil {
		t.Fatal(err)
	}
	if c.Hits == 0 || c.Conversions == 0 || c.Events < 3000 {
		t.Fatalf("workload %+v: too small to tell", c)
	}
	put, load := dump(t, putDir), dump(t, loadDir)
	if len(put) != len(load) {
		t.Errorf("the raw store wrote %d keys, the loader %d", len(put), len(load))
	}
	n := 0
	for k, v := range put {
		if lv, ok := load[k]; !ok || !bytes.Equal(lv, v) {
			if n++; n <= 5 {
				t.Errorf("key %x: raw store %q, loader %q (present %v)", k, v, lv, ok)
			}
		}
	}
}

// dump reads every key and value of the pebble database in dir.
func dump(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	db, err := pdb.Open(dir, &pdb.Options{FormatMajorVersion: pdb.FormatNewest, Logger: pdb.DefaultLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = bytes.Clone(it.Value())
	}
	return out
}
