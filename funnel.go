package tapline

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Funnel limits and defaults. docs/funnels.md defines what a funnel counts.
const (
	FunnelMinSteps      = 2
	FunnelMaxSteps      = 20
	FunnelMaxExclusions = 10
	FunnelMaxFilters    = 10
	FunnelMaxNameLen    = 100
	DefaultFunnelWindow = 14 * 24 * time.Hour
	MinFunnelWindow     = time.Minute
)

// FunnelOrder says how the steps of a funnel must follow each other.
type FunnelOrder string

// Funnel orders.
const (
	// OrderOrdered: each step after the previous one; other records may
	// come between.
	OrderOrdered FunnelOrder = "ordered"
	// OrderStrict: each step is the installation's very next record after
	// the previous step.
	OrderStrict FunnelOrder = "strict"
	// OrderAny: the steps in any order.
	OrderAny FunnelOrder = "any"
)

// StepKind is what a funnel step matches.
type StepKind string

// Step kinds.
const (
	StepTap     StepKind = "tap"     // the tap the installation is attributed to
	StepInstall StepKind = "install" // the installation's install (first open)
	StepEvent   StepKind = "event"   // an SDK event by name
)

// FilterOp compares a parameter with a filter's value.
type FilterOp string

// Filter operators. eq, ne and in compare strings; gt, gte, lt and lte
// compare numbers (a parameter that is not a number never matches them).
// An absent parameter matches only ne.
const (
	OpEq  FilterOp = "eq"
	OpNe  FilterOp = "ne"
	OpIn  FilterOp = "in"
	OpGt  FilterOp = "gt"
	OpGte FilterOp = "gte"
	OpLt  FilterOp = "lt"
	OpLte FilterOp = "lte"
)

// Reserved filter parameters of events: revenue is the event's revenue in
// currency units (micros / 10^6), currency its currency code. Both are absent
// on an event without revenue.
const (
	ParamRevenue  = "revenue"
	ParamCurrency = "currency"
)

// FunnelFilter is one condition on a parameter: of the tap's link query
// (tap steps) or of the event (install and event steps).
type FunnelFilter struct {
	Param  string   `json:"param"`
	Op     FilterOp `json:"op"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"` // for in
}

// Match reports whether the filter holds for params (nil: none).
func (f *FunnelFilter) Match(params map[string]string) bool {
	v, ok := params[f.Param]
	switch f.Op {
	case OpEq:
		return ok && v == f.Value
	case OpNe:
		return !ok || v != f.Value
	case OpIn:
		return ok && slices.Contains(f.Values, v)
	}
	if !ok {
		return false
	}
	x, ok := ParseFunnelNumber(v)
	if !ok {
		return false
	}
	y, _ := ParseFunnelNumber(f.Value)
	switch f.Op {
	case OpGt:
		return x > y
	case OpGte:
		return x >= y
	case OpLt:
		return x < y
	case OpLte:
		return x <= y
	}
	return false
}

// ParseFunnelNumber parses a parameter as numeric filters read both sides:
// a finite decimal number as strconv.ParseFloat reads it (64 bits; no
// spaces; hexadecimal is not decimal).
func ParseFunnelNumber(s string) (float64, bool) {
	if strings.ContainsAny(s, "xX") {
		return 0, false
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, false
	}
	return x, true
}

// FunnelStep is one step of a funnel, or an exclusion's event.
type FunnelStep struct {
	Kind StepKind `json:"kind"`
	// Links restricts a tap step to these links; empty means any link.
	Links []int64 `json:"links,omitempty"`
	// Event is the event name of an event step.
	Event   string         `json:"event,omitempty"`
	Filters []FunnelFilter `json:"filters,omitempty"`
	// Label names the step in results; empty derives one from the rest.
	Label string `json:"label,omitempty"`
}

// Title returns the step's label, or a description of what it matches.
func (s *FunnelStep) Title() string {
	if s.Label != "" {
		return s.Label
	}
	var b strings.Builder
	switch s.Kind {
	case StepTap:
		b.WriteString("Tap")
		if len(s.Links) > 0 {
			fmt.Fprintf(&b, " on link %s", joinInts(s.Links))
		}
	case StepInstall:
		b.WriteString("Install")
	default:
		b.WriteString(s.Event)
	}
	for i, f := range s.Filters {
		if i == 0 {
			b.WriteString(" where ")
		} else {
			b.WriteString(" and ")
		}
		b.WriteString(f.String())
	}
	return b.String()
}

func joinInts(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

// String writes the filter as "param op value".
func (f FunnelFilter) String() string {
	ops := map[FilterOp]string{OpEq: "=", OpNe: "≠", OpGt: ">", OpGte: "≥", OpLt: "<", OpLte: "≤", OpIn: "in"}
	if f.Op == OpIn {
		return fmt.Sprintf("%s in (%s)", f.Param, strings.Join(f.Values, ", "))
	}
	return fmt.Sprintf("%s %s %s", f.Param, ops[f.Op], f.Value)
}

// FunnelExclusion disqualifies a path when its event happens after the
// path reached step After and before it reached step Before (1-based).
type FunnelExclusion struct {
	FunnelStep
	After  int `json:"after"`
	Before int `json:"before"`
}

// BreakdownKind is the dimension funnel results are broken down by.
type BreakdownKind string

// Breakdown dimensions. Param names the query parameter of link_param and
// the parameter of the entry record of entry_param.
const (
	BreakdownNone       BreakdownKind = ""
	BreakdownLink       BreakdownKind = "link"        // the attributed link's id, "0" when organic
	BreakdownPlatform   BreakdownKind = "platform"    // the installation's platform
	BreakdownMethod     BreakdownKind = "method"      // the attribution's match method
	BreakdownLinkParam  BreakdownKind = "link_param"  // a query parameter of the attributed tap
	BreakdownEntryParam BreakdownKind = "entry_param" // a parameter of the record that entered the funnel
)

// FunnelBreakdown chooses the breakdown of a funnel's results.
type FunnelBreakdown struct {
	Kind  BreakdownKind `json:"kind,omitempty"`
	Param string        `json:"param,omitempty"`
}

// FunnelDefinition is what a customer defines; each edit is a new version.
type FunnelDefinition struct {
	Name  string       `json:"name"`
	Steps []FunnelStep `json:"steps"`
	// WindowSeconds bounds the time from the first step to the last;
	// 0 means DefaultFunnelWindow.
	WindowSeconds int64             `json:"window_seconds,omitempty"`
	Order         FunnelOrder       `json:"order,omitempty"` // "" means ordered
	Exclusions    []FunnelExclusion `json:"exclusions,omitempty"`
	Breakdown     FunnelBreakdown   `json:"breakdown,omitzero"`
}

// Window returns the conversion window.
func (d *FunnelDefinition) Window() time.Duration {
	if d.WindowSeconds == 0 {
		return DefaultFunnelWindow
	}
	return time.Duration(d.WindowSeconds) * time.Second
}

// SetDefaults fills in the window and the order.
func (d *FunnelDefinition) SetDefaults() {
	if d.WindowSeconds == 0 {
		d.WindowSeconds = int64(DefaultFunnelWindow / time.Second)
	}
	if d.Order == "" {
		d.Order = OrderOrdered
	}
}

// Validate checks d against the app's retention (the longest window) and
// its links (nil: any link id is accepted). The error is EINVALID and
// names the step, the exclusion or the field at fault.
func (d *FunnelDefinition) Validate(retention time.Duration, links map[int64]bool) error {
	bad := func(format string, args ...any) error { return Errorf(EINVALID, format, args...) }
	name := strings.TrimSpace(d.Name)
	switch {
	case name == "":
		return bad("name: required.")
	case len(name) > FunnelMaxNameLen:
		return bad("name: at most %d bytes.", FunnelMaxNameLen)
	case len(d.Steps) < FunnelMinSteps || len(d.Steps) > FunnelMaxSteps:
		return bad("steps: a funnel has %d to %d steps, not %d.", FunnelMinSteps, FunnelMaxSteps, len(d.Steps))
	case d.WindowSeconds < 0:
		return bad("window_seconds: must not be negative.")
	case d.WindowSeconds > int64(math.MaxInt64/time.Second):
		// Beyond it the window in nanoseconds wraps around to another one.
		return bad("window_seconds: at most %d.", int64(math.MaxInt64/time.Second))
	case d.WindowSeconds != 0 && time.Duration(d.WindowSeconds)*time.Second < MinFunnelWindow:
		return bad("window_seconds: at least %d.", int64(MinFunnelWindow/time.Second))
	case retention > 0 && d.Window() > retention:
		return bad("window_seconds: at most the app's raw retention, %d seconds.", int64(retention/time.Second))
	}
	switch d.Order {
	case "", OrderOrdered, OrderStrict, OrderAny:
	default:
		return bad("order: %q is not one of ordered, strict, any.", d.Order)
	}
	for i := range d.Steps {
		if err := d.Steps[i].validate(links); err != nil {
			return bad("step %d: %s", i+1, err)
		}
	}
	if len(d.Exclusions) > FunnelMaxExclusions {
		return bad("exclusions: at most %d.", FunnelMaxExclusions)
	}
	for i := range d.Exclusions {
		x := &d.Exclusions[i]
		if x.Kind == StepTap {
			return bad("exclusion %d: a tap cannot be excluded; exclude an event.", i+1)
		}
		if err := x.validate(links); err != nil {
			return bad("exclusion %d: %s", i+1, err)
		}
		if x.After < 1 || x.Before <= x.After || x.Before > len(d.Steps) {
			return bad("exclusion %d: after and before must be step numbers with 1 ≤ after < before ≤ %d, not %d and %d.", i+1, len(d.Steps), x.After, x.Before)
		}
	}
	switch b := d.Breakdown; b.Kind {
	case BreakdownNone, BreakdownLink, BreakdownPlatform, BreakdownMethod:
		if b.Param != "" {
			return bad("breakdown: %q takes no param.", b.Kind)
		}
	case BreakdownLinkParam, BreakdownEntryParam:
		if strings.TrimSpace(b.Param) == "" {
			return bad("breakdown: %q needs a param.", b.Kind)
		}
	default:
		return bad("breakdown: %q is not one of link, platform, method, link_param, entry_param.", b.Kind)
	}
	return nil
}

func (s *FunnelStep) validate(links map[int64]bool) error {
	switch s.Kind {
	case StepTap:
		if s.Event != "" {
			return fmt.Errorf("a tap step takes links, not an event name")
		}
		for _, id := range s.Links {
			if links != nil && !links[id] {
				return fmt.Errorf("link %d is not a link of this app", id)
			}
		}
	case StepInstall:
		if s.Event != "" || len(s.Links) > 0 {
			return fmt.Errorf("an install step takes neither links nor an event name")
		}
	case StepEvent:
		if strings.TrimSpace(s.Event) == "" {
			return fmt.Errorf("an event step needs an event name")
		}
		if len(s.Links) > 0 {
			return fmt.Errorf("an event step takes no links")
		}
	case "":
		return fmt.Errorf("kind: required (tap, install or event)")
	default:
		return fmt.Errorf("kind %q is not one of tap, install, event", s.Kind)
	}
	if len(s.Filters) > FunnelMaxFilters {
		return fmt.Errorf("at most %d filters", FunnelMaxFilters)
	}
	for j, f := range s.Filters {
		if strings.TrimSpace(f.Param) == "" {
			return fmt.Errorf("filter %d: param is required", j+1)
		}
		if f.Param == ParamRevenue && (f.Op == OpEq || f.Op == OpNe || f.Op == OpIn) {
			return fmt.Errorf("filter %d: revenue is a number: compare it with gt, gte, lt or lte", j+1)
		}
		switch f.Op {
		case OpEq, OpNe:
			if len(f.Values) > 0 {
				return fmt.Errorf("filter %d: %s takes value, not values", j+1, f.Op)
			}
		case OpIn:
			if len(f.Values) == 0 || f.Value != "" {
				return fmt.Errorf("filter %d: in takes a non-empty values list, not value", j+1)
			}
		case OpGt, OpGte, OpLt, OpLte:
			if _, ok := ParseFunnelNumber(f.Value); !ok {
				return fmt.Errorf("filter %d: %s needs a number, not %q", j+1, f.Op, f.Value)
			}
		case "":
			return fmt.Errorf("filter %d: op is required (eq, ne, in, gt, gte, lt, lte)", j+1)
		default:
			return fmt.Errorf("filter %d: op %q is not one of eq, ne, in, gt, gte, lt, lte", j+1, f.Op)
		}
	}
	return nil
}

// FunnelStatus is where a funnel version is in its life.
type FunnelStatus string

// Funnel version statuses, in order. A version waits for its handoff
// (every matcher has fixed the bus position from which it counts the version
// live), then backfills what came before, then is live. An edit supersedes
// a version once the new one is live; a delete or a newer edit of a
// version still backfilling cancels it.
const (
	FunnelPending     FunnelStatus = "pending"
	FunnelBackfilling FunnelStatus = "backfilling"
	FunnelLive        FunnelStatus = "live"
	FunnelSuperseded  FunnelStatus = "superseded"
	FunnelCancelled   FunnelStatus = "cancelled"
)

// Funnel is one version of a funnel definition.
type Funnel struct {
	ID        int64 `json:"id"`         // the funnel, across its versions
	VersionID int64 `json:"version_id"` // this version; the key of its results
	Version   int   `json:"version"`    // 1, 2, … within the funnel
	AppID     int64 `json:"app_id"`
	FunnelDefinition
	Status    FunnelStatus `json:"status"`
	CreatedAt time.Time    `json:"created_at"`
	// Progress of the backfill: raw rows scanned and estimated.
	RowsScanned   int64 `json:"rows_scanned"`
	RowsEstimated int64 `json:"rows_estimated"`
	// Progress is the part of the installation key space the backfill
	// has covered, 0 to 1 (1 once live).
	Progress float64    `json:"progress"`
	LiveAt   *time.Time `json:"live_at,omitempty"`
	// Handoff is the version's handoff as stored so far, partition by
	// partition (ActiveFunnels and FunnelVersion fill it in).
	Handoff map[Partition]int64 `json:"-"`
}

// FunnelOutcome is how far one installation got in one funnel version: the
// entry hour and breakdown value, and for each step reached the whole
// seconds since the previous step (0 for the first). No steps: not in the
// funnel.
type FunnelOutcome struct {
	Hour      int64   `json:"hour,omitempty"` // Unix seconds of the entry's UTC hour
	Breakdown string  `json:"breakdown,omitempty"`
	Steps     []int64 `json:"steps,omitempty"`
}

// Equal reports whether o and p count the same.
func (o *FunnelOutcome) Equal(p *FunnelOutcome) bool {
	return o.Hour == p.Hour && o.Breakdown == p.Breakdown && slices.Equal(o.Steps, p.Steps)
}

// FunnelBuckets are the lower bounds, in seconds, of the buckets that
// time between consecutive steps is counted in.
var FunnelBuckets = []int64{
	0, 10, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
	86400, 2 * 86400, 3 * 86400, 5 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 45 * 86400, 60 * 86400,
}

// FunnelBucket returns the bucket of a time between steps: the index of
// the largest bound not above secs.
func FunnelBucket(secs int64) int {
	i, found := slices.BinarySearch(FunnelBuckets, secs)
	if found {
		return i
	}
	return max(i-1, 0)
}

// FunnelChange is what one bus record changed in an installation's funnel
// outcomes, version by version.
type FunnelChange struct {
	By      string                `json:"by"` // bus position of the record
	Changes []FunnelVersionChange `json:"changes"`
}

// FunnelVersionChange is one version's outcome before and after a change.
type FunnelVersionChange struct {
	Version int64         `json:"version"`
	From    FunnelOutcome `json:"from"`
	To      FunnelOutcome `json:"to"`
}

// FunnelState is what the live matcher has counted of one installation in
// the live funnel versions of its app. It lives in the raw store, and like
// a Conversion it records every change by the bus position that made it,
// so a replay emits the same deltas again. One position may have several
// changes: a replay also counts versions whose handoff a crash moved back
// to before it, which its first pass did not count.
type FunnelState struct {
	AppID     int64                   `json:"app_id"`
	InstallID string                  `json:"install_id"`
	Outcomes  map[int64]FunnelOutcome `json:"outcomes"` // by version id
	History   []FunnelChange          `json:"history"`
	UpdatedAt time.Time               `json:"updated_at"`
}

// Follows reports whether s may replace stored (nil: none stored) in a raw
// store, as Conversion.Follows does: one change more than stored, or the
// stored history again.
func (s *FunnelState) Follows(stored *FunnelState) bool {
	by := func(st *FunnelState) func(int) string {
		return func(i int) string { return st.History[i].By }
	}
	if stored == nil {
		return follows(len(s.History), -1, by(s), nil)
	}
	return follows(len(s.History), len(stored.History), by(s), by(stored))
}

// ScanRange is a range (Start, End] of a raw store's installation key
// space: hashes of install ids in the embedded store, Murmur3 tokens in
// Cassandra; both span the int64 ring.
type ScanRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// SplitRing splits the int64 ring into n contiguous ranges of nearly equal
// width, in order: the first starts (exclusively) at math.MinInt64, the
// last ends (inclusively) at math.MaxInt64. n below 1 counts as 1.
func SplitRing(n int) []ScanRange {
	n = max(n, 1)
	out := make([]ScanRange, n)
	// Widths in uint64 arithmetic: bound(i) = MinInt64 + floor(i * 2^64 / n).
	bound := func(i int) int64 {
		if i == n {
			return math.MaxInt64
		}
		q, r := (^uint64(0))/uint64(n), (^uint64(0))%uint64(n)
		// i * (2^64-1) / n, close enough to i * 2^64 / n for a split.
		off := uint64(i)*q + uint64(i)*r/uint64(n)
		return int64(uint64(1)<<63 + off) // wraps from MinInt64 upward
	}
	for i := range n {
		out[i] = ScanRange{Start: bound(i), End: bound(i + 1)}
	}
	out[0].Start = math.MinInt64
	return out
}

// Installation is every stored event of one installation of an app, oldest
// first (by Time, then ID), as a funnel backfill scans them.
type Installation struct {
	AppID  int64
	ID     string
	Events []*Event
	// Conversion is the installation's conversion as ConversionByInstall
	// returns it, nil when it has none.
	Conversion *Conversion
}

// FunnelHandoff is one partition's part of a version's handoff: the first
// offset the live matcher counts the version at.
type FunnelHandoff struct {
	VersionID int64 `json:"version_id"`
	Partition
	Offset int64 `json:"offset"`
	// Of is how many partitions the hits and events topics have together:
	// a version with that many handoff rows is complete.
	Of int `json:"of"`
}

// BackfillRange is one scan range of a version's backfill and how far it
// got: every installation whose key is at most Cursor is counted.
type BackfillRange struct {
	VersionID int64 `json:"version_id"`
	Range     int   `json:"range"`
	ScanRange
	Cursor        int64  `json:"cursor"`
	Done          bool   `json:"done"`
	Rows          int64  `json:"rows"`          // events scanned
	Installations int64  `json:"installations"` // installations scanned
	Owner         string `json:"owner,omitempty"`
}

// BackfillCommit is one step of one or more ranges that Owner claimed:
// the deltas of the installations each step covers, committed with the
// ranges' new cursors in one transaction, and only if every range is still
// Owner's and still at its step's From.
type BackfillCommit struct {
	VersionID int64
	Owner     string
	Steps     []BackfillStep
	Deltas    map[FactKey]FactValue
}

// BackfillStep is how far one range of a BackfillCommit moved: its
// installations in (From, To] are counted.
type BackfillStep struct {
	Range         int
	From, To      int64
	Done          bool // the range is finished
	Rows          int64
	Installations int64
}

// FunnelStore keeps funnel definitions and their versions, the handoffs
// the matchers fix and the backfill's ranges. Lookups return ENOTFOUND,
// bad definitions EINVALID naming the step at fault, a taken name
// ECONFLICT.
type FunnelStore interface {
	// CreateFunnel validates def against the app and stores it as version
	// 1 of a new funnel, pending its handoff.
	CreateFunnel(ctx context.Context, appID int64, def FunnelDefinition) (*Funnel, error)
	// EditFunnel stores def as the funnel's next version, pending. Older
	// versions not live yet are cancelled; a live one stays live until
	// the new one is.
	EditFunnel(ctx context.Context, funnelID int64, def FunnelDefinition) (*Funnel, error)
	// DeleteFunnel deletes the funnel: its versions are cancelled and
	// their results dropped.
	DeleteFunnel(ctx context.Context, funnelID int64) error
	// Funnel returns the funnel's newest version.
	Funnel(ctx context.Context, funnelID int64) (*Funnel, error)
	// FunnelVersions returns every version of the funnel, newest first.
	FunnelVersions(ctx context.Context, funnelID int64) ([]*Funnel, error)
	// FunnelsByApp returns the newest version of each of the app's
	// funnels, by name.
	FunnelsByApp(ctx context.Context, appID int64) ([]*Funnel, error)
	// FunnelVersion returns one version by its version id.
	FunnelVersion(ctx context.Context, versionID int64) (*Funnel, error)

	// ActiveFunnels returns every version the matcher counts (pending,
	// backfilling, live) with the handoffs stored so far.
	ActiveFunnels(ctx context.Context) ([]*Funnel, error)
	// CancelFunnel cancels the funnel's newest version if it is not live
	// yet, and drops its results.
	CancelFunnel(ctx context.Context, funnelID int64) (*Funnel, error)
	// RestartFunnel stores the definition of a cancelled newest version
	// again as a new version; a version still pending or backfilling is
	// returned as it is.
	RestartFunnel(ctx context.Context, funnelID int64) (*Funnel, error)

	// Backfill ranges. CreateRanges creates n ranges splitting the ring
	// for a version whose handoff is complete (idempotent: existing
	// ranges stay). ClaimRange leases the lowest-numbered unfinished range
	// nobody holds (or whose lease ran out) to owner, ENOTFOUND when there
	// is none.
	// CommitBackfill applies a step of claimed ranges, ECONFLICT
	// (applying nothing) when one of them moved on or the version is no
	// longer backfilling; the last range done makes the version live (and
	// supersedes the funnel's older versions). ReleaseRange gives a claim
	// up.
	CreateRanges(ctx context.Context, versionID int64, n int) error
	Ranges(ctx context.Context, versionID int64) ([]*BackfillRange, error)
	ClaimRange(ctx context.Context, versionID int64, owner string, lease time.Duration) (*BackfillRange, error)
	CommitBackfill(ctx context.Context, c *BackfillCommit, lease time.Duration) error
	ReleaseRange(ctx context.Context, versionID int64, rangeNo int, owner string) error
}

// FunnelRow is one row of a version's results, summed over the hours of
// one entry day: installations that reached Step with a time from the
// previous step in Bucket, and the sum of those times in seconds.
type FunnelRow struct {
	Day       string // YYYY-MM-DD in the filter's time zone
	Breakdown string
	Step      int
	Bucket    int
	Count     int64
	Sum       int64
}

// ResultsFilter selects a funnel version's results: the entry days from From up to
// and excluding To, midnights in Location.
type ResultsFilter struct {
	AppID     int64
	VersionID int64
	From, To  time.Time
	Location  *time.Location
}

// FunnelReports reads funnel results, and what the funnel builder offers,
// from the fact tables alone.
type FunnelReports interface {
	FunnelRows(ctx context.Context, f ResultsFilter) ([]FunnelRow, error)
	// EventNames returns the names of the app's events counted since the
	// given time, most frequent first, at most limit of them.
	EventNames(ctx context.Context, appID int64, since time.Time, limit int) ([]string, error)
}

// FunnelResults are what a funnel shows over a date range.
type FunnelResults struct {
	Funnel    *Funnel              `json:"funnel"`
	From      string               `json:"from"` // YYYY-MM-DD
	To        string               `json:"to"`   // YYYY-MM-DD, exclusive
	TimeZone  string               `json:"time_zone"`
	Steps     []FunnelStepResult   `json:"steps"`
	Breakdown []FunnelBreakdownRow `json:"breakdown,omitempty"`
	Days      []FunnelDay          `json:"days"`
}

// FunnelStepResult is one step's totals.
type FunnelStepResult struct {
	Step  int    `json:"step"`
	Title string `json:"title"`
	Count int64  `json:"count"`
	// Conversion from the previous step and from the first, 0 to 1.
	Conversion      float64 `json:"conversion"`
	TotalConversion float64 `json:"total_conversion"`
	DropOff         int64   `json:"drop_off"` // reached the previous step, not this one
	// Times from the previous step in seconds: median and p90 estimated
	// from the bucket histogram, mean exact. Absent for step 1.
	MedianSeconds *float64 `json:"median_seconds,omitempty"`
	P90Seconds    *float64 `json:"p90_seconds,omitempty"`
	MeanSeconds   *float64 `json:"mean_seconds,omitempty"`
	Histogram     []int64  `json:"histogram,omitempty"` // per bucket of FunnelBuckets
}

// FunnelBreakdownRow is the step counts of one breakdown value.
type FunnelBreakdownRow struct {
	Value      string  `json:"value"`
	Steps      []int64 `json:"steps"`
	Conversion float64 `json:"conversion"` // last step / first step
}

// FunnelDay is the step counts of the installations that entered on Day.
type FunnelDay struct {
	Day   string  `json:"day"`
	Steps []int64 `json:"steps"`
}
