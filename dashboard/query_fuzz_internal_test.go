package dashboard

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"tapline"
)

// FuzzQuery feeds one query string to every parser of the dashboard's
// report and listing parameters. Each refuses with EINVALID (ENOTFOUND
// for an id that names nothing), and what each accepts keeps its
// promises: a day range runs forward over midnights of its zone and at
// most MaxDays days; a filter names a report dimension once, with valid
// UTF-8 text free of control characters; a conversion listing's limit,
// search and times are within bounds.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"from=2024-05-01&to=2024-05-14&tz=Europe/Berlin",
		"from=2024-03-30&to=2024-03-31&tz=America/Santiago&source=facebook&campaign=",
		"from=2023-01-01&to=2024-12-31",
		"from=2024-05-14&to=2024-05-01",
		"tz=Local", "tz=../../etc/passwd", "tz=%00",
		"source=a&source=b", "source=%ff%fe", "campaign=%0a", "link=7&by=source&sort=-installs&limit=10",
		"by=week&split=platform&event=purchase",
		"q=jane&method=fingerprint&link=3&from=2024-05-01T00:00:00Z&to=2024-05-02&limit=100&after=MTcxNDU2NDgwMDEyMzQ1Nnxj",
		"limit=0", "limit=99999999999999999999", "link=-1", "from=0000-01-01&to=9999-12-31",
	} {
		f.Add(s)
	}
	now := time.Date(2024, 5, 14, 15, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // what ParseQuery keeps is what a handler sees
		wantCode := func(what string, err error, codes ...string) {
			t.Helper()
			for _, c := range codes {
				if tapline.ErrorCode(err) == c {
					return
				}
			}
			t.Fatalf("%s(%q) = %v, want one of %v", what, raw, err, codes)
		}

		if dr, err := parseRange(q, now); err != nil {
			wantCode("parseRange", err, tapline.EINVALID)
		} else {
			if dr.Location == nil || dr.TZ == "" || dr.From.After(dr.To) || dr.From.Location() != dr.Location || dr.To.Location() != dr.Location {
				t.Fatalf("parseRange(%q) = %+v", raw, dr)
			}
			for _, d := range []time.Time{dr.From, dr.To} {
				if h, m, s := d.Clock(); h > 1 || m != 0 || s != 0 || d.Nanosecond() != 0 {
					// A day whose midnight a DST shift skips starts at 01:00.
					t.Fatalf("parseRange(%q): %v is no midnight", raw, d)
				}
			}
			if n := len(dr.Days()); n < 1 || n > MaxDays {
				t.Fatalf("parseRange(%q) covers %d days", raw, n)
			}
		}

		if fs, err := parseFilters(q); err != nil {
			wantCode("parseFilters", err, tapline.EINVALID)
		} else {
			seen := map[string]bool{}
			for _, f := range fs {
				if seen[f.Dim] || !utf8.ValidString(f.Value) || strings.ContainsFunc(f.Value, unicode.IsControl) ||
					utf8.RuneCountInString(f.Value) > tapline.MaxCampaignValue+10 {
					t.Fatalf("parseFilters(%q) accepted %+v", raw, f)
				}
				seen[f.Dim] = true
				known := false
				for _, d := range tapline.ReportDims {
					known = known || d.Name == f.Dim
				}
				if !known {
					t.Fatalf("parseFilters(%q) accepted dimension %q", raw, f.Dim)
				}
			}
		}

		if _, err := parseCohortQuery(q); err != nil {
			wantCode("parseCohortQuery", err, tapline.EINVALID)
		}

		if cq, err := parseConversionQuery(q, 1); err != nil {
			wantCode("parseConversionQuery", err, tapline.EINVALID, tapline.ENOTFOUND)
		} else {
			if cq.Limit < 0 || cq.Limit > tapline.MaxConversionPage || len(cq.Search) > 200 || cq.LinkID < 0 ||
				!cq.From.IsZero() && !cq.To.IsZero() && !cq.To.After(cq.From) {
				t.Fatalf("parseConversionQuery(%q) = %+v", raw, cq)
			}
		}
	})
}
