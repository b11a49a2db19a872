package facts_test

import (
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

func TestBatchFunnelOutcome(t *testing.T) {
	hour := tapline.HourOf(t0)
	// Steps 1, 2 and 3 reached: 0 s, 45 s (bucket 30 s) and 2 h (bucket 2 h).
	o := &tapline.FunnelOutcome{Hour: hour, Breakdown: "ios", Steps: []int64{0, 45, 7200}}
	row := func(step, bucket int) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: hour, AppID: 7, Funnel: 12, Breakdown: "ios", Step: step, Bucket: bucket}
	}
	b := facts.Batch{}
	b.FunnelOutcome(7, 12, o, +1)
	want := facts.Batch{
		row(1, 0): {Count: 1, Sum: 0},
		row(2, 2): {Count: 1, Sum: 45},
		row(3, 9): {Count: 1, Sum: 7200},
	}
	equalBatch(t, b, want)

	b.FunnelOutcome(7, 12, o, -1)
	b.FunnelOutcome(7, 12, nil, +1)
	b.FunnelOutcome(7, 12, &tapline.FunnelOutcome{Hour: hour}, +1)
	equalBatch(t, b, facts.Batch{})
}

func TestBatchFunnelChange(t *testing.T) {
	hour := tapline.HourOf(t0)
	row := func(step, bucket int) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: hour, AppID: 7, Funnel: 12, Step: step, Bucket: bucket}
	}
	one := &tapline.FunnelOutcome{Hour: hour, Steps: []int64{0}}
	two := &tapline.FunnelOutcome{Hour: hour, Steps: []int64{0, 61}}
	tests := []struct {
		name     string
		from, to *tapline.FunnelOutcome
		want     facts.Batch
	}{
		{"enters", nil, one, facts.Batch{row(1, 0): {Count: 1}}},
		{"reaches a step more", one, two, facts.Batch{row(2, 3): {Count: 1, Sum: 61}}},
		{"step 2 later", two, &tapline.FunnelOutcome{Hour: hour, Steps: []int64{0, 3600}},
			facts.Batch{row(2, 3): {Count: -1, Sum: -61}, row(2, 8): {Count: 1, Sum: 3600}}},
		{"leaves", two, nil, facts.Batch{row(1, 0): {Count: -1}, row(2, 3): {Count: -1, Sum: -61}}},
		{"unchanged", two, two, facts.Batch{}},
		{"other entry hour", one, &tapline.FunnelOutcome{Hour: hour + 3600, Steps: []int64{0}},
			facts.Batch{row(1, 0): {Count: -1}, {Table: tapline.FactFunnelSteps, Hour: hour + 3600, AppID: 7, Funnel: 12, Step: 1}: {Count: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := facts.Batch{}
			b.FunnelChange(7, 12, tt.from, tt.to)
			equalBatch(t, b, tt.want)
		})
	}
}

// TestBatchKeysDeclared checks that every key the batch builds is a valid
// row of its declared table: no dimension the table does not keep.
func TestBatchKeysDeclared(t *testing.T) {
	b := facts.Batch{}
	b.Hit(&tapline.Hit{AppID: 1, LinkID: 2, Platform: tapline.PlatformIOS, Time: t0})
	b.BotHit(&tapline.Hit{AppID: 1, LinkID: 2, Platform: tapline.PlatformWeb, Time: t0, Bot: "slackbot"})
	b.Event(&tapline.Event{AppID: 1, Name: "purchase", Time: t0, Device: tapline.Device{Platform: tapline.PlatformIOS},
		Revenue: &tapline.Revenue{Micros: 1, Currency: "USD"}}, tapline.Attribution{LinkID: 2, Method: tapline.MethodAdID})
	b.Attribution(&tapline.Conversion{AppID: 1, InstallTime: t0, Platform: tapline.PlatformIOS},
		tapline.Attribution{LinkID: 2, Method: tapline.MethodFingerprint, HitTime: t0.Add(-time.Minute)}, +1)
	b.FunnelOutcome(1, 3, &tapline.FunnelOutcome{Hour: tapline.HourOf(t0), Breakdown: "2", Steps: []int64{0, 5}}, +1)
	b.Fraud(&tapline.Conversion{AppID: 1, InstallTime: t0, Platform: tapline.PlatformIOS},
		[]tapline.FraudFinding{{Signal: tapline.FraudDatacenter, LinkID: 2, Action: tapline.FraudReject}})
	b.CohortRevenue(&tapline.Event{AppID: 1, Time: t0.Add(50 * time.Hour), Revenue: &tapline.Revenue{Micros: 1, Currency: "USD"}},
		&tapline.Conversion{AppID: 1, InstallTime: t0, Platform: tapline.PlatformIOS}, tapline.Attribution{LinkID: 2, Method: tapline.MethodAdID})
	b.Attribution(&tapline.Conversion{AppID: 1, InstallTime: t0, Platform: tapline.PlatformIOS, Reinstall: &tapline.Reinstall{Of: "cv-x"}},
		tapline.Attribution{LinkID: 2, Method: tapline.MethodAdID, HitParams: map[string]string{"utm_source": "s"}}, +1)
	b.Reengagement(&tapline.Reengagement{AppID: 1, OpenTime: t0, Platform: tapline.PlatformIOS,
		Attribution: tapline.Attribution{LinkID: 2, Method: tapline.MethodAdID, HitParams: map[string]string{"utm_campaign": "c"}}})
	// Every table but the totals and the rollups, which the fact store
	// derives (their keys must be valid too).
	tables := map[tapline.FactTable]bool{}
	for k := range b {
		tables[k.Table] = true
		if err := k.Validate(); err != nil {
			t.Errorf("key %+v: %v", k, err)
		}
		if tk, ok := k.Total(); ok {
			tables[tk.Table] = true
			if err := tk.Validate(); err != nil {
				t.Errorf("total %+v of %+v: %v", tk, k, err)
			}
		}
		for dk := range k.Rollups() {
			tables[dk.Table] = true
			if err := dk.Validate(); err != nil {
				t.Errorf("rollup row %+v of %+v: %v", dk, k, err)
			}
		}
	}
	// The SKAdNetwork postbacks' rows are the collector's, made by the
	// postback itself.
	win := 1
	sk, _ := (&tapline.SKANPostback{AppID: 1, Status: tapline.SKANVerified, AdNetworkID: "n", SourceIdentifier: "42",
		Window: 1, ConversionValue: &win, ReceivedAt: t0}).Fact()
	tables[sk.Table] = true
	if err := sk.Validate(); err != nil {
		t.Errorf("key %+v: %v", sk, err)
	}
	if len(tables) != len(tapline.FactTables) {
		t.Errorf("deltas in %d tables %v, want every one of %d", len(tables), tables, len(tapline.FactTables))
	}

	// A key with a dimension its table does not keep lands on the table's row.
	b = facts.Batch{}
	k := tapline.FactKey{Table: tapline.FactHits, Hour: tapline.HourOf(t0), AppID: 1, Platform: tapline.PlatformIOS}
	sloppy := k
	sloppy.Method, sloppy.Hour = tapline.MethodAdID, k.Hour+59
	b.Add(k, tapline.FactValue{Count: 1})
	b.Add(sloppy, tapline.FactValue{Count: 1})
	equalBatch(t, b, facts.Batch{k: {Count: 2}})
}

func equalBatch(t *testing.T, got, want facts.Batch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows %v, want %d rows %v", len(got), got, len(want), want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("row %+v = %+v, want %+v", k, got[k], v)
		}
	}
}
