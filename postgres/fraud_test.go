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

// TestFraudFacts applies fraud deltas through ApplyFacts, twice for one
// row, and reads them back summed by signal and action: within the range,
// of the app, by link, and refusing a filter the table does not keep.
func TestFraudFacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs := postgres.NewFactStore(db)
	k := func(hour string, app, link int64, s tapline.FraudSignal, a tapline.FraudAction) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactFraud, Hour: at(t, hour), AppID: app, LinkID: link, Platform: tapline.PlatformAndroid, Signal: s, Action: a}
	}
	first := map[tapline.FactKey]tapline.FactValue{
		k("2024-03-01 10", 1, 7, tapline.FraudDatacenter, tapline.FraudReject):   {Count: 2},
		k("2024-03-01 11", 1, 8, tapline.FraudDatacenter, tapline.FraudReject):   {Count: 1},
		k("2024-03-01 11", 1, 7, tapline.FraudClickInjection, tapline.FraudFlag): {Count: 4},
		k("2024-03-02 01", 1, 7, tapline.FraudClickFlooding, tapline.FraudFlag):  {Count: 9}, // past the range
		k("2024-03-01 11", 2, 7, tapline.FraudDatacenter, tapline.FraudFlag):     {Count: 5}, // another app
	}
	if err := fs.ApplyFacts(ctx, "t", first, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	if err := fs.ApplyFacts(ctx, "t", map[tapline.FactKey]tapline.FactValue{
		k("2024-03-01 10", 1, 7, tapline.FraudClickInjection, tapline.FraudFlag): {Count: 1},
	}, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReports(db)
	f := tapline.StatsFilter{AppID: 1, From: date(time.UTC, 2024, 3, 1), To: date(time.UTC, 2024, 3, 2), Location: time.UTC}
	got, err := r.Fraud(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []tapline.FraudCount{
		{Signal: tapline.FraudClickInjection, Action: tapline.FraudFlag, Count: 5},
		{Signal: tapline.FraudDatacenter, Action: tapline.FraudReject, Count: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Fraud = %+v, want %+v", got, want)
	}
	f.Where = []tapline.DimFilter{{Dim: "link", Value: "8"}}
	if got, err = r.Fraud(ctx, f); err != nil || !reflect.DeepEqual(got, []tapline.FraudCount{{Signal: tapline.FraudDatacenter, Action: tapline.FraudReject, Count: 1}}) {
		t.Errorf("Fraud of link 8 = %+v (%v), want 1 rejected datacenter tap", got, err)
	}
	f.Where = []tapline.DimFilter{{Dim: "source", Value: "facebook"}}
	if _, err := r.Fraud(ctx, f); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("Fraud filtered by source: %v, want EINVALID", err)
	}
}
