package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"tapline"
)

// LiveHours is how many hours the live view shows, the current one first.
const LiveHours = 24

// LiveReport is the answer of GET /api/v1/apps/{id}/live: the last
// LiveHours hours, newest first, the current one still filling.
type LiveReport struct {
	AppID int64                  `json:"app_id"`
	TZ    string                 `json:"tz"`
	AsOf  time.Time              `json:"as_of"`
	Hours []tapline.BreakdownRow `json:"hours"` // Value: YYYY-MM-DD HH:00 in tz
	// Last60 sums the current hour and the previous one: the hours the
	// last 60 minutes fall in.
	Last60 tapline.BreakdownRow `json:"last_60_minutes"`
}

// liveReport reads the last LiveHours hours of app in loc.
func (d *Dashboard) liveReport(ctx context.Context, app *tapline.App, tz string, loc *time.Location) (*LiveReport, error) {
	now := d.now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	f := tapline.StatsFilter{AppID: app.ID, From: today.AddDate(0, 0, -1), To: today.AddDate(0, 0, 1), Location: loc}
	b, err := d.Reports.Breakdown(ctx, f, tapline.ByHour)
	if err != nil {
		return nil, err
	}
	byHour := make(map[string]tapline.BreakdownRow, len(b.Rows))
	for _, r := range b.Rows {
		byHour[r.Value] = r
	}
	rep := &LiveReport{AppID: app.ID, TZ: tz, AsOf: d.now().UTC()}
	hour := now.Truncate(time.Hour)
	for i := range LiveHours {
		// Hours in the zone, by the clock: a DST change repeats or skips one.
		key := hour.Add(-time.Duration(i) * time.Hour).In(loc).Format("2006-01-02 15:00")
		row := byHour[key]
		row.Value = key
		rep.Hours = append(rep.Hours, row)
		if i < 2 {
			rep.Last60.Add(&row)
		}
	}
	return rep, nil
}

func (d *Dashboard) apiLive(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	tz, loc, err := parseZone(r.URL.Query().Get("tz"))
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	rep, err := d.liveReport(r.Context(), app, tz, loc)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, rep)
}

// liveData feeds the live page.
type liveData struct {
	App     *tapline.App
	Report  *LiveReport
	APIURL  string
	CSVURL  string // yesterday and today by hour
	Refresh int    // seconds between refreshes
}

func (d *Dashboard) livePage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	tz, loc, err := parseZone(r.URL.Query().Get("tz"))
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	rep, err := d.liveReport(r.Context(), app, tz, loc)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	api := "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/live?" + url.Values{"tz": {tz}}.Encode()
	every := cmp.Or(d.LiveRefresh, 10*time.Second)
	now := d.now().In(loc)
	csvQuery := url.Values{"by": {tapline.ByHour}, "tz": {tz}, "from": {now.AddDate(0, 0, -1).Format(dayLayout)}, "to": {now.Format(dayLayout)}}
	d.render(w, r, http.StatusOK, "live", liveData{App: app, Report: rep, APIURL: api, Refresh: int(max(every, time.Second) / time.Second),
		CSVURL: "/api/v1/apps/" + strconv.FormatInt(app.ID, 10) + "/breakdown.csv?" + csvQuery.Encode()})
}
