package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

func TestEventNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	ev := func(hour string, app int64, name string, link int64) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactEvents, Hour: at(t, hour), AppID: app, LinkID: link, EventName: name,
			Platform: tapline.PlatformIOS, Method: tapline.MethodOrganic}
	}
	deltas := map[tapline.FactKey]tapline.FactValue{
		ev("2024-03-01 10", 1, "purchase", 0): {Count: 3},
		ev("2024-03-01 11", 1, "purchase", 7): {Count: 2}, // 5 in all, over two rows
		ev("2024-03-02 09", 1, "open", 0):     {Count: 9},
		ev("2024-03-02 09", 1, "signup", 0):   {Count: 5}, // ties purchase: by name
		ev("2024-03-02 09", 1, "refund", 0):   {Count: 0}, // a row that nets to zero
		ev("2024-02-20 09", 1, "old", 0):      {Count: 50},
		ev("2024-03-01 10", 2, "theirs", 0):   {Count: 70},
	}
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "seed", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReports(db)
	since := time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC) // its hour counts
	for _, tc := range []struct {
		name  string
		app   int64
		limit int
		want  []string
	}{
		{"most frequent first", 1, 0, []string{"open", "purchase", "signup"}},
		{"limit", 1, 2, []string{"open", "purchase"}},
		{"another app", 2, 0, []string{"theirs"}},
		{"no events", 3, 0, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.EventNames(ctx, tc.app, since, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("EventNames(app %d, limit %d) = %q, want %q", tc.app, tc.limit, got, tc.want)
			}
		})
	}
	t.Run("older facts with an earlier since", func(t *testing.T) {
		got, err := r.EventNames(ctx, 1, since.AddDate(0, 0, -30), 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"old", "open", "purchase", "signup"}; !reflect.DeepEqual(got, want) {
			t.Errorf("EventNames = %q, want %q", got, want)
		}
	})
	if _, err := r.EventNames(ctx, 0, since, 0); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("EventNames(app 0) error = %v, want EINVALID", err)
	}
}
