package reference

import (
	"context"
	"maps"
	"testing"

	"tapline"
)

// Load and Query count as Run does, several funnels over one load, and
// the tables go with Close.
func TestLoadQueryEqualsRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := breakdownFixture()
	db := mustOpen(t)
	for _, h := range []Handoff{nil, {"events/0": 1}} {
		tables, err := Load(ctx, db, &f.Data, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, bd := range []tapline.FunnelBreakdown{{}, {Kind: tapline.BreakdownLink}, {Kind: tapline.BreakdownEntryParam, Param: "src"}} {
			def := funnel(tapline.OrderOrdered, event("open"), event("buy"))
			def.Breakdown = bd
			got, err := tables.Query(ctx, def)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Run(ctx, db, &f.Data, def, h)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) || len(want) == 0 {
				t.Errorf("handoff %v, breakdown %+v: Query gives%s\nRun gives%s", h, bd, format(got), format(want))
			}
		}
		if err := tables.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(ctx, db, &Data{AppID: app, Events: []*tapline.Event{{ID: "x", AppID: app}, {ID: "x", AppID: app}}}, nil); err == nil {
		t.Error("Load took two events with one id")
	}
}
