package tapline

import (
	"cmp"
	"context"
	"encoding/base64"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FactTable names a fact table. FactTables declares each one.
type FactTable string

// Fact tables.
const (
	FactHits        FactTable = "hits"
	FactEvents      FactTable = "events"
	FactInstalls    FactTable = "installs"
	FactConversions FactTable = "conversions"
	FactRevenue     FactTable = "revenue"
	FactFunnelSteps FactTable = "funnel_steps"
	// FactCohortActivity and FactCohortRevenue are the cohort tables:
	// keyed by the hour of the install, and the day after it (DayN).
	FactCohortActivity FactTable = "cohort_activity"
	FactCohortRevenue  FactTable = "cohort_revenue"
	// FactBotHits counts the requests for links that got their redirect
	// but are no taps (Hit.Bot), by link and Agent.
	FactBotHits FactTable = "bot_hits"
	// FactFraud counts the fraud signals found on the taps installs were
	// credited to (or refused), by link, FraudSignal and FraudAction.
	FactFraud FactTable = "fraud"
	// FactReengagements counts re-engagements (Reengagement): opens of an
	// installed app credited to a tap on a re-engagement link, in the
	// hour of the open.
	FactReengagements FactTable = "reengagements"
	// FactReinstalls counts reinstalls (Conversion.Reinstall), in the hour
	// of the install, apart from FactInstalls.
	FactReinstalls FactTable = "reinstalls"
	// FactTotals sums hits, events, installs, conversions and revenue per
	// hour and measure, without their other dimensions: what the daily
	// chart and table read (see FactKey.Total).
	FactTotals FactTable = "totals"
	// FactDaily sums the same five tables per UTC day, measure and one
	// report dimension's value at a time (and per day alone): what
	// breakdowns read for the whole UTC days of their range (see
	// FactKey.Rollups).
	FactDaily FactTable = "daily"
	// FactWeekly is FactDaily per UTC week, Monday to Sunday: what
	// breakdowns by a dimension read for the whole weeks of their range.
	FactWeekly FactTable = "weekly"
	// FactSKAN counts SKAdNetwork and AdAttributionKit postbacks per UTC
	// day of receipt, ad network, source identifier, window, conversion
	// value and outcome (SKANPostback.Fact). The collector writes it with
	// each postback, not the matcher's flush.
	FactSKAN FactTable = "skan"
)

// FactPeriod is the time one row of a fact table covers, in UTC.
type FactPeriod int

// Periods of the fact tables.
const (
	PeriodHour FactPeriod = iota // column hour, a timestamptz
	PeriodDay                    // column day, a date
	PeriodWeek                   // column week, a date: the week's Monday
)

// Column returns the SQL column holding a row's period.
func (p FactPeriod) Column() string {
	switch p {
	case PeriodDay:
		return "day"
	case PeriodWeek:
		return "week"
	}
	return "hour"
}

// Seconds returns the length of the period.
func (p FactPeriod) Seconds() int64 {
	switch p {
	case PeriodDay:
		return 86400
	case PeriodWeek:
		return 7 * 86400
	}
	return 3600
}

// Floor returns the start of the period holding the Unix time t: weeks
// start on Mondays (the first, 1970-01-05, is 4 days after the epoch).
func (p FactPeriod) Floor(t int64) int64 {
	origin := int64(0)
	if p == PeriodWeek {
		origin = 4 * 86400
	}
	n := p.Seconds()
	return t - (((t-origin)%n)+n)%n
}

// FactKey identifies one row of a fact table: its table, UTC hour and app,
// and the dimensions that table keeps (see FactTables); the others are zero
// (see Normalise). It is comparable, so deltas aggregate in a map.
type FactKey struct {
	Table     FactTable
	Hour      int64 // Unix seconds of the UTC hour (in a rollup, of its day or week)
	AppID     int64
	LinkID    int64 // 0: no link (organic)
	Platform  Platform
	EventName string
	Method    MatchMethod
	Currency  string
	Funnel    int64  // a funnel version id (Funnel.VersionID)
	Breakdown string // the funnel breakdown value
	Step      int    // a funnel step (level), 1-based
	Bucket    int    // index into FunnelBuckets

	// Campaign dimensions, from the tap's query parameters (see
	// CampaignDims); "" when the tap had none, CampaignOther past the cap.
	Source   string
	Medium   string
	Campaign string
	AdGroup  string
	Creative string
	Site     string

	// Measure is the table a FactTotals, FactDaily or FactWeekly row sums.
	Measure FactTable

	// DayN is a cohort row's day after the install: 0 the install's own
	// 24 hours, N the 24 hours from N days after it.
	DayN int

	// Dim is the ReportDim (its Name) a daily or weekly row is broken
	// down by, "" for the period's total; Value is that dimension's value
	// as text (a link id in decimal).
	Dim   string
	Value string

	// Agent is why a FactBotHits row's requests are no taps (Hit.Bot).
	Agent string

	// Signal and Action are a FactFraud row's fraud signal and the action
	// the app's policy took.
	Signal FraudSignal
	Action FraudAction

	// A FactSKAN row's postbacks: their ad network, source identifier (or
	// campaign id), window (0 to 2), conversion value (SKANPostback.Value)
	// and outcome.
	AdNetwork        string
	SourceIdentifier string
	PostbackWindow   int
	ConversionValue  string
	Outcome          SKANOutcome
}

// MaxCohortDay is the last day after an install the cohort tables count.
const MaxCohortDay = 90

// CohortDay returns the day after an install at install that t falls in:
// whole 24-hour periods since the install, and whether the cohort tables
// count it (0 to MaxCohortDay). A device clock behind the install's by a
// little is day 0.
func CohortDay(install, t time.Time) (int, bool) {
	d := t.Sub(install)
	if d < 0 {
		d = 0
	}
	n := int(d / (24 * time.Hour))
	return n, n <= MaxCohortDay
}

// FactColumnType is the SQL type of a dimension's column, spelt as
// PostgreSQL's format_type spells it.
type FactColumnType string

// Column types of dimensions.
const (
	FactBigint  FactColumnType = "bigint"  // an int64 field
	FactInteger FactColumnType = "integer" // an int field, within the int32 range
	FactText    FactColumnType = "text"    // a string field
)

// FactDim is one dimension of the fact tables: a field of FactKey and the
// column that holds it in every table that keeps it.
type FactDim struct {
	Column string         // the SQL column
	Type   FactColumnType // its SQL type

	// Params are the tap query parameters a campaign dimension takes its
	// value from, the first one present winning; nil for the others.
	Params []string

	// int reads an integer dimension, text a text one; keep copies the
	// field from k into n; set (campaign dimensions) sets it in k.
	int  func(k FactKey) int64
	text func(k FactKey) string
	keep func(n, k FactKey) FactKey
	set  func(k *FactKey, v string)
}

// The dimensions, one per FactKey field beyond Table, Hour and AppID.
var (
	dimLinkID = &FactDim{Column: "link_id", Type: FactBigint,
		int:  func(k FactKey) int64 { return k.LinkID },
		keep: func(n, k FactKey) FactKey { n.LinkID = k.LinkID; return n }}
	dimPlatform = &FactDim{Column: "platform", Type: FactText,
		text: func(k FactKey) string { return string(k.Platform) },
		keep: func(n, k FactKey) FactKey { n.Platform = k.Platform; return n }}
	dimEventName = &FactDim{Column: "event_name", Type: FactText,
		text: func(k FactKey) string { return k.EventName },
		keep: func(n, k FactKey) FactKey { n.EventName = k.EventName; return n }}
	dimMethod = &FactDim{Column: "method", Type: FactText,
		text: func(k FactKey) string { return string(k.Method) },
		keep: func(n, k FactKey) FactKey { n.Method = k.Method; return n }}
	dimCurrency = &FactDim{Column: "currency", Type: FactText,
		text: func(k FactKey) string { return k.Currency },
		keep: func(n, k FactKey) FactKey { n.Currency = k.Currency; return n }}
	dimFunnel = &FactDim{Column: "funnel_version", Type: FactBigint,
		int:  func(k FactKey) int64 { return k.Funnel },
		keep: func(n, k FactKey) FactKey { n.Funnel = k.Funnel; return n }}
	dimBreakdown = &FactDim{Column: "breakdown", Type: FactText,
		text: func(k FactKey) string { return k.Breakdown },
		keep: func(n, k FactKey) FactKey { n.Breakdown = k.Breakdown; return n }}
	dimStep = &FactDim{Column: "step", Type: FactInteger,
		int:  func(k FactKey) int64 { return int64(k.Step) },
		keep: func(n, k FactKey) FactKey { n.Step = k.Step; return n }}
	dimBucket = &FactDim{Column: "bucket", Type: FactInteger,
		int:  func(k FactKey) int64 { return int64(k.Bucket) },
		keep: func(n, k FactKey) FactKey { n.Bucket = k.Bucket; return n }}
	dimDayN = &FactDim{Column: "day_n", Type: FactInteger,
		int:  func(k FactKey) int64 { return int64(k.DayN) },
		keep: func(n, k FactKey) FactKey { n.DayN = k.DayN; return n }}

	// The campaign dimensions: utm parameters and their AppsFlyer
	// (pid, c, af_adset, af_ad, af_siteid) and Adjust (network, campaign,
	// adgroup, creative) names.
	dimSource = &FactDim{Column: "source", Type: FactText, Params: []string{"utm_source", "pid", "network"},
		text: func(k FactKey) string { return k.Source },
		keep: func(n, k FactKey) FactKey { n.Source = k.Source; return n },
		set:  func(k *FactKey, v string) { k.Source = v }}
	dimMedium = &FactDim{Column: "medium", Type: FactText, Params: []string{"utm_medium"},
		text: func(k FactKey) string { return k.Medium },
		keep: func(n, k FactKey) FactKey { n.Medium = k.Medium; return n },
		set:  func(k *FactKey, v string) { k.Medium = v }}
	dimCampaign = &FactDim{Column: "campaign", Type: FactText, Params: []string{"utm_campaign", "c", "campaign"},
		text: func(k FactKey) string { return k.Campaign },
		keep: func(n, k FactKey) FactKey { n.Campaign = k.Campaign; return n },
		set:  func(k *FactKey, v string) { k.Campaign = v }}
	dimAdGroup = &FactDim{Column: "adgroup", Type: FactText, Params: []string{"adgroup", "af_adset", "utm_term"},
		text: func(k FactKey) string { return k.AdGroup },
		keep: func(n, k FactKey) FactKey { n.AdGroup = k.AdGroup; return n },
		set:  func(k *FactKey, v string) { k.AdGroup = v }}
	dimCreative = &FactDim{Column: "creative", Type: FactText, Params: []string{"creative", "af_ad", "utm_content"},
		text: func(k FactKey) string { return k.Creative },
		keep: func(n, k FactKey) FactKey { n.Creative = k.Creative; return n },
		set:  func(k *FactKey, v string) { k.Creative = v }}
	dimSite = &FactDim{Column: "site", Type: FactText, Params: []string{"af_siteid", "site_id"},
		text: func(k FactKey) string { return k.Site },
		keep: func(n, k FactKey) FactKey { n.Site = k.Site; return n },
		set:  func(k *FactKey, v string) { k.Site = v }}
)

// The dimensions of the totals and rollups: the table a row sums, and (in
// the daily and weekly rollups) the report dimension it is broken down by
// and that dimension's value.
var (
	dimMeasure = &FactDim{Column: "measure", Type: FactText,
		text: func(k FactKey) string { return string(k.Measure) },
		keep: func(n, k FactKey) FactKey { n.Measure = k.Measure; return n }}
	dimReport = &FactDim{Column: "dim", Type: FactText,
		text: func(k FactKey) string { return k.Dim },
		keep: func(n, k FactKey) FactKey { n.Dim = k.Dim; return n }}
	dimValue = &FactDim{Column: "value", Type: FactText,
		text: func(k FactKey) string { return k.Value },
		keep: func(n, k FactKey) FactKey { n.Value = k.Value; return n }}
	dimAgent = &FactDim{Column: "agent", Type: FactText,
		text: func(k FactKey) string { return k.Agent },
		keep: func(n, k FactKey) FactKey { n.Agent = k.Agent; return n }}
	dimSignal = &FactDim{Column: "signal", Type: FactText,
		text: func(k FactKey) string { return string(k.Signal) },
		keep: func(n, k FactKey) FactKey { n.Signal = k.Signal; return n }}
	dimAction = &FactDim{Column: "action", Type: FactText,
		text: func(k FactKey) string { return string(k.Action) },
		keep: func(n, k FactKey) FactKey { n.Action = k.Action; return n }}
)

// The dimensions of the SKAdNetwork postbacks (FactSKAN).
var (
	dimAdNetwork = &FactDim{Column: "ad_network", Type: FactText,
		text: func(k FactKey) string { return k.AdNetwork },
		keep: func(n, k FactKey) FactKey { n.AdNetwork = k.AdNetwork; return n }}
	dimSourceIdentifier = &FactDim{Column: "source_identifier", Type: FactText,
		text: func(k FactKey) string { return k.SourceIdentifier },
		keep: func(n, k FactKey) FactKey { n.SourceIdentifier = k.SourceIdentifier; return n }}
	dimPostbackWindow = &FactDim{Column: "postback_window", Type: FactInteger,
		int:  func(k FactKey) int64 { return int64(k.PostbackWindow) },
		keep: func(n, k FactKey) FactKey { n.PostbackWindow = k.PostbackWindow; return n }}
	dimConversionValue = &FactDim{Column: "conversion_value", Type: FactText,
		text: func(k FactKey) string { return k.ConversionValue },
		keep: func(n, k FactKey) FactKey { n.ConversionValue = k.ConversionValue; return n }}
	dimOutcome = &FactDim{Column: "outcome", Type: FactText,
		text: func(k FactKey) string { return string(k.Outcome) },
		keep: func(n, k FactKey) FactKey { n.Outcome = k.Outcome; return n }}
)

// FactDims lists every dimension, in FactKey's field order.
var FactDims = []*FactDim{
	dimLinkID, dimPlatform, dimEventName, dimMethod, dimCurrency,
	dimFunnel, dimBreakdown, dimStep, dimBucket,
	dimSource, dimMedium, dimCampaign, dimAdGroup, dimCreative, dimSite,
	dimMeasure, dimDayN, dimReport, dimValue, dimAgent, dimSignal, dimAction,
	dimAdNetwork, dimSourceIdentifier, dimPostbackWindow, dimConversionValue, dimOutcome,
}

// CampaignDims are the campaign dimensions, which hits, installs,
// conversions, events and revenue keep: values a tap's query parameters
// carry, at most CampaignValueCap distinct ones per app and dimension.
var CampaignDims = []*FactDim{dimSource, dimMedium, dimCampaign, dimAdGroup, dimCreative, dimSite}

// Bounds of the campaign dimensions.
const (
	// CampaignValueCap is how many distinct values of one campaign
	// dimension an app's facts keep; the fact store counts later new
	// values as CampaignOther.
	CampaignValueCap = 500
	// CampaignOther stands for the values past the cap.
	CampaignOther = "(other)"
	// MaxCampaignValue is the longest value kept, in bytes; a longer one
	// is cut at a character boundary.
	MaxCampaignValue = 100
)

// Set sets the campaign dimension d of k to v; it does nothing for other
// dimensions.
func (d *FactDim) Set(k *FactKey, v string) {
	if d.set != nil {
		d.set(k, v)
	}
}

// WithCampaign returns k with its campaign dimensions taken from a tap's
// query parameters: each from the first of its Params present and not
// blank, as valid UTF-8 without control characters (PostgreSQL's text
// takes no NUL, and anyone can put anything in a tap's URL), trimmed and
// cut to MaxCampaignValue bytes.
func (k FactKey) WithCampaign(params map[string]string) FactKey {
	if len(params) == 0 {
		return k
	}
	for _, d := range CampaignDims {
		for _, p := range d.Params {
			if v := strings.TrimSpace(cleanText(params[p])); v != "" {
				d.set(&k, clipValue(v, MaxCampaignValue))
				break
			}
		}
	}
	return k
}

// cleanText returns s as valid UTF-8 without control characters.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "")
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// clipValue cuts s to at most n bytes without splitting a UTF-8 sequence.
func clipValue(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Int returns the dimension's value in k when its Type is an integer, else 0.
func (d *FactDim) Int(k FactKey) int64 {
	if d.int == nil {
		return 0
	}
	return d.int(k)
}

// Text returns the dimension's value in k when its Type is FactText, else "".
func (d *FactDim) Text(k FactKey) string {
	if d.text == nil {
		return ""
	}
	return d.text(k)
}

// IsZero reports whether k leaves the dimension zero.
func (d *FactDim) IsZero(k FactKey) bool {
	if d.text != nil {
		return d.text(k) == ""
	}
	return d.int(k) == 0
}

// Compare orders a and b by the dimension: integers numerically, text
// bytewise.
func (d *FactDim) Compare(a, b FactKey) int {
	if d.text != nil {
		return strings.Compare(d.text(a), d.text(b))
	}
	return cmp.Compare(d.int(a), d.int(b))
}

// show returns the dimension's value in k for messages.
func (d *FactDim) show(k FactKey) string {
	if d.text != nil {
		return strconv.Quote(d.text(k))
	}
	return strconv.FormatInt(d.int(k), 10)
}

// FactTableDesc declares one fact table: the one description the fact
// deltas, the fact store and its test against the schema are built from.
// Every table is keyed by app and its time (the UTC hour, or the UTC day
// or week of its Period), then its Dims, and adds up a count and a sum.
type FactTableDesc struct {
	Table FactTable
	// Dims are the dimensions the table keeps beyond app and time, in the
	// order of its primary key.
	Dims []*FactDim
	// Period is the time a row covers: an hour but for the rollups; a
	// key's Hour is the period's first second.
	Period FactPeriod
	// TimeAt is how many of Dims come before the time in the primary key,
	// after the app: 0 but for the rollups, which lead with the report
	// dimension so a breakdown reads one range of them.
	TimeAt int
	Count  string // what count counts
	Sum    string // what sum adds up; "" when it stays 0
}

// Key returns the columns of the table's primary key in order.
func (d *FactTableDesc) Key() []string {
	key := []string{"app_id"}
	for i, dim := range d.Dims {
		if i == d.TimeAt {
			key = append(key, d.TimeColumn())
		}
		key = append(key, dim.Column)
	}
	if d.TimeAt >= len(d.Dims) {
		key = append(key, d.TimeColumn())
	}
	return key
}

// TimeColumn is the column of the table's time: hour, day or week.
func (d *FactTableDesc) TimeColumn() string { return d.Period.Column() }

// FactTables declares every fact table, in the order a fact store writes
// them (a fixed order keeps concurrent writers from deadlocking).
var FactTables = []*FactTableDesc{
	{Table: FactHits, Dims: withCampaign(dimLinkID, dimPlatform),
		Count: "hits"},
	{Table: FactEvents, Dims: withCampaign(dimLinkID, dimEventName, dimPlatform, dimMethod),
		Count: "events, under the attribution of their installation (link 0, method organic: none)"},
	{Table: FactInstalls, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod),
		Count: "installs (link 0: organic)"},
	{Table: FactConversions, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod),
		Count: "conversions (matched installs)", Sum: "click-to-install milliseconds"},
	{Table: FactRevenue, Dims: withCampaign(dimLinkID, dimPlatform, dimCurrency, dimMethod),
		Count: "purchases, under the attribution of their installation (method \"\": counted before revenue kept it)", Sum: "revenue in micros of the currency"},
	{Table: FactTotals, Dims: []*FactDim{dimMeasure, dimMethod, dimCurrency},
		Count: "the measure's count in the hour (method: the attribution's; for installs organic without a link, else attributed; currency: revenue's)",
		Sum:   "the measure's sum"},
	{Table: FactCohortActivity, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod, dimDayN),
		Count: "installs of the hour (day 0) and, on day N, those of them active (an event other than the install) in that day after their install"},
	{Table: FactCohortRevenue, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod, dimCurrency, dimDayN),
		Count: "purchases on day N after the install by installs of the hour", Sum: "their revenue in micros of the currency"},
	{Table: FactDaily, Period: PeriodDay, Dims: rollupDims, TimeAt: 1,
		Count: "the measure's count in the UTC day, of the rows whose dimension dim is value (dim \"\": all rows; method and currency as in totals)",
		Sum:   "the measure's sum"},
	{Table: FactWeekly, Period: PeriodWeek, Dims: rollupDims, TimeAt: 1,
		Count: "the measure's count in the UTC week from Monday, of the rows whose dimension dim is value (as daily)",
		Sum:   "the measure's sum"},
	{Table: FactBotHits, Dims: []*FactDim{dimLinkID, dimPlatform, dimAgent},
		Count: "requests for the link answered but no taps: HEAD, prefetches, link previewers and crawlers (agent: which)"},
	{Table: FactFraud, Dims: []*FactDim{dimLinkID, dimPlatform, dimSignal, dimAction},
		Count: "fraud signals found on the link's taps credited with an install of the hour (action flag) or refused (action reject)"},
	{Table: FactReengagements, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod),
		Count: "re-engagements: opens of an installed app credited to a tap on a re-engagement link (method: advertising_id or fingerprint, how the open matched the tap)"},
	{Table: FactReinstalls, Dims: withCampaign(dimLinkID, dimPlatform, dimMethod),
		Count: "reinstalls: installs from a device that installed the app before, within the reinstall window, never counted as installs; under the earlier install's attribution, or their own when the app re-attributes reinstalls (link 0: organic)"},
	{Table: FactFunnelSteps, Dims: []*FactDim{dimFunnel, dimBreakdown, dimStep, dimBucket},
		Count: "installations that reached the step, entering the funnel in the hour, with the time from the previous step in the bucket",
		Sum:   "seconds from the previous step"},
	{Table: FactSKAN, Period: PeriodDay, Dims: []*FactDim{dimAdNetwork, dimSourceIdentifier, dimPostbackWindow, dimConversionValue, dimOutcome},
		Count: "SKAdNetwork and AdAttributionKit postbacks received on the UTC day, each counted once by its key (outcome won, not_won, reengagement or duplicate; rejected ones with the other dimensions blank)",
		Sum:   "of them redownloads"},
}

// Total returns the FactTotals row a delta of k adds to, and whether k's
// table has totals: hits, installs, conversions, events and revenue. An
// install's method there is organic without a link and "attributed" with
// one, as the reports count them.
func (k FactKey) Total() (FactKey, bool) {
	switch k.Table {
	case FactHits, FactInstalls, FactConversions, FactEvents, FactRevenue:
	default:
		return FactKey{}, false
	}
	t := FactKey{Table: FactTotals, Hour: k.Hour, AppID: k.AppID, Measure: k.Table, Method: k.Method, Currency: k.Currency}
	if k.Table == FactInstalls {
		t.Method = MethodOrganic
		if k.LinkID != 0 {
			t.Method = "attributed"
		}
	}
	return t.Normalise(), true
}

// Daily returns the FactDaily rows a delta of k adds to: the day's total
// of its measure (Dim "") and, for each ReportDim its table keeps, the
// measure for that dimension's value in k, on the UTC day of k's hour;
// none when k's table has no totals (see Total: the method and currency
// are the total's). A breakdown over whole UTC days by one dimension, or
// filtered by one and grouped by it or by day, reads these rows instead of
// the hours'.
func (k FactKey) Daily() iter.Seq[FactKey] {
	return func(yield func(FactKey) bool) {
		t, ok := k.Total()
		if !ok {
			return
		}
		t = t.For(FactDaily)
		if !yield(t) {
			return
		}
		d := k.Table.Desc()
		for _, rd := range ReportDims {
			if !d.Keeps(rd.Dim) {
				continue
			}
			r := t
			r.Dim, r.Value = rd.Name, rd.Dim.String(k)
			if !yield(r) {
				return
			}
		}
	}
}

// Rollups returns the rows of the Rollups tables a delta of k adds to: its
// Daily rows, then the FactWeekly row of each (the daily key For
// FactWeekly: the same row in the UTC week from Monday), so a weekly row
// sums the daily rows of its week.
func (k FactKey) Rollups() iter.Seq[FactKey] {
	return func(yield func(FactKey) bool) {
		for _, table := range Rollups {
			for d := range k.Daily() {
				if !yield(d.For(table)) {
					return
				}
			}
		}
	}
}

// String returns the dimension's value in k as text: an integer in
// decimal. Reports group and filter by it.
func (d *FactDim) String(k FactKey) string {
	if d.text != nil {
		return d.text(k)
	}
	return strconv.FormatInt(d.int(k), 10)
}

// rollupDims are the dimensions of the daily and weekly rollups.
var rollupDims = []*FactDim{dimReport, dimMeasure, dimValue, dimMethod, dimCurrency}

// Rollups lists the rollup tables, finest first: FactKey.Rollups adds to
// each.
var Rollups = []FactTable{FactDaily, FactWeekly}

// withCampaign returns dims followed by the campaign dimensions.
func withCampaign(dims ...*FactDim) []*FactDim { return append(dims, CampaignDims...) }

var factTablesByName = func() map[FactTable]*FactTableDesc {
	m := make(map[FactTable]*FactTableDesc, len(FactTables))
	for _, d := range FactTables {
		m[d.Table] = d
	}
	return m
}()

// Desc returns the declaration of t, or nil when t is not a fact table.
func (t FactTable) Desc() *FactTableDesc { return factTablesByName[t] }

// Keeps reports whether the table keeps dimension dim.
func (d *FactTableDesc) Keeps(dim *FactDim) bool { return slices.Contains(d.Dims, dim) }

// Compare orders keys of the table by its primary key: app, then Dims in
// order with the time (Hour) before the first but TimeAt of them.
func (d *FactTableDesc) Compare(a, b FactKey) int {
	if c := cmp.Compare(a.AppID, b.AppID); c != 0 {
		return c
	}
	for i, dim := range d.Dims {
		if i == d.TimeAt {
			if c := cmp.Compare(a.Hour, b.Hour); c != 0 {
				return c
			}
		}
		if c := dim.Compare(a, b); c != 0 {
			return c
		}
	}
	if d.TimeAt >= len(d.Dims) {
		return cmp.Compare(a.Hour, b.Hour)
	}
	return 0
}

// Normalise returns k as a row of its table: Hour floored to the start of
// its hour (of its UTC day or week in a rollup) and the dimensions the table
// does not keep zeroed, so keys that differ only there name the same row.
// A key of an unknown table keeps its dimensions, its Hour floored to the
// hour.
func (k FactKey) Normalise() FactKey {
	d := k.Table.Desc()
	if d == nil {
		k.Hour -= ((k.Hour % 3600) + 3600) % 3600
		return k
	}
	k.Hour = d.Period.Floor(k.Hour)
	n := FactKey{Table: k.Table, Hour: k.Hour, AppID: k.AppID}
	for _, dim := range d.Dims {
		n = dim.keep(n, k)
	}
	return n
}

// For returns k as a row of table t: Table set to t, then normalised.
func (k FactKey) For(t FactTable) FactKey {
	k.Table = t
	return k.Normalise()
}

// Validate returns an EINVALID error when k's table is not declared, its
// Hour is not the start of an hour, or it sets a dimension its table does
// not keep.
func (k FactKey) Validate() error {
	d := k.Table.Desc()
	if d == nil {
		return Errorf(EINVALID, "fact key: %q is not a fact table.", k.Table)
	}
	if d.Period.Floor(k.Hour) != k.Hour {
		return Errorf(EINVALID, "fact key: hour %d of a %s row is not the start of its %s.", k.Hour, k.Table, d.Period.Column())
	}
	if d.Keeps(dimReport) && k.Dim != "" && ReportDimNamed(k.Dim) == nil {
		return Errorf(EINVALID, "fact key: %q is not a report dimension.", k.Dim)
	}
	for _, dim := range FactDims {
		if !dim.IsZero(k) && !d.Keeps(dim) {
			return Errorf(EINVALID, "fact key: table %s does not keep %s, which is %s.", k.Table, dim.Column, dim.show(k))
		}
	}
	return nil
}

// HourOf returns the Hour of a FactKey for t.
func HourOf(t time.Time) int64 { return t.Truncate(time.Hour).Unix() }

// FactValue is what a delta adds to a fact row.
type FactValue struct {
	Count int64
	Sum   int64
}

// Offset is the next offset a consumer will read from one partition.
type Offset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`

	// Fenced makes ApplyFacts store Offset only if the stored offset is
	// still From (NoOffset: none stored yet). A consumer that lost its
	// partitions to another member of its group, and flushes late, then
	// fails with ECONFLICT instead of counting records twice.
	Fenced bool  `json:"-"`
	From   int64 `json:"-"`
}

// NoOffset is the From of a fenced Offset whose partition has no stored
// offset yet.
const NoOffset = -1

// Same reports whether o and p name the same position of the same
// partition, ignoring fencing.
func (o Offset) Same(p Offset) bool {
	return o.Topic == p.Topic && o.Partition == p.Partition && o.Offset == p.Offset
}

// FlushRows are what a flush stores with its fact deltas and offsets,
// besides them.
type FlushRows struct {
	// Handoffs of pending funnel versions: one that completes a version's
	// handoff moves it to backfilling (docs/funnels.md).
	Handoffs []FunnelHandoff
	// Activity are installations seen active on a day after their
	// install: each counts once, in the cohort activity row of its Key,
	// the first time a flush stores its (AppID, InstallID, DayN).
	Activity []CohortActivity
	// Conversions changed by the flushed records, each in its latest
	// state: the dashboard's conversions explorer reads them. A state with
	// a shorter history than the one stored is older and is ignored, so a
	// replay or a late flush never winds a conversion back.
	Conversions []*Conversion
	// Deliveries are postbacks to put in the outbox, each once by its Key:
	// a replay writes the same keys again, and the outbox keeps the first.
	Deliveries []*Delivery
}

// Empty reports whether r holds nothing to store.
func (r *FlushRows) Empty() bool {
	return len(r.Handoffs) == 0 && len(r.Conversions) == 0 && len(r.Activity) == 0 && len(r.Deliveries) == 0
}

// CohortActivity is an installation active on day Key.DayN after its
// install; Key is its FactCohortActivity row.
type CohortActivity struct {
	InstallID string
	Key       FactKey
}

// FactStore holds the fact tables and the matcher's consumed offsets.
type FactStore interface {
	// ApplyFacts adds deltas to the fact tables and stores offsets as the
	// consumer's position, in one transaction: either all of it lands or
	// none does. A fenced offset whose stored value is no longer its From
	// fails the whole call with ECONFLICT. The rows are stored in the
	// same transaction (see FlushRows).
	ApplyFacts(ctx context.Context, consumer string, deltas map[FactKey]FactValue, offsets []Offset, rows FlushRows) error
	// Offsets returns the consumer's stored positions.
	Offsets(ctx context.Context, consumer string) ([]Offset, error)
}

// StatsFilter selects the facts a report covers: one app, the days from
// From up to and excluding To, both midnights in Location, and the rows
// whose dimensions have the values Where names.
type StatsFilter struct {
	AppID    int64
	LinkID   int64 // 0: all links
	From, To time.Time
	Location *time.Location
	Where    []DimFilter
}

// DimFilter keeps the facts whose dimension Dim (a ReportDim's Name) is
// Value: a link id in decimal, "" for none (organic, or no campaign).
type DimFilter struct {
	Dim   string `json:"dim"`
	Value string `json:"value"`
}

// ReportDim is a dimension reports break down and filter by.
type ReportDim struct {
	Name  string   // in URLs and JSON
	Label string   // for people
	Dim   *FactDim // its column
}

// Groupings of a breakdown besides the ReportDims: the days and hours of
// the filter's time zone.
const (
	ByDay  = "day"
	ByHour = "hour"
)

// ReportDims lists the dimensions reports break down and filter by.
var ReportDims = []*ReportDim{
	{"link", "Link", dimLinkID},
	{"platform", "Platform", dimPlatform},
	{"method", "Match method", dimMethod},
	{"event", "Event", dimEventName},
	{"source", "Source", dimSource},
	{"medium", "Medium", dimMedium},
	{"campaign", "Campaign", dimCampaign},
	{"adgroup", "Ad group", dimAdGroup},
	{"creative", "Creative", dimCreative},
	{"site", "Site", dimSite},
}

// ReportDimNames lists the ReportDims' names, for messages.
func ReportDimNames() string {
	names := make([]string, len(ReportDims))
	for i, d := range ReportDims {
		names[i] = d.Name
	}
	return strings.Join(names, ", ")
}

// ReportDimNamed returns the ReportDim called name, or nil.
func ReportDimNamed(name string) *ReportDim {
	for _, d := range ReportDims {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Measures a breakdown counts, each from its fact table.
const (
	MeasureHits        = "hits"        // fact_hits
	MeasureInstalls    = "installs"    // fact_installs, organic ones too
	MeasureConversions = "conversions" // fact_conversions, with click-to-install time
	MeasureEvents      = "events"      // fact_events
	MeasureRevenue     = "revenue"     // fact_revenue
	// Not in breakdowns: the daily report's totals and the app and link
	// pages show them (Reports.Returning).
	MeasureReengagements = "reengagements" // fact_reengagements
	MeasureReinstalls    = "reinstalls"    // fact_reinstalls
)

// Breakdown is a report's measures grouped by one dimension, day or hour.
type Breakdown struct {
	By   string         `json:"by"`
	Rows []BreakdownRow `json:"rows"` // by Value, only values with facts
	// Missing names the measures whose tables do not keep the grouping
	// or a filtered dimension (hits have no match method, only events an
	// event name): their counts are zero and mean nothing.
	Missing []string `json:"missing,omitempty"`
}

// BreakdownRow is one value's totals.
type BreakdownRow struct {
	// Value is the dimension's value (a link id in decimal, "" for none),
	// or the day (YYYY-MM-DD) or hour (YYYY-MM-DD HH:00) in the filter's
	// time zone.
	Value           string `json:"value"`
	Hits            int64  `json:"hits"`
	Installs        int64  `json:"installs"`
	OrganicInstalls int64  `json:"organic_installs"` // installs without a link
	Conversions     int64  `json:"conversions"`
	// ClickToInstallMillis is the conversions' total click-to-install
	// time.
	ClickToInstallMillis int64            `json:"click_to_install_ms"`
	Events               int64            `json:"events"`
	RevenueMicros        map[string]int64 `json:"revenue_micros,omitempty"`
}

// DailyStats returns r as the stats of day.
func (r *BreakdownRow) DailyStats(day string) DailyStats {
	return DailyStats{Day: day, Hits: r.Hits, Installs: r.Installs, OrganicInstalls: r.OrganicInstalls,
		Conversions: r.Conversions, Events: r.Events, ConversionRate: r.ConversionRate(), RevenueMicros: r.RevenueMicros}
}

// ConversionRate is conversions over hits, 0 without hits.
func (r *BreakdownRow) ConversionRate() float64 {
	if r.Hits == 0 {
		return 0
	}
	return float64(r.Conversions) / float64(r.Hits)
}

// MeanClickToInstall is the conversions' mean click-to-install time in
// seconds, 0 without conversions.
func (r *BreakdownRow) MeanClickToInstall() float64 {
	if r.Conversions == 0 {
		return 0
	}
	return float64(r.ClickToInstallMillis) / 1000 / float64(r.Conversions)
}

// Add adds o's counts to r.
func (r *BreakdownRow) Add(o *BreakdownRow) {
	r.Hits += o.Hits
	r.Installs += o.Installs
	r.OrganicInstalls += o.OrganicInstalls
	r.Conversions += o.Conversions
	r.ClickToInstallMillis += o.ClickToInstallMillis
	r.Events += o.Events
	for cur, m := range o.RevenueMicros {
		if r.RevenueMicros == nil {
			r.RevenueMicros = make(map[string]int64)
		}
		r.RevenueMicros[cur] += m
	}
}

// DailyStats are one day's totals of an app in the filter's time zone.
type DailyStats struct {
	Day             string           `json:"day"` // YYYY-MM-DD
	Hits            int64            `json:"hits"`
	Installs        int64            `json:"installs"`
	OrganicInstalls int64            `json:"organic_installs"`
	Conversions     int64            `json:"conversions"`
	Events          int64            `json:"events"`
	ConversionRate  float64          `json:"conversion_rate"` // conversions / hits, 0 without hits
	RevenueMicros   map[string]int64 `json:"revenue_micros,omitempty"`
}

// LinkStats are the totals of one link over a filter's days.
type LinkStats struct {
	LinkID         int64   `json:"link_id"`
	Hits           int64   `json:"hits"`
	Conversions    int64   `json:"conversions"`
	ConversionRate float64 `json:"conversion_rate"`
	// MeanClickToInstall is the mean click-to-install time in seconds.
	MeanClickToInstall float64          `json:"mean_click_to_install_seconds"`
	ByMethod           map[string]int64 `json:"conversions_by_method,omitempty"`
}

// Returning counts the people an app got back over a filter's days: its
// re-engagements (FactReengagements) and reinstalls (FactReinstalls).
type Returning struct {
	Reengagements int64 `json:"reengagements"`
	Reinstalls    int64 `json:"reinstalls"`
}

// Reports answers the dashboard's questions from the fact tables alone.
type Reports interface {
	// Returning sums the filter's re-engagements and reinstalls; a
	// filter on a dimension their tables do not keep (event) is EINVALID.
	Returning(ctx context.Context, f StatsFilter) (Returning, error)
	DailyStats(ctx context.Context, f StatsFilter) ([]DailyStats, error)
	LinkStats(ctx context.Context, f StatsFilter) ([]LinkStats, error)
	// Breakdown groups the filter's facts by by: a ReportDim's Name,
	// ByDay or ByHour.
	Breakdown(ctx context.Context, f StatsFilter, by string) (*Breakdown, error)
	// BotHits sums the filter's requests that were no taps by agent
	// (FactBotHits); a filter on a dimension that table does not keep
	// (anything but link and platform) is EINVALID.
	BotHits(ctx context.Context, f StatsFilter) (map[string]int64, error)
	// Fraud sums the filter's fraud signals (FactFraud) by signal and
	// action, signals in FraudSignals order, flag before reject; a filter
	// on a dimension that table does not keep (anything but link and
	// platform) is EINVALID.
	Fraud(ctx context.Context, f StatsFilter) ([]FraudCount, error)
	// Cohorts groups the filter's installs by the day or week (by: ByDay
	// or ByWeek) of their install in the filter's zone and, when split
	// names a ReportDim, by its value, with each cohort's activity and
	// revenue by day after the install. A filter or split on a dimension
	// the cohort tables do not keep (event) is EINVALID.
	Cohorts(ctx context.Context, f StatsFilter, by, split string) ([]Cohort, error)
	// Conversions lists the app's conversions the query selects, newest
	// install first, a page at a time; a bad cursor is EINVALID.
	Conversions(ctx context.Context, q ConversionQuery) (*ConversionPage, error)
	// Conversion returns one conversion of the app, or ENOTFOUND.
	Conversion(ctx context.Context, appID int64, id string) (*Conversion, error)
}

// ByWeek groups cohorts by the week (Monday first) of their install.
const ByWeek = "week"

// Cohort is the installs of one day or week and what they did on each
// day after their install.
type Cohort struct {
	// Cohort is the day, or the Monday of the week, YYYY-MM-DD in the
	// report's zone.
	Cohort string `json:"cohort"`
	// Value is the cohort's value of the report's split dimension.
	Value    string `json:"value,omitempty"`
	Installs int64  `json:"installs"`
	// Active[N] counts the installs active on day N after their install
	// (N ≥ 1), up to MaxCohortDay; Active[0] is Installs.
	Active []int64 `json:"active"`
	// Revenue[currency][N] is the revenue in micros on day N.
	Revenue map[string][]int64 `json:"revenue_micros,omitempty"`
	// Purchases[N] counts purchases on day N, in any currency.
	Purchases []int64 `json:"purchases"`
}

// ConversionQuery selects conversions of one app for the conversions
// explorer.
type ConversionQuery struct {
	AppID int64
	// Search, when set, selects conversions whose install id, advertising
	// id (without case), hit id or own id is exactly Search.
	Search string
	// Method, when set, selects conversions attributed by it; LinkID, when
	// not 0, those attributed to that link.
	Method MatchMethod
	LinkID int64
	// From and To bound the install time, [From, To); zero is unbounded.
	From, To time.Time
	// After continues a listing after the page whose Next it was.
	After string
	// Limit is the page size: 1 to MaxConversionPage, 0 for the default.
	Limit int
}

// Sizes of a conversions page.
const (
	DefaultConversionPage = 50
	MaxConversionPage     = 500
)

// ConversionPage is one page of a conversions listing; Next, when not
// empty, is the After of the next page.
type ConversionPage struct {
	Conversions []*Conversion `json:"conversions"`
	Next        string        `json:"next,omitempty"`
}

// ConversionCursor returns the After that continues a conversions listing
// after the conversion with installTime and id: listings go newest install
// first, by (InstallTime, ID) descending, InstallTime to the microsecond
// as the conversions table keeps it. It is the listing's own cursor, so a
// caller that got a conversion can continue after it without the page's
// Next.
func ConversionCursor(installTime time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(installTime.UnixMicro(), 10) + "|" + id))
}

// ParseConversionCursor reads a ConversionCursor: the install time and id
// of the conversion a listing continues after; EINVALID for anything else.
func ParseConversionCursor(s string) (time.Time, string, error) {
	bad := Errorf(EINVALID, "after: not a cursor this listing returned")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", bad
	}
	us, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(n).UTC(), id, nil
}
