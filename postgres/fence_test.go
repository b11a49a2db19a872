package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

func TestApplyFactsFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	key := tapline.FactKey{Table: tapline.FactHits, Hour: hour0, AppID: 1, Platform: tapline.PlatformIOS}
	one := map[tapline.FactKey]tapline.FactValue{key: {Count: 1}}
	fenced := func(from, to int64) []tapline.Offset {
		return []tapline.Offset{{Topic: "hits", Partition: 0, Offset: to, Fenced: true, From: from}}
	}

	steps := []struct {
		name     string
		from, to int64
		wantCode string
	}{
		{"first store of a partition", tapline.NoOffset, 10, ""},
		{"a second first store conflicts", tapline.NoOffset, 12, tapline.ECONFLICT},
		{"from the stored offset", 10, 20, ""},
		{"from a stale offset conflicts", 10, 30, tapline.ECONFLICT},
		{"from the current offset again", 20, 25, ""},
	}
	wantHits := int64(0)
	for _, s := range steps {
		err := fs.ApplyFacts(ctx, "m", one, fenced(s.from, s.to), tapline.FlushRows{})
		if got := tapline.ErrorCode(err); got != s.wantCode {
			t.Fatalf("%s: error code %q (%v), want %q", s.name, got, err, s.wantCode)
		}
		if err == nil {
			wantHits++
		}
	}
	offs, err := fs.Offsets(ctx, "m")
	if err != nil || len(offs) != 1 || offs[0].Offset != 25 {
		t.Fatalf("offsets = %v, %v; want hits/0 at 25", offs, err)
	}
	if rows := factRows(t, db, "fact_hits"); len(rows) != 1 || !containsCount(rows[0], wantHits) {
		t.Fatalf("fact_hits = %v, want one row counting %d (conflicting batches applied nothing)", rows, wantHits)
	}

	// Two consumers racing from the same stored offset: exactly one wins.
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Go(func() { results[i] = fs.ApplyFacts(ctx, "m", one, fenced(25, 26+int64(i)), tapline.FlushRows{}) })
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		switch tapline.ErrorCode(err) {
		case "":
			wins++
		case tapline.ECONFLICT:
		default:
			t.Fatalf("racing flush: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racing flushes from one offset succeeded, want exactly 1", wins)
	}
	if rows := factRows(t, db, "fact_hits"); !containsCount(rows[0], wantHits+1) {
		t.Fatalf("fact_hits = %v, want %d after one winner", rows, wantHits+1)
	}
}

// containsCount reports whether a fact row text "(app,hour,...,count,sum)"
// has count n.
func containsCount(row string, n int64) bool {
	fields := strings.Split(strings.Trim(row, "()"), ",")
	return len(fields) >= 2 && fields[len(fields)-2] == strconv.FormatInt(n, 10)
}
