package dashboard

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"tapline"
	"tapline/export"
)

// exportParams are the query parameters of a raw data download.
var exportParams = []string{"kind", "format", "from", "to", "tz"}

// exportKindLabels name the kinds of rows for the export form.
var exportKindLabels = map[string]string{
	export.KindConversions: "Conversions (installs and their attribution)",
	export.KindEvents:      "Events (from the SDK)",
	export.KindHits:        "Hits (taps on tracking links)",
}

// exportOption is a choice of the export form's selects.
type exportOption struct{ Value, Label string }

// exportKinds lists the kinds the export streams, for the form.
func exportKinds() []exportOption {
	out := make([]exportOption, 0, len(export.Kinds))
	for _, k := range export.Kinds {
		out = append(out, exportOption{Value: k, Label: cmp.Or(exportKindLabels[k], k)})
	}
	return out
}

// errExportRole is the refusal of a download to a user whose role may not
// export raw data.
var errExportRole = tapline.Errorf(tapline.EFORBIDDEN,
	"Your role in this account is viewer: only owners download raw data. Ask an owner of the account for the file, or to make you an owner.")

// exportDownload answers GET /apps/{id}/export?kind=…&format=…&from=…&to=…&tz=…:
// the app's raw data of the range's days in tz, streamed by the export
// (export.API.Download) as one file, to a logged-in owner of the app's
// account. Another account's app is not found, as everywhere; a viewer
// is refused (tapline.Role.CanExport); a bad parameter is a 400 page
// saying which. The request only reads, so it is a GET a link or a form
// can make; the session cookie is SameSite=Lax, so no other site's page
// can make it with the user's session but as a top-level navigation,
// whose file lands on the user's own machine.
func (d *Dashboard) exportDownload(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	if !p.canExport() {
		d.writeError(w, r, errExportRole)
		return
	}
	if d.Download == nil {
		d.writeError(w, r, tapline.Errorf(tapline.EUNAVAILABLE, "This dashboard serves no raw data export: use the export API of a tapline process that does."))
		return
	}
	q := r.URL.Query()
	for name, vals := range q {
		if !slices.Contains(exportParams, name) {
			d.writeError(w, r, tapline.Errorf(tapline.EINVALID, "%s: unknown parameter; a download takes %s", name, strings.Join(exportParams, ", ")))
			return
		}
		if len(vals) > 1 {
			d.writeError(w, r, tapline.Errorf(tapline.EINVALID, "%s: given %d times", name, len(vals)))
			return
		}
	}
	if q.Get("kind") == "" {
		d.writeError(w, r, tapline.Errorf(tapline.EINVALID, "kind: missing; choose one of %s", strings.Join(export.Kinds, ", ")))
		return
	}
	dr, err := parseRange(q, d.now())
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	err = d.Download(w, r, export.Download{
		App: app, Kind: q.Get("kind"), Format: q.Get("format"),
		From: dr.From, To: dr.To.AddDate(0, 0, 1),
		Name: exportName(app, q.Get("kind"), dr),
	})
	if err != nil {
		d.writeError(w, r, err)
	}
}

// exportName names a download's file, without its extension:
// "acme-shop-conversions-2026-11-01-2026-11-30", the app's name in
// lower-case ASCII letters and digits ("app-7" when that leaves nothing),
// the kind and the range's first and last days.
func exportName(app *tapline.App, kind string, dr dayRange) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(app.Name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(c)
			dash = false
		} else {
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	name := b.String()
	if name == "" {
		name = "app-" + strconv.FormatInt(app.ID, 10)
	}
	return name + "-" + kind + "-" + dr.From.Format(dayLayout) + "-" + dr.To.Format(dayLayout)
}
