package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"tapline"
)

// DefaultSKANDays is the range of the SKAdNetwork page and API by default:
// Apple sends postbacks a day or two after the install, and the later
// windows' up to 35 days after it.
const DefaultSKANDays = 30

// SKANCaveat is said wherever the SKAdNetwork counts are shown.
const SKANCaveat = "These counts come from Apple's privacy-preserving attribution (SKAdNetwork and AdAttributionKit postbacks). " +
	"They are not additive with the installs tapline attributes by install referrer, advertising id or fingerprint: " +
	"the same installs may appear in both. Compare them; do not add them up."

// SKANReport is the answer of GET /api/v1/apps/{id}/skadnetwork: an app's
// postbacks received on the UTC days From to To, from the fact rows.
type SKANReport struct {
	AppID  int64      `json:"app_id"`
	From   string     `json:"from"`
	To     string     `json:"to"`
	TZ     string     `json:"tz"` // always UTC: postbacks count by the UTC day they came
	Totals SKANTotals `json:"totals"`
	// Networks are the counts per ad network and source identifier, most
	// installs first.
	Networks []SKANNetworkRow `json:"networks"`
	// Windows are the counts per conversion window, 0 to 2.
	Windows []SKANWindowRow `json:"windows"`
	// Values are the winning postbacks per conversion value, with the
	// app's label, per window.
	Values []SKANValueRow `json:"values"`
	// Counts are the summed fact rows themselves.
	Counts []tapline.SKANCount `json:"counts"`
	Caveat string              `json:"caveat"`
}

// SKANTotals sums a report's postbacks by what they count as.
type SKANTotals struct {
	// Installs are winning postbacks of window 0: one per install Apple
	// credited to an ad network.
	Installs int64 `json:"installs"`
	// Later are winning postbacks of windows 1 and 2: conversion values of
	// those installs later on, no installs.
	Later int64 `json:"later_postbacks"`
	// Reengagements are winning AdAttributionKit postbacks of people who
	// had the app and opened it from an ad: never installs.
	Reengagements int64 `json:"reengagements"`
	// NotWon are verified postbacks of networks that took part and lost:
	// never installs.
	NotWon int64 `json:"not_won"`
	// Rejected postbacks failed Apple's signature check: never counted.
	Rejected int64 `json:"rejected"`
	// Duplicates are verified postbacks whose transaction and window were
	// counted before.
	Duplicates int64 `json:"duplicates"`
	// Redownloads are the installs and later postbacks of people who had
	// the app before.
	Redownloads int64 `json:"redownloads"`
}

// SKANNetworkRow is one ad network and source identifier's counts.
type SKANNetworkRow struct {
	AdNetwork        string `json:"ad_network"`
	SourceIdentifier string `json:"source_identifier"`
	SKANTotals
}

// SKANWindowRow is one conversion window's counts.
type SKANWindowRow struct {
	Window        int    `json:"window"`
	Days          string `json:"days"` // the days after the install it covers: "0–2"
	Won           int64  `json:"won"`
	Reengagements int64  `json:"reengagements"`
	NotWon        int64  `json:"not_won"`
	Duplicates    int64  `json:"duplicates"`
}

// SKANValueRow is one conversion value's winning postbacks.
type SKANValueRow struct {
	// Value is the fine value in decimal, the coarse one, or "" when Apple
	// withheld it; Label is the app's name for it (tapline.ConversionSchema).
	Value string `json:"value"`
	Label string `json:"label"`
	// ByWindow counts the winning postbacks with the value in windows 0,
	// 1 and 2.
	ByWindow [3]int64 `json:"by_window"`
	Total    int64    `json:"total"`
}

// skanWindowDays are the days after the install each window covers.
var skanWindowDays = [3]string{"0–2", "3–7", "8–35"}

// add counts c in t.
func (t *SKANTotals) add(c tapline.SKANCount) {
	switch c.Outcome {
	case tapline.SKANWon:
		if c.Window == 0 {
			t.Installs += c.Postbacks
		} else {
			t.Later += c.Postbacks
		}
		t.Redownloads += c.Redownloads
	case tapline.SKANReengagement:
		t.Reengagements += c.Postbacks
	case tapline.SKANNotWon:
		t.NotWon += c.Postbacks
	case tapline.SKANRejectedOutcome:
		t.Rejected += c.Postbacks
	case tapline.SKANDuplicateOutcome:
		t.Duplicates += c.Postbacks
	}
}

// newSKANReport groups counts into a report, labelling values by schema.
func newSKANReport(appID int64, dr dayRange, counts []tapline.SKANCount, schema tapline.ConversionSchema) *SKANReport {
	rep := &SKANReport{AppID: appID, From: dr.From.Format(dayLayout), To: dr.To.Format(dayLayout), TZ: "UTC",
		Counts: counts, Caveat: SKANCaveat, Networks: []SKANNetworkRow{}, Values: []SKANValueRow{}}
	for w := range skanWindowDays {
		rep.Windows = append(rep.Windows, SKANWindowRow{Window: w, Days: skanWindowDays[w]})
	}
	networks := map[[2]string]*SKANNetworkRow{}
	values := map[string]*SKANValueRow{}
	for _, c := range counts {
		rep.Totals.add(c)
		if c.Outcome == tapline.SKANRejectedOutcome {
			continue // it claims a network, a window and a value nothing vouches for
		}
		k := [2]string{c.AdNetwork, c.SourceIdentifier}
		n := networks[k]
		if n == nil {
			n = &SKANNetworkRow{AdNetwork: c.AdNetwork, SourceIdentifier: c.SourceIdentifier}
			networks[k] = n
		}
		n.add(c)
		if c.Window < 0 || c.Window >= len(rep.Windows) {
			continue
		}
		w := &rep.Windows[c.Window]
		switch c.Outcome {
		case tapline.SKANWon:
			w.Won += c.Postbacks
			v := values[c.Value]
			if v == nil {
				v = &SKANValueRow{Value: c.Value, Label: schema.Label(c.Value)}
				values[c.Value] = v
			}
			v.ByWindow[c.Window] += c.Postbacks
			v.Total += c.Postbacks
		case tapline.SKANReengagement:
			w.Reengagements += c.Postbacks
		case tapline.SKANNotWon:
			w.NotWon += c.Postbacks
		case tapline.SKANDuplicateOutcome:
			w.Duplicates += c.Postbacks
		}
	}
	for _, n := range networks {
		rep.Networks = append(rep.Networks, *n)
	}
	slices.SortFunc(rep.Networks, func(a, b SKANNetworkRow) int {
		return cmp.Or(cmp.Compare(b.Installs, a.Installs), strings.Compare(a.AdNetwork, b.AdNetwork), compareSourceIDs(a.SourceIdentifier, b.SourceIdentifier))
	})
	for _, v := range values {
		rep.Values = append(rep.Values, *v)
	}
	slices.SortFunc(rep.Values, func(a, b SKANValueRow) int { return cmp.Compare(valueRank(a.Value), valueRank(b.Value)) })
	return rep
}

// compareSourceIDs orders source identifiers as numbers, then as text.
func compareSourceIDs(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

// valueRank orders conversion values: fine ones by number, then coarse
// ones from low to high, then the withheld value.
func valueRank(v string) int {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	if i := slices.Index(tapline.CoarseValues, v); i >= 0 {
		return tapline.MaxFineValue + 1 + i
	}
	return tapline.MaxFineValue + 1 + len(tapline.CoarseValues)
}

// parseSKANRange reads from and to (UTC days); a tz other than UTC is
// EINVALID: postbacks count by the UTC day they came.
func parseSKANRange(q url.Values, d *Dashboard) (dayRange, error) {
	if tz := q.Get("tz"); tz != "" && tz != "UTC" {
		return dayRange{}, tapline.Errorf(tapline.EINVALID, "tz: SKAdNetwork postbacks count by the UTC day they came; leave tz out or give UTC")
	}
	return parseRangeDays(q, d.now(), DefaultSKANDays)
}

// skanReport reads the app's report over dr from the fact rows.
func (d *Dashboard) skanReport(ctx context.Context, app *tapline.App, dr dayRange) (*SKANReport, error) {
	if d.SKAN == nil {
		return nil, errNoSKANStore
	}
	f := dr.Filter(app.ID)
	counts, err := d.SKAN.SKANCounts(ctx, app.ID, f.From, f.To)
	if err != nil {
		return nil, err
	}
	return newSKANReport(app.ID, dr, counts, app.ConversionSchema), nil
}

// errNoSKANStore answers the SKAdNetwork routes of a dashboard without a
// SKANStore.
var errNoSKANStore = tapline.Errorf(tapline.EUNAVAILABLE, "SKAdNetwork reports are not available on this dashboard.")

// apiSKAN answers GET /api/v1/apps/{id}/skadnetwork.
func (d *Dashboard) apiSKAN(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	dr, err := parseSKANRange(r.URL.Query(), d)
	if err == nil {
		var rep *SKANReport
		if rep, err = d.skanReport(r.Context(), app, dr); err == nil {
			d.writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.writeJSONError(w, r, err)
}

// SKANPostbackPage is the answer of GET
// /api/v1/apps/{id}/skadnetwork/postbacks: stored postbacks, newest first;
// Next, when set, is the before of the next page.
type SKANPostbackPage struct {
	Postbacks []*SKANPostbackView `json:"postbacks"`
	Next      int64               `json:"next,omitempty"`
}

// SKANPostbackView is a stored postback with its value's label.
type SKANPostbackView struct {
	*tapline.SKANPostback
	Value string `json:"value"`
	Label string `json:"label"`
}

// skanQuery reads status, before and limit.
func skanQuery(appID int64, q url.Values) (tapline.SKANQuery, error) {
	sq := tapline.SKANQuery{AppID: appID, Status: tapline.SKANStatus(q.Get("status"))}
	if sq.Status != "" && !slices.Contains(tapline.SKANStatuses, sq.Status) {
		return sq, tapline.Errorf(tapline.EINVALID, "status: %q; want verified, rejected or duplicate", sq.Status)
	}
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return sq, tapline.Errorf(tapline.EINVALID, "before: %q; want the id of a postback (next of the page before)", s)
		}
		sq.Before = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > tapline.MaxSKANPage {
			return sq, tapline.Errorf(tapline.EINVALID, "limit: %q; want 1 to %d", s, tapline.MaxSKANPage)
		}
		sq.Limit = n
	}
	return sq, nil
}

// skanPostbacks lists the postbacks q selects, labelled by app's schema.
func (d *Dashboard) skanPostbacks(ctx context.Context, app *tapline.App, q tapline.SKANQuery) (*SKANPostbackPage, error) {
	if d.SKAN == nil {
		return nil, errNoSKANStore
	}
	ps, err := d.SKAN.SKANPostbacks(ctx, q)
	if err != nil {
		return nil, err
	}
	page := &SKANPostbackPage{Postbacks: []*SKANPostbackView{}}
	for _, p := range ps {
		page.Postbacks = append(page.Postbacks, &SKANPostbackView{SKANPostback: p, Value: p.Value(), Label: app.ConversionSchema.Label(p.Value())})
	}
	if n := cmp.Or(q.Limit, tapline.DefaultSKANPage); len(ps) == n {
		page.Next = ps[n-1].ID
	}
	return page, nil
}

// apiSKANPostbacks answers GET /api/v1/apps/{id}/skadnetwork/postbacks.
func (d *Dashboard) apiSKANPostbacks(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	q, err := skanQuery(app.ID, r.URL.Query())
	if err == nil {
		var page *SKANPostbackPage
		if page, err = d.skanPostbacks(r.Context(), app, q); err == nil {
			d.writeJSON(w, http.StatusOK, page)
			return
		}
	}
	d.writeJSONError(w, r, err)
}

// skanData feeds the SKAdNetwork page.
type skanData struct {
	App       *tapline.App
	Report    *SKANReport
	Postbacks *SKANPostbackPage
	Status    string // the listing's status filter
	Error     string
	From, To  string
	// Endpoints are the URLs Apple and the networks post to.
	CopyURL, AAKURL, ForwardURL string
	// Host is the collector's host, for the Info.plist keys.
	Host string
	// Rows are the listed postbacks as shown; StatusLinks filter them.
	Rows        []skanRow
	StatusLinks []skanStatusLink
	NextURL     string
}

// skanRow is one postback of the page's list.
type skanRow struct {
	ID                      int64
	Received                string // "2026-03-10 14:02 UTC"
	Times                   int    // how many times the body came
	Kind, Via               string // "SKAdNetwork 4.0", "developer copy"
	AdNetwork, Source       string
	Window                  int
	Value                   string // the label, "value 20" without one
	Won                     string // "yes", "no", "–"
	Status, Reason          string
	Redownload, ViewThrough bool
	SourceApp, SourceDomain string
	Raw                     string
}

// skanStatusLink is one choice of the list's status filter.
type skanStatusLink struct {
	Label, URL string
	Current    bool
}

// newSKANRow is p as the page lists it.
func newSKANRow(v *SKANPostbackView) skanRow {
	p := v.SKANPostback
	r := skanRow{ID: p.ID, Received: p.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"), Times: p.Received,
		AdNetwork: p.AdNetworkID, Source: p.SourceIdentifier, Window: p.Window, Value: v.Label, Won: "–",
		Status: string(p.Status), Reason: p.Reason, Redownload: p.Redownload, ViewThrough: p.FidelityType == 0,
		SourceDomain: p.SourceDomain, Raw: string(p.Raw)}
	r.Kind = "AdAttributionKit"
	if p.Kind == tapline.SKANKindSKAdNetwork {
		r.Kind = "SKAdNetwork " + p.Version
	}
	r.Via = "Apple's copy"
	if p.Via == tapline.SKANViaNetwork {
		r.Via = "ad network"
	}
	if p.DidWin != nil {
		r.Won = "no"
		if *p.DidWin {
			r.Won = "yes"
		}
	}
	if p.SourceAppID != nil {
		r.SourceApp = strconv.FormatInt(*p.SourceAppID, 10)
	}
	return r
}

func (d *Dashboard) skanPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	status := http.StatusOK
	data := skanData{App: app, CopyURL: d.collectorBase() + "/.well-known/skadnetwork/report-attribution/",
		AAKURL: d.collectorBase() + "/.well-known/appattribution/report-attribution/", ForwardURL: d.collectorBase() + "/v1/skadnetwork/postbacks"}
	if u, err := url.Parse(d.collectorBase()); err == nil {
		data.Host = u.Scheme + "://" + u.Host
	}
	dr, err := parseSKANRange(q, d)
	if err != nil {
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		dr, _ = parseRangeDays(url.Values{}, d.now(), DefaultSKANDays)
	}
	if data.Report, err = d.skanReport(r.Context(), app, dr); err != nil {
		d.writeError(w, r, err)
		return
	}
	data.From, data.To = data.Report.From, data.Report.To
	sq, err := skanQuery(app.ID, url.Values{"status": {q.Get("status")}, "before": {q.Get("before")}})
	if err != nil {
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		sq = tapline.SKANQuery{AppID: app.ID}
	}
	data.Status = string(sq.Status)
	if data.Postbacks, err = d.skanPostbacks(r.Context(), app, sq); err != nil {
		d.writeError(w, r, err)
		return
	}
	for _, p := range data.Postbacks.Postbacks {
		data.Rows = append(data.Rows, newSKANRow(p))
	}
	path := "/apps/" + strconv.FormatInt(app.ID, 10) + "/skadnetwork"
	link := func(status string, before int64) string {
		v := url.Values{"from": {data.From}, "to": {data.To}}
		if status != "" {
			v.Set("status", status)
		}
		if before != 0 {
			v.Set("before", strconv.FormatInt(before, 10))
		}
		return path + "?" + v.Encode()
	}
	data.StatusLinks = append(data.StatusLinks, skanStatusLink{Label: "All", URL: link("", 0), Current: sq.Status == ""})
	for _, s := range tapline.SKANStatuses {
		data.StatusLinks = append(data.StatusLinks, skanStatusLink{Label: titleCase(string(s)), URL: link(string(s), 0), Current: sq.Status == s})
	}
	if data.Postbacks.Next != 0 {
		data.NextURL = link(data.Status, data.Postbacks.Next)
	}
	d.render(w, r, status, "skadnetwork", data)
}
