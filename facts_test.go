package tapline_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"tapline"
)

// TestFactDimsCoverFactKey checks that every FactKey field beyond Table,
// Hour and AppID is exactly one declared dimension, of a column type that
// fits the field.
func TestFactDimsCoverFactKey(t *testing.T) {
	typ := reflect.TypeFor[tapline.FactKey]()
	var columns []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Name {
		case "Table", "Hour", "AppID":
			continue
		}
		var k tapline.FactKey
		v := reflect.ValueOf(&k).Elem().Field(i)
		var want tapline.FactColumnType
		switch f.Type.Kind() {
		case reflect.Int64:
			v.SetInt(1)
			want = tapline.FactBigint
		case reflect.Int:
			v.SetInt(1)
			want = tapline.FactInteger
		case reflect.String:
			v.SetString("x")
			want = tapline.FactText
		default:
			t.Fatalf("FactKey.%s is a %s; declare a column type for it", f.Name, f.Type)
		}
		var set []*tapline.FactDim
		for _, d := range tapline.FactDims {
			if !d.IsZero(k) {
				set = append(set, d)
			}
		}
		if len(set) != 1 {
			t.Errorf("FactKey.%s is read by %d dimensions, want 1", f.Name, len(set))
			continue
		}
		if d := set[0]; d.Type != want {
			t.Errorf("FactKey.%s (%s) is column %s of type %s, want %s", f.Name, f.Type, d.Column, d.Type, want)
		}
		columns = append(columns, set[0].Column)
	}
	if len(columns) != len(tapline.FactDims) {
		t.Errorf("FactKey has %d dimension fields %v, FactDims declares %d", len(columns), columns, len(tapline.FactDims))
	}
}

func TestFactTablesDeclared(t *testing.T) {
	seen := map[tapline.FactTable]bool{}
	for _, d := range tapline.FactTables {
		if seen[d.Table] {
			t.Errorf("table %s declared twice", d.Table)
		}
		seen[d.Table] = true
		if got := d.Table.Desc(); got != d {
			t.Errorf("%s.Desc() = %v, want its declaration", d.Table, got)
		}
		if d.Count == "" {
			t.Errorf("table %s: Count says nothing", d.Table)
		}
		cols := map[string]bool{}
		for _, dim := range d.Dims {
			if cols[dim.Column] || !slices.Contains(tapline.FactDims, dim) {
				t.Errorf("table %s: dimension %s twice or not in FactDims", d.Table, dim.Column)
			}
			cols[dim.Column] = true
		}
	}
	if d := tapline.FactTable("nope").Desc(); d != nil {
		t.Errorf(`"nope".Desc() = %v, want nil`, d)
	}
}

func TestFactKeyNormalise(t *testing.T) {
	full := tapline.FactKey{Hour: 7200 + 59, AppID: 1, LinkID: 2, Platform: tapline.PlatformIOS, EventName: "open",
		Method: tapline.MethodReferrer, Currency: "EUR", Funnel: 3, Breakdown: "b", Step: 4, Bucket: 5}
	tests := []struct {
		name string
		in   tapline.FactKey
		want tapline.FactKey
	}{
		{"hits", full.For(tapline.FactHits),
			tapline.FactKey{Table: tapline.FactHits, Hour: 7200, AppID: 1, LinkID: 2, Platform: tapline.PlatformIOS}},
		{"events", full.For(tapline.FactEvents),
			tapline.FactKey{Table: tapline.FactEvents, Hour: 7200, AppID: 1, LinkID: 2, Platform: tapline.PlatformIOS, EventName: "open", Method: tapline.MethodReferrer}},
		{"revenue", full.For(tapline.FactRevenue),
			tapline.FactKey{Table: tapline.FactRevenue, Hour: 7200, AppID: 1, LinkID: 2, Platform: tapline.PlatformIOS, Currency: "EUR", Method: tapline.MethodReferrer}},
		{"funnel steps", full.For(tapline.FactFunnelSteps),
			tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: 7200, AppID: 1, Funnel: 3, Breakdown: "b", Step: 4, Bucket: 5}},
		{"negative hour floors", tapline.FactKey{Table: tapline.FactHits, Hour: -1}.Normalise(),
			tapline.FactKey{Table: tapline.FactHits, Hour: -3600}},
		{"unknown table keeps its dimensions", tapline.FactKey{Table: "nope", Hour: 3601, LinkID: 1}.Normalise(),
			tapline.FactKey{Table: "nope", Hour: 3600, LinkID: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in != tt.want {
				t.Errorf("got %+v, want %+v", tt.in, tt.want)
			}
			if tt.in.Table != "nope" {
				if err := tt.in.Validate(); err != nil {
					t.Errorf("Validate of a normalised key: %v", err)
				}
			}
		})
	}
}

func TestFactKeyValidate(t *testing.T) {
	tests := []struct {
		name string
		key  tapline.FactKey
		want string // error code
	}{
		{"hits", tapline.FactKey{Table: tapline.FactHits, Hour: 3600, AppID: 1, LinkID: 2, Platform: tapline.PlatformWeb}, ""},
		{"funnel steps", tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 9, Step: 1}, ""},
		{"unknown table", tapline.FactKey{Table: "nope"}, tapline.EINVALID},
		{"hour within the hour", tapline.FactKey{Table: tapline.FactHits, Hour: 3601}, tapline.EINVALID},
		{"hits with a method", tapline.FactKey{Table: tapline.FactHits, Method: tapline.MethodAdID}, tapline.EINVALID},
		{"installs with a step", tapline.FactKey{Table: tapline.FactInstalls, Step: 1}, tapline.EINVALID},
		{"funnel steps with a link", tapline.FactKey{Table: tapline.FactFunnelSteps, LinkID: 1}, tapline.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.key.Validate()
			if got := tapline.ErrorCode(err); got != tt.want {
				t.Errorf("Validate(%+v) = %v, want code %q", tt.key, err, tt.want)
			}
			if err != nil {
				t.Log(tapline.ErrorMessage(err))
			}
		})
	}
}

func TestFactTableCompare(t *testing.T) {
	d := tapline.FactFunnelSteps.Desc()
	k := tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 2, Breakdown: "b", Step: 2, Bucket: 3}
	less := []tapline.FactKey{
		{Table: tapline.FactFunnelSteps, Hour: 7200, AppID: 0, Funnel: 9},
		{Table: tapline.FactFunnelSteps, Hour: 0, AppID: 1, Funnel: 9},
		{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 1, Breakdown: "z"},
		{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 2, Breakdown: "a", Step: 9},
		{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 2, Breakdown: "b", Step: 1, Bucket: 9},
		{Table: tapline.FactFunnelSteps, Hour: 3600, AppID: 1, Funnel: 2, Breakdown: "b", Step: 2, Bucket: 2},
	}
	for _, l := range less {
		if c := d.Compare(l, k); c >= 0 {
			t.Errorf("Compare(%+v, %+v) = %d, want < 0", l, k, c)
		}
		if c := d.Compare(k, l); c <= 0 {
			t.Errorf("Compare(%+v, %+v) = %d, want > 0", k, l, c)
		}
	}
	if c := d.Compare(k, k); c != 0 {
		t.Errorf("Compare(k, k) = %d, want 0", c)
	}
}

// TestFactKeyRollups checks the rollup rows of a delta: in the daily and
// then the weekly rollup, the period's total and one row per report
// dimension its table keeps, on the UTC day or the week from its Monday,
// with the total's method and currency.
func TestFactKeyRollups(t *testing.T) {
	// Sunday 2024-03-10 05:00 UTC, in the week from Monday 4 March.
	hour := time.Date(2024, 3, 10, 5, 0, 0, 0, time.UTC).Unix()
	day, monday := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC).Unix()
	k := tapline.FactKey{Table: tapline.FactInstalls, Hour: hour, AppID: 1, LinkID: 12, Platform: tapline.PlatformIOS,
		Method: tapline.MethodReferrer, Source: "fb", Campaign: "spring"}
	var got []string
	for d := range k.Rollups() {
		if err := d.Validate(); err != nil {
			t.Errorf("%+v: %v", d, err)
		}
		start := map[tapline.FactTable]int64{tapline.FactDaily: day, tapline.FactWeekly: monday}[d.Table]
		if d.Hour != start || d.AppID != 1 || d.Measure != tapline.FactInstalls || d.Method != "attributed" {
			t.Errorf("rollup row %+v: want from %d, app 1, measure installs, method attributed", d, start)
		}
		got = append(got, string(d.Table)+" "+d.Dim+"="+d.Value)
	}
	var want []string
	for _, table := range []string{"daily", "weekly"} {
		for _, dv := range []string{"=", "link=12", "platform=ios", "method=referrer", "source=fb", "medium=", "campaign=spring", "adgroup=", "creative=", "site="} {
			want = append(want, table+" "+dv)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("rollup rows %q, want %q", got, want)
	}
	ev := tapline.FactKey{Table: tapline.FactEvents, Hour: hour, AppID: 1, EventName: "open", Method: tapline.MethodOrganic}
	var dims []string
	for d := range ev.Rollups() {
		if d.Table == tapline.FactDaily {
			dims = append(dims, d.Dim)
		}
	}
	if !slices.Contains(dims, "event") || len(dims) != 11 {
		t.Errorf("events' daily dims %q, want the total and 10, event among them", dims)
	}
	for range (tapline.FactKey{Table: tapline.FactFunnelSteps, Hour: hour, AppID: 1, Funnel: 2}).Rollups() {
		t.Error("funnel steps have rollup rows")
	}
	for range (tapline.FactKey{Table: tapline.FactTotals, Hour: hour, AppID: 1, Measure: tapline.FactHits}).Rollups() {
		t.Error("totals have rollup rows")
	}
	// Stopping early yields no more.
	n := 0
	for range k.Rollups() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("a loop that breaks saw %d rows", n)
	}
}

// TestFactPeriodFloor checks the starts of hours, days and weeks, before
// 1970 too.
func TestFactPeriodFloor(t *testing.T) {
	for _, tc := range []struct {
		p    tapline.FactPeriod
		in   time.Time
		want time.Time
	}{
		{tapline.PeriodHour, time.Date(2024, 3, 10, 5, 59, 59, 0, time.UTC), time.Date(2024, 3, 10, 5, 0, 0, 0, time.UTC)},
		{tapline.PeriodDay, time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{tapline.PeriodWeek, time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)},
		{tapline.PeriodWeek, time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)},
		{tapline.PeriodWeek, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 29, 0, 0, 0, 0, time.UTC)},
		{tapline.PeriodDay, time.Date(1969, 12, 31, 1, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		if got := tc.p.Floor(tc.in.Unix()); got != tc.want.Unix() {
			t.Errorf("%s of %s starts %s, want %s", tc.p.Column(), tc.in, time.Unix(got, 0).UTC(), tc.want)
		}
		if tc.want.Weekday() != time.Monday && tc.p == tapline.PeriodWeek {
			t.Errorf("week of %s starts on a %s", tc.in, tc.want.Weekday())
		}
	}
}

// TestFactKeyRollupValidate checks a rollup row's day or week and
// dimension.
func TestFactKeyRollupValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  tapline.FactKey
		want string
	}{
		{"a day", tapline.FactKey{Table: tapline.FactDaily, Hour: 86400, AppID: 1, Dim: "campaign", Value: "x", Measure: tapline.FactHits}, ""},
		{"an hour", tapline.FactKey{Table: tapline.FactDaily, Hour: 3600, AppID: 1}, tapline.EINVALID},
		{"no such dimension", tapline.FactKey{Table: tapline.FactDaily, Hour: 86400, AppID: 1, Dim: "colour"}, tapline.EINVALID},
		{"hits with a dimension name", tapline.FactKey{Table: tapline.FactHits, Hour: 3600, Dim: "link"}, tapline.EINVALID},
		{"normalised to the day", tapline.FactKey{Table: tapline.FactDaily, Hour: 86400 + 7*3600 + 5}.Normalise(), ""},
		{"a week from Monday", tapline.FactKey{Table: tapline.FactWeekly, Hour: 4 * 86400, AppID: 1}, ""},
		{"a week from Thursday", tapline.FactKey{Table: tapline.FactWeekly, Hour: 0, AppID: 1}, tapline.EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tapline.ErrorCode(tt.key.Validate()); got != tt.want {
				t.Errorf("Validate(%+v) code %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	if got := (tapline.FactKey{Table: tapline.FactDaily, Hour: -1}).Normalise().Hour; got != -86400 {
		t.Errorf("a daily key before 1970 floors to %d, want -86400", got)
	}
}

// TestFactTableKey checks the primary keys: the time after the app, but
// after the report dimension in the daily rollup; Compare follows them.
func TestFactTableKey(t *testing.T) {
	if got, want := tapline.FactHits.Desc().Key()[:3], []string{"app_id", "hour", "link_id"}; !slices.Equal(got, want) {
		t.Errorf("hits key starts %q, want %q", got, want)
	}
	if got, want := tapline.FactDaily.Desc().Key(), []string{"app_id", "dim", "day", "measure", "value", "method", "currency"}; !slices.Equal(got, want) {
		t.Errorf("daily key %q, want %q", got, want)
	}
	d := tapline.FactDaily.Desc()
	a := tapline.FactKey{Table: tapline.FactDaily, AppID: 1, Dim: "campaign", Hour: 2 * 86400}
	b := tapline.FactKey{Table: tapline.FactDaily, AppID: 1, Dim: "link", Hour: 86400}
	if d.Compare(a, b) >= 0 || d.Compare(b, a) <= 0 {
		t.Errorf("Compare orders by day before dim: campaign on day 2 not before link on day 1")
	}
	b.Dim = "campaign"
	if d.Compare(b, a) >= 0 {
		t.Errorf("Compare: day 1 not before day 2 within a dimension")
	}
}
