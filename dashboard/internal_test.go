package dashboard

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 29, 23, 30, 0, 0, time.UTC) // already March 30 in Berlin
	tests := []struct {
		name     string
		query    string
		from, to string
		days     int
		err      string
	}{
		{name: "defaults", query: "", from: "2026-03-16", to: "2026-03-29", days: 14},
		{name: "today in zone", query: "tz=Europe/Berlin", from: "2026-03-17", to: "2026-03-30", days: 14},
		{name: "explicit", query: "from=2026-01-01&to=2026-01-31", from: "2026-01-01", to: "2026-01-31", days: 31},
		{name: "one day", query: "from=2026-01-05&to=2026-01-05", from: "2026-01-05", to: "2026-01-05", days: 1},
		{name: "only to", query: "to=2026-02-10", from: "2026-01-28", to: "2026-02-10", days: 14},
		{name: "full year", query: "from=2024-01-01&to=2024-12-31", from: "2024-01-01", to: "2024-12-31", days: 366},
		{name: "too long", query: "from=2024-01-01&to=2025-01-01", err: "367 days"},
		{name: "from after to", query: "from=2026-02-02&to=2026-02-01", err: "from (2026-02-02) is after to (2026-02-01)"},
		{name: "bad from", query: "from=yesterday", err: "from:"},
		{name: "bad to", query: "to=2026-13-01", err: "to:"},
		{name: "bad tz", query: "tz=Mars/Olympus", err: "tz: unknown time zone"},
		{name: "local tz refused", query: "tz=Local", err: "tz:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, _ := url.ParseQuery(tt.query)
			dr, err := parseRange(q, now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseRange(%q) error = %v, want one containing %q", tt.query, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRange(%q): %v", tt.query, err)
			}
			if got := dr.From.Format(dayLayout); got != tt.from {
				t.Errorf("from = %s, want %s", got, tt.from)
			}
			if got := dr.To.Format(dayLayout); got != tt.to {
				t.Errorf("to = %s, want %s", got, tt.to)
			}
			if got := len(dr.Days()); got != tt.days {
				t.Errorf("len(Days()) = %d, want %d", got, tt.days)
			}
		})
	}
}

func TestRangeFilterAcrossDST(t *testing.T) {
	t.Parallel()
	q := url.Values{"from": {"2026-03-29"}, "to": {"2026-03-29"}, "tz": {"Europe/Berlin"}}
	dr, err := parseRange(q, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := dr.Filter(7)
	// The day clocks go forward in Berlin has 23 hours.
	if got, want := f.To.Sub(f.From), 23*time.Hour; got != want {
		t.Errorf("filter spans %v, want %v", got, want)
	}
	if got, want := f.From.UTC(), time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("filter from = %v, want %v", got, want)
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	now := time.Unix(1_800_000_000, 0)
	s := session{UserID: 42, Expires: now.Add(time.Hour), ID: "c2Vzc2lvbg"}
	v := signSession(key, s)
	got, ok := parseSession(key, v, now)
	if !ok || got.UserID != 42 || got.ID != s.ID || !got.Expires.Equal(s.Expires) {
		t.Fatalf("parseSession(signSession(%+v)) = %+v, %v", s, got, ok)
	}
	if _, ok := parseSession(key, v, now.Add(time.Hour)); ok {
		t.Error("session accepted at its expiry")
	}
	if _, ok := parseSession([]byte(strings.Repeat("x", 32)), v, now); ok {
		t.Error("session accepted under another key")
	}
	other := signSession(key, session{UserID: 43, Expires: s.Expires, ID: s.ID})
	payload, _, _ := strings.Cut(other, ".")
	_, sig, _ := strings.Cut(v, ".")
	if _, ok := parseSession(key, payload+"."+sig, now); ok {
		t.Error("session accepted with a swapped payload")
	}
	for _, bad := range []string{"", ".", "abc", v + "x", "x" + v} {
		if _, ok := parseSession(key, bad, now); ok {
			t.Errorf("parseSession(%q) accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"count small", formatCount(999), "999"},
		{"count thousands", formatCount(1234567), "1,234,567"},
		{"count negative", formatCount(-1234), "-1,234"},
		{"percent", formatPercent(0.12345), "12.3%"},
		{"percent zero", formatPercent(0), "0.0%"},
		{"revenue none", formatRevenue(nil), "–"},
		{"revenue sorted", formatRevenue(map[string]int64{"USD": 12_345_000, "EUR": 4_990_000}), "4.99 EUR, 12.35 USD"},
		{"revenue big", formatRevenue(map[string]int64{"JPY": 1_234_567_000_000}), "1,234,567.00 JPY"},
		{"micros negative", formatMicros(-1_500_000), "-1.50"},
		{"duration days", formatDuration(7 * 24 * time.Hour), "7d"},
		{"duration hours", formatDuration(90 * time.Minute), "1h30m"},
		{"duration whole hours", formatDuration(2 * time.Hour), "2h"},
		{"duration minutes", formatDuration(10 * time.Minute), "10m"},
		{"seconds zero", formatSeconds(0), "0.0s"},
		{"seconds sub-second", formatSeconds(0.42), "0.4s"},
		{"seconds fraction", formatSeconds(7.26), "7.3s"},
		{"seconds whole", formatSeconds(12), "12s"},
		{"seconds near a minute", formatSeconds(59.7), "1m"},
		{"seconds minutes", formatSeconds(200), "3m 20s"},
		{"seconds hours", formatSeconds(3725), "1h 2m"},
		{"seconds whole hours", formatSeconds(7200), "2h"},
		{"seconds days", formatSeconds(97200), "1d 3h"},
		{"seconds negative", formatSeconds(-1), "–"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]int64{0: 4, 3: 4, 5: 8, 7: 8, 11: 12, 13: 20, 101: 120, 450: 500, 1000: 1000, 1259: 1500, 9000: 10000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "/apps", "/apps/3?tz=UTC": "/apps/3?tz=UTC", "//evil.example": "/apps", "/\\evil.example": "/apps", "https://evil.example/": "/apps",
		// Browsers drop tabs and newlines from URLs, so these become //evil.example.
		"/\t/evil.example": "/apps", "/\n/evil.example": "/apps", "/\r\n/evil.example": "/apps", "\t//evil.example": "/apps",
		"/apps/\x00": "/apps", "/apps\\..\\x": "/apps"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{SessionKey: make([]byte, 32), CollectorURL: "http://localhost:8080", AdminToken: "0123456789abcdef"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"short key", func(c *Config) { c.SessionKey = make([]byte, 31) }, "SessionKey"},
		{"short token", func(c *Config) { c.AdminToken = "short" }, "AdminToken"},
		{"no collector", func(c *Config) { c.CollectorURL = "" }, "CollectorURL"},
		{"relative collector", func(c *Config) { c.CollectorURL = "localhost:8080" }, "CollectorURL"},
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tt.name, err, tt.field)
		}
	}
	empty := Config{}
	err := empty.Validate()
	if err == nil || !strings.Contains(err.Error(), "SessionKey") || !strings.Contains(err.Error(), "CollectorURL") {
		t.Errorf("Validate(empty) = %v, want every bad field named", err)
	}
}

// TestChartLabelsTheLastDay checks that the chart always labels its last
// day, for ranges whose length is and is not a multiple of the label step,
// and never puts two labels closer than chartLabelGap.
func TestChartLabelsTheLastDay(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := 1; n <= MaxDays; n++ {
		var days []tapline.DailyStats
		for i := range n {
			days = append(days, tapline.DailyStats{Day: start.AddDate(0, 0, i).Format(dayLayout), Hits: int64(i)})
		}
		c := buildChart(days)
		if len(c.Labels) == 0 {
			t.Fatalf("%d days: no labels", n)
		}
		if got, want := c.Labels[len(c.Labels)-1].Label, start.AddDate(0, 0, n-1).Format("Jan 2"); got != want {
			t.Errorf("%d days: last label %q, want %q", n, got, want)
		}
		for i := 1; i < len(c.Labels); i++ {
			a, _ := strconv.ParseFloat(c.Labels[i-1].X, 64)
			b, _ := strconv.ParseFloat(c.Labels[i].X, 64)
			if b-a < chartLabelGap-0.1 { // X is rounded to a tenth
				t.Errorf("%d days: labels %q and %q are %.1f apart", n, c.Labels[i-1].Label, c.Labels[i].Label, b-a)
			}
		}
	}
}

// TestDailyRows checks the daily table's order and folding: newest first,
// runs of at least minEmptyRun empty days as one row wherever they lie,
// shorter runs day by day.
func TestDailyRows(t *testing.T) {
	t.Parallel()
	// Days 1..10: traffic on 2, 3 and 7; a day with only revenue is not empty.
	var days []tapline.DailyStats
	for i := 1; i <= 10; i++ {
		d := tapline.DailyStats{Day: "2026-01-" + fmt.Sprintf("%02d", i)}
		switch i {
		case 2, 3:
			d.Hits = 1
		case 7:
			d.RevenueMicros = map[string]int64{"USD": 1}
		}
		days = append(days, d)
	}
	var got []string
	for _, r := range dailyRows(days) {
		if r.EmptyDays > 0 {
			got = append(got, fmt.Sprintf("%s..%s(%d)", r.EmptyFrom, r.EmptyTo, r.EmptyDays))
		} else {
			got = append(got, r.Day)
		}
	}
	// A run at the newest end folds too; day 1 alone keeps its row.
	want := []string{"2026-01-08..2026-01-10(3)", "2026-01-07", "2026-01-04..2026-01-06(3)", "2026-01-03", "2026-01-02", "2026-01-01"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows %v\nwant %v", got, want)
	}
}

// TestPeriodChange checks the tiles' comparison with the previous period.
func TestPeriodChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got  periodChange
		text string
		cls  string
	}{
		{changeOf(150, 100), "+50.0%", "up"},
		{changeOf(87, 100), "−13.0%", "down"},
		{changeOf(5, 0), "new", "up"},
		{changeOf(0, 0), "±0%", "flat"},
		{changeOf(0, 7), "−100.0%", "down"},
		{pointsChange(0.05, 0.03, 10, 10), "+2.0 pp", "up"},
		{pointsChange(0.0301, 0.0302, 10, 10), "±0 pp", "flat"},
		{pointsChange(0.05, 0, 10, 0), "", ""},
	} {
		if tc.got.Text != tc.text || tc.got.Class != tc.cls {
			t.Errorf("got %q %q, want %q %q", tc.got.Text, tc.got.Class, tc.text, tc.cls)
		}
	}
}
