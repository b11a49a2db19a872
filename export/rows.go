package export

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// What leaves in an export: the domain types, less what tapline keeps only
// to match (advertising ids, in parameters and install referrers too, the
// vendor id, the full address, the User-Agent, client hints and Referer)
// and its own bookkeeping (bus positions). The address becomes its network, masked as the conversions
// explorer shows it (fingerprint.MaskNetwork), and so does the
// fingerprint's. Conversions leave as the conversions table keeps them,
// which is already so.

// exportHit strips h, a hit read for an export, to what leaves.
func exportHit(h *tapline.Hit) {
	h.Time = h.Time.UTC()
	h.IP = fingerprint.MaskNetwork(h.IP)
	h.Fingerprint = fingerprint.MaskFingerprint(h.Fingerprint)
	h.AdID = ""
	h.Params = tapline.WithoutAdIDs(h.Params)
	h.UserAgent, h.ClientHints, h.Referer = "", nil, ""
	h.Source = ""
}

// exportEvent strips e, an event read for an export, to what leaves.
func exportEvent(e *tapline.Event) {
	e.Time, e.ReceivedAt = e.Time.UTC(), e.ReceivedAt.UTC()
	e.IP = fingerprint.MaskNetwork(e.IP)
	e.Fingerprint = fingerprint.MaskFingerprint(e.Fingerprint)
	e.Device.IDFA, e.Device.GAID, e.Device.IDFV = "", "", ""
	e.Params = tapline.WithoutAdIDs(e.Params)
	e.Referrer = referrerWithoutAdIDs(e.Referrer)
	e.Source, e.CountedUnder = "", nil
}

// referrerWithoutAdIDs returns an install referrer (a query string)
// without the parameters that carry an advertising id, or as it is when it
// has none.
func referrerWithoutAdIDs(r string) string {
	q, err := url.ParseQuery(r)
	if err != nil {
		return r
	}
	found := false
	for k := range q {
		if tapline.IsAdIDParam(k) {
			found = true
			q.Del(k)
		}
	}
	if !found {
		return r
	}
	return q.Encode()
}

// column is one column of a CSV export: its header and how a row fills it.
type column[T any] struct {
	name  string
	value func(*T) string
}

// header returns the names of cols, the CSV header line's fields.
func header[T any](cols []column[T]) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// record fills rec (reused, len(cols)) with row's values.
func record[T any](cols []column[T], row *T, rec []string) []string {
	rec = rec[:0]
	for _, c := range cols {
		rec = append(rec, c.value(row))
	}
	return rec
}

// The CSV columns of each kind, documented in docs/dashboard-api.md (a
// test compares them). Ids and times are written as they are: a client
// makes a row's cursor from them. Free text a spreadsheet would take for a
// formula is prefixed with ' (csvText).
var (
	hitColumns = append(append([]column[hitRow]{
		{"id", func(h *hitRow) string { return h.ID }},
		{"time", func(h *hitRow) string { return formatTime(h.Time) }},
		{"link_id", func(h *hitRow) string { return strconv.FormatInt(h.LinkID, 10) }},
		{"platform", func(h *hitRow) string { return string(h.Platform) }},
		{"os_version", func(h *hitRow) string { return csvText(h.OSVersion) }},
		{"model", func(h *hitRow) string { return csvText(h.Model) }},
		{"network", func(h *hitRow) string { return h.IP }},
		{"accept_language", func(h *hitRow) string { return csvText(h.AcceptLanguage) }},
		{"bot", func(h *hitRow) string { return csvText(h.Bot) }},
	}, campaignColumns(func(h *hitRow) tapline.FactKey { return h.campaign })...),
		column[hitRow]{"params", func(h *hitRow) string { return csvText(queryText(h.Params)) }})

	eventColumns = []column[tapline.Event]{
		{"id", func(e *tapline.Event) string { return e.ID }},
		{"time", func(e *tapline.Event) string { return formatTime(e.Time) }},
		{"received_at", func(e *tapline.Event) string { return formatTime(e.ReceivedAt) }},
		{"name", func(e *tapline.Event) string { return csvText(e.Name) }},
		{"kind", func(e *tapline.Event) string { return string(e.Kind) }},
		{"install_id", func(e *tapline.Event) string { return csvText(e.InstallID) }},
		{"platform", func(e *tapline.Event) string { return string(e.Device.Platform) }},
		{"os_version", func(e *tapline.Event) string { return csvText(e.Device.OSVersion) }},
		{"model", func(e *tapline.Event) string { return csvText(e.Device.Model) }},
		{"vendor", func(e *tapline.Event) string { return csvText(e.Device.Vendor) }},
		{"locale", func(e *tapline.Event) string { return csvText(e.Device.Locale) }},
		{"resolution", func(e *tapline.Event) string { return csvText(e.Device.Resolution) }},
		{"app_version", func(e *tapline.Event) string { return csvText(e.Device.AppVersion) }},
		{"limit_ad_tracking", func(e *tapline.Event) string { return strconv.FormatBool(e.Device.LimitAdTracking) }},
		{"network", func(e *tapline.Event) string { return e.IP }},
		{"referrer", func(e *tapline.Event) string { return csvText(e.Referrer) }},
		{"revenue_micros", func(e *tapline.Event) string {
			if e.Revenue == nil {
				return ""
			}
			return strconv.FormatInt(e.Revenue.Micros, 10)
		}},
		{"revenue_currency", func(e *tapline.Event) string {
			if e.Revenue == nil {
				return ""
			}
			return csvText(e.Revenue.Currency)
		}},
		{"params", func(e *tapline.Event) string { return csvText(queryText(e.Params)) }},
		{"protocol", func(e *tapline.Event) string { return e.Protocol }},
	}
)

// Columns returns the CSV columns of an export of kind (KindHits, …), as
// its header line names them; nil for another kind.
func Columns(kind string) []string {
	switch kind {
	case KindHits:
		return header(hitColumns)
	case KindEvents:
		return header(eventColumns)
	case KindConversions:
		return header(conversionColumns)
	}
	return nil
}

// hitRow is a hit with its campaign as the facts count it, for the CSV.
type hitRow struct {
	*tapline.Hit
	campaign tapline.FactKey
}

// convRow is a conversion with the name of its link and the campaign of
// its tap, for the CSV.
type convRow struct {
	*tapline.Conversion
	linkName string
	campaign tapline.FactKey
}

// conversionColumns are those of the dashboard's conversions.csv.
var conversionColumns = append(append([]column[convRow]{
	{"conversion_id", func(c *convRow) string { return c.ID }},
	{"install_id", func(c *convRow) string { return csvText(c.InstallID) }},
	{"install_time", func(c *convRow) string { return formatTime(c.InstallTime) }},
	{"platform", func(c *convRow) string { return string(c.Platform) }},
	{"method", func(c *convRow) string { return string(c.Method) }},
	{"link_id", func(c *convRow) string {
		if c.LinkID == 0 {
			return ""
		}
		return strconv.FormatInt(c.LinkID, 10)
	}},
	{"link_name", func(c *convRow) string { return csvText(c.linkName) }},
	{"hit_id", func(c *convRow) string { return csvText(c.HitID) }},
	{"hit_time", func(c *convRow) string {
		if !clicked(c.Conversion) {
			return ""
		}
		return formatTime(c.HitTime)
	}},
	{"click_to_install_ms", func(c *convRow) string {
		if !clicked(c.Conversion) {
			return ""
		}
		return strconv.FormatInt(c.ClickToInstall.Milliseconds(), 10)
	}},
}, campaignColumns(func(c *convRow) tapline.FactKey { return c.campaign })...),
	column[convRow]{"rule", func(c *convRow) string {
		if c.Decision == nil {
			return ""
		}
		return c.Decision.Rule
	}},
	column[convRow]{"reason", func(c *convRow) string {
		if c.Decision == nil {
			return ""
		}
		return csvText(c.Decision.Reason)
	}},
	column[convRow]{"changes", func(c *convRow) string { return strconv.Itoa(len(c.History)) }},
)

// clicked reports whether c credits a tap with a known time.
func clicked(c *tapline.Conversion) bool {
	return c.Method != tapline.MethodOrganic && !c.HitTime.IsZero()
}

// campaignColumns returns a column per campaign dimension (source, medium,
// campaign, adgroup, creative, site) of the key campaign returns, made by
// FactKey.WithCampaign from a tap's query parameters as the facts count
// them.
func campaignColumns[T any](campaign func(*T) tapline.FactKey) []column[T] {
	out := make([]column[T], 0, len(tapline.CampaignDims))
	for _, dim := range tapline.CampaignDims {
		out = append(out, column[T]{dim.Column, func(row *T) string { return csvText(dim.Text(campaign(row))) }})
	}
	return out
}

// formatTime writes a time as rows carry it: RFC 3339 in UTC with
// nanoseconds, as JSON has it.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// queryText writes parameters as a query string, by name.
func queryText(params map[string]string) string {
	if len(params) == 0 {
		return ""
	}
	v := make(url.Values, len(params))
	for k, s := range params {
		v.Set(k, s)
	}
	return v.Encode()
}

// csvText prefixes text a spreadsheet would take for a formula with ', as
// the dashboard's CSV files do.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
