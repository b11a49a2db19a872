package dashboard

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/funnels"
)

// DefaultFunnelDays is how many days funnel results cover when the query
// names none.
const DefaultFunnelDays = 30

// maxEventNames bounds the event names the builder is offered.
const maxEventNames = 500

// FunnelSummary is the JSON shape of a funnel in the list: its newest
// version's identity, status and backfill progress, and which version's
// results the funnel shows.
type FunnelSummary struct {
	ID            int64                `json:"id"`
	VersionID     int64                `json:"version_id"`
	Version       int                  `json:"version"`
	Name          string               `json:"name"`
	Status        tapline.FunnelStatus `json:"status"`
	Progress      float64              `json:"progress"`
	RowsScanned   int64                `json:"rows_scanned"`
	RowsEstimated int64                `json:"rows_estimated"`
	CreatedAt     time.Time            `json:"created_at"`
	LiveAt        *time.Time           `json:"live_at,omitempty"`
	// ShownVersion is the version whose results the funnel shows (see
	// shownVersion); Partial is true when that version is not live.
	ShownVersion int  `json:"shown_version"`
	Partial      bool `json:"partial"`
}

func funnelSummary(f *tapline.Funnel) FunnelSummary {
	return FunnelSummary{
		ID: f.ID, VersionID: f.VersionID, Version: f.Version, Name: f.Name, Status: f.Status,
		Progress: f.Progress, RowsScanned: f.RowsScanned, RowsEstimated: f.RowsEstimated,
		CreatedAt: f.CreatedAt, LiveAt: f.LiveAt, ShownVersion: f.Version, Partial: f.Status != tapline.FunnelLive,
	}
}

// Running reports whether the version is still on its way to live, so a
// page showing it refreshes.
func (s FunnelSummary) Running() bool {
	return s.Status == tapline.FunnelPending || s.Status == tapline.FunnelBackfilling
}

// shownVersion picks the version whose results a funnel shows, from its
// versions newest first: the newest when it is live; else, while it is on
// its way, the newest older version that went live (live, or superseded);
// else the newest, whose results are then partial.
func shownVersion(versions []*tapline.Funnel) (shown *tapline.Funnel, partial bool) {
	newest := versions[0]
	if newest.Status == tapline.FunnelLive {
		return newest, false
	}
	for _, v := range versions[1:] {
		if v.Status == tapline.FunnelLive || v.Status == tapline.FunnelSuperseded {
			return v, false
		}
	}
	return newest, true
}

// appFunnel returns the newest version of funnel fid when it is a funnel
// of app; another app's funnel is not found.
func (d *Dashboard) appFunnel(ctx context.Context, app *tapline.App, fid int64) (*tapline.Funnel, error) {
	f, err := d.Funnels.Funnel(ctx, fid)
	if err != nil {
		return nil, err
	}
	if f.AppID != app.ID {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Funnel not found.")
	}
	return f, nil
}

// appFunnelVersions returns every version of funnel fid of app, newest
// first.
func (d *Dashboard) appFunnelVersions(ctx context.Context, app *tapline.App, fid int64) ([]*tapline.Funnel, error) {
	vs, err := d.Funnels.FunnelVersions(ctx, fid)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 || vs[0].AppID != app.ID {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Funnel not found.")
	}
	return vs, nil
}

// funnelSummaries lists the app's funnels: the newest versions and their
// summaries; for a newest version that is not live it looks up the version
// shown meanwhile.
func (d *Dashboard) funnelSummaries(ctx context.Context, appID int64) ([]*tapline.Funnel, []FunnelSummary, error) {
	fs, err := d.Funnels.FunnelsByApp(ctx, appID)
	if err != nil {
		return nil, nil, fmt.Errorf("funnels of app %d: %w", appID, err)
	}
	out := make([]FunnelSummary, 0, len(fs))
	for _, f := range fs {
		s := funnelSummary(f)
		if f.Status != tapline.FunnelLive && f.Version > 1 {
			vs, err := d.Funnels.FunnelVersions(ctx, f.ID)
			if err != nil {
				return nil, nil, fmt.Errorf("versions of funnel %d: %w", f.ID, err)
			}
			shown, partial := shownVersion(vs)
			s.ShownVersion, s.Partial = shown.Version, partial
		}
		out = append(out, s)
	}
	return fs, out, nil
}

// FunnelReport is the answer of GET /api/v1/apps/{id}/funnels/{fid}/results:
// the results of the version shown over the range, and the newest
// version's status, so a client can say "backfilling 42%".
type FunnelReport struct {
	AppID    int64  `json:"app_id"`
	FunnelID int64  `json:"funnel_id"`
	TZ       string `json:"tz"`
	From     string `json:"from"`
	To       string `json:"to"` // inclusive
	// Funnel is the version whose results these are, with its definition.
	Funnel *tapline.Funnel `json:"funnel"`
	// Newest is the funnel's newest version; it is Funnel unless an older
	// live version is shown while the newest backfills.
	Newest FunnelSummary `json:"newest"`
	// Partial is true when Funnel is not live: its backfill has not
	// finished (or not started), so the counts are incomplete.
	Partial   bool                       `json:"partial"`
	Steps     []tapline.FunnelStepResult `json:"steps"`
	Breakdown []BreakdownRow             `json:"breakdown,omitempty"`
	Days      []tapline.FunnelDay        `json:"days"`
}

// BreakdownRow is one breakdown value's counts per step with a label to
// show: a link's name for the link breakdown.
type BreakdownRow struct {
	tapline.FunnelBreakdownRow
	Label string `json:"label"`
}

// OlderVersion reports whether the report shows an older version than the
// newest.
func (r *FunnelReport) OlderVersion() bool { return r.Funnel.VersionID != r.Newest.VersionID }

// funnelReport reads the results of funnel fid of app over dr, from the
// version shownVersion picks.
func (d *Dashboard) funnelReport(ctx context.Context, app *tapline.App, fid int64, dr dayRange) (*FunnelReport, error) {
	versions, err := d.appFunnelVersions(ctx, app, fid)
	if err != nil {
		return nil, err
	}
	shown, partial := shownVersion(versions)
	rows, err := d.FunnelReports.FunnelRows(ctx, tapline.ResultsFilter{
		AppID: app.ID, VersionID: shown.VersionID, From: dr.From, To: dr.To.AddDate(0, 0, 1), Location: dr.Location,
	})
	if err != nil {
		return nil, fmt.Errorf("results of funnel version %d: %w", shown.VersionID, err)
	}
	links, err := d.linkNames(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	res := funnels.Results(shown, rows, dr.Days())
	rep := &FunnelReport{
		AppID: app.ID, FunnelID: fid, TZ: dr.TZ, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout),
		Funnel: shown, Newest: funnelSummary(versions[0]), Partial: partial,
		Steps: res.Steps, Days: res.Days,
	}
	rep.Newest.ShownVersion, rep.Newest.Partial = shown.Version, partial
	for i := range rep.Steps {
		rep.Steps[i].Title = stepTitle(&shown.Steps[i], links)
	}
	for _, b := range res.Breakdown {
		rep.Breakdown = append(rep.Breakdown, BreakdownRow{FunnelBreakdownRow: b, Label: breakdownLabel(shown.Breakdown.Kind, b.Value, links)})
	}
	if rep.Days == nil {
		rep.Days = []tapline.FunnelDay{}
	}
	return rep, nil
}

// linkNames maps the app's link ids to their names.
func (d *Dashboard) linkNames(ctx context.Context, appID int64) (map[int64]string, error) {
	links, err := d.Accounts.LinksByApp(ctx, appID)
	if err != nil {
		return nil, fmt.Errorf("links of app %d: %w", appID, err)
	}
	m := make(map[int64]string, len(links))
	for _, l := range links {
		m[l.ID] = l.Name
	}
	return m, nil
}

// stepTitle is the step's Title with link names for the link ids of a tap
// step.
func stepTitle(s *tapline.FunnelStep, links map[int64]string) string {
	if s.Label != "" || s.Kind != tapline.StepTap || len(s.Links) == 0 {
		return s.Title()
	}
	names := make([]string, len(s.Links))
	for i, id := range s.Links {
		names[i] = linkName(id, links)
	}
	anyLink := *s
	anyLink.Links = nil
	// "Tap" or "Tap where …" becomes "Tap on A or B" or "Tap on A or B where …".
	return "Tap on " + strings.Join(names, " or ") + strings.TrimPrefix(anyLink.Title(), "Tap")
}

func linkName(id int64, links map[int64]string) string {
	if n, ok := links[id]; ok && n != "" {
		return n
	}
	return "link " + strconv.FormatInt(id, 10)
}

// breakdownLabel names a breakdown value for people.
func breakdownLabel(kind tapline.BreakdownKind, value string, links map[int64]string) string {
	switch {
	case value == funnels.OtherValues:
		return "Other values"
	case kind == tapline.BreakdownLink:
		id, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return value
		}
		if id == 0 {
			return "Organic (no link)"
		}
		return linkName(id, links)
	case value == "":
		return "(none)"
	}
	return value
}
