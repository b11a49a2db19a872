package dashboard

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"tapline"
)

// ownedApp returns app id when p may see it: the admin sees every app, an
// account only its own. Another account's app is not found.
func (d *Dashboard) ownedApp(ctx context.Context, p *principal, id int64) (*tapline.App, error) {
	app, err := d.Accounts.App(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.Admin && (p.Account == nil || app.AccountID != p.Account.ID) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "app %d not found", id)
	}
	return app, nil
}

// Totals are the sums of a report's days.
type Totals struct {
	Hits            int64            `json:"hits"`
	Installs        int64            `json:"installs"`
	OrganicInstalls int64            `json:"organic_installs"`
	Conversions     int64            `json:"conversions"`
	Events          int64            `json:"events"`
	ConversionRate  float64          `json:"conversion_rate"`
	RevenueMicros   map[string]int64 `json:"revenue_micros,omitempty"`
	// BotHits are the requests for the links that got their redirect but
	// were no taps (HEAD, prefetches, link previewers, crawlers), by
	// agent; never hits, never credited. Left out under a filter on a
	// campaign dimension, method or event, which they do not have.
	BotHits map[string]int64 `json:"bot_hits,omitempty"`
	// Fraud counts the fraud signals found on the taps of the range's
	// installs by signal and action (flag: kept; reject: the install
	// stayed organic). Left out under the filters BotHits is.
	Fraud []tapline.FraudCount `json:"fraud,omitempty"`
	// Reengagements are opens of the installed app credited to taps on
	// re-engagement links; Reinstalls are installs by devices that had
	// installed the app within its reinstall window. Neither is an
	// install. Under a filter on the event they are 0 and the report's
	// Missing names them.
	Reengagements int64 `json:"reengagements"`
	Reinstalls    int64 `json:"reinstalls"`
}

// BotHitsTotal sums BotHits.
func (t Totals) BotHitsTotal() int64 {
	var n int64
	for _, v := range t.BotHits {
		n += v
	}
	return n
}

// DailyReport is the answer of GET /api/v1/apps/{id}/daily.
type DailyReport struct {
	AppID   int64                `json:"app_id"`
	TZ      string               `json:"tz"`
	From    string               `json:"from"`
	To      string               `json:"to"` // inclusive
	Filters []tapline.DimFilter  `json:"filters"`
	Missing []string             `json:"missing"` // measures the filters leave out (see BreakdownReport)
	Days    []tapline.DailyStats `json:"days"`
	Totals  Totals               `json:"totals"`
	// Previous are the totals of as many days right before From, with
	// the same filters (with ?compare=previous; the app page always).
	Previous *PreviousPeriod `json:"previous,omitempty"`
}

// PreviousPeriod is the period a report compares with.
type PreviousPeriod struct {
	From   string `json:"from"`
	To     string `json:"to"` // inclusive
	Totals Totals `json:"totals"`
}

// previousRange is the range of as many days as dr right before it.
func previousRange(dr dayRange) dayRange {
	n := daysBetween(dr.From, dr.To) + 1
	prev := dr
	prev.To = dr.From.AddDate(0, 0, -1)
	prev.From = dr.From.AddDate(0, 0, -n)
	return prev
}

// withPrevious adds the previous period's totals to rep.
func (d *Dashboard) withPrevious(ctx context.Context, rep *DailyReport, dr dayRange) error {
	p, err := d.dailyReport(ctx, rep.AppID, previousRange(dr), rep.Filters)
	if err != nil {
		return err
	}
	rep.Previous = &PreviousPeriod{From: p.From, To: p.To, Totals: p.Totals}
	return nil
}

// Has reports whether the report counts measure.
func (r *DailyReport) Has(measure string) bool { return !slices.Contains(r.Missing, measure) }

// dailyReport asks Reports for the range's days under filters and fills
// the days without facts with zeros, so every day of the range appears
// once, in order.
func (d *Dashboard) dailyReport(ctx context.Context, appID int64, dr dayRange, filters []tapline.DimFilter) (*DailyReport, error) {
	f := dr.Filter(appID)
	f.Where = filters
	b, err := d.Reports.Breakdown(ctx, f, tapline.ByDay)
	if err != nil {
		return nil, fmt.Errorf("daily stats of app %d: %w", appID, err)
	}
	byDay := make(map[string]tapline.BreakdownRow, len(b.Rows))
	for _, r := range b.Rows {
		byDay[r.Value] = r
	}
	rep := &DailyReport{AppID: appID, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout),
		Filters: filters, Missing: b.Missing, Days: []tapline.DailyStats{}}
	if rep.Filters == nil {
		rep.Filters = []tapline.DimFilter{}
	}
	if rep.Missing == nil {
		rep.Missing = []string{}
	}
	var total tapline.BreakdownRow
	for _, day := range dr.Days() {
		r := byDay[day]
		rep.Days = append(rep.Days, r.DailyStats(day))
		total.Add(&r)
	}
	t := total.DailyStats("")
	rep.Totals = Totals{Hits: t.Hits, Installs: t.Installs, OrganicInstalls: t.OrganicInstalls, Conversions: t.Conversions,
		Events: t.Events, ConversionRate: t.ConversionRate, RevenueMicros: t.RevenueMicros}
	if botFilters(filters) {
		if rep.Totals.BotHits, err = d.Reports.BotHits(ctx, f); err != nil {
			return nil, fmt.Errorf("bot hits of app %d: %w", appID, err)
		}
		if rep.Totals.Fraud, err = d.Reports.Fraud(ctx, f); err != nil {
			return nil, fmt.Errorf("fraud signals of app %d: %w", appID, err)
		}
	}
	if slices.ContainsFunc(filters, func(f tapline.DimFilter) bool {
		rd := tapline.ReportDimNamed(f.Dim)
		return rd == nil || !tapline.FactReinstalls.Desc().Keeps(rd.Dim)
	}) {
		rep.Missing = append(rep.Missing, tapline.MeasureReengagements, tapline.MeasureReinstalls)
	} else {
		ret, err := d.Reports.Returning(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("re-engagements and reinstalls of app %d: %w", appID, err)
		}
		rep.Totals.Reengagements, rep.Totals.Reinstalls = ret.Reengagements, ret.Reinstalls
	}
	return rep, nil
}

// botFilters reports whether requests that were no taps have every
// dimension the filters name: a link and a platform, nothing else.
func botFilters(filters []tapline.DimFilter) bool {
	for _, f := range filters {
		if f.Dim != "link" && f.Dim != "platform" {
			return false
		}
	}
	return true
}

// LinkReport is one link's totals with the link's identity.
type LinkReport struct {
	tapline.LinkStats
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	TrackingURL string `json:"tracking_url"`
}

// LinksReport is the answer of GET /api/v1/apps/{id}/links.
type LinksReport struct {
	AppID int64        `json:"app_id"`
	TZ    string       `json:"tz"`
	From  string       `json:"from"`
	To    string       `json:"to"` // inclusive
	Links []LinkReport `json:"links"`
}

// linksReport joins the app's links with their totals over the range:
// every link appears, those without facts with zeros, busiest first.
func (d *Dashboard) linksReport(ctx context.Context, appID int64, dr dayRange) (*LinksReport, error) {
	links, err := d.Accounts.LinksByApp(ctx, appID)
	if err != nil {
		return nil, fmt.Errorf("links of app %d: %w", appID, err)
	}
	stats, err := d.Reports.LinkStats(ctx, dr.Filter(appID))
	if err != nil {
		return nil, fmt.Errorf("link stats of app %d: %w", appID, err)
	}
	byLink := make(map[int64]tapline.LinkStats, len(stats))
	for _, s := range stats {
		byLink[s.LinkID] = s
	}
	rep := &LinksReport{AppID: appID, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout), Links: []LinkReport{}}
	for _, l := range links {
		s, ok := byLink[l.ID]
		if !ok {
			s = tapline.LinkStats{LinkID: l.ID}
		}
		delete(byLink, l.ID)
		rep.Links = append(rep.Links, LinkReport{LinkStats: s, Slug: l.Slug, Name: l.Name, TrackingURL: d.trackingURL(l.Slug)})
	}
	// Facts of links the account service no longer knows still count.
	for _, id := range slices.Sorted(maps.Keys(byLink)) {
		rep.Links = append(rep.Links, LinkReport{LinkStats: byLink[id]})
	}
	sort.SliceStable(rep.Links, func(i, j int) bool {
		a, b := rep.Links[i], rep.Links[j]
		if a.Hits != b.Hits {
			return a.Hits > b.Hits
		}
		if a.Conversions != b.Conversions {
			return a.Conversions > b.Conversions
		}
		return a.LinkID < b.LinkID
	})
	return rep, nil
}
