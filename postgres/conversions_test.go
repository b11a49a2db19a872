package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
	"tapline/postgres/pgtest"
)

// testConversion returns conversion n of app 1, installed n minutes after
// t0, with changes changes: the install's own match (organic) and, after
// it, re-attributions to hit "h<n>-<i>".
func testConversion(n, changes int) *tapline.Conversion {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &tapline.Conversion{
		ID:          tapline.ConversionID(fmt.Sprintf("e%d", n)),
		AppID:       1,
		EventID:     fmt.Sprintf("e%d", n),
		InstallID:   fmt.Sprintf("inst-%d", n),
		InstallTime: t0.Add(time.Duration(n) * time.Minute),
		Platform:    tapline.PlatformAndroid,
		Fingerprint: "203.0.113.7|android",
		Attribution: tapline.Attribution{Method: tapline.MethodOrganic},
		UpdatedAt:   t0.Add(time.Hour),
		Decision:    &tapline.Decision{Rule: tapline.RuleOrganic, Reason: "no tap", Considered: 0},
	}
	c.History = []tapline.AttributionChange{{By: fmt.Sprintf("events/0/%d", n), To: c.Attribution, At: c.InstallTime}}
	for i := 1; i < changes; i++ {
		prev := c.Attribution
		hitTime := c.InstallTime.Add(-time.Duration(i) * time.Second)
		c.Attribution = tapline.Attribution{HitID: fmt.Sprintf("h%d-%d", n, i), LinkID: int64(i), Method: tapline.MethodFingerprint,
			HitTime: hitTime, HitParams: map[string]string{"utm_source": "ads"}}
		c.ClickToInstall = c.InstallTime.Sub(hitTime)
		c.History = append(c.History, tapline.AttributionChange{By: fmt.Sprintf("hits/0/%d", i), From: &prev, To: c.Attribution, At: c.InstallTime})
		c.Decision = &tapline.Decision{Rule: tapline.RuleLateHit, Reason: "late", Window: 24 * time.Hour, Considered: 1,
			Signals:    []tapline.Signal{{Name: "network", Install: "203.0.113.7", Hit: "203.0.113.7", Verdict: tapline.VerdictAgree}},
			Candidates: []tapline.Candidate{{HitID: c.HitID, LinkID: c.LinkID, HitTime: hitTime, Method: c.Method, Chosen: true, Reason: "late"}}}
	}
	return c
}

// TestConversionsStored checks that conversions written with a flush read
// back as they were, that an older state never replaces a newer one (a
// replay, a late flush), and that one flush may carry one conversion twice.
func TestConversionsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs, reports := postgres.NewFactStore(db), postgres.NewReports(db)

	apply := func(convs ...*tapline.Conversion) {
		t.Helper()
		if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: convs}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(id string) *tapline.Conversion {
		t.Helper()
		c, err := reports.Conversion(ctx, 1, id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Kept forever, the table holds no address or advertising id in
	// clear: the fingerprint masked, the advertising id only as a hash to
	// search by.
	stored := func(c *tapline.Conversion) *tapline.Conversion {
		c.Fingerprint, c.AdID = "203.0.113.0/24|android", ""
		return c
	}
	withAdID := testConversion(2, 2)
	withAdID.AdID = "38400000-8cf0-11bd-b23e-10b96e40000d"
	// A tap's query may carry the advertising id too: not kept either.
	withAdID.HitParams = map[string]string{"utm_source": "ads", "IDFA": withAdID.AdID}
	withAdID.History[1].To.HitParams = withAdID.HitParams
	apply(testConversion(1, 1), withAdID)
	for _, want := range []*tapline.Conversion{stored(testConversion(1, 1)), stored(testConversion(2, 2))} {
		if got := read(want.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("read back:\n got %+v\nwant %+v", got, want)
		}
	}
	apply(testConversion(1, 3), testConversion(1, 2)) // later and earlier state in one flush
	apply(testConversion(1, 2))                       // a late flush of an older state
	if got, want := read(testConversion(1, 1).ID), stored(testConversion(1, 3)); !reflect.DeepEqual(got, want) {
		t.Errorf("after older states:\n got %+v\nwant %+v", got, want)
	}
	if _, err := reports.Conversion(ctx, 2, testConversion(1, 1).ID); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("another app's conversion: err %v, want ENOTFOUND", err)
	}
}

// TestConversionsListing checks the explorer's listing: newest install
// first, pages that neither skip nor repeat, search by install id, hit id
// and advertising id (any case), filters by method and link, and bad input.
func TestConversionsListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs, reports := postgres.NewFactStore(db), postgres.NewReports(db)
	var all []*tapline.Conversion
	for n := range 23 {
		c := testConversion(n, 1+n%2)
		if n == 7 {
			c.AdID = "38400000-8cf0-11bd-b23e-10b96e40000d"
		}
		all = append(all, c)
	}
	other := testConversion(99, 2)
	other.AppID = 2
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: append(all, other)}); err != nil {
		t.Fatal(err)
	}

	var ids []string
	after := ""
	for page := 0; ; page++ {
		p, err := reports.Conversions(ctx, tapline.ConversionQuery{AppID: 1, Limit: 5, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Conversions {
			ids = append(ids, c.ID)
		}
		if p.Next == "" {
			break
		}
		if len(p.Conversions) != 5 || page > 10 {
			t.Fatalf("page %d has %d conversions and a next page", page, len(p.Conversions))
		}
		after = p.Next
	}
	var want []string
	for n := 22; n >= 0; n-- {
		want = append(want, all[n].ID)
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("pages listed %v, want %v", ids, want)
	}

	count := func(q tapline.ConversionQuery) []string {
		t.Helper()
		q.AppID = 1
		p, err := reports.Conversions(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range p.Conversions {
			out = append(out, c.InstallID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    tapline.ConversionQuery
		want int
		one  string // the only install id, when want is 1
	}{
		{"install id", tapline.ConversionQuery{Search: "inst-4"}, 1, "inst-4"},
		{"advertising id in upper case", tapline.ConversionQuery{Search: "38400000-8CF0-11BD-B23E-10B96E40000D"}, 1, "inst-7"},
		{"hit id", tapline.ConversionQuery{Search: "h5-1"}, 1, "inst-5"},
		{"other app's install", tapline.ConversionQuery{Search: "inst-99"}, 0, ""},
		{"organic", tapline.ConversionQuery{Method: tapline.MethodOrganic}, 12, ""},
		{"link", tapline.ConversionQuery{LinkID: 1, Limit: 100}, 11, ""},
		{"time range", tapline.ConversionQuery{From: all[3].InstallTime, To: all[6].InstallTime}, 3, ""},
	} {
		got := count(tc.q)
		if len(got) != tc.want || (tc.one != "" && got[0] != tc.one) {
			t.Errorf("%s: got %v, want %d (%s)", tc.name, got, tc.want, tc.one)
		}
	}
	for _, q := range []tapline.ConversionQuery{
		{AppID: 1, After: "not a cursor"},
		{AppID: 1, Limit: tapline.MaxConversionPage + 1},
		{AppID: 1, Limit: -1},
		{},
	} {
		if _, err := reports.Conversions(ctx, q); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("Conversions(%+v): err %v, want EINVALID", q, err)
		}
	}
}

// TestConversionsStoreAnyText checks that what devices and tap URLs may
// send (a NUL, bytes that are not UTF-8) cannot stop a flush: it is stored
// as U+FFFD, and an escaped backslash before "u0000" stays as it was.
func TestConversionsStoreAnyText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	fs, reports := postgres.NewFactStore(db), postgres.NewReports(db)
	c := testConversion(1, 2)
	c.InstallID = "inst-\x00-\xff"
	c.HitParams = map[string]string{"utm_source": "a\x00b"}
	c.Decision.Candidates[0].HitID = "\x00"
	c.Decision.Reason = `a \u0000 in text`
	act := tapline.CohortActivity{InstallID: "inst-\x00", Key: tapline.FactKey{Table: tapline.FactCohortActivity,
		Hour: tapline.HourOf(time.Now()), AppID: 1, Platform: tapline.PlatformIOS, Method: tapline.MethodOrganic, DayN: 1}}
	if err := fs.ApplyFacts(ctx, "m", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{c}, Activity: []tapline.CohortActivity{act}}); err != nil {
		t.Fatalf("a flush with a NUL in a conversion: %v", err)
	}
	got, err := reports.Conversion(ctx, 1, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.InstallID != "inst-\ufffd-\ufffd" || got.HitParams["utm_source"] != "a\ufffdb" || got.Decision.Candidates[0].HitID != "\ufffd" ||
		got.Decision.Reason != `a \u0000 in text` {
		t.Errorf("stored install %q, params %q, candidate %q, reason %q", got.InstallID, got.HitParams, got.Decision.Candidates[0].HitID, got.Decision.Reason)
	}
	if _, err := reports.Conversions(ctx, tapline.ConversionQuery{AppID: 1, Search: "\x00"}); tapline.ErrorCode(err) != tapline.EINVALID {
		t.Errorf("a search for a NUL: %v, want EINVALID", err)
	}
	if _, err := reports.Conversion(ctx, 1, "cv-\xff"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("a conversion id that is not UTF-8: %v, want ENOTFOUND", err)
	}
}
