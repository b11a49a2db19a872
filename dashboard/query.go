package dashboard

import (
	"net/url"
	"strconv"
	"time"

	"tapline"
)

// DefaultDays is how many days a report covers when the query names none.
const DefaultDays = 14

// MaxDays is the longest range a report may cover.
const MaxDays = 366

const dayLayout = "2006-01-02"

// dayRange is a report's days, From to To inclusive, in Location.
type dayRange struct {
	From, To time.Time // midnights in Location
	Location *time.Location
	TZ       string // the zone's name as asked, "UTC" by default
}

// Days returns the days of the range in order, as YYYY-MM-DD.
func (dr dayRange) Days() []string {
	var days []string
	for d := dr.From; !d.After(dr.To); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(dayLayout))
	}
	return days
}

// Filter returns the StatsFilter of the range for app; its To is the
// midnight after the last day.
func (dr dayRange) Filter(appID int64) tapline.StatsFilter {
	return tapline.StatsFilter{
		AppID:    appID,
		From:     dr.From,
		To:       dr.To.AddDate(0, 0, 1),
		Location: dr.Location,
	}
}

// parseRange reads from, to (YYYY-MM-DD, inclusive) and tz (an IANA zone)
// from q. A missing to is today in tz; a missing from is DefaultDays-1
// days before to.
func parseRange(q url.Values, now time.Time) (dayRange, error) {
	return parseRangeDays(q, now, DefaultDays)
}

// pageRange is parseRangeDays for a page: a query it refuses gives the
// default range in UTC and the refusal to show above it, so the page still
// renders around the mistake.
func pageRange(q url.Values, now time.Time, days int) (dayRange, *rangeError) {
	dr, err := parseRangeDays(q, now, days)
	if err == nil {
		return dr, nil
	}
	dr, _ = parseRangeDays(url.Values{}, now, days)
	return dr, &rangeError{Message: tapline.ErrorMessage(err)}
}

// rangeError is why a page refused its query.
type rangeError struct{ Message string }

// parseRangeDays is parseRange with a default of days days.
func parseRangeDays(q url.Values, now time.Time, days int) (dayRange, error) {
	tz, loc, err := parseZone(q.Get("tz"))
	if err != nil {
		return dayRange{}, err
	}
	dr := dayRange{TZ: tz, Location: loc}
	if s := q.Get("to"); s != "" {
		if dr.To, err = time.ParseInLocation(dayLayout, s, dr.Location); err != nil {
			return dayRange{}, tapline.Errorf(tapline.EINVALID, "to: %q is not a date like 2006-01-02", s)
		}
	} else {
		y, m, d := now.In(dr.Location).Date()
		dr.To = time.Date(y, m, d, 0, 0, 0, 0, dr.Location)
	}
	if s := q.Get("from"); s != "" {
		if dr.From, err = time.ParseInLocation(dayLayout, s, dr.Location); err != nil {
			return dayRange{}, tapline.Errorf(tapline.EINVALID, "from: %q is not a date like 2006-01-02", s)
		}
	} else {
		dr.From = dr.To.AddDate(0, 0, -(days - 1))
	}
	if dr.From.After(dr.To) {
		return dayRange{}, tapline.Errorf(tapline.EINVALID, "from (%s) is after to (%s)", dr.From.Format(dayLayout), dr.To.Format(dayLayout))
	}
	if n := daysBetween(dr.From, dr.To) + 1; n > MaxDays {
		return dayRange{}, tapline.Errorf(tapline.EINVALID, "the range covers %d days; at most %d are allowed", n, MaxDays)
	}
	return dr, nil
}

// parseZone reads a tz parameter: an IANA zone, UTC when empty.
func parseZone(tz string) (string, *time.Location, error) {
	if tz == "" {
		return "UTC", time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return "", nil, tapline.Errorf(tapline.EINVALID, "tz: unknown time zone %q; use an IANA name such as Europe/Berlin", tz)
	}
	return tz, loc, nil
}

// daysBetween counts calendar days from a to b, ignoring DST shifts.
func daysBetween(a, b time.Time) int {
	ua := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)
	ub := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	return int(ub.Sub(ua) / (24 * time.Hour))
}

// parseID reads a positive numeric id; anything else names nothing.
func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, tapline.Errorf(tapline.ENOTFOUND, "%s %q not found", what, s)
	}
	return id, nil
}
