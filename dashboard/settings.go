package dashboard

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// appPatch is a change of an app's settings, from a PATCH body or the
// settings form: absent (nil) fields stay. Windows are durations such as
// "168h", "90m" or "7d".
type appPatch struct {
	Name              *string `json:"name"`
	IOSURL            *string `json:"ios_url"`
	AndroidURL        *string `json:"android_url"`
	WebURL            *string `json:"web_url"`
	ClickWindow       *string `json:"click_window"`
	FingerprintWindow *string `json:"fingerprint_window"`
	LatenessHorizon   *string `json:"lateness_horizon"`
	Retention         *string `json:"retention"`
	// FingerprintMinScore is a number in JSON; the form's text is read by
	// parseMinScore.
	FingerprintMinScore *float64 `json:"fingerprint_min_score"`
	// Fraud changes the fraud policy: absent fields stay.
	Fraud *fraudPatch `json:"fraud"`
	// ReengagementWindow, ReinstallWindow and ReattributeReinstalls set
	// the rules of re-engagements and reinstalls (see tapline.App).
	ReengagementWindow    *string `json:"reengagement_window"`
	ReinstallWindow       *string `json:"reinstall_window"`
	ReattributeReinstalls *bool   `json:"reattribute_reinstalls"`
	// AppStoreID sets the App Store id SKAdNetwork postbacks name the app
	// by (0 clears it); ConversionSchema replaces the labels of its
	// conversion values.
	AppStoreID       *int64                    `json:"app_store_id"`
	ConversionSchema *tapline.ConversionSchema `json:"conversion_schema"`
}

// parseAppStoreID reads the settings form's App Store id: the number, the
// same with "id" before it, or the app's apps.apple.com address; empty is
// none (0).
func parseAppStoreID(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	digits := s
	if i := strings.LastIndex(s, "/id"); i >= 0 {
		digits = s[i+3:]
		if j := strings.IndexAny(digits, "?#/"); j >= 0 {
			digits = digits[:j]
		}
	}
	digits = strings.TrimPrefix(digits, "id")
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return 0, tapline.Errorf(tapline.EINVALID, "app_store_id: %q is not an App Store id such as 525463029 (the digits after id in the app's apps.apple.com address)", s)
	}
	return n, nil
}

// parseSchemaLines reads the settings form's conversion schema: one
// "value = label" a line, the value a fine one (0 to 63) or low, medium or
// high; blank lines and lines starting with # are skipped.
func parseSchemaLines(text string) (tapline.ConversionSchema, error) {
	var s tapline.ConversionSchema
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		value, label, ok := strings.Cut(line, "=")
		if !ok {
			return s, tapline.Errorf(tapline.EINVALID, "conversion_schema: line %d, %q, is not value = label", i+1, line)
		}
		if err := s.SetLabel(strings.ToLower(strings.TrimSpace(value)), strings.TrimSpace(label)); err != nil {
			return s, tapline.Errorf(tapline.EINVALID, "conversion_schema: line %d: %s", i+1, strings.TrimPrefix(tapline.ErrorMessage(err), "conversion_schema: "))
		}
	}
	return s, nil
}

// schemaLines writes s as the settings form shows it.
func schemaLines(s tapline.ConversionSchema) string {
	var b strings.Builder
	for _, v := range s.Values() {
		b.WriteString(v + " = " + s.Labelled(v) + "\n")
	}
	return b.String()
}

// parseMinScore reads the settings form's fingerprint_min_score.
func parseMinScore(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, tapline.Errorf(tapline.EINVALID, "fingerprint_min_score: %q is not a number, such as 0.5 or -1", s)
	}
	return v, nil
}

// fraudPatch is a change of an app's fraud policy: actions "flag" or
// "reject", the minimum click-to-install time as a duration ("10s",
// "1500ms"), the flood rule's tap count and install rate (0.001: 0.1%).
type fraudPatch struct {
	ClickInjection      *string  `json:"click_injection"`
	ClickFlooding       *string  `json:"click_flooding"`
	Datacenter          *string  `json:"datacenter"`
	TapAfterInstall     *string  `json:"tap_after_install"`
	MinClickToInstall   *string  `json:"min_click_to_install"`
	FloodMinTaps        *int     `json:"flood_min_taps"`
	FloodMaxInstallRate *float64 `json:"flood_max_install_rate"`
}

// apply sets the fields p names on policy; the store validates the result.
func (p *fraudPatch) apply(policy *tapline.FraudPolicy) error {
	for s, v := range map[tapline.FraudSignal]*string{
		tapline.FraudClickInjection: p.ClickInjection, tapline.FraudClickFlooding: p.ClickFlooding,
		tapline.FraudDatacenter: p.Datacenter, tapline.FraudTapAfterInstall: p.TapAfterInstall,
	} {
		if v != nil {
			policy.SetAction(s, tapline.FraudAction(strings.ToLower(strings.TrimSpace(*v))))
		}
	}
	if p.MinClickToInstall != nil {
		d, err := time.ParseDuration(strings.TrimSpace(*p.MinClickToInstall))
		if err != nil {
			return tapline.Errorf(tapline.EINVALID, "fraud.min_click_to_install: %q is not a duration such as \"10s\" or \"1500ms\"", *p.MinClickToInstall)
		}
		policy.MinClickToInstall = d
	}
	if p.FloodMinTaps != nil {
		policy.FloodMinTaps = *p.FloodMinTaps
	}
	if p.FloodMaxInstallRate != nil {
		policy.FloodMaxInstallRate = *p.FloodMaxInstallRate
	}
	return nil
}

// parseWindow reads a window: a Go duration, or whole days as "7d".
func parseWindow(field, s string) (time.Duration, error) { return tapline.ParseWindow(field, s) }

// apply sets the fields p names on a.
func (p *appPatch) apply(a *tapline.App) error {
	for _, f := range []struct {
		src *string
		dst *string
	}{{p.Name, &a.Name}, {p.IOSURL, &a.IOSURL}, {p.AndroidURL, &a.AndroidURL}, {p.WebURL, &a.WebURL}} {
		if f.src != nil {
			*f.dst = strings.TrimSpace(*f.src)
		}
	}
	for _, w := range []struct {
		field string
		src   *string
		dst   *time.Duration
	}{
		{"click_window", p.ClickWindow, &a.ClickWindow},
		{"fingerprint_window", p.FingerprintWindow, &a.FingerprintWindow},
		{"lateness_horizon", p.LatenessHorizon, &a.LatenessHorizon},
		{"retention", p.Retention, &a.Retention},
		{"reengagement_window", p.ReengagementWindow, &a.ReengagementWindow},
		{"reinstall_window", p.ReinstallWindow, &a.ReinstallWindow},
	} {
		if w.src == nil {
			continue
		}
		d, err := parseWindow(w.field, *w.src)
		if err != nil {
			return err
		}
		*w.dst = d
	}
	if p.ReattributeReinstalls != nil {
		a.ReattributeReinstalls = *p.ReattributeReinstalls
	}
	if p.FingerprintMinScore != nil {
		a.FingerprintMinScore = *p.FingerprintMinScore
	}
	if p.AppStoreID != nil {
		a.AppStoreID = *p.AppStoreID
	}
	if p.ConversionSchema != nil {
		a.ConversionSchema = *p.ConversionSchema
	}
	if p.Fraud != nil {
		return p.Fraud.apply(&a.Fraud)
	}
	return nil
}

// updateApp applies p to app and stores it.
func (d *Dashboard) updateApp(r *http.Request, app *tapline.App, p *appPatch) error {
	if err := p.apply(app); err != nil {
		return err
	}
	return d.Accounts.UpdateApp(r.Context(), app)
}

// apiUpdateApp answers PATCH /api/v1/apps/{id}.
func (d *Dashboard) apiUpdateApp(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.apiApp(w, r); ok {
		d.patchApp(w, r, app)
	}
}

// adminUpdateApp answers PATCH /admin/v1/apps/{id}: any account's app.
func (d *Dashboard) adminUpdateApp(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(chi.URLParam(r, "id"), "app")
	var app *tapline.App
	if err == nil {
		app, err = d.Accounts.App(r.Context(), id)
	}
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.patchApp(w, r, app)
}

// patchApp applies the JSON body's change to app and answers it.
func (d *Dashboard) patchApp(w http.ResponseWriter, r *http.Request, app *tapline.App) {
	var p appPatch
	if !d.decodeJSON(w, r, &p) {
		return
	}
	if err := d.updateApp(r, app, &p); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, NewAppView(app))
}

// settingsData feeds the settings page.
type settingsData struct {
	App *tapline.App
	// DefaultMinScore is tapline.DefaultFingerprintMinScore, for the form's hint.
	DefaultMinScore float64
	Form            map[string]string // field values as shown
	Error           string
	Saved           bool
}

// settingsForm is the form showing app.
func settingsForm(app *tapline.App) map[string]string {
	return map[string]string{
		"name": app.Name, "ios_url": app.IOSURL, "android_url": app.AndroidURL, "web_url": app.WebURL,
		"click_window": formatDuration(app.ClickWindow), "fingerprint_window": formatDuration(app.FingerprintWindow),
		"lateness_horizon": formatDuration(app.LatenessHorizon), "retention": formatDuration(app.Retention),
		"fingerprint_min_score": strconv.FormatFloat(app.FingerprintMinScore, 'f', -1, 64),
		"fraud_click_injection": string(app.Fraud.ClickInjection), "fraud_click_flooding": string(app.Fraud.ClickFlooding),
		"fraud_datacenter": string(app.Fraud.Datacenter), "fraud_tap_after_install": string(app.Fraud.TapAfterInstall),
		"fraud_min_click_to_install":   app.Fraud.MinClickToInstall.String(),
		"fraud_flood_min_taps":         strconv.Itoa(app.Fraud.FloodMinTaps),
		"fraud_flood_max_install_rate": strconv.FormatFloat(app.Fraud.FloodMaxInstallRate*100, 'f', -1, 64),
		"reengagement_window":          formatDuration(app.ReengagementWindow), "reinstall_window": formatDuration(app.ReinstallWindow),
		"reattribute_reinstalls": strconv.FormatBool(app.ReattributeReinstalls),
		"app_store_id":           formatAppStoreID(app.AppStoreID),
		"conversion_schema":      schemaLines(app.ConversionSchema),
	}
}

// formatAppStoreID shows an App Store id, "" for none.
func formatAppStoreID(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// fraudForm reads the fraud fields of the settings form into p.Fraud:
// the install rate is a percentage there.
func fraudForm(form url.Values, p *appPatch, shown map[string]string) error {
	fp := &fraudPatch{}
	for name, dst := range map[string]**string{
		"fraud_click_injection": &fp.ClickInjection, "fraud_click_flooding": &fp.ClickFlooding,
		"fraud_datacenter": &fp.Datacenter, "fraud_tap_after_install": &fp.TapAfterInstall,
		"fraud_min_click_to_install": &fp.MinClickToInstall,
	} {
		if vals, ok := form[name]; ok {
			v := vals[0]
			shown[name], *dst = v, &v
		}
	}
	if vals, ok := form["fraud_flood_min_taps"]; ok {
		shown["fraud_flood_min_taps"] = vals[0]
		n, err := strconv.Atoi(strings.TrimSpace(vals[0]))
		if err != nil {
			return tapline.Errorf(tapline.EINVALID, "fraud.flood_min_taps: %q is not a whole number", vals[0])
		}
		fp.FloodMinTaps = &n
	}
	if vals, ok := form["fraud_flood_max_install_rate"]; ok {
		shown["fraud_flood_max_install_rate"] = vals[0]
		pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(vals[0]), "%"), 64)
		if err != nil {
			return tapline.Errorf(tapline.EINVALID, "fraud.flood_max_install_rate: %q is not a percentage", vals[0])
		}
		rate := pct / 100
		fp.FloodMaxInstallRate = &rate
	}
	p.Fraud = fp
	return nil
}

func (d *Dashboard) settingsPage(w http.ResponseWriter, r *http.Request) {
	if app, ok := d.pageApp(w, r); ok {
		d.render(w, r, http.StatusOK, "settings", settingsData{App: app, DefaultMinScore: tapline.DefaultFingerprintMinScore, Form: settingsForm(app), Saved: r.URL.Query().Get("saved") == "1"})
	}
}

func (d *Dashboard) saveSettings(w http.ResponseWriter, r *http.Request) {
	app, ok := d.pageApp(w, r)
	if !ok {
		return
	}
	if err := parseForm(w, r); err != nil {
		d.writeError(w, r, err)
		return
	}
	form := map[string]string{}
	var p appPatch
	for name, dst := range map[string]**string{
		"name": &p.Name, "ios_url": &p.IOSURL, "android_url": &p.AndroidURL, "web_url": &p.WebURL,
		"click_window": &p.ClickWindow, "fingerprint_window": &p.FingerprintWindow,
		"lateness_horizon": &p.LatenessHorizon, "retention": &p.Retention,
		"reengagement_window": &p.ReengagementWindow, "reinstall_window": &p.ReinstallWindow,
	} {
		if vals, ok := r.PostForm[name]; ok {
			v := vals[0]
			form[name], *dst = v, &v
		}
	}
	if _, ok := r.PostForm["reinstall_rules"]; ok {
		// A checkbox is sent only when ticked: the form's hidden field
		// says the option was shown.
		v := r.PostForm.Get("reattribute_reinstalls") != ""
		form["reattribute_reinstalls"], p.ReattributeReinstalls = strconv.FormatBool(v), &v
	}
	var err error
	if v, ok := r.PostForm["fingerprint_min_score"]; ok {
		form["fingerprint_min_score"] = v[0]
		var score float64
		if score, err = parseMinScore(v[0]); err == nil {
			p.FingerprintMinScore = &score
		}
	}
	if v, ok := r.PostForm["app_store_id"]; ok {
		form["app_store_id"] = v[0]
		if id, perr := parseAppStoreID(v[0]); perr != nil {
			err = cmp.Or(err, perr)
		} else {
			p.AppStoreID = &id
		}
	}
	if v, ok := r.PostForm["conversion_schema"]; ok {
		form["conversion_schema"] = v[0]
		if schema, perr := parseSchemaLines(v[0]); perr != nil {
			err = cmp.Or(err, perr)
		} else {
			p.ConversionSchema = &schema
		}
	}
	if err == nil {
		err = fraudForm(r.PostForm, &p, form)
	}
	if err == nil {
		err = d.updateApp(r, app, &p)
	}
	if err != nil {
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.ECONFLICT {
			d.writeError(w, r, err)
			return
		}
		stored, serr := d.Accounts.App(r.Context(), app.ID)
		if serr != nil {
			d.writeError(w, r, serr)
			return
		}
		shown := settingsForm(stored)
		for k, v := range form {
			shown[k] = v
		}
		d.render(w, r, http.StatusBadRequest, "settings", settingsData{App: stored, DefaultMinScore: tapline.DefaultFingerprintMinScore, Form: shown, Error: tapline.ErrorMessage(err)})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/apps/%d/settings?saved=1", app.ID), http.StatusSeeOther)
}
