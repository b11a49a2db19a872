package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// at returns the Hour of a UTC time given as "2006-01-02 15".
func at(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := time.Parse("2006-01-02 15", s)
	if err != nil {
		t.Fatal(err)
	}
	return tapline.HourOf(tm)
}

func date(loc *time.Location, y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// seedReports fills app 1 (links 7 and 8, and organic) and app 2 with facts
// around 2024-03-01..03 UTC.
func seedReports(t *testing.T, db *postgres.DB) {
	t.Helper()
	k := func(table tapline.FactTable, hour string, app, link int64) tapline.FactKey {
		return tapline.FactKey{Table: table, Hour: at(t, hour), AppID: app, LinkID: link, Platform: tapline.PlatformIOS}
	}
	m := func(key tapline.FactKey, method tapline.MatchMethod) tapline.FactKey {
		key.Method = method
		return key
	}
	cur := func(key tapline.FactKey, currency string) tapline.FactKey {
		key.Currency = currency
		return key
	}
	ev := func(key tapline.FactKey, name string) tapline.FactKey {
		key.EventName = name
		return key
	}
	deltas := map[tapline.FactKey]tapline.FactValue{
		// 2024-03-01 UTC
		k(tapline.FactHits, "2024-03-01 00", 1, 7):                                             {Count: 10},
		k(tapline.FactHits, "2024-03-01 23", 1, 8):                                             {Count: 5},
		m(k(tapline.FactConversions, "2024-03-01 23", 1, 7), tapline.MethodFingerprint):        {Count: 2, Sum: 600_000},
		m(k(tapline.FactConversions, "2024-03-01 23", 1, 7), tapline.MethodReferrer):           {Count: 1, Sum: 60_000},
		m(k(tapline.FactConversions, "2024-03-01 23", 1, 0), tapline.MethodOrganic):            {Count: 4},
		m(k(tapline.FactInstalls, "2024-03-01 23", 1, 7), tapline.MethodFingerprint):           {Count: 3},
		m(k(tapline.FactInstalls, "2024-03-01 23", 1, 0), tapline.MethodOrganic):               {Count: 4},
		cur(k(tapline.FactRevenue, "2024-03-01 12", 1, 7), "USD"):                              {Count: 2, Sum: 1_990_000},
		cur(k(tapline.FactRevenue, "2024-03-01 13", 1, 0), "EUR"):                              {Count: 1, Sum: 500_000},
		m(ev(k(tapline.FactEvents, "2024-03-01 13", 1, 7), "open"), tapline.MethodFingerprint): {Count: 6},
		// 2024-03-02 05:00 UTC is 2024-03-01 21:00 in Los Angeles.
		k(tapline.FactHits, "2024-03-02 05", 1, 7):                               {Count: 4},
		m(k(tapline.FactConversions, "2024-03-02 05", 1, 8), tapline.MethodAdID): {Count: 1, Sum: 100_000},
		// 2024-03-03 has nothing; 2024-03-04 is outside the range.
		k(tapline.FactHits, "2024-03-04 01", 1, 7): {Count: 100},
		// Another app.
		k(tapline.FactHits, "2024-03-01 10", 2, 9): {Count: 1000},
	}
	if err := postgres.NewFactStore(db).ApplyFacts(context.Background(), "seed", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
}

func TestDailyStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	seedReports(t, db)
	r := postgres.NewReports(db)
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		filter tapline.StatsFilter
		want   []tapline.DailyStats
	}{
		{
			name:   "utc",
			filter: tapline.StatsFilter{AppID: 1, From: date(time.UTC, 2024, 3, 1), To: date(time.UTC, 2024, 3, 4)},
			want: []tapline.DailyStats{
				{Day: "2024-03-01", Hits: 15, Installs: 7, OrganicInstalls: 4, Conversions: 3, Events: 6,
					ConversionRate: 3.0 / 15, RevenueMicros: map[string]int64{"USD": 1_990_000, "EUR": 500_000}},
				{Day: "2024-03-02", Hits: 4, Conversions: 1, ConversionRate: 0.25},
				{Day: "2024-03-03"},
			},
		},
		{
			name:   "nil location is utc",
			filter: tapline.StatsFilter{AppID: 1, From: date(time.UTC, 2024, 3, 2), To: date(time.UTC, 2024, 3, 3)},
			want:   []tapline.DailyStats{{Day: "2024-03-02", Hits: 4, Conversions: 1, ConversionRate: 0.25}},
		},
		{
			name:   "los angeles",
			filter: tapline.StatsFilter{AppID: 1, From: date(la, 2024, 2, 29), To: date(la, 2024, 3, 3), Location: la},
			want: []tapline.DailyStats{
				// 03-01 00:00 UTC is 02-29 16:00 PST.
				{Day: "2024-02-29", Hits: 10, ConversionRate: 0},
				{Day: "2024-03-01", Hits: 5 + 4, Installs: 7, OrganicInstalls: 4, Conversions: 3 + 1, Events: 6,
					ConversionRate: 4.0 / 9, RevenueMicros: map[string]int64{"USD": 1_990_000, "EUR": 500_000}},
				{Day: "2024-03-02"},
			},
		},
		{
			name:   "one link",
			filter: tapline.StatsFilter{AppID: 1, LinkID: 7, From: date(time.UTC, 2024, 3, 1), To: date(time.UTC, 2024, 3, 3)},
			want: []tapline.DailyStats{
				{Day: "2024-03-01", Hits: 10, Installs: 3, Conversions: 3, Events: 6, ConversionRate: 0.3,
					RevenueMicros: map[string]int64{"USD": 1_990_000}},
				{Day: "2024-03-02", Hits: 4},
			},
		},
		{
			name:   "app without facts",
			filter: tapline.StatsFilter{AppID: 3, From: date(time.UTC, 2024, 3, 1), To: date(time.UTC, 2024, 3, 3)},
			want:   []tapline.DailyStats{{Day: "2024-03-01"}, {Day: "2024-03-02"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.DailyStats(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DailyStats =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestLinkStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	seedReports(t, db)
	s := postgres.NewAccountService(db)
	s.BcryptCost = bcrypt.MinCost
	acct := newAccount(t, s, "acme")
	app := newApp(t, s, acct.ID, "Game") // the first app: id 1
	if app.ID != 1 {
		t.Fatalf("app id %d, want 1", app.ID)
	}
	idle := &tapline.Link{AppID: app.ID, Slug: "idle"}
	if err := s.CreateLink(ctx, idle); err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReports(db)
	from, to := date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 4)
	for _, tc := range []struct {
		name   string
		filter tapline.StatsFilter
		want   []tapline.LinkStats
	}{
		{
			name:   "all links",
			filter: tapline.StatsFilter{AppID: 1, From: from, To: to},
			want: []tapline.LinkStats{
				{LinkID: idle.ID},
				{LinkID: 7, Hits: 14, Conversions: 3, ConversionRate: 3.0 / 14, MeanClickToInstall: 220,
					ByMethod: map[string]int64{"fingerprint": 2, "referrer": 1}},
				{LinkID: 8, Hits: 5, Conversions: 1, ConversionRate: 0.2, MeanClickToInstall: 100,
					ByMethod: map[string]int64{"advertising_id": 1}},
			},
		},
		{
			name:   "one link, one day",
			filter: tapline.StatsFilter{AppID: 1, LinkID: 8, From: from, To: date(time.UTC, 2024, 3, 2)},
			want:   []tapline.LinkStats{{LinkID: 8, Hits: 5}},
		},
		{
			name:   "nothing",
			filter: tapline.StatsFilter{AppID: 3, From: from, To: to},
			want:   []tapline.LinkStats{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.LinkStats(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LinkStats =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := postgres.NewReports(pgtest.Open(t))
	from, to := date(time.UTC, 2024, 3, 1), date(time.UTC, 2024, 3, 4)
	for _, tc := range []struct {
		name   string
		filter tapline.StatsFilter
		field  string
	}{
		{"no app", tapline.StatsFilter{From: from, To: to}, "app_id"},
		{"no range", tapline.StatsFilter{AppID: 1}, "from"},
		{"to before from", tapline.StatsFilter{AppID: 1, From: to, To: from}, "to"},
		{"empty range", tapline.StatsFilter{AppID: 1, From: from, To: from}, "to"},
		{"too long", tapline.StatsFilter{AppID: 1, From: from, To: from.AddDate(5, 0, 0)}, "to"},
		{"local zone", tapline.StatsFilter{AppID: 1, From: from, To: to, Location: time.Local}, "location"},
		{"unknown zone", tapline.StatsFilter{AppID: 1, From: from, To: to, Location: time.FixedZone("Nowhere/Zone", 3600)}, "location"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.DailyStats(ctx, tc.filter)
			wantCode(t, "DailyStats", err, tapline.EINVALID)
			if msg := tapline.ErrorMessage(err); len(msg) < len(tc.field) || msg[:len(tc.field)] != tc.field {
				t.Errorf("DailyStats message %q does not name %q", msg, tc.field)
			}
			_, err = r.LinkStats(ctx, tc.filter)
			if tc.name != "unknown zone" { // LinkStats needs no zone
				wantCode(t, "LinkStats", err, tapline.EINVALID)
			}
		})
	}
}
