package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// MaxConversionsCSV bounds the rows of one conversions CSV; the raw
// export is the way to everything.
const MaxConversionsCSV = 100_000

// ConversionView is a conversion as the explorer shows it: the stored
// conversion, its link's name and its campaign as the facts count it.
type ConversionView struct {
	*tapline.Conversion
	LinkName string            `json:"link_name,omitempty"`
	Campaign map[string]string `json:"campaign,omitempty"` // source, medium, … as the facts count them
	// ClickToInstallMillis is ClickToInstall in milliseconds, for scripts.
	ClickToInstallMillis *int64 `json:"click_to_install_ms,omitempty"`

	names map[int64]string // the app's links, for the candidates
}

// linkName returns the name of the app's link id as v knows it.
func (v ConversionView) linkName(id int64) string {
	if n := v.names[id]; n != "" {
		return n
	}
	return "link " + strconv.FormatInt(id, 10)
}

// matchMethods are the methods the explorer filters by, strongest first.
var matchMethods = []string{string(tapline.MethodReferrer), string(tapline.MethodAdID), string(tapline.MethodFingerprint), string(tapline.MethodOrganic)}

// methodLabel names a match method for people.
func methodLabel(m string) string {
	switch tapline.MatchMethod(m) {
	case tapline.MethodReferrer:
		return "install referrer"
	case tapline.MethodAdID:
		return "advertising id"
	}
	return m
}

// signalLabel names a decision's signal for people.
func signalLabel(name string) string {
	switch name {
	case "os_version":
		return "OS version"
	case "install_referrer":
		return "install referrer"
	case "advertising_id":
		return "advertising id"
	case "vendor_id":
		return "vendor id (IDFV)"
	case "install_id":
		return "install id"
	}
	return name
}

// formatScore writes a fingerprint score with two decimals: "3.45".
func formatScore(s float64) string { return strconv.FormatFloat(s, 'f', 2, 64) }

// formatWeight writes what a signal added to a score, signed: "+3.00",
// "-2.00".
func formatWeight(w float64) string { return fmt.Sprintf("%+.2f", w) }

// formatMillis writes milliseconds as formatSeconds does seconds.
func formatMillis(ms *int64) string { return formatSeconds(float64(*ms) / 1000) }

// ConversionsPage is the answer of GET /api/v1/apps/{id}/conversions.
type ConversionsPage struct {
	AppID       int64            `json:"app_id"`
	Conversions []ConversionView `json:"conversions"`
	// Next, when set, is the after= of the next page.
	Next string `json:"next,omitempty"`
}

// parseConversionQuery reads the explorer's query parameters: q (an
// install id, advertising id or hit id), method, link, from and to (RFC
// 3339 times or YYYY-MM-DD days in UTC), after and limit.
func parseConversionQuery(q url.Values, appID int64) (tapline.ConversionQuery, error) {
	cq := tapline.ConversionQuery{AppID: appID, Search: strings.TrimSpace(q.Get("q")), After: q.Get("after")}
	if len(cq.Search) > 200 {
		return cq, tapline.Errorf(tapline.EINVALID, "q: at most 200 characters")
	}
	if m := q.Get("method"); m != "" {
		switch tapline.MatchMethod(m) {
		case tapline.MethodReferrer, tapline.MethodAdID, tapline.MethodFingerprint, tapline.MethodOrganic:
			cq.Method = tapline.MatchMethod(m)
		default:
			return cq, tapline.Errorf(tapline.EINVALID, "method: %q is not referrer, advertising_id, fingerprint or organic", m)
		}
	}
	if s := q.Get("link"); s != "" {
		id, err := parseID(s, "link")
		if err != nil {
			return cq, err
		}
		cq.LinkID = id
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"from", &cq.From}, {"to", &cq.To}} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			if t, err = time.Parse(dayLayout, s); err != nil {
				return cq, tapline.Errorf(tapline.EINVALID, "%s: %q is neither an RFC 3339 time nor a YYYY-MM-DD day", f.name, s)
			}
		}
		*f.to = t
	}
	if !cq.From.IsZero() && !cq.To.IsZero() && !cq.To.After(cq.From) {
		return cq, tapline.Errorf(tapline.EINVALID, "to: must be after from")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > tapline.MaxConversionPage {
			return cq, tapline.Errorf(tapline.EINVALID, "limit: must be 1 to %d", tapline.MaxConversionPage)
		}
		cq.Limit = n
	}
	return cq, nil
}

// conversionViews returns the views of convs with the names of the app's
// links.
func (d *Dashboard) conversionViews(ctx context.Context, appID int64, convs []*tapline.Conversion) ([]ConversionView, error) {
	names, err := d.linkNames(ctx, appID)
	if err != nil {
		return nil, err
	}
	views := make([]ConversionView, len(convs))
	for i, c := range convs {
		views[i] = conversionView(c, names)
	}
	return views, nil
}

// NewConversionView returns c as the explorer and its JSON API show it,
// with the names of links, the app's links (archived ones too).
func NewConversionView(c *tapline.Conversion, links []*tapline.Link) ConversionView {
	names := make(map[int64]string, len(links))
	for _, l := range links {
		names[l.ID] = l.Name
	}
	return conversionView(c, names)
}

// LinkLabel names the app's link id: its name, or "link ID" for a link
// the view does not know.
func (v ConversionView) LinkLabel(id int64) string { return v.linkName(id) }

func conversionView(c *tapline.Conversion, names map[int64]string) ConversionView {
	v := ConversionView{Conversion: c, names: names}
	if c.LinkID != 0 {
		v.LinkName = v.linkName(c.LinkID)
	}
	if c.Method != tapline.MethodOrganic && !c.HitTime.IsZero() {
		ms := c.ClickToInstall.Milliseconds()
		v.ClickToInstallMillis = &ms
	}
	k := tapline.FactKey{}.WithCampaign(c.HitParams)
	for _, dim := range tapline.CampaignDims {
		if s := dim.Text(k); s != "" {
			if v.Campaign == nil {
				v.Campaign = map[string]string{}
			}
			v.Campaign[dim.Column] = s
		}
	}
	return v
}

// CampaignText shows the conversion's campaign briefly: "google / cpc /
// spring".
func (v ConversionView) CampaignText() string {
	var parts []string
	for _, dim := range tapline.CampaignDims[:3] {
		if s := v.Campaign[dim.Column]; s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " / ")
}

// listConversions answers one page of the query.
func (d *Dashboard) listConversions(ctx context.Context, q tapline.ConversionQuery) (*ConversionsPage, error) {
	page, err := d.Reports.Conversions(ctx, q)
	if err != nil {
		return nil, err
	}
	views, err := d.conversionViews(ctx, q.AppID, page.Conversions)
	if err != nil {
		return nil, err
	}
	return &ConversionsPage{AppID: q.AppID, Conversions: views, Next: page.Next}, nil
}

// apiConversionQuery reads the app and the query of an API request,
// answering the error itself.
func (d *Dashboard) apiConversionQuery(w http.ResponseWriter, r *http.Request) (tapline.ConversionQuery, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return tapline.ConversionQuery{}, false
	}
	q, err := parseConversionQuery(r.URL.Query(), app.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return tapline.ConversionQuery{}, false
	}
	return q, true
}

func (d *Dashboard) apiConversions(w http.ResponseWriter, r *http.Request) {
	q, ok := d.apiConversionQuery(w, r)
	if !ok {
		return
	}
	page, err := d.listConversions(r.Context(), q)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, page)
}

// pathConversion returns the view of the app's conversion the path names.
func (d *Dashboard) pathConversion(r *http.Request, app *tapline.App) (ConversionView, error) {
	c, err := d.Reports.Conversion(r.Context(), app.ID, chi.URLParam(r, "cid"))
	if err != nil {
		return ConversionView{}, err
	}
	views, err := d.conversionViews(r.Context(), app.ID, []*tapline.Conversion{c})
	if err != nil {
		return ConversionView{}, err
	}
	return views[0], nil
}

func (d *Dashboard) apiConversion(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	v, err := d.pathConversion(r, app)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, v)
}

// apiConversionsCSV answers GET /api/v1/apps/{id}/conversions.csv: the
// conversions the same filters select, newest first, every page (at most
// MaxConversionsCSV rows), streamed.
func (d *Dashboard) apiConversionsCSV(w http.ResponseWriter, r *http.Request) {
	q, ok := d.apiConversionQuery(w, r)
	if !ok {
		return
	}
	q.Limit = tapline.MaxConversionPage
	ctx := r.Context()
	page, err := d.listConversions(ctx, q)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	cw := csvAttachment(w, fmt.Sprintf("app-%d-conversions.csv", q.AppID))
	header := []string{"conversion_id", "install_id", "install_time", "platform", "method", "link_id", "link_name", "hit_id", "hit_time", "click_to_install_ms"}
	for _, dim := range tapline.CampaignDims {
		header = append(header, dim.Column)
	}
	_ = cw.Write(append(header, "rule", "reason", "changes"))
	rows := 0
	for {
		for _, v := range page.Conversions {
			_ = cw.Write(conversionCSVRow(v))
			rows++
		}
		if page.Next == "" || rows >= MaxConversionsCSV {
			break
		}
		q.After = page.Next
		if page, err = d.listConversions(ctx, q); err != nil {
			// The header is out: end the file short, and say so in the log.
			d.logger().Error("conversions csv", "app", q.AppID, "rows", rows, "err", err)
			break
		}
	}
	cw.Flush()
}

func conversionCSVRow(v ConversionView) []string {
	hitTime, ms := "", ""
	if v.ClickToInstallMillis != nil {
		hitTime, ms = v.HitTime.UTC().Format(time.RFC3339Nano), strconv.FormatInt(*v.ClickToInstallMillis, 10)
	}
	link := ""
	if v.LinkID != 0 {
		link = strconv.FormatInt(v.LinkID, 10)
	}
	row := []string{v.ID, csvText(v.InstallID), v.InstallTime.UTC().Format(time.RFC3339Nano), string(v.Platform), string(v.Method),
		link, csvText(v.LinkName), csvText(v.HitID), hitTime, ms}
	for _, dim := range tapline.CampaignDims {
		row = append(row, csvText(v.Campaign[dim.Column]))
	}
	rule, reason := "", ""
	if v.Decision != nil {
		rule, reason = v.Decision.Rule, v.Decision.Reason
	}
	return append(row, rule, csvText(reason), strconv.Itoa(len(v.History)))
}

// conversionsData feeds the explorer page.
type conversionsData struct {
	App         *tapline.App
	Query       tapline.ConversionQuery
	Error       string // a refused filter, shown above the list
	Conversions []ConversionView
	Links       []*tapline.Link
	NextURL     string
	CSVURL      string
	Filtered    bool
}

func (d *Dashboard) conversionsPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	status := http.StatusOK
	data := conversionsData{App: app}
	q, err := parseConversionQuery(r.URL.Query(), app.ID)
	if err != nil {
		// Say what was wrong and list without the filters.
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		q = tapline.ConversionQuery{AppID: app.ID}
	}
	q.Limit = 0
	page, err := d.Reports.Conversions(ctx, q)
	if tapline.ErrorCode(err) == tapline.EINVALID {
		status, data.Error = http.StatusBadRequest, tapline.ErrorMessage(err)
		q = tapline.ConversionQuery{AppID: app.ID}
		page, err = d.Reports.Conversions(ctx, q)
	}
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if data.Links, err = d.Accounts.LinksByApp(ctx, app.ID); err != nil {
		d.writeError(w, r, err)
		return
	}
	names := make(map[int64]string, len(data.Links))
	for _, l := range data.Links {
		names[l.ID] = l.Name
	}
	data.Links = slices.DeleteFunc(data.Links, func(l *tapline.Link) bool { return l.ArchivedAt != nil && l.ID != q.LinkID })
	for _, c := range page.Conversions {
		data.Conversions = append(data.Conversions, conversionView(c, names))
	}
	data.Query = q
	data.Filtered = q.Search != "" || q.Method != "" || q.LinkID != 0 || !q.From.IsZero() || !q.To.IsZero()
	filters := conversionFilterValues(q)
	base := "/apps/" + strconv.FormatInt(app.ID, 10)
	data.CSVURL = "/api/v1" + base + "/conversions.csv" + encodeQuery(filters)
	if page.Next != "" {
		next := conversionFilterValues(q)
		next.Set("after", page.Next)
		data.NextURL = base + "/conversions" + encodeQuery(next)
	}
	d.render(w, r, status, "conversions", data)
}

// conversionFilterValues returns the query parameters of q's filters.
func conversionFilterValues(q tapline.ConversionQuery) url.Values {
	v := url.Values{}
	if q.Search != "" {
		v.Set("q", q.Search)
	}
	if q.Method != "" {
		v.Set("method", string(q.Method))
	}
	if q.LinkID != 0 {
		v.Set("link", strconv.FormatInt(q.LinkID, 10))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	return v
}

func encodeQuery(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// conversionData feeds the page of one conversion.
type conversionData struct {
	App  *tapline.App
	Conv ConversionView
}

func (d *Dashboard) conversionPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	v, err := d.pathConversion(r, app)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "conversion", conversionData{App: app, Conv: v})
}
