package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"tapline"
	"tapline/loadgen"
	"tapline/postgres"
)

// The dashboard scenario: an app with DashboardLinks links and
// DashboardDays days of hourly facts, served by "tapline run -target
// dashboard" as its own process; the app page and two breakdowns over the
// whole range are asked for DashboardRequests times each, one at a time,
// timing each answer.

// DashboardTarget is the p99 the dashboard scenario is held to.
const DashboardTarget = 100 * time.Millisecond

// DashboardResult is the dashboard scenario's outcome.
type DashboardResult struct {
	Links    int            `json:"links"`
	Days     int            `json:"days"`
	FactRows int            `json:"fact_rows"` // in all fact tables
	Seconds  float64        `json:"prepare_seconds"`
	Rows     []DashboardRow `json:"rows"`
}

// DashboardRow is one page or API request, timed.
type DashboardRow struct {
	Name     string  `json:"name"`
	Path     string  `json:"path"`
	Requests int     `json:"requests"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Bytes    int     `json:"bytes"` // of the last answer
}

// dashboardRun is the dashboard scenario.
func (r *Runner) dashboardRun(ctx context.Context) error {
	c := &r.Config
	if c.DashboardLinks <= 0 || c.StartDashboard == nil {
		return nil
	}
	t0 := time.Now()
	s, err := r.seed(ctx, "dash", appSpec{name: "dash", windows: loadgen.DefaultWindows()})
	if err != nil {
		return err
	}
	defer s.db.Close()
	app := s.apps["dash"]
	res := &DashboardResult{Links: c.DashboardLinks, Days: c.DashboardDays}
	r.res.Dashboard = res
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if res.FactRows, err = seedDashboardFacts(ctx, s.db, app.ID, c.DashboardLinks, c.DashboardDays, end, c.Seed); err != nil {
		return err
	}
	// The planner's statistics, as autovacuum leaves them within a minute
	// of a write this size: timing the first minute without them times
	// plans for empty tables.
	if err := analyze(ctx, s.url); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	r.log.Info("bench: dashboard facts stored", "rows", res.FactRows, "seconds", res.Seconds)

	p, err := c.StartDashboard(ctx, s.url, fmt.Sprintf("%s/tapline-dash", c.WorkDir))
	if err != nil {
		return err
	}
	defer p.Stop()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := url.Values{"login": {benchEmail}, "password": {benchPassword}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL()+"/login", strings.NewReader(login.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.URL())
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("log in: status %d", resp.StatusCode)
	}
	last := end.Add(-24 * time.Hour)
	rng := fmt.Sprintf("from=%s&to=%s", last.AddDate(0, 0, -(c.DashboardDays-1)).Format(time.DateOnly), last.Format(time.DateOnly))
	id := app.ID
	for _, q := range []struct{ name, path string }{
		{"app page (by link)", fmt.Sprintf("/apps/%d?%s", id, rng)},
		{"breakdown by campaign", fmt.Sprintf("/api/v1/apps/%d/breakdown?by=campaign&%s", id, rng)},
		{"by source, one campaign", fmt.Sprintf("/api/v1/apps/%d/breakdown?by=source&campaign=campaign-07&%s", id, rng)},
	} {
		row, err := timeRequests(ctx, client, p.URL()+q.path, c.DashboardRequests)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		row.Name, row.Path = q.name, q.path
		res.Rows = append(res.Rows, row)
		r.log.Info("bench: dashboard", "request", q.name, "p50_ms", row.P50Ms, "p99_ms", row.P99Ms)
	}
	return nil
}

// timeRequests asks for u n times, one at a time after a few unmeasured
// ones, and returns the latencies.
func timeRequests(ctx context.Context, client *http.Client, u string, n int) (DashboardRow, error) {
	var row DashboardRow
	var lat []time.Duration
	for i := range n + 5 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return row, err
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return row, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return row, err
		}
		if resp.StatusCode != http.StatusOK {
			return row, fmt.Errorf("status %d: %.300s", resp.StatusCode, b)
		}
		row.Bytes = len(b)
		if i >= 5 {
			lat = append(lat, d)
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	row.Requests = len(lat)
	row.P50Ms, row.P99Ms, row.MaxMs = ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), ms(lat[len(lat)-1])
	return row, nil
}

// seedDashboardFacts stores days of facts before end for app's links
// (created here): each link has traffic in a few hours of each day from
// one of five sources and one of twenty campaigns; a tenth of those hours
// bring installs and conversions, some events and purchases, and there
// are organic installs. It returns how many fact rows it wrote.
func seedDashboardFacts(ctx context.Context, db *postgres.DB, appID int64, links, days int, end time.Time, seed uint64) (int, error) {
	accts := postgres.NewAccountService(db)
	ids := make([]int64, links)
	for i := range links {
		l := &tapline.Link{AppID: appID, Slug: fmt.Sprintf("dash-%04d", i), Name: fmt.Sprintf("Link %d", i)}
		if err := accts.CreateLink(ctx, l); err != nil {
			return 0, fmt.Errorf("create link: %w", err)
		}
		ids[i] = l.ID
	}
	rnd := rand.New(rand.NewPCG(seed, 7))
	facts := postgres.NewFactStore(db)
	batch := map[tapline.FactKey]tapline.FactValue{}
	rows := 0
	flush := func() error {
		rows += len(batch)
		err := facts.ApplyFacts(ctx, "", batch, nil, tapline.FlushRows{})
		clear(batch)
		return err
	}
	sources := []string{"facebook", "google", "tiktok", "snap", "unity"}
	platforms := []tapline.Platform{tapline.PlatformIOS, tapline.PlatformAndroid}
	start := end.AddDate(0, 0, -days)
	for day := range days {
		for i, link := range ids {
			for range 1 + rnd.IntN(6) {
				hour := start.AddDate(0, 0, day).Add(time.Duration(rnd.IntN(24)) * time.Hour).Unix()
				k := tapline.FactKey{Hour: hour, AppID: appID, LinkID: link, Platform: platforms[rnd.IntN(2)],
					Source: sources[i%len(sources)], Campaign: fmt.Sprintf("campaign-%02d", i%20), Creative: fmt.Sprintf("creative-%d", rnd.IntN(4))}
				add := func(t tapline.FactTable, k tapline.FactKey, v tapline.FactValue) {
					k.Table = t
					k = k.Normalise()
					cur := batch[k]
					cur.Count += v.Count
					cur.Sum += v.Sum
					batch[k] = cur
				}
				add(tapline.FactHits, k, tapline.FactValue{Count: int64(1 + rnd.IntN(40))})
				if rnd.IntN(10) == 0 {
					k.Method = tapline.MethodFingerprint
					n := int64(1 + rnd.IntN(3))
					add(tapline.FactInstalls, k, tapline.FactValue{Count: n})
					add(tapline.FactConversions, k, tapline.FactValue{Count: n, Sum: n * int64(rnd.IntN(3_600_000))})
					k.EventName = "open"
					add(tapline.FactEvents, k, tapline.FactValue{Count: 3 * n})
					if rnd.IntN(4) == 0 {
						k.EventName, k.Currency = "purchase", "USD"
						add(tapline.FactEvents, k, tapline.FactValue{Count: 1})
						add(tapline.FactRevenue, k, tapline.FactValue{Count: 1, Sum: 4_990_000})
					}
				}
			}
		}
		organic := tapline.FactKey{Table: tapline.FactInstalls, Hour: start.AddDate(0, 0, day).Unix(), AppID: appID,
			Platform: tapline.PlatformIOS, Method: tapline.MethodOrganic}
		batch[organic] = tapline.FactValue{Count: int64(20 + rnd.IntN(20))}
		if len(batch) > 20_000 {
			if err := flush(); err != nil {
				return rows, err
			}
		}
	}
	return rows, flush()
}

// analyze updates the statistics of every table of the database at url.
func analyze(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// formatThousands writes n with thousands separators.
func formatThousands(n int) string { return english.Sprintf("%d", n) }

var english = message.NewPrinter(language.English)
