package facts_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/facts"
)

var t0 = time.Date(2026, 11, 21, 13, 45, 0, 0, time.UTC)

func TestBatchAttributionChange(t *testing.T) {
	c := &tapline.Conversion{AppID: 7, InstallTime: t0, Platform: tapline.PlatformIOS}
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	matched := tapline.Attribution{HitID: "h1", LinkID: 3, Method: tapline.MethodFingerprint, HitTime: t0.Add(-90 * time.Second)}

	b := facts.Batch{}
	b.Change(c, &tapline.AttributionChange{To: organic})
	b.Change(c, &tapline.AttributionChange{From: &organic, To: matched})

	hour := tapline.HourOf(t0)
	want := facts.Batch{
		{Table: tapline.FactInstalls, Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}:    {Count: 1},
		{Table: tapline.FactConversions, Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}: {Count: 1, Sum: 90_000},
		// The cohort's size moves with the install.
		{Table: tapline.FactCohortActivity, Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint}: {Count: 1},
	}
	if len(b) != len(want) {
		t.Fatalf("got %d rows %v, want %d rows %v (the organic install must cancel out)", len(b), b, len(want), want)
	}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("row %+v = %+v, want %+v", k, b[k], v)
		}
	}
}

// TestBatchChangeFraud checks that a change counts the fraud signals it
// records, once each, under the tap's link and the action, in the
// install's hour; a replayed change counts them again.
func TestBatchChangeFraud(t *testing.T) {
	c := &tapline.Conversion{AppID: 7, InstallTime: t0, Platform: tapline.PlatformAndroid}
	ch := &tapline.AttributionChange{To: tapline.Attribution{Method: tapline.MethodOrganic}, Fraud: []tapline.FraudFinding{
		{Signal: tapline.FraudClickInjection, LinkID: 3, HitID: "h1", Action: tapline.FraudReject},
		{Signal: tapline.FraudDatacenter, LinkID: 3, HitID: "h1", Action: tapline.FraudFlag},
	}}
	b := facts.Batch{}
	b.Change(c, ch)
	b.Change(c, ch)
	hour := tapline.HourOf(t0)
	key := func(s tapline.FraudSignal, a tapline.FraudAction) tapline.FactKey {
		return tapline.FactKey{Table: tapline.FactFraud, Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformAndroid, Signal: s, Action: a}
	}
	if got := b[key(tapline.FraudClickInjection, tapline.FraudReject)]; got != (tapline.FactValue{Count: 2}) {
		t.Errorf("rejecting click injection row %+v, want count 2", got)
	}
	if got := b[key(tapline.FraudDatacenter, tapline.FraudFlag)]; got != (tapline.FactValue{Count: 2}) {
		t.Errorf("flagged datacenter row %+v, want count 2", got)
	}
	if got := b[tapline.FactKey{Table: tapline.FactInstalls, Hour: hour, AppID: 7, Platform: tapline.PlatformAndroid, Method: tapline.MethodOrganic}]; got.Count != 2 {
		t.Errorf("organic installs %+v, want 2", got)
	}
}

func TestBatchEvent(t *testing.T) {
	tests := []struct {
		name     string
		event    tapline.Event
		attr     tapline.Attribution
		wantRows int
		wantLink int64
	}{
		{"organic open", tapline.Event{AppID: 1, Name: "open", Time: t0}, tapline.Attribution{}, 1, 0},
		{"attributed purchase", tapline.Event{AppID: 1, Name: "purchase", Time: t0, Revenue: &tapline.Revenue{Micros: 9_990_000, Currency: "USD"}},
			tapline.Attribution{LinkID: 4, Method: tapline.MethodReferrer}, 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := facts.Batch{}
			b.Event(&tt.event, tt.attr)
			if len(b) != tt.wantRows {
				t.Fatalf("rows = %d (%v), want %d", len(b), b, tt.wantRows)
			}
			for k, v := range b {
				if k.LinkID != tt.wantLink {
					t.Errorf("row %+v link = %d, want %d", k, k.LinkID, tt.wantLink)
				}
				if k.Table == tapline.FactEvents && (k.Method == "" || v.Count != 1) {
					t.Errorf("event row %+v = %+v, want method set and count 1", k, v)
				}
				if k.Table == tapline.FactRevenue && (v.Sum != 9_990_000 || k.Currency != "USD") {
					t.Errorf("revenue row %+v = %+v", k, v)
				}
			}
		})
	}
}

func TestClickToInstallMillis(t *testing.T) {
	if got := facts.ClickToInstallMillis(t0, t0.Add(time.Minute)); got != 0 {
		t.Errorf("hit after install: got %d, want 0", got)
	}
	if got := facts.ClickToInstallMillis(t0, t0.Add(-time.Hour)); got != 3_600_000 {
		t.Errorf("got %d, want 3600000", got)
	}
	if got := facts.ClickToInstallMillis(t0, t0.Add(-1500*time.Microsecond)); got != 1 {
		t.Errorf("1.5 ms: got %d, want 1 (whole milliseconds)", got)
	}
}

// TestAggregatorSnapshots checks that concurrent commits and takes lose and
// duplicate nothing: the sum of all snapshots equals the sum of all commits,
// and each snapshot's offsets cover exactly the commits in it.
func TestAggregatorSnapshots(t *testing.T) {
	a := facts.NewAggregator()
	key := tapline.FactKey{Table: tapline.FactHits, AppID: 1}
	const workers, perWorker = 4, 2000

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				a.Commit("hits", w, int64(i), facts.Batch{key: {Count: 1}}, tapline.FlushRows{})
			}
		})
	}
	var total int64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		b, _, offs := a.Take()
		var covered int64
		for _, o := range offs {
			covered += o.Offset
		}
		total += b[key].Count
		if total != covered {
			t.Fatalf("snapshot offsets cover %d records but deltas sum to %d", covered, total)
		}
		if !finished && len(b) > 0 {
			// Put half back now and then, as a failed flush would.
			a.Restore(b, tapline.FlushRows{})
			total -= b[key].Count
		}
	}
	if want := int64(workers * perWorker); total != want {
		t.Fatalf("total = %d, want %d", total, want)
	}
}

// TestBatchCampaign checks that a hit's campaign dimensions come from its
// query parameters (utm names first, then the AppsFlyer and Adjust ones),
// and that installs, conversions, events and revenue take them from the
// attributed hit; a re-attribution moves the install between campaigns.
func TestBatchCampaign(t *testing.T) {
	params := map[string]string{"utm_source": "facebook", "pid": "ignored", "c": "spring", "utm_medium": " cpc ",
		"af_adset": "set-1", "utm_content": "video", "af_siteid": strings.Repeat("é", 60), "utm_campaign": ""}
	camp := tapline.FactKey{Source: "facebook", Medium: "cpc", Campaign: "spring", AdGroup: "set-1", Creative: "video",
		Site: strings.Repeat("é", 50)} // cut at 100 bytes, between characters
	with := func(k tapline.FactKey) tapline.FactKey {
		k.Source, k.Medium, k.Campaign, k.AdGroup, k.Creative, k.Site = camp.Source, camp.Medium, camp.Campaign, camp.AdGroup, camp.Creative, camp.Site
		return k
	}
	hour := tapline.HourOf(t0)
	b := facts.Batch{}
	b.Hit(&tapline.Hit{AppID: 7, LinkID: 3, Time: t0, Platform: tapline.PlatformIOS, Params: params})
	c := &tapline.Conversion{AppID: 7, InstallTime: t0, Platform: tapline.PlatformIOS}
	organic := tapline.Attribution{Method: tapline.MethodOrganic}
	paid := tapline.Attribution{HitID: "h1", LinkID: 3, Method: tapline.MethodFingerprint, HitTime: t0, HitParams: params}
	b.Change(c, &tapline.AttributionChange{To: organic})
	b.Change(c, &tapline.AttributionChange{From: &organic, To: paid})
	b.Event(&tapline.Event{AppID: 7, Name: "purchase", Time: t0, Device: tapline.Device{Platform: tapline.PlatformIOS},
		Revenue: &tapline.Revenue{Micros: 990_000, Currency: "USD"}}, paid)

	base := tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS}
	m := func(t tapline.FactTable, k tapline.FactKey) tapline.FactKey { k.Table = t; return k }
	want := facts.Batch{
		with(m(tapline.FactHits, base)): {Count: 1},
		with(m(tapline.FactInstalls, tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint})):                      {Count: 1},
		with(m(tapline.FactConversions, tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint})):                   {Count: 1},
		with(m(tapline.FactEvents, tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint, EventName: "purchase"})): {Count: 1},
		with(m(tapline.FactRevenue, tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Currency: "USD", Method: tapline.MethodFingerprint})):      {Count: 1, Sum: 990_000},
		with(m(tapline.FactCohortActivity, tapline.FactKey{Hour: hour, AppID: 7, LinkID: 3, Platform: tapline.PlatformIOS, Method: tapline.MethodFingerprint})):                {Count: 1},
	}
	if len(b) != len(want) {
		t.Fatalf("got %d rows %v, want %d (the organic install cancels out)", len(b), b, len(want))
	}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("row %+v = %+v, want %+v", k, b[k], v)
		}
	}
	// A NUL, a control character and bytes that are not UTF-8 are dropped:
	// PostgreSQL would refuse the whole flush over them.
	if k := (tapline.FactKey{}).WithCampaign(map[string]string{"utm_source": "a\x00b\x01c\xff", "utm_campaign": "\x00"}); k.Source != "abc" || k.Campaign != "" {
		t.Errorf("unclean values give source %q, campaign %q", k.Source, k.Campaign)
	}
	// AppsFlyer and Adjust names where the utm ones are missing.
	k := tapline.FactKey{}.WithCampaign(map[string]string{"pid": "googleadwords_int", "c": "fall", "af_ad": "banner"})
	if k.Source != "googleadwords_int" || k.Campaign != "fall" || k.Creative != "banner" || k.Medium != "" {
		t.Errorf("AppsFlyer parameters give %+v", k)
	}
	k = tapline.FactKey{}.WithCampaign(map[string]string{"network": "Unity", "campaign": "c1", "adgroup": "g1", "creative": "cr1"})
	if k.Source != "Unity" || k.Campaign != "c1" || k.AdGroup != "g1" || k.Creative != "cr1" {
		t.Errorf("Adjust parameters give %+v", k)
	}
}

// TestAggregatorConversions checks that a snapshot holds each conversion's
// latest state, and that restoring a failed flush's conversions does not
// replace a state written since.
func TestAggregatorConversions(t *testing.T) {
	a := facts.NewAggregator()
	state := func(id string, changes int) *tapline.Conversion {
		c := &tapline.Conversion{ID: id}
		for i := range changes {
			c.History = append(c.History, tapline.AttributionChange{By: fmt.Sprintf("events/0/%d", i)})
		}
		return c
	}
	conv := func(cs ...*tapline.Conversion) tapline.FlushRows { return tapline.FlushRows{Conversions: cs} }
	a.Commit("events", 0, 1, nil, conv(state("a", 1)))
	a.Commit("hits", 0, 1, nil, conv(state("a", 2), state("b", 1)))
	a.Commit("events", 0, 2, nil, conv(state("a", 1))) // a replay of a's first change, read back at its later state elsewhere
	if got, _ := a.Size(); got != 2 {
		t.Errorf("Pending = %d, want 2 conversions", got)
	}
	// take returns the changes of each conversion of the next snapshot, and
	// its rows.
	take := func() (map[string]int, tapline.FlushRows) {
		_, rows, _ := a.Take()
		got := map[string]int{}
		for _, c := range rows.Conversions {
			got[c.ID] = len(c.History)
		}
		return got, rows
	}
	want := func(what string, got map[string]int, a int) {
		t.Helper()
		if len(got) != 2 || got["a"] != a || got["b"] != 1 {
			t.Fatalf("%s: conversions = %v, want a with %d changes and b with 1", what, got, a)
		}
	}
	got, rows := take()
	want("snapshot", got, 2)
	a.Commit("hits", 0, 2, nil, conv(state("a", 3)))
	a.Restore(nil, rows)
	got, rows = take()
	want("after restore", got, 3)
	// A failed snapshot with a's newest state, restored over an older
	// state a slower worker committed since: the newest stays.
	a.Commit("events", 0, 3, nil, conv(state("a", 2)))
	a.Restore(nil, rows)
	got, _ = take()
	want("after restoring over an older state", got, 3)
}
