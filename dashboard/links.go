package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	qrcode "github.com/skip2/go-qrcode"

	"tapline"
)

// linkPages serves the links section of an app: the list, the form of a
// new link, a link's page with its QR code, and the form posts.
func (d *Dashboard) linkPages() chi.Router {
	r := chi.NewRouter()
	r.Get("/", d.linksPage)
	r.Post("/", d.createLinkForm)
	r.Get("/new", d.newLinkPage)
	r.Get("/{lid}", d.linkPage)
	r.Post("/{lid}", d.updateLinkForm)
	r.Post("/{lid}/archive", d.archiveLinkForm)
	r.Get("/{lid}/qr.png", d.linkQRPNG)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		d.writeError(w, r, tapline.Errorf(tapline.ENOTFOUND, "Page not found."))
	})
	return r
}

// linksData feeds the links list.
type linksData struct {
	App      *tapline.App
	Links    []LinkView
	Archived bool // the archived ones are listed
	Others   int  // how many the other list holds
}

func (d *Dashboard) linksPage(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	links, err := d.Accounts.LinksByApp(r.Context(), app.ID)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	data := linksData{App: app, Archived: r.URL.Query().Get("archived") == "1", Links: []LinkView{}}
	for _, l := range links {
		if (l.ArchivedAt != nil) == data.Archived {
			data.Links = append(data.Links, d.linkView(l))
		} else {
			data.Others++
		}
	}
	d.render(w, r, http.StatusOK, "links", data)
}

// linkForm is what the link form shows: the values typed and the message
// of a refusal.
type linkForm struct {
	Slug, Name, IOSURL, AndroidURL, WebURL, DeepLink string
	Params                                           string // one name=value a line
	Reengagement                                     bool
	// ClickWindow and FingerprintWindow are the link's own ("30d"), empty
	// for the app's.
	ClickWindow, FingerprintWindow string
	Error                          string
}

// formOf returns the form showing l.
func formOf(l *tapline.Link) linkForm {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(l.Params)) {
		lines = append(lines, k+"="+l.Params[k])
	}
	return linkForm{Slug: l.Slug, Name: l.Name, IOSURL: l.IOSURL, AndroidURL: l.AndroidURL, WebURL: l.WebURL,
		DeepLink: l.DeepLink, Params: strings.Join(lines, "\n"), Reengagement: l.Reengagement,
		ClickWindow: ownWindow(l.ClickWindow), FingerprintWindow: ownWindow(l.FingerprintWindow)}
}

// ownWindow shows a link's own window in its form: "" when it has none.
func ownWindow(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return formatDuration(d)
}

// parseLinkWindow reads a link's own window: empty for the app's, else a
// window as parseWindow reads it.
func parseLinkWindow(field, s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	return parseWindow(field, s)
}

// readLinkForm reads a posted link form into f and l (whose slug is kept
// unless creating).
func readLinkForm(w http.ResponseWriter, r *http.Request, l *tapline.Link, creating bool) (linkForm, error) {
	if err := parseForm(w, r); err != nil {
		return linkForm{}, err
	}
	f := linkForm{Slug: r.PostForm.Get("slug"), Name: r.PostForm.Get("name"), IOSURL: strings.TrimSpace(r.PostForm.Get("ios_url")),
		AndroidURL: strings.TrimSpace(r.PostForm.Get("android_url")), WebURL: strings.TrimSpace(r.PostForm.Get("web_url")),
		DeepLink: r.PostForm.Get("deep_link"), Params: r.PostForm.Get("params"), Reengagement: r.PostForm.Get("reengagement") != "",
		ClickWindow: r.PostForm.Get("click_window"), FingerprintWindow: r.PostForm.Get("fingerprint_window")}
	if creating {
		l.Slug = strings.TrimSpace(f.Slug)
	} else {
		f.Slug = l.Slug
	}
	l.Name, l.IOSURL, l.AndroidURL, l.WebURL, l.DeepLink = f.Name, f.IOSURL, f.AndroidURL, f.WebURL, f.DeepLink
	l.Reengagement = f.Reengagement
	var err error
	if l.ClickWindow, err = parseLinkWindow("click_window", f.ClickWindow); err != nil {
		return f, err
	}
	if l.FingerprintWindow, err = parseLinkWindow("fingerprint_window", f.FingerprintWindow); err != nil {
		return f, err
	}
	params, err := parseParamLines(f.Params)
	if err != nil {
		return f, err
	}
	l.Params = params
	return f, nil
}

// parseParamLines reads "name=value" lines (a query string works too);
// blank lines are skipped.
func parseParamLines(s string) (map[string]string, error) {
	params := map[string]string{}
	for i, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == '&' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, tapline.Errorf(tapline.EINVALID, "params: entry %d, %q, is not name=value", i+1, line)
		}
		if _, dup := params[k]; dup {
			return nil, tapline.Errorf(tapline.EINVALID, "params: %s is given twice", k)
		}
		params[k] = v
	}
	return params, nil
}

// linkFormData feeds the new-link page.
type linkFormData struct {
	App  *tapline.App
	Form linkForm
}

func (d *Dashboard) newLinkPage(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.pageApp(w, r); ok {
		d.render(w, r, http.StatusOK, "link_new", linkFormData{App: app})
	}
}

func (d *Dashboard) createLinkForm(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	l := &tapline.Link{AppID: app.ID}
	f, err := readLinkForm(w, r, l, true)
	if err == nil {
		err = d.Accounts.CreateLink(r.Context(), l)
	}
	if err != nil {
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.ECONFLICT {
			d.writeError(w, r, err)
			return
		}
		f.Error = tapline.ErrorMessage(err)
		d.render(w, r, http.StatusBadRequest, "link_new", linkFormData{App: app, Form: f})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/apps/%d/links/%d?saved=created", app.ID, l.ID), http.StatusSeeOther)
}

// linkData feeds a link's page.
type linkData struct {
	App     *tapline.App
	Link    LinkView
	Form    linkForm
	QR      template.HTML
	Saved   string // "created", "saved", "archived", "restored" after a post
	Traffic *BreakdownReport
	// Returning are the link's re-engagements and reinstalls over the
	// same 30 days.
	Returning tapline.Returning
	// TrafficURL is the app page filtered by the link; SourcesCSV its
	// sources table as CSV.
	TrafficURL, SourcesCSV string
	// Click and Fingerprint are the windows in force for the link's taps.
	Click, Fingerprint windowInForce
}

// windowInForce is a window of a link as its page shows it.
type windowInForce struct {
	Window string // "30d"
	Own    bool   // the link's own, not the app's
}

// pageLink reads the app and link of the path, answering the error page
// itself: a link of another app is not found.
func (d *Dashboard) pageLink(w http.ResponseWriter, r *http.Request) (*tapline.App, *tapline.Link, bool) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return nil, nil, false
	}
	l, err := d.pathLink(r, app)
	if err != nil {
		d.writeError(w, r, err)
		return nil, nil, false
	}
	return app, l, true
}

// pathLink returns the link the path's {lid} names when it is app's; a link
// of another app is not found.
func (d *Dashboard) pathLink(r *http.Request, app *tapline.App) (*tapline.Link, error) {
	id, err := parseID(chi.URLParam(r, "lid"), "link")
	if err != nil {
		return nil, err
	}
	l, err := d.Accounts.Link(r.Context(), id)
	if err == nil && l.AppID != app.ID {
		err = tapline.Errorf(tapline.ENOTFOUND, "link %d not found", id)
	}
	return l, err
}

func (d *Dashboard) linkPage(w http.ResponseWriter, r *http.Request) {
	app, l, ok := d.pageLink(w, r)
	if !ok {
		return
	}
	d.renderLink(w, r, http.StatusOK, app, l, formOf(l), r.URL.Query().Get("saved"))
}

// renderLink answers a link's page: its tracking URL and QR code, the
// edit form (form, which may carry a refusal) and its last 30 days by
// source.
func (d *Dashboard) renderLink(w http.ResponseWriter, r *http.Request, status int, app *tapline.App, l *tapline.Link, form linkForm, saved string) {
	view := d.linkView(l)
	qr, err := qrSVG(view.TrackingURL)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	dr, _ := parseRangeDays(url.Values{}, d.now(), 30)
	linkID := strconv.FormatInt(l.ID, 10)
	traffic, err := d.breakdownReport(r.Context(), app, dr, breakdownQuery{By: "source", Limit: 10,
		Filters: []tapline.DimFilter{{Dim: "link", Value: linkID}}})
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	rf := dr.Filter(app.ID)
	rf.LinkID = l.ID
	returning, err := d.Reports.Returning(r.Context(), rf)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	q := rangeQuery(dr)
	q.Set("link", linkID)
	q.Set("by", "source")
	if !slices.Contains([]string{"", "created", "saved", "archived", "restored"}, saved) {
		saved = ""
	}
	click, fp := app.LinkWindows(l)
	d.render(w, r, status, "link", linkData{App: app, Link: view, Form: form, QR: qr, Saved: saved, Traffic: traffic, Returning: returning,
		TrafficURL: fmt.Sprintf("/apps/%d?%s", app.ID, q.Encode()), SourcesCSV: fmt.Sprintf("/api/v1/apps/%d/breakdown.csv?%s", app.ID, q.Encode()),
		Click:       windowInForce{Window: formatDuration(click), Own: l.ClickWindow > 0},
		Fingerprint: windowInForce{Window: formatDuration(fp), Own: l.FingerprintWindow > 0}})
}

func (d *Dashboard) updateLinkForm(w http.ResponseWriter, r *http.Request) {
	app, l, ok := d.pageLink(w, r)
	if !ok {
		return
	}
	f, err := readLinkForm(w, r, l, false)
	if err == nil {
		err = d.Accounts.UpdateLink(r.Context(), l)
	}
	if err != nil {
		if tapline.ErrorCode(err) != tapline.EINVALID {
			d.writeError(w, r, err)
			return
		}
		f.Error = tapline.ErrorMessage(err)
		stored, err := d.Accounts.Link(r.Context(), l.ID)
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		d.renderLink(w, r, http.StatusBadRequest, app, stored, f, "")
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/apps/%d/links/%d?saved=saved", app.ID, l.ID), http.StatusSeeOther)
}

func (d *Dashboard) archiveLinkForm(w http.ResponseWriter, r *http.Request) {
	app, l, ok := d.pageLink(w, r)
	if !ok {
		return
	}
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	saved := "restored"
	l.ArchivedAt = nil
	if r.PostForm.Get("archive") == "1" {
		now := d.now().UTC()
		l.ArchivedAt, saved = &now, "archived"
	}
	if err := d.Accounts.UpdateLink(r.Context(), l); err != nil {
		d.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/apps/%d/links/%d?saved=%s", app.ID, l.ID, saved), http.StatusSeeOther)
}

func (d *Dashboard) linkQRPNG(w http.ResponseWriter, r *http.Request) {
	_, l, ok := d.pageLink(w, r)
	if !ok {
		return
	}
	png, err := qrcode.Encode(d.trackingURL(l.Slug), qrcode.Medium, 512)
	if err != nil {
		d.writeError(w, r, fmt.Errorf("qr code of link %d: %w", l.ID, err))
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-qr.png"`, l.Slug))
	_, _ = w.Write(png)
}

// qrSVG draws the QR code of s as an SVG of one path, for the page.
func qrSVG(s string) (template.HTML, error) {
	q, err := qrcode.New(s, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	bits := q.Bitmap() // with its quiet zone
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg class="qr" viewBox="0 0 %d %d" role="img" aria-label="QR code of the tracking link" shape-rendering="crispEdges"><path d="`, len(bits), len(bits))
	for y, row := range bits {
		for x, on := range row {
			if on {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()), nil
}

// linkRequest is the JSON body of POST and PATCH /api/v1/apps/{id}/links:
// on PATCH, absent fields stay as they are.
type linkRequest struct {
	Slug       *string            `json:"slug"`
	Name       *string            `json:"name"`
	IOSURL     *string            `json:"ios_url"`
	AndroidURL *string            `json:"android_url"`
	WebURL     *string            `json:"web_url"`
	Params     *map[string]string `json:"params"`
	DeepLink   *string            `json:"deep_link"`
	Archived   *bool              `json:"archived"`
	// Reengagement makes the link a re-engagement link (see
	// tapline.Link.Reengagement).
	Reengagement *bool `json:"reengagement"`
	// ClickWindow and FingerprintWindow are durations such as "30d" or
	// "12h"; "" gives the link the app's window again.
	ClickWindow       *string `json:"click_window"`
	FingerprintWindow *string `json:"fingerprint_window"`
}

// apply sets the fields req names on l; a window that is no duration is
// EINVALID.
func (req *linkRequest) apply(l *tapline.Link, now time.Time) error {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&l.Name, req.Name)
	set(&l.IOSURL, req.IOSURL)
	set(&l.AndroidURL, req.AndroidURL)
	set(&l.WebURL, req.WebURL)
	set(&l.DeepLink, req.DeepLink)
	if req.Params != nil {
		l.Params = *req.Params
	}
	if req.Reengagement != nil {
		l.Reengagement = *req.Reengagement
	}
	if req.Archived != nil {
		switch {
		case !*req.Archived:
			l.ArchivedAt = nil
		case l.ArchivedAt == nil:
			l.ArchivedAt = &now
		}
	}
	for _, w := range []struct {
		field string
		src   *string
		dst   *time.Duration
	}{{"click_window", req.ClickWindow, &l.ClickWindow}, {"fingerprint_window", req.FingerprintWindow, &l.FingerprintWindow}} {
		if w.src == nil {
			continue
		}
		d, err := parseLinkWindow(w.field, *w.src)
		if err != nil {
			return err
		}
		*w.dst = d
	}
	return nil
}

// decodeLinkRequest reads a link request body, refusing unknown fields.
func decodeLinkRequest(r *http.Request) (*linkRequest, error) {
	var req linkRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, bodyError(err, maxBody, "The body is not a link: %v.")
	}
	return &req, nil
}

// apiCreateLink answers POST /api/v1/apps/{id}/links.
func (d *Dashboard) apiCreateLink(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	req, err := decodeLinkRequest(r)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	l := &tapline.Link{AppID: app.ID}
	if req.Slug != nil {
		l.Slug = *req.Slug
	}
	if err := req.apply(l, d.now().UTC()); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	if err := d.Accounts.CreateLink(r.Context(), l); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusCreated, d.linkView(l))
}

// apiLink reads the link of the path for the app, answering the error.
func (d *Dashboard) apiLink(w http.ResponseWriter, r *http.Request) (*tapline.Link, bool) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return nil, false
	}
	l, err := d.pathLink(r, app)
	if err != nil {
		d.writeJSONError(w, r, err)
		return nil, false
	}
	return l, true
}

func (d *Dashboard) apiGetLink(w http.ResponseWriter, r *http.Request) {
	if l, ok := d.apiLink(w, r); ok {
		d.writeJSON(w, http.StatusOK, d.linkView(l))
	}
}

// apiUpdateLink answers PATCH /api/v1/apps/{id}/links/{lid}.
func (d *Dashboard) apiUpdateLink(w http.ResponseWriter, r *http.Request) {
	l, ok := d.apiLink(w, r)
	if !ok {
		return
	}
	req, err := decodeLinkRequest(r)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	if req.Slug != nil && *req.Slug != l.Slug {
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "slug: a link's slug cannot change (ads carry its URL); create a new link"))
		return
	}
	if err := req.apply(l, d.now().UTC()); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	if err := d.Accounts.UpdateLink(r.Context(), l); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, d.linkView(l))
}

// apiLinksCSV answers GET /api/v1/apps/{id}/links.csv: the app's links,
// archived ones too, as the links page lists them.
func (d *Dashboard) apiLinksCSV(w http.ResponseWriter, r *http.Request) {
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	links, err := d.Accounts.LinksByApp(r.Context(), app.ID)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	cw := csvAttachment(w, fmt.Sprintf("app-%d-links.csv", app.ID))
	_ = cw.Write([]string{"link_id", "slug", "name", "tracking_url", "params", "deep_link", "ios_url", "android_url", "web_url", "archived_at", "created_at",
		"click_window", "fingerprint_window"})
	for _, l := range links {
		q := url.Values{}
		for k, v := range l.Params {
			q.Set(k, v)
		}
		archived := ""
		if l.ArchivedAt != nil {
			archived = l.ArchivedAt.UTC().Format(time.RFC3339)
		}
		_ = cw.Write([]string{strconv.FormatInt(l.ID, 10), l.Slug, csvText(l.Name), d.trackingURL(l.Slug), csvText(q.Encode()), csvText(l.DeepLink),
			l.IOSURL, l.AndroidURL, l.WebURL, archived, l.CreatedAt.UTC().Format(time.RFC3339),
			ownWindow(l.ClickWindow), ownWindow(l.FingerprintWindow)})
	}
	cw.Flush()
}
