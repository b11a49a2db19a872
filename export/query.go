package export

import (
	"encoding/base64"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// Kinds of rows an export streams.
const (
	KindConversions = "conversions"
	KindEvents      = "events"
	KindHits        = "hits"
)

// Kinds lists the kinds, as the route takes them.
var Kinds = []string{KindConversions, KindEvents, KindHits}

// Formats of an export.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// dayLayout is a from or to given as a day, in UTC.
const dayLayout = "2006-01-02"

// params are the query parameters an export takes.
var params = []string{"from", "to", "format", "cursor", "limit"}

// query is one export request, parsed.
type query struct {
	kind, format string
	// from and to bound the rows' times, [from, to); a zero from or to
	// is unbounded (conversions only: hits' and events' from is their
	// retention's start at the latest).
	from, to time.Time
	after    tapline.RowPos // the cursor's row; zero: from the start
	cursor   string         // as given
	limit    int64          // rows at most; 0: every row
	name     string         // the file's name without extension; "": app-{id}-{kind}
}

// parseAppID reads the app id of the path.
func parseAppID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, tapline.Errorf(tapline.EINVALID, "app: %q is not an app id", s)
	}
	return id, nil
}

// parseQuery reads the kind of the path and the query parameters of an
// export of app at now. Hits' and events' from is clipped to the start of
// the app's retention (now minus App.Retention): a range that ends before
// it is refused.
func parseQuery(kind string, v url.Values, app *tapline.App, now time.Time) (query, error) {
	q := query{kind: kind, format: FormatNDJSON}
	if !slices.Contains(Kinds, kind) {
		return q, tapline.Errorf(tapline.EINVALID, "kind: %q is not one of %s", kind, strings.Join(Kinds, ", "))
	}
	for name, vals := range v {
		if !slices.Contains(params, name) {
			return q, tapline.Errorf(tapline.EINVALID, "%s: unknown parameter; an export takes %s", name, strings.Join(params, ", "))
		}
		if len(vals) > 1 {
			return q, tapline.Errorf(tapline.EINVALID, "%s: given %d times", name, len(vals))
		}
	}
	if f := v.Get("format"); f != "" {
		if f != FormatNDJSON && f != FormatCSV {
			return q, tapline.Errorf(tapline.EINVALID, "format: %q is not csv or ndjson", f)
		}
		q.format = f
	}
	var err error
	if q.from, err = parseTime(v.Get("from"), "from", false); err != nil {
		return q, err
	}
	if q.to, err = parseTime(v.Get("to"), "to", true); err != nil {
		return q, err
	}
	if !q.from.IsZero() && !q.to.IsZero() && !q.to.After(q.from) {
		return q, tapline.Errorf(tapline.EINVALID, "to: must be after from")
	}
	if q.kind != KindConversions {
		retention := app.Retention
		if retention <= 0 {
			retention = tapline.DefaultRetention
		}
		start := now.Add(-retention).UTC()
		if !q.to.IsZero() && !q.to.After(start) {
			return q, tapline.Errorf(tapline.EINVALID,
				"to: %s are kept for %s (the app's retention), from %s on; the range ends before that",
				q.kind, days(retention), start.Format(time.RFC3339))
		}
		q.from = latest(q.from, start)
		if q.to.IsZero() {
			q.to = time.Unix(0, math.MaxInt64).UTC()
		}
	}
	if s := v.Get("cursor"); s != "" {
		if q.after, err = ParseCursor(s); err != nil {
			return q, err
		}
		q.cursor = s
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, tapline.Errorf(tapline.EINVALID, "limit: %q is not a number of rows, 1 or more", s)
		}
		q.limit = n
	}
	return q, nil
}

// parseTime reads from or to: an RFC 3339 time, or a YYYY-MM-DD day in
// UTC, which as to means the end of that day. "" is the zero time.
func parseTime(s, name string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(dayLayout, s)
	if err != nil {
		return time.Time{}, tapline.Errorf(tapline.EINVALID, "%s: %q is neither an RFC 3339 time nor a YYYY-MM-DD day", name, s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// days writes a retention in days: "60 days".
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
	}
	return d.String()
}

// Cursor returns the cursor of a row with time t and id: the position
// after it, to continue an export with (cursor=). It is base64url without
// padding of the time as the export writes it (RFC 3339 in UTC, with
// nanoseconds), "|" and the id, so a client can make it from a row it
// received (RowCursor).
func Cursor(t time.Time, id string) string {
	return RowCursor(t.UTC().Format(time.RFC3339Nano), id)
}

// RowCursor returns the cursor of a row from its time and id as written in
// the row: time and id for hits and events, install_time and id
// (conversion_id in CSV) for conversions.
func RowCursor(timeText, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(timeText + "|" + id))
}

// ParseCursor reads a cursor: the time and id of the row it continues
// after; EINVALID for anything else.
func ParseCursor(s string) (tapline.RowPos, error) {
	bad := tapline.Errorf(tapline.EINVALID, "cursor: not a cursor of an export (base64url of a row's time, \"|\" and its id)")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return tapline.RowPos{}, bad
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return tapline.RowPos{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return tapline.RowPos{}, bad
	}
	return tapline.RowPos{Time: t.UTC(), ID: id}, nil
}
